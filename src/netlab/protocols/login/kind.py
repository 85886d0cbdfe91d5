"""
The login service's kind, C{[login]}: off by default; when enabled it opens
its own SQLite database before anything listens and closes it after the
last goodbye.
"""

from __future__ import annotations

from functools import partial

from twisted.internet.defer import Deferred
from twisted.logger import LogLevel

from netlab.core.events import ERROR
from netlab.core.kinds import BuildContext, BuiltService, InWorkers, ServiceKind, StartError
from netlab.core.passwords import hash_later, verify_later
from netlab.protocols.login.auth import LoginService
from netlab.protocols.login.line import LoginFactory
from netlab.protocols.login.settings import DEFAULT_LISTEN, LoginSettings, check_login
from netlab.protocols.login.store import LoginStore, LoginStoreError


class LoginDatabase:
    """The login store as a shared resource: opened before listening."""

    def __init__(self, store: LoginStore, service: str, reactor: object) -> None:
        self.store = store
        self.service = service
        self.description = f"database {store.path}"
        self._reactor = reactor

    def open(self) -> None:
        try:
            self.store.open(self._reactor.seconds())  # type: ignore[attr-defined]
        except LoginStoreError as e:
            raise StartError(str(e)) from None

    def close(self) -> Deferred[None]:
        return self.store.close()


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
