"""
The mail services' kinds, C{[smtp]} and C{[pop3]}, both off by default.

The SMTP kind builds what both share: the store (a resource opened before
anything listens and closed after the last goodbye), the accounts and the
cred portal, and provides them to the POP3 kind built after it.
"""

from __future__ import annotations

from functools import partial

from twisted.logger import LogLevel

from netlab.core.events import ERROR
from netlab.core.kinds import BuildContext, BuiltService, InWorkers, ServiceKind
from netlab.core.passwords import verify_later
from netlab.protocols.mail.accounts import MailAccounts, MailRealm, mail_portal
from netlab.protocols.mail.pop3 import Pop3Factory, Pop3Mailbox
from netlab.protocols.mail.settings import (
    POP3_LISTEN,
    SMTP_LISTEN,
    Pop3Settings,
    SmtpSettings,
    check_pop3,
    check_smtp,
)
from netlab.protocols.mail.smtp import MailDelivery, SmtpFactory, quotas
from netlab.protocols.mail.store import MailStore, MailStoreError
from netlab.protocols.sqlwriter import Database


class MailDatabase(Database):
    """The mail store as a shared resource: opened before listening."""

    def __init__(self, store: MailStore, service: str) -> None:
        super().__init__(service, store.path, store.open, store.close, MailStoreError)


class MailShared:
    """What [smtp] builds and [pop3] reads through: the store, the accounts, the portal."""

    def __init__(self, store: MailStore, accounts: MailAccounts, portal: object) -> None:
        self.store = store
        self.accounts = accounts
        self.portal = portal


def build_smtp(settings: SmtpSettings, context: BuildContext) -> BuiltService:
    """The store, the accounts and portal both services share, and the SMTP factory."""
    events, reactor = context.events, context.reactor
    factory: SmtpFactory | None = None

    def dropped(what: object) -> None:
        if factory is not None:
            factory.dropped(what)  # type: ignore[arg-type]

    def changed() -> None:
        if factory is not None:
            factory.stored_counts()

    store = MailStore(
        settings.database, quotas(settings), reactor,
        on_error=lambda message: events.emit(
            ERROR, settings.name, None, LogLevel.error, error=message
        ),
        on_drop=dropped,
        on_change=changed,
    )
    accounts = MailAccounts(settings, verify=partial(verify_later, reactor))
    realm = MailRealm(MailDelivery, partial(Pop3Mailbox, store))
    portal = mail_portal(accounts, realm)
    factory = SmtpFactory(settings, events, reactor, portal, store)
    context.add_resource(MailDatabase(store, settings.name))
    context.provide(MailStore, store)
    context.provide(MailShared, MailShared(store, accounts, portal))
    return BuiltService(stream=factory, parts=[accounts])


def build_pop3(settings: Pop3Settings, context: BuildContext) -> BuiltService:
    """The POP3 factory, reading [smtp]'s store through its portal."""
    shared = context.lookup(MailShared)
    assert shared is not None, "the config check makes [pop3] need [smtp]"
    return BuiltService(stream=Pop3Factory(
        settings, context.events, context.reactor, shared.portal, shared.accounts
    ))


SMTP = ServiceKind(
    section="smtp",
    settings=SmtpSettings,
    default_listen=SMTP_LISTEN,
    build=build_smtp,
    check=check_smtp,
    restart_keys=frozenset({"database"}),
    counters=("messages_stored", "mailboxes", "messages_accepted", "messages_refused"),
    try_with="swaks --server {host}:{port} --to bob@netlab.test",
    # The store, its quotas and maildrop locks live in one process, and the
    # web site's /mail reads it there.
    in_workers=InWorkers.FIRST,
    readers=frozenset({"http"}),
    levels=frozenset({"messages_stored", "bytes_stored", "mailboxes"}),
)

POP3 = ServiceKind(
    section="pop3",
    settings=Pop3Settings,
    default_listen=POP3_LISTEN,
    build=build_pop3,
    check=check_pop3,
    counters=("messages_read", "messages_deleted", "logins"),
    try_with="telnet {host} {port}",
    in_workers=InWorkers.FIRST,
)

# [pop3] after [smtp], whose store and portal it reads.
KINDS = (SMTP, POP3)
