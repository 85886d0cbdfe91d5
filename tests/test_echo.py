"""Tests for netlab.protocols.echo over real loopback sockets."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock

from helpers import Collector, close_all, connect, listen, shut_down
from netlab.core._twisted import tcp_buffered_bytes
from netlab.core.events import CONNECTED, DISCONNECTED, DROPPED, RECEIVED, REFUSED, SENT
from netlab.protocols.echo import EchoFactory, EchoSettings


def echo_factory(events: Any, clock: Any, **settings: Any) -> EchoFactory:
    return EchoFactory(EchoSettings(name="echo", **settings), events, clock)


@pytest_twisted.inlineCallbacks
def session(factory: EchoFactory, send: bytes, until: bytes | int) -> Any:
    """Connect, send, wait for the answer, close both ends; the data received."""
    port = listen(factory)
    client = yield connect(port)
    client.send(send)
    if isinstance(until, int):
        data = yield client.wait_bytes(until)
    else:
        data = yield client.wait_text(until)
    yield shut_down(factory, port, client)
    return data


@pytest_twisted.inlineCallbacks
def test_plain_is_byte_exact(events: Any, clock: Clock) -> Any:
    """Plain mode echoes every byte value back unchanged, however it is chunked."""
    factory = echo_factory(events, clock)
    port = listen(factory)
    client = yield connect(port)
    payload = bytes(range(256)) * 64
    for i in range(0, len(payload), 777):
        client.send(payload[i:i + 777])
    data = yield client.wait_bytes(len(payload))
    assert data == payload
    yield shut_down(factory, port, client)


@pytest_twisted.inlineCallbacks
def test_plain_quit_word_ends_session(events: Any, clock: Clock) -> Any:
    """In plain mode the quit line is echoed, then the goodbye, then the close."""
    factory = echo_factory(events, clock, quit="exit", goodbye="See you.")
    port = listen(factory)
    client = yield connect(port)
    client.send(b"hi\nex")
    yield client.wait_text(b"hi\nex")
    client.send(b"it\r\nignored")
    yield client.closed
    assert client.data.startswith(b"hi\nexit\r\n")
    assert b"See you.\r\n" in client.data
    yield factory.when_idle()
    assert events.kinds(DISCONNECTED)[-1]["reason"] == "quit"
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_upper_is_utf8_aware(events: Any, clock: Clock) -> Any:
    """Upper mode upper-cases non-ASCII letters and keeps each line's ending."""
    factory = echo_factory(events, clock, mode="upper")
    data = yield session(factory, "straße é\nnext\r\n".encode(), b"NEXT\r\n")
    assert data == "STRASSE É\nNEXT\r\n".encode()


@pytest_twisted.inlineCallbacks
def test_ok_mode_banner_and_lines(events: Any, clock: Clock) -> Any:
    """OK mode greets the client, then answers each line as OK...<line>."""
    factory = echo_factory(events, clock, mode="ok", unit="line", banner="Welcome to netlab")
    data = yield session(factory, b"one\r\ntwo\n", b"OK...two\n")
    assert data == b"Welcome to netlab\r\nOK...one\r\nOK...two\n"


@pytest_twisted.inlineCallbacks
def test_telnet_negotiation_dropped(events: Any, clock: Clock) -> Any:
    """Telnet IAC sequences never show up in a line-mode answer."""
    factory = echo_factory(events, clock, mode="ok")
    data = yield session(factory, b"\xff\xfd\x01a\xff\xfb\x03b\xff\xf4\r\n", b"\r\n")
    assert data == b"OK...ab\r\n"


@pytest_twisted.inlineCallbacks
def test_line_quit_word(events: Any, clock: Clock) -> Any:
    """The quit word ends a line session with a goodbye; the server keeps listening."""
    factory = echo_factory(events, clock, mode="upper", quit="exit")
    port = listen(factory)
    client = yield connect(port)
    client.send(b"abc\nexit\nnot echoed\n")
    yield client.closed
    assert client.data == b"ABC\nBye.\r\n"
    second = yield connect(port)
    second.send(b"again\n")
    yield second.wait_text(b"AGAIN\n")
    yield shut_down(factory, port, second)


@pytest_twisted.inlineCallbacks
def test_long_line_refused_not_echoed(events: Any, clock: Clock) -> Any:
    """A line over max_line gets one error line, is not echoed, and the session goes on."""
    factory = echo_factory(events, clock, mode="ok", unit="line", max_line=16)
    data = yield session(factory, b"x" * 40 + b"\nshort\n", b"OK...short\n")
    assert data == b"ERROR line longer than 16 bytes, not echoed\nOK...short\n"
    assert b"x" * 17 not in data
    assert len(events.kinds(DROPPED)) == 1
    assert factory.counters.dropped == 1


