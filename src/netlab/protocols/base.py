"""
What every stream protocol shares: connection accounting and limits,
lifecycle events, the idle timeout, backpressure, refusals and shutdown.

A service's factory subclasses L{StreamFactory}; its protocol subclasses
L{StreamProtocol} and reaches settings, events and counters through
C{self.factory}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from netlab.core.accounting import ConnectionRecord, ServiceBooks
from netlab.core.events import (
    DROPPED,
    RECEIVED,
    SENT,
    SHUTDOWN,
    EventLog,
    sample,
)
from netlab.core.fastwrite import write_now
from netlab.core.settings import StreamSettings, payload_level

SHUTDOWN_MESSAGE = "Server shutting down."

# How long shutdown waits for goodbyes to drain before aborting connections.
SHUTDOWN_GRACE = 5.0


class RefusedProtocol(Protocol):
    """Tells a refused client why in one line, then hangs up."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(f"ERROR {self.reason}\r\n".encode())
        self.transport.loseConnection()


class IdleTimeout:
    """
    C{TimeoutMixin}'s interface (C{setTimeout}, C{resetTimeout},
    C{timeoutConnection}), with a C{resetTimeout} cheap enough for every
    chunk received: it notes the time, and the timer, when it fires, starts
    again for what is left of the period.  Rescheduling Twisted's
    C{DelayedCall} on every echo was a tenth of its Python time.

    C{callLater} and C{seconds} are the clock's (a C{task.Clock} in tests).
    """

    timeOut: float | None = None
    _idle_call: IDelayedCall | None = None
    _active_at = 0.0
    seconds: Callable[[], float]
    callLater: Callable[..., IDelayedCall]

    def setTimeout(self, period: float | None) -> float | None:
        """Time out after C{period} seconds without input from now on (None: never)."""
        previous, self.timeOut = self.timeOut, period
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        if period is not None:
            self._active_at = self.seconds()
            self._idle_call = self.callLater(period, self._idle_check)
        return previous

    def resetTimeout(self) -> None:
        """Input arrived: the period starts again now."""
        if self._idle_call is not None:
            self._active_at = self.seconds()

    def _idle_check(self) -> None:
        self._idle_call = None
        period = self.timeOut
        if period is None:
            return
        left = self._active_at + period - self.seconds()
        if left > 0:
            self._idle_call = self.callLater(left, self._idle_check)
            return
        self.timeoutConnection()

    def timeoutConnection(self) -> None:
        """The period passed without input."""


def idle_goodbye(timeout: float) -> str:
    """What a client idle for C{timeout} seconds is told as it is closed."""
    return f"Idle for {timeout:g} seconds, closing. Bye."


@implementer(IHalfCloseableProtocol)
class StreamProtocol(Protocol, IdleTimeout, ConnectionRecord):
    """
    Base of every netlab stream protocol.

    @cvar self_producer: register the transport as its own streaming
        producer, so that a client that sends more than it reads makes the
        server stop reading from it until it catches up.
    """

    factory: StreamFactory
    self_producer: ClassVar[bool] = True
    # Whether goodbyes (idle, shutdown) are written as a line of text;
    # binary protocols say False.
    has_lines = True
    _linger: IDelayedCall | None = None

    def connectionMade(self) -> None:
        factory = self.factory
        self.counters = factory.counters
        self.events = factory.events
        self.close_reason: str | None = None
        # The idle timer and the linger run on the factory's clock, so tests
        # can drive them with a task.Clock.
        self.callLater = factory.clock.callLater
        self.seconds = factory.clock.seconds
        factory.connected(self)
        if self.self_producer:
            self.transport.registerProducer(self.transport, True)  # type: ignore[union-attr]
        if factory.settings.idle_timeout:
            self.setTimeout(factory.settings.idle_timeout)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self.factory.disconnected(self, reason)

    def readConnectionLost(self) -> None:
        """
        The client finished sending (C{nc -N}, C{shutdown(SHUT_WR)}): answer
        what it sent, then close, rather than dropping unsent answers.
        """
        self.end_of_input()
        self.close("closed by client")

    def writeConnectionLost(self) -> None:
        """The client stopped reading: nothing more can be delivered."""
        self.close("client stopped reading")

    def end_of_input(self) -> None:
        """Called when the client half-closes, before the close: flush partial input."""

    def received(self, data: bytes, shown: bytes | None = None) -> None:
        """
        Count C{data} as received, and narrate it (debug level, or the
        service's): its sample is of C{shown} instead, when what came must
        not be logged as it is (a password).
        """
        size = len(data)
        self.bytes_in += size
        self.counters.bytes_in += size
        level = payload_level(self.factory.log_payload, self.events.debug_enabled)
        if level is not None:
            self.events.emit(
                RECEIVED, self.factory.name, self.peer, level,
                nbytes=size, sample=sample(data if shown is None else shown),
            )

    def send(self, data: bytes, shown: bytes | None = None) -> None:
        """Write C{data}, counting it; its sample is of C{shown}, if given."""
        size = len(data)
        self.bytes_out += size
        self.counters.bytes_out += size
        write_now(self.transport, data)
        level = payload_level(self.factory.log_payload, self.events.debug_enabled)
        if level is not None:
            self.events.emit(
                SENT, self.factory.name, self.peer, level,
                nbytes=size, sample=sample(data if shown is None else shown),
            )

    def send_line(self, text: str) -> None:
        """Send one line of text, terminated the way telnet wants."""
        self.send(text.encode("utf-8") + b"\r\n")

    def reject(self, what: str, reason: str) -> None:
        """Count and log one piece of refused input (the client is told separately)."""
        self.counters.dropped += 1
        self.events.emit(
            DROPPED, self.factory.name, self.peer, LogLevel.warn,
            what=what, reason=reason, suppressed="",
        )

    def close(self, reason: str, message: str | None = None) -> None:
        """
        End the session: say C{message} (if this protocol has lines), then
        close once everything written has been sent.
        """
        transport = self.transport
        if transport is None or self.close_reason is not None:
            return
        self.setTimeout(None)
        if message and self.has_lines:
            self.send_line(message)
            if self.close_reason is not None:  # sending it dropped the client
                return
        self.close_reason = reason
        # A registered producer would keep the transport from ever closing.
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()  # type: ignore[attr-defined]
        transport.loseConnection()

    def abort(self) -> None:
        """Drop the connection now, unsent data and all."""
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def timeoutConnection(self) -> None:
        timeout = self.factory.settings.idle_timeout
        self.close("idle timeout", idle_goodbye(timeout))
        # A client that stopped reading never lets the goodbye drain: drop
        # it after a grace period so its connection slot comes back.
        self._linger = self.callLater(SHUTDOWN_GRACE, self.abort)

    def shutdown(self, reason: str) -> None:
        """The daemon is stopping: say goodbye where there are lines."""
        self.close(reason, SHUTDOWN_MESSAGE)


