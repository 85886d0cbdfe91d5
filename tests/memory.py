"""
In-memory connections for flow-control tests: no sockets, no kernel
buffers, no wall-clock time.

L{MemoryTCP} is the server's end of a TCP connection, built on Twisted's
L{StringTransport}, with the flow control of Twisted's socket transports
(C{abstract.FileDescriptor}) and nothing of the kernel's:

  - what the server writes waits in the transport until the test reads it
    as the client (L{MemoryTCP.peer_read}); past C{bufferSize} unsent bytes
    a registered streaming producer is paused on every write, and it is
    resumed once the client has read everything;
  - the transport is its own push producer: paused, it stops reading, and
    what the client sends waits (L{MemoryTCP.peer_write}) until it resumes;
    input is delivered in reads of at most C{bufferSize} bytes;
  - C{loseConnection} closes once everything written has been read (and no
    unpaused producer holds it open, as Twisted's transports do);
    C{abortConnection} drops what is unsent.  Either way C{connectionLost}
    comes on the next pass of the clock (C{callLater(0)}), as the reactor's
    does.

The transport's C{reactor} is the test's clock, so work a protocol defers to
the end of a reactor pass runs on C{clock.advance(0)}.  L{PassClock} makes
each C{advance} one reactor pass, for tests where what a pass schedules must
wait for the next one.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

# Twisted's socket transports pause their producer past this many unsent bytes.
BUFFER_SIZE = 65536


class PassClock(Clock):
    """
    A task.Clock whose C{advance} is one reactor pass: it runs the calls that
    were due when it started, in time order, and leaves the calls they make
    for the next pass, as the reactor's C{runUntilCurrent} does (a plain
    Clock runs those too, so a C{callLater(0)} made in a pass could never
    be overtaken by input read in between).
    """

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        due = sorted(
            (c for c in self.calls if c.getTime() <= self.rightNow), key=lambda c: c.getTime()
        )
        for call in due:
            if call in self.calls:  # not cancelled by an earlier call of this pass
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


class MemoryTCP(StringTransport):
    """
    The server's end of one in-memory TCP connection (see the module).

    @ivar producerState: whether the transport reads: C{"producing"} or
        C{"paused"} (L{StringTransport}'s own, for the transport as producer).
    @ivar producer_paused: whether the transport has paused the producer
        registered with it because its buffer is full.
    @ivar waiting_input: bytes the client sent that the server has not read.
    @ivar read_by_peer: everything the client has read so far.
    @ivar lost_reason: why C{connectionLost} was called, once it was.
    """

    def __init__(self, clock: Clock, host: str = "127.0.0.1", port: int = 40000) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 7),
            peerAddress=IPv4Address("TCP", host, port),
        )
        self.clock = clock
        self.reactor = clock
        self.bufferSize = BUFFER_SIZE
        self.producer_paused = False
        self.waiting_input = b""
        self.read_by_peer = b""
        self.lost_reason: Failure | None = None
        self.protocol: Any = None
        self._lost_scheduled = False

    # -- the server's side ---------------------------------------------------

    @property
    def unsent(self) -> int:
        """Bytes written that the client has not read."""
        return len(self.value())

    def write(self, data: bytes) -> None:
        if not self.connected or self.disconnected:
            return
        super().write(data)
        if self.producer is not None and self.streaming and self.unsent > self.bufferSize:
            self.producer_paused = True
            self.producer.pauseProducing()

    def unregisterProducer(self) -> None:
        super().unregisterProducer()
        self.producer_paused = False
        self._maybe_close()

    def loseConnection(self) -> None:
        if self.connected and not self.disconnecting:
            self.disconnecting = True
            self.producerState = "paused"  # stops reading, as stopReading does
            self._maybe_close()

    def abortConnection(self) -> None:
        if self.connected and not self.disconnected:
            self.disconnected = True
            self.producerState = "paused"
            self._schedule_lost(Failure(ConnectionAborted()))

    def pauseProducing(self) -> None:
        """Stop reading (the transport as its own producer)."""
        if not self.disconnecting:
            super().pauseProducing()

    def resumeProducing(self) -> None:
        """Read again; what waits is delivered when the test next moves data."""
        if not self.disconnecting:
            super().resumeProducing()

    @property
    def reading(self) -> bool:
        """Whether the server reads what the client sends."""
        return self.producerState == "producing" and not self.disconnecting

    # -- the client's side -----------------------------------------------------

    def peer_write(self, data: bytes) -> None:
        """The client sends C{data}; the server reads it unless it stopped reading."""
        if not self.connected or self.disconnected:
            return
        self.waiting_input += data
        self._deliver()

    def peer_read(self, size: int | None = None) -> bytes:
        """
        The client reads up to C{size} bytes (all, by default) of what the
        server wrote; once nothing is left unsent the paused producer is
        resumed, or a closing connection closes.
        """
        buffered = self.value()
        size = len(buffered) if size is None else size
        data, rest = buffered[:size], buffered[size:]
        self.clear()
        self.io.write(rest)
        self.read_by_peer += data
        if not rest:
            if self.producer is not None and self.producer_paused:
                self.producer_paused = False
                self.producer.resumeProducing()
            self._maybe_close()
        self._deliver()
        return data

    def peer_close(self) -> None:
        """The client hangs up: the server's connection is lost, cleanly."""
        if self.connected and not self.disconnected:
            self.disconnected = True
            self._schedule_lost(Failure(ConnectionDone()))

    # -- internals ---------------------------------------------------------------

    def _deliver(self) -> None:
        while self.waiting_input and self.reading and self.connected and not self.disconnected:
            chunk = self.waiting_input[: self.bufferSize]
            self.waiting_input = self.waiting_input[len(chunk):]
            self.protocol.dataReceived(chunk)

    def _maybe_close(self) -> None:
        if (
            self.disconnecting and not self.disconnected and not self.unsent
            and (self.producer is None or not self.producer_paused)
        ):
            self.disconnected = True
            self._schedule_lost(Failure(ConnectionDone()))

    def _schedule_lost(self, reason: Failure) -> None:
        if self._lost_scheduled:
            return
        self._lost_scheduled = True
        self.clock.callLater(0, self._lost, reason)

    def _lost(self, reason: Failure) -> None:
        self.connected = False
        self.lost_reason = reason
        self.protocol.connectionLost(reason)


def serve(
    factory: IProtocolFactory, clock: Clock, host: str = "127.0.0.1", port: int = 40000
) -> tuple[Any, MemoryTCP]:
    """A client from C{host}:C{port} connects to C{factory}: (server protocol, transport)."""
    transport = MemoryTCP(clock, host, port)
    protocol = factory.buildProtocol(transport.getPeer())
    assert protocol is not None
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport
