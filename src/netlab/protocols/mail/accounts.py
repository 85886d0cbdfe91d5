"""
Who may log in to the mail services, through Twisted's cred: one checker
for SMTP's AUTH PLAIN and LOGIN and POP3's USER/PASS and APOP, and one
realm that hands SMTP a delivery and POP3 a mailbox.

With C{auth = "any"} every name and password is let in (a class on one
machine, the default on loopback); with C{auth = "users"} only the
config's C{NAME:HASH} accounts, checked against their salted scrypt hash
in a thread, at most a few at once.  APOP proves the password by an MD5
over it, which a scrypt hash cannot check: it is offered only with
C{auth = "any"}.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, DeferredSemaphore, fail, succeed
from twisted.mail.pop3 import IMailbox
from twisted.mail.smtp import IMessageDelivery
from zope.interface import implementer

from netlab.protocols.login.auth import DUMMY_HASH
from netlab.protocols.login.settings import parse_users, user_key
from netlab.protocols.mail.settings import SmtpSettings

# Password checks at once, each in a thread (about 50 ms and 16 MiB).
MAX_HASHING = 2

# What a login may be with auth = "any": a name or an address, printable,
# no spaces; the POP3 mailbox it reads follows from it.
LOGIN = re.compile(r"^[^\s\x00-\x1f\x7f]{1,254}$")
APOP_DIGEST = re.compile(rb"^[0-9a-f]{32}$")


def login_name(raw: bytes | str) -> str | None:
    """The login C{raw} names, or None if it is none (not UTF-8, spaces, controls)."""
    try:
        name = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return None
    return name if LOGIN.match(name) else None


@implementer(ICredentialsChecker)
class MailAccounts:
    """
    The accounts of C{[smtp]}, for both mail services.

    @param verify: checks a password against a hash, off the event loop.
    """

    credentialInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    def __init__(
        self, settings: SmtpSettings, verify: Callable[[str, str], Deferred[bool]]
    ) -> None:
        self.verify = verify
        self.hashing = DeferredSemaphore(MAX_HASHING)
        self.configure(settings)

    def configure(self, settings: SmtpSettings) -> None:
        """New accounts (a reload) apply to the next login."""
        self.open = settings.auth == "any"
        self.users = parse_users(settings.users)

    @property
    def apop(self) -> bool:
        """Whether APOP can be checked: only when any password is good."""
        return self.open

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        name = login_name(credentials.username)
        if name is None:
            return fail(UnauthorizedLogin("not a login name"))
        if not IUsernamePassword.providedBy(credentials):
            # APOP: the digest can only be checked against a clear password.
            if self.open and APOP_DIGEST.match(getattr(credentials, "digest", b"") or b""):
                return succeed(name)
            return fail(UnauthorizedLogin("APOP is not offered for these accounts"))
        if self.open:
            return succeed(name)
        try:
            password = credentials.password.decode("utf-8")
        except UnicodeDecodeError:
            return fail(UnauthorizedLogin("password is not UTF-8"))
        registered, encoded = self.users.get(user_key(name), (name, DUMMY_HASH))
        known = user_key(name) in self.users

        def checked(good: bool) -> str:
            if good and known:
                return registered
            raise UnauthorizedLogin("wrong name or password")

        # An unknown name is checked against a dummy hash: the same time as
        # a wrong password, so timing does not tell which names exist.
        return self.hashing.run(self.verify, password, encoded).addCallback(checked)


@implementer(IRealm)
class MailRealm:
    """
    Avatars for a logged-in name: for SMTP, the delivery that stamps its
    messages with the name; for POP3, its mailbox.
    """

    def __init__(
        self,
        delivery: Callable[[str], IMessageDelivery],
        mailbox: Callable[[str], IMailbox],
    ) -> None:
        self.delivery = delivery
        self.mailbox = mailbox

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        for interface in interfaces:
            if interface is IMessageDelivery:
                return IMessageDelivery, self.delivery(avatarId), lambda: None
            if interface is IMailbox:
                return IMailbox, self.mailbox(avatarId), lambda: None
        raise NotImplementedError("the mail realm serves SMTP deliveries and POP3 mailboxes")


def mail_portal(accounts: MailAccounts, realm: MailRealm) -> Portal:
    """The one portal both services log in through."""
    return Portal(realm, [accounts])


__all__ = ["MailAccounts", "MailRealm", "login_name", "mail_portal"]
