"""
Connection accounting, written once for every kind of connection: a TCP
stream, an HTTP channel, a WebSocket, a proven UDP chat member.

Each service keeps one L{ServiceBooks}: its counters, its connection caps
and access list (when it has stream settings), and the set of its open
connections.  A connection is admitted (or refused, counted and narrated),
opened (counted, narrated) and closed (its slot given back, narrated with
its duration and bytes), always with the same event fields, so that the
dashboard, C{/metrics} and the log read every service the same way.

The per-connection figures live on the connection object itself (the
L{ConnectionRecord} mixin), not in a record it points to: the echo and HTTP
hot paths add to C{self.bytes_in} with one attribute lookup, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import LogLevel

from netlab.core.events import (
    CONNECTED,
    DISCONNECTED,
    REFUSED,
    EventLog,
    ServiceCounters,
    describe_address,
)
from netlab.core.limits import ConnectionLimits, OpenConnections, SettingsAccess
from netlab.core.settings import StreamSettings


def peer_host(addr: Any) -> str:
    """The host a connection from C{addr} counts against ("local" for a Unix socket)."""
    return getattr(addr, "host", None) or "local"


class ConnectionRecord:
    """
    What the books know of one connection, kept as plain attributes of the
    connection itself (mix this class in).

    @ivar peer_host: the host its per-peer slot is counted against.
    @ivar peer: the address as the log shows it.
    @ivar started: when it opened, on the service's clock.
    @ivar bytes_in: bytes received from it (its owner counts them).
    @ivar bytes_out: bytes sent to it (its owner counts them).
    """

    peer_host = "local"
    peer = "-"
    started = 0.0
    bytes_in = 0
    bytes_out = 0

    def locate(self, addr: Any) -> None:
        """Take C{peer_host} and C{peer} from a Twisted address."""
        self.peer_host = peer_host(addr)
        self.peer = describe_address(addr)


C = TypeVar("C", bound=ConnectionRecord)


@dataclass(frozen=True, slots=True)
class Refusal:
    """
    Why a connection was not let in.

    @ivar reason: what the client is told and the log says.
    @ivar denied: refused by the access list (HTTP answers 403), not a cap (503).
    """

    reason: str
    denied: bool = False


class ServiceBooks(Generic[C]):
    """
    One service's connection accounting.

    With C{settings} (a stream service), connections are admitted against
    its access list and caps, and each admitted one holds a per-peer slot
    until it closes.  Without (a WebSocket service riding on an HTTP
    connection that holds the slot, UDP chat members), only counting and
    narration are done.

    @ivar counters: the service's L{ServiceCounters}, also bumped directly
        on hot paths.
    @ivar limits: the connection caps, or C{None} without settings.
    @ivar open: the open connections, whose emptying fires L{when_idle}.
    """

    def __init__(
        self,
        name: str,
        events: EventLog,
        clock: IReactorTime,
        settings: StreamSettings | None = None,
    ) -> None:
        self.name = name
        self.events = events
        self.clock = clock
        self.counters: ServiceCounters = events.counters_for(name)
        self.settings = settings
        self.limits = ConnectionLimits.for_settings(settings) if settings is not None else None
        self.access = SettingsAccess()
        self.open: OpenConnections[C] = OpenConnections()

    def configure(self, settings: StreamSettings) -> None:
        """New settings (a reload): new caps and access list; open connections keep their slots."""
        self.settings = settings
        if self.limits is not None:
            self.limits.configure(settings)

    def admit(self, addr: Any) -> Refusal | None:
        """
        Take a slot for a connection from C{addr}, or say why not; a refusal
        is counted and narrated here, the caller only tells the client.
        """
        if self.settings is None or self.limits is None:
            return None
        host = peer_host(addr)
        denied = self.access.refusal(self.settings, host)
        reason = denied or self.limits.acquire(host)
        if reason is None:
            return None
        self.refused(describe_address(addr), reason)
        return Refusal(reason, denied is not None)

    def refused(self, peer: str, reason: str) -> None:
        """Count and narrate one refusal (a cap, the access list, a request limit)."""
        self.counters.refused += 1
        self.events.emit(REFUSED, self.name, peer, LogLevel.warn, limit=reason)

    def opened(self, connection: C, level: LogLevel = LogLevel.info) -> None:
        """C{connection} (located, admitted) is now open: start its figures, count it."""
        connection.started = self.clock.seconds()
        connection.bytes_in = 0
        connection.bytes_out = 0
        self.open.add(connection)
        counters = self.counters
        counters.connections_open += 1
        counters.connections_total += 1
        self.events.emit(CONNECTED, self.name, connection.peer, level,
                         open=counters.connections_open)

    def closed(self, connection: C, reason: str, level: LogLevel = LogLevel.info) -> None:
        """C{connection} is gone: give back its slot, narrate it with its figures."""
        if self.limits is not None:
            self.limits.release(connection.peer_host)
        self.counters.connections_open -= 1
        self.events.emit(
            DISCONNECTED, self.name, connection.peer, level,
            reason=reason,
            duration=f"{self.clock.seconds() - connection.started:.3f}",
            bytes_in=connection.bytes_in,
            bytes_out=connection.bytes_out,
        )
        # Last, so that whoever waits for the close sees it narrated.
        self.open.discard(connection)

    def when_idle(self) -> Deferred[None]:
        """Fires once no connection of this service is open."""
        return self.open.when_empty()
