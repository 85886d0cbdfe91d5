"""
What every web resource may need from the rest of the daemon, typed, in a
module of its own: resource modules import it without importing the Site
(and the Site imports them through the route table only).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from twisted.internet.interfaces import IReactorTime

from netlab.core.accounting import ConnectionRecord, ServiceBooks
from netlab.core.events import EventLog
from netlab.core.kinds import ServiceKind
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.http.settings import HttpSettings
from netlab.protocols.mail.kind import MailShared

T = TypeVar("T")


class DaemonView(Protocol):
    """
    What the dashboard reads of the daemon service (C{NetlabService}, which
    this layer may not import): its listener services, each ready once it
    has a C{port}.
    """

    @property
    def listeners(self) -> Sequence[object]: ...


@dataclass
class HttpContext:
    """
    What the resources are built from (see L{netlab.protocols.http.routes}).

    @ivar settings: the C{[http]} settings; a reload replaces them here.
    @ivar reactor: for time (C{seconds}, C{callLater}, the delayed calls
        C{/metrics} counts); tests pass a C{task.Clock}.
    @ivar hub: the chat hub shared with the telnet users, if the chat runs.
    @ivar service: the daemon, for the dashboard's readiness; C{None}
        outside a daemon (then the site is always ready).
    @ivar started: when the site was built, on the reactor's clock.
    @ivar status_random: the random choice of C{/status/A,B} (tests fix it).
    @ivar services: every enabled service of the daemon as C{(name, kind)},
        from the registry, in build order: the dashboard and C{/metrics}
        show each one from the start, before it has counted anything.
    @ivar kinds: the registry's kinds by section, for what the dashboard
        shows of each service (its counters, how to try it).
    @ivar mail: finds the mail store and accounts, when C{[smtp]} runs
        (C{None} when it does not): looked up when a request needs them,
        since the mail kinds are built after the web site.
    """

    settings: HttpSettings
    events: EventLog
    reactor: IReactorTime
    hub: ChatHub | None = None
    service: DaemonView | None = None
    started: float = 0.0
    status_random: random.Random | None = None
    services: Sequence[tuple[str, str]] = ()
    kinds: Mapping[str, ServiceKind[Any]] = field(default_factory=dict)
    mail: Callable[[], MailShared | None] | None = None
    _websockets: ServiceBooks[ConnectionRecord] | None = field(
        default=None, init=False, repr=False
    )
    _shared: dict[type, Any] = field(default_factory=dict, init=False, repr=False)

    def shared(self, kind: type[T], make: Callable[[HttpContext], T]) -> T:
        """
        The site's one C{kind}, made by C{make} the first time: what the
        resources of several routes share (the web mailbox's sessions).
        """
        if kind not in self._shared:
            self._shared[kind] = make(self)
        value: T = self._shared[kind]
        return value

    def websockets(self) -> ServiceBooks[ConnectionRecord]:
        """
        The books of the site's WebSocket service (C{NAME-ws}), shared by
        every WebSocket endpoint; made at the first WebSocket, so that the
        service shows on the dashboard and in C{/metrics} once it has one.
        """
        if self._websockets is None:
            self._websockets = ServiceBooks(self.websocket_service, self.events, self.reactor)
        return self._websockets

    @property
    def websocket_service(self) -> str:
        """The name the site's WebSocket endpoints count and log under."""
        return f"{self.settings.name}-ws"