class StreamFactory(ServerFactory):
    """
    Base of every netlab stream factory: applies the connection limits,
    keeps the open protocols, and narrates their lifecycle.
    """

    protocol: type[StreamProtocol]  # type: ignore[assignment]
    noisy = False  # the EventLog narrates; Twisted's own start/stop lines are noise

    def __init__(
        self, settings: StreamSettings, events: EventLog, clock: IReactorTime
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.events = events
        self.clock = clock
        self.books: ServiceBooks[StreamProtocol] = ServiceBooks(
            self.name, events, clock, settings
        )
        # The books' own objects, under the names protocols and tests use.
        self.counters = self.books.counters
        self.limits = self.books.limits
        self.open_protocols = self.books.open
        self.log_payload: bool = getattr(settings, "log_payload", False)

    def configure(self, settings: StreamSettings) -> None:
        """New settings (a reload): protocols read them from here from now on."""
        self.settings = settings
        self.books.configure(settings)
        self.log_payload = getattr(settings, "log_payload", False)

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        refusal = self.books.admit(addr)
        if refusal is not None:
            return RefusedProtocol(refusal.reason)
        protocol = super().buildProtocol(addr)
        assert isinstance(protocol, StreamProtocol)
        protocol.locate(addr)
        return protocol

    def connected(self, protocol: StreamProtocol) -> None:
        """C{protocol} is connected: count and narrate it."""
        self.books.opened(protocol)

    def disconnected(self, protocol: StreamProtocol, reason: Failure) -> None:
        """C{protocol} is gone: why, in the words of its own close or of C{reason}."""
        why = protocol.close_reason
        if why is None:
            why = (
                "closed by client" if reason.check(ConnectionDone)
                else reason.getErrorMessage()
            )
        self.books.closed(protocol, why)

    def shutdown(self, reason: str = "server shutdown") -> Deferred[None]:
        """
        Say goodbye to every open connection and close it; fires once all are
        gone, aborting any still draining after L{SHUTDOWN_GRACE} seconds.
        """
        if not self.open_protocols:
            return succeed(None)
        self.events.emit(SHUTDOWN, self.name, count=len(self.open_protocols), reason=reason)
        d = self.when_idle()
        for protocol in list(self.open_protocols):
            protocol.shutdown(reason)
        if self.open_protocols:
            laggards = self.clock.callLater(SHUTDOWN_GRACE, self._abort_all)
            d.addBoth(_cancel, laggards)
        return d

    def when_idle(self) -> Deferred[None]:
        """Fires once no connection of this factory is open."""
        return self.books.when_idle()

    def _abort_all(self) -> None:
        for protocol in list(self.open_protocols):
            protocol.abort()


def _cancel(result: Any, call: Any) -> Any:
    if call.active():
        call.cancel()
    return result