@pytest_twisted.inlineCallbacks
def test_idle_timeout_message(events: Any, clock: Clock) -> Any:
    """An idle client is told, then closed, once idle_timeout passes."""
    factory = echo_factory(events, clock, mode="ok", idle_timeout=30)
    port = listen(factory)
    client = yield connect(port)
    client.send(b"ping\n")
    yield client.wait_text(b"OK...ping\n")
    clock.advance(29)
    assert client.transport.connected
    client.send(b"pong\n")
    yield client.wait_text(b"OK...pong\n")
    clock.advance(29)
    assert client.transport.connected
    clock.advance(1)
    yield client.closed
    assert client.data.endswith(b"Idle for 30 seconds, closing. Bye.\r\n")
    yield factory.when_idle()
    assert events.kinds(DISCONNECTED)[-1]["reason"] == "idle timeout"
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_events_and_counters(events: Any, clock: Clock) -> Any:
    """A session is narrated: connect, receive, send, disconnect with byte counts."""
    factory = echo_factory(events, clock)
    yield session(factory, b"12345", 5)
    (connected,) = events.kinds(CONNECTED)
    (disconnected,) = events.kinds(DISCONNECTED)
    assert connected["peer"].startswith("127.0.0.1:")
    assert disconnected["peer"] == connected["peer"]
    assert disconnected["bytes_in"] == 5
    assert disconnected["bytes_out"] == 5
    assert disconnected["reason"] == "closed by client"
    assert sum(e["nbytes"] for e in events.kinds(RECEIVED)) == 5
    assert "12345" in events.kinds(SENT)[0]["sample"]
    counters = factory.counters
    assert (counters.connections_total, counters.connections_open) == (1, 0)
    assert (counters.bytes_in, counters.bytes_out) == (5, 5)


@pytest_twisted.inlineCallbacks
def one_served_one_refused(factory: Any) -> Any:
    """Listen; a first client is echoed, a second is closed: (port, first, what second got)."""
    port = listen(factory)
    first = yield connect(port)
    first.send(b"a")
    yield first.wait_bytes(1)
    second = yield connect(port)
    yield second.closed
    return port, first, second.data


@pytest_twisted.inlineCallbacks
def test_per_peer_limit(events: Any, clock: Clock) -> Any:
    """A peer over max_connections_per_peer gets one line and is closed; others stay."""
    factory = echo_factory(events, clock, max_connections_per_peer=1)
    port, first, refused = yield one_served_one_refused(factory)
    assert refused == b"ERROR too many connections from 127.0.0.1 (limit 1)\r\n"
    first.send(b"b")
    yield first.wait_text(b"ab")
    assert factory.counters.refused == 1
    assert "limit 1" in events.kinds(REFUSED)[0]["limit"]
    yield close_all(first)
    yield factory.when_idle()
    third = yield connect(port)
    third.send(b"c")
    yield third.wait_text(b"c")
    yield shut_down(factory, port, third)


@pytest_twisted.inlineCallbacks
def test_total_limit(events: Any, clock: Clock) -> Any:
    """Past max_connections, new clients are refused with one line."""
    factory = echo_factory(events, clock, max_connections=1)
    port, first, refused = yield one_served_one_refused(factory)
    assert refused == b"ERROR too many connections (limit 1)\r\n"
    yield shut_down(factory, port, first)


@pytest_twisted.inlineCallbacks
def test_shutdown_says_goodbye(events: Any, clock: Clock) -> Any:
    """Shutdown tells line-mode clients and closes them; its Deferred fires after."""
    factory = echo_factory(events, clock, mode="upper")
    port = listen(factory)
    clients = []
    for _ in range(3):
        client = yield connect(port)
        client.send(b"x\n")
        yield client.wait_text(b"X\n")
        clients.append(client)
    yield port.stopListening()
    yield factory.shutdown()
    for client in clients:
        yield client.closed
        assert client.data == b"X\nServer shutting down.\r\n"
    assert factory.counters.connections_open == 0


