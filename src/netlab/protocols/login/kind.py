"""
The login service's kind, C{[login]}: off by default; when enabled it opens
its own SQLite database before anything listens and closes it after the
last goodbye.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.logger import LogLevel

from netlab.core.events import ERROR
from netlab.core.kinds import BuildContext, BuiltService, InWorkers, ServiceKind
from netlab.core.passwords import hash_later, verify_later
from netlab.protocols.login.auth import LoginService
from netlab.protocols.login.line import LoginFactory
from netlab.protocols.login.settings import DEFAULT_LISTEN, LoginSettings, check_login
from netlab.protocols.login.store import LoginStore, LoginStoreError
from netlab.protocols.sqlwriter import Database


class LoginDatabase(Database):
    """The login store as a shared resource: opened before listening (its clock read then)."""

    def __init__(self, store: LoginStore, service: str, reactor: Any) -> None:
        super().__init__(
            service, store.path, lambda: store.open(reactor.seconds()), store.close,
            LoginStoreError,
        )


def build(settings: LoginSettings, context: BuildContext) -> BuiltService:
    """The store, the shared accounts and limits, and the telnet/netcat factory."""
    events, reactor = context.events, context.reactor
    store = LoginStore(
        settings.database, reactor,
        on_error=lambda message: events.emit(
            ERROR, settings.name, None, LogLevel.error, error=message
        ),
    )
    service = LoginService(
        settings, events, reactor, store,
        verify=partial(verify_later, reactor),
        make_hash=partial(hash_later, reactor),
    )
    context.add_resource(LoginDatabase(store, settings.name, reactor))
    return BuiltService(stream=LoginFactory(settings, events, reactor, service), parts=[service])


KIND = ServiceKind(
    section="login",
    settings=LoginSettings,
    default_listen=DEFAULT_LISTEN,
    build=build,
    check=check_login,
    restart_keys=frozenset({"database"}),
    try_with="telnet {host} {port}",
    in_workers=InWorkers.FIRST,
)