class Flooder(Protocol):
    """A client that writes a lot and reads nothing until told to."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.received = hashlib.sha256()
        self.count = 0
        self.done: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]
        chunk = bytes(range(256)) * 4096  # 1 MiB
        for _ in range(self.total // len(chunk)):
            self.transport.write(chunk)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received.update(data)
        self.count += len(data)
        if self.count >= self.total and not self.done.called:
            self.done.callback(None)


def buffered(transport: Any) -> int:
    """Bytes a Twisted socket transport holds that the kernel has not taken."""
    return tcp_buffered_bytes(transport)


@pytest_twisted.inlineCallbacks
def test_backpressure_bounds_server_buffer(events: Any, clock: Clock) -> Any:
    """A client writing 64 MiB without reading cannot make the server buffer more than a few MiB."""
    total = 64 * 1024 * 1024
    factory = echo_factory(events, clock)
    port = listen(factory)
    paused: Deferred[None] = Deferred()
    high_water = [0]
    server: list[Any] = []
    original = factory.buildProtocol

    def build(addr: Any) -> Any:
        protocol = original(addr)
        server.append(protocol)
        receive = protocol.dataReceived

        def measured(data: bytes) -> None:
            receive(data)
            high_water[0] = max(high_water[0], buffered(protocol.transport))

        protocol.dataReceived = measured
        return protocol

    factory.buildProtocol = build  # type: ignore[method-assign]
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    flooder = Flooder(total)
    yield connectProtocol(
        TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), flooder
    )
    transport = server[0].transport
    pause = transport.pauseProducing

    def noted_pause() -> None:
        pause()
        if not paused.called:
            paused.callback(None)

    transport.pauseProducing = noted_pause
    yield paused
    assert server[0].bytes_in < total
    flooder.transport.resumeProducing()
    yield flooder.done
    expected = hashlib.sha256((bytes(range(256)) * 4096) * 64).hexdigest()
    assert flooder.received.hexdigest() == expected
    assert high_water[0] <= 4 * 1024 * 1024, high_water[0]
    flooder.transport.loseConnection()
    yield shut_down(factory, port)


__all__ = ["Collector"]


@pytest_twisted.inlineCallbacks
def test_half_close_still_answered(events: Any, clock: Clock) -> Any:
    """A client that shuts down its sending side (nc -N) still gets every answer."""
    factory = echo_factory(events, clock, mode="upper", unit="line")
    port = listen(factory)
    client = yield connect(port)
    client.send(b"first\nlast line without newline")
    client.transport.loseWriteConnection()
    yield client.closed
    assert client.data == b"FIRST\nLAST LINE WITHOUT NEWLINE\n"
    yield factory.when_idle()
    assert events.kinds(DISCONNECTED)[-1]["reason"] == "closed by client"
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_half_close_plain_bulk(events: Any, clock: Clock) -> Any:
    """Plain echo delivers a whole bulk transfer before closing after a half-close."""
    factory = echo_factory(events, clock)
    port = listen(factory)
    client = yield connect(port)
    payload = bytes(range(256)) * 8192
    client.send(payload)
    client.transport.loseWriteConnection()
    yield client.closed
    assert client.data == payload
    yield shut_down(factory, port)


@pytest_twisted.inlineCallbacks
def test_plain_idle_timeout_message(events: Any, clock: Clock) -> Any:
    """Plain mode also tells an idle client why it is being closed."""
    factory = echo_factory(events, clock, idle_timeout=5)
    port = listen(factory)
    client = yield connect(port)
    client.send(b"\x00\x01")
    yield client.wait_bytes(2)
    clock.advance(5)
    yield client.closed
    assert client.data == b"\x00\x01Idle for 5 seconds, closing. Bye.\r\n"
    yield shut_down(factory, port)


@pytest_twisted.inlineCallbacks
def test_idle_client_that_never_reads_is_dropped(events: Any, clock: Clock) -> Any:
    """An idle client that stopped reading is aborted after the grace period, freeing its slot."""
    from netlab.protocols.base import SHUTDOWN_GRACE

    factory = echo_factory(events, clock, idle_timeout=10, max_connections_per_peer=1)
    port = listen(factory)
    flooder = Flooder(8 * 1024 * 1024)
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    yield connectProtocol(
        TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), flooder
    )
    server = yield _first_protocol(factory)
    # Wait until the server stopped reading from the client (it is full).
    for _ in range(100_000):
        if server.transport.producerPaused or not server.transport.connected:
            break
        yield _turn()
    clock.advance(10)
    assert factory.counters.connections_open == 1
    clock.advance(SHUTDOWN_GRACE)
    yield factory.when_idle()
    assert factory.counters.connections_open == 0
    assert factory.limits.open == 0
    flooder.transport.abortConnection()
    yield port.stopListening()


def _turn() -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, 0, lambda: None)


@pytest_twisted.inlineCallbacks
def _first_protocol(factory: EchoFactory) -> Any:
    for _ in range(100_000):
        if factory.open_protocols:
            return next(iter(factory.open_protocols))
        yield _turn()
    raise AssertionError("no connection arrived")


@pytest_twisted.inlineCallbacks
def test_streaming_client_gets_bigger_reads(events: Any, clock: Clock) -> Any:
    """A client whose data fills 64 KiB reads is read 256 KiB at a time; a chatty one is not."""
    factory = echo_factory(events, clock)
    port = listen(factory)
    chatty = yield connect(port)
    chatty.send(b"hello\n")
    yield chatty.wait_text(b"hello\n")
    streamer = yield connect(port)
    chunk = bytes(range(256)) * 4096  # 1 MiB
    for _ in range(8):
        streamer.send(chunk)
    data = yield streamer.wait_bytes(8 * len(chunk))
    assert data == chunk * 8
    sizes = sorted(p.transport.bufferSize for p in factory.open_protocols)
    assert sizes == [64 * 1024, 256 * 1024]
    yield shut_down(factory, port, chatty, streamer)
