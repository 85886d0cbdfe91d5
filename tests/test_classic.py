"""
Tests for netlab.protocols.classic: discard, daytime, time, chargen and qotd
over real loopback TCP and UDP sockets, with time pinned by a task.Clock.
"""

from __future__ import annotations

import calendar
import select
import struct
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater

from helpers import DatagramCollector, close_all, connect, listen
from netlab.core._twisted import tcp_buffered_bytes
from netlab.core.events import CONNECTED, DISCONNECTED, DROPPED, RECEIVED
from netlab.core.limits import DatagramGuard
from netlab.protocols.classic import (
    DEFAULT_QUOTES,
    ClassicSettings,
    datagram_protocol,
    daytime_text,
    quote_reply,
    stream_factory,
    time_value,
)
from netlab.protocols.udp import UdpEcho, UdpEchoSettings

# 2026-11-21 10:30:00 UTC, a Saturday.
KNOWN_TIME = calendar.timegm((2026, 11, 21, 10, 30, 0))
KNOWN_DAYTIME = b"Saturday, November 21, 2026 10:30:00-UTC\r\n"
# The same moment in RFC 868 seconds since 1900.
KNOWN_TIME_1900 = KNOWN_TIME + 2_208_988_800

# The chargen pattern, built here independently of the module under test.
PRINTABLE = bytes(range(32, 127))
LINES = [
    bytes(PRINTABLE[(n + i) % 95] for i in range(72)) + b"\r\n" for n in range(95)
]
CYCLE = b"".join(LINES)


def settings(name: str, **values: Any) -> ClassicSettings:
    return ClassicSettings(name=name, **values)


def assert_chargen_stream(data: bytes) -> None:
    """C{data} is the chargen pattern from line 0, cut anywhere."""
    turns = len(data) // len(CYCLE) + 1
    assert data == (CYCLE * turns)[: len(data)]


def chargen_start(reply: bytes) -> int:
    """The first line number of a reply of whole, consecutive chargen lines."""
    assert reply and len(reply) % 74 == 0, reply
    first = LINES.index(reply[:74])
    lines = [reply[i:i + 74] for i in range(0, len(reply), 74)]
    assert lines == [LINES[(first + i) % 95] for i in range(len(lines))]
    return first


def next_event(events: Any, kind: str, service: str | None = None) -> Deferred[Any]:
    """Fires with the next event of C{kind} (of C{service}, if given)."""
    d: Deferred[Any] = Deferred()

    def seen(event: dict[str, Any]) -> None:
        wanted = service is None or event["service"] == service
        if event["netlab_event"] == kind and wanted and not d.called:
            unsubscribe()
            d.callback(event)

    unsubscribe = events.subscribe(seen)
    return d


def buffered(transport: Any) -> int:
    """Bytes a Twisted FileDescriptor holds that the kernel has not taken yet."""
    return tcp_buffered_bytes(transport)


class WatchedConnection:
    """
    A server connection instrumented from before its first write, to know
    the most its transport ever buffered.
    """

    def __init__(self) -> None:
        self.protocol: Any = None
        self.high_water = 0


def watch_next_connection(factory: Any, events: Any) -> WatchedConnection:
    """Instrument the next connection C{factory} accepts, from its first byte."""
    watched = WatchedConnection()

    def connected(event: dict[str, Any]) -> None:
        # Runs inside the server's connectionMade, before chargen writes.
        if event["netlab_event"] != CONNECTED:
            return
        unsubscribe()
        (protocol,) = factory.open_protocols
        transport = protocol.transport
        watched.protocol = protocol
        write = transport.write

        def measured_write(data: bytes) -> None:
            write(data)
            watched.high_water = max(watched.high_water, buffered(transport))

        transport.write = measured_write

    unsubscribe = events.subscribe(connected)
    return watched


def kernel_refuses(transport: Any) -> bool:
    """Whether the kernel would take nothing more from this socket right now."""
    _, writable, _ = select.select([], [transport.socket], [], 0)
    return not writable


@pytest_twisted.inlineCallbacks
def until_stalled(transport: Any) -> Any:
    """
    Turn the reactor until the server holds unsent data that the kernel will
    not take: the client's window and the server's send buffer are full.
    Checked once per reactor turn, never slept for.  (Late ACKs may still
    free a little room afterwards, so tests assert bounds, not stillness.)
    """
    for _ in range(100_000):
        if buffered(transport) and kernel_refuses(transport):
            return
        yield deferLater(reactor, 0, lambda: None)
    raise AssertionError("the server never stalled")


@pytest_twisted.inlineCallbacks
def one_shot(factory: Any) -> Any:
    """Connect once, collect everything until the server hangs up, clean up."""
    port = listen(factory)
    client = yield connect(port)
    yield client.closed
    yield factory.when_idle()
    yield port.stopListening()
    return client.data


# -- the answers, without sockets ----------------------------------------------


def test_unknown_kind_refused(events: Any, clock: Clock) -> None:
    """Both constructors refuse a service name they do not know, naming it."""
    with pytest.raises(ValueError, match="'echo'"):
        stream_factory("echo", settings("echo"), events, clock)
    guard = DatagramGuard(settings("echo"), events, "echo", clock.seconds)
    with pytest.raises(ValueError, match="'echo'"):
        datagram_protocol("echo", settings("echo"), guard, events, clock)


def test_daytime_text() -> None:
    """Daytime reads like the RFC 867 example, in UTC, days without padding."""
    assert daytime_text(KNOWN_TIME + 0.999) == KNOWN_DAYTIME.decode().rstrip()
    assert daytime_text(calendar.timegm((2027, 3, 1, 7, 5, 9))) == (
        "Monday, March 1, 2027 07:05:09-UTC"
    )


def test_time_value_wraps_in_2036() -> None:
    """Time is seconds since 1900 in 32 bits, wrapping on 2036-02-07."""
    assert time_value(0) == struct.pack("!I", 2_208_988_800)
    assert time_value(KNOWN_TIME) == struct.pack("!I", KNOWN_TIME_1900)
    wrap = 2**32 - 2_208_988_800
    assert time_value(wrap - 1) == b"\xff\xff\xff\xff"
    assert time_value(wrap + 5) == struct.pack("!I", 5)


def test_quote_reply_truncated_on_character_boundary() -> None:
    """A long quote is cut so the reply, CRLF included, is at most 512 bytes."""
    assert quote_reply("q" * 600) == b"q" * 510 + b"\r\n"
    accented = quote_reply("é" * 300)  # 600 bytes of UTF-8
    assert accented == ("é" * 255).encode() + b"\r\n"
    assert quote_reply("two\nlines") == b"two\r\nlines\r\n"


# -- TCP -------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_discard_tcp_counts_and_answers_nothing(events: Any, clock: Clock) -> Any:
    """Discard reads and counts every byte, sends none, and narrates the session."""
    factory = stream_factory("discard", settings("discard"), events, clock)
    port = listen(factory)
    client = yield connect(port)
    payload = bytes(range(256)) * 100
    client.send(payload)
    yield client.close()
    yield factory.when_idle()
    yield port.stopListening()
    assert client.data == b""
    (connected,) = events.kinds(CONNECTED)
    (disconnected,) = events.kinds(DISCONNECTED)
    assert connected["service"] == disconnected["service"] == "discard"
    assert disconnected["reason"] == "closed by client"
    assert disconnected["bytes_in"] == len(payload)
    assert disconnected["bytes_out"] == 0
    counters = factory.counters
    assert (counters.bytes_in, counters.bytes_out) == (len(payload), 0)
    assert (counters.connections_total, counters.connections_open) == (1, 0)


@pytest_twisted.inlineCallbacks
def test_discard_tcp_idle_timeout(events: Any, clock: Clock) -> Any:
    """Input restarts discard's idle timer; silence closes it without a goodbye."""
    factory = stream_factory("discard", settings("discard", idle_timeout=30), events, clock)
    port = listen(factory)
    server_up = next_event(events, CONNECTED)
    client = yield connect(port)
    yield server_up
    clock.advance(20)
    arrived = next_event(events, RECEIVED)
    client.send(b"still here")
    yield arrived
    clock.advance(20)
    assert not client.closed.called
    clock.advance(10)
    yield client.closed
    yield factory.when_idle()
    yield port.stopListening()
    assert client.data == b""
    assert events.kinds(DISCONNECTED)[-1]["reason"] == "idle timeout"


@pytest_twisted.inlineCallbacks
def test_daytime_tcp(events: Any, clock: Clock) -> Any:
    """Daytime sends the clock's time as one CRLF line, then closes, counted."""
    clock.advance(KNOWN_TIME)
    factory = stream_factory("daytime", settings("daytime"), events, clock)
    data = yield one_shot(factory)
    assert data == KNOWN_DAYTIME
    (disconnected,) = events.kinds(DISCONNECTED)
    assert disconnected["reason"] == "daytime sent"
    assert disconnected["bytes_out"] == len(KNOWN_DAYTIME)
    assert factory.counters.bytes_out == len(KNOWN_DAYTIME)
    assert factory.counters.connections_open == 0


@pytest_twisted.inlineCallbacks
def test_time_tcp(events: Any, clock: Clock) -> Any:
    """Time sends exactly 4 bytes, the clock's seconds since 1900, then closes."""
    clock.advance(KNOWN_TIME)
    factory = stream_factory("time", settings("time"), events, clock)
    data = yield one_shot(factory)
    assert data == struct.pack("!I", KNOWN_TIME_1900)
    assert struct.unpack("!I", data)[0] == 4_004_245_800
    assert events.kinds(DISCONNECTED)[0]["reason"] == "time sent"
    assert factory.counters.bytes_out == 4


@pytest_twisted.inlineCallbacks
def test_qotd_tcp_round_robin(events: Any, clock: Clock) -> Any:
    """Each qotd connection gets the next configured quote, wrapping around."""
    factory = stream_factory(
        "qotd", settings("qotd", quotes=("First.", "Second.")), events, clock
    )
    received = []
    for _ in range(3):
        received.append((yield one_shot(factory)))
    assert received == [b"First.\r\n", b"Second.\r\n", b"First.\r\n"]
    assert [e["reason"] for e in events.kinds(DISCONNECTED)] == ["quote sent"] * 3


@pytest_twisted.inlineCallbacks
def test_qotd_tcp_defaults_and_truncation(events: Any, clock: Clock) -> Any:
    """Without quotes qotd uses the defaults; a long quote is cut to 512 bytes."""
    plain = stream_factory("qotd", settings("qotd"), events, clock)
    data = yield one_shot(plain)
    assert data == DEFAULT_QUOTES[0].encode() + b"\r\n"
    long = stream_factory("qotd", settings("qotd-long", quotes=("z" * 700,)), events, clock)
    data = yield one_shot(long)
    assert data == b"z" * 510 + b"\r\n"


@pytest_twisted.inlineCallbacks
def test_chargen_tcp_stream_and_clean_shutdown(events: Any, clock: Clock) -> Any:
    """Chargen streams the rotating lines; shutdown ends on a whole line, no goodbye."""
    factory = stream_factory("chargen", settings("chargen"), events, clock)
    port = listen(factory)
    client = yield connect(port)
    yield client.wait_bytes(300_000)
    client.send(b"input is ignored\r\n")
    yield factory.shutdown()
    yield client.closed
    yield port.stopListening()
    assert len(client.data) % 74 == 0
    assert_chargen_stream(client.data)
    (disconnected,) = events.kinds(DISCONNECTED)
    assert disconnected["reason"] == "server shutdown"
    assert factory.counters.bytes_out == len(client.data)


@pytest_twisted.inlineCallbacks
def test_chargen_tcp_reading_resets_idle_timer(events: Any, clock: Clock) -> Any:
    """A client that keeps reading chargen outlives the idle timeout."""
    factory = stream_factory("chargen", settings("chargen", idle_timeout=10), events, clock)
    port = listen(factory)
    watched = watch_next_connection(factory, events)
    client = yield connect(port)
    yield client.wait_bytes(1)
    clock.advance(6)
    # Bytes produced after the advance prove a drain restarted the timer.
    yield client.wait_bytes(watched.protocol.bytes_out + 1)
    clock.advance(6)
    assert watched.protocol.close_reason is None
    assert watched.protocol in factory.open_protocols
    yield factory.shutdown()
    yield client.closed
    yield port.stopListening()
    assert_chargen_stream(client.data)


@pytest_twisted.inlineCallbacks
def test_chargen_tcp_backpressure(events: Any, clock: Clock) -> Any:
    """A chargen client that stops reading cannot grow the server's write buffer."""
    factory = stream_factory("chargen", settings("chargen"), events, clock)
    port = listen(factory)
    watched = watch_next_connection(factory, events)
    client = yield connect(port)
    client.transport.pauseProducing()
    server = watched.protocol
    yield until_stalled(server.transport)
    # Give a producer that ignored backpressure a few turns to show it.
    for _ in range(5):
        yield deferLater(reactor, 0, lambda: None)
    produced = server.bytes_out
    assert server.transport.producer is server
    assert 0 < buffered(server.transport) <= 64 * 1024
    assert watched.high_water <= 64 * 1024
    client.transport.resumeProducing()
    data = yield client.wait_bytes(produced + 200_000)
    assert_chargen_stream(data)
    assert watched.high_water <= 64 * 1024
    yield factory.shutdown()
    yield client.closed
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_chargen_tcp_stalled_client_dropped(events: Any, clock: Clock) -> Any:
    """A chargen client that stops reading is dropped after the idle timeout."""
    factory = stream_factory("chargen", settings("chargen", idle_timeout=10), events, clock)
    port = listen(factory)
    watched = watch_next_connection(factory, events)
    client = yield connect(port)
    client.transport.pauseProducing()
    server = watched.protocol
    yield until_stalled(server.transport)
    unsent = buffered(server.transport)
    gone = next_event(events, DISCONNECTED)
    clock.advance(10)
    disconnected = yield gone
    assert disconnected["reason"] == "idle timeout"
    client.transport.resumeProducing()
    yield client.closed
    yield close_all(port)
    # Aborted, not closed gracefully: what was still buffered never went out.
    assert len(client.data) <= server.bytes_out - unsent
    assert factory.counters.connections_open == 0


# -- UDP -------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def udp_server(kind: str, name: str, events: Any, clock: Clock, **values: Any) -> Any:
    """A classic UDP service on a loopback port; its port, guard and protocol."""
    service = settings(name, **values)
    guard = DatagramGuard(service, events, name, clock.seconds)
    protocol = datagram_protocol(kind, service, guard, events, clock)
    port = reactor.listenUDP(0, protocol, interface="127.0.0.1")
    yield None
    return port, guard


def address(port: Any) -> tuple[str, int]:
    return ("127.0.0.1", port.getHost().port)


@pytest_twisted.inlineCallbacks
def ask(port: Any, request: bytes = b"?\r\n", count: int = 1) -> Any:
    """Send C{count} datagrams to C{port} from a fresh client; the replies."""
    client = DatagramCollector()
    client_port = reactor.listenUDP(0, client, interface="127.0.0.1")
    for _ in range(count):
        client_port.write(request, address(port))
    received = yield client.wait_datagrams(count)
    yield client_port.stopListening()
    return [data for data, _ in received]


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        ("daytime", {}, KNOWN_DAYTIME),
        ("time", {}, struct.pack("!I", KNOWN_TIME_1900)),
        ("qotd", {"quotes": ("Only one.",)}, b"Only one.\r\n"),
        ("qotd", {"quotes": ("y" * 1000,)}, b"y" * 510 + b"\r\n"),
    ],
)
@pytest_twisted.inlineCallbacks
def test_udp_replies(
    events: Any, clock: Clock, kind: str, values: dict[str, Any], expected: bytes
) -> Any:
    """Daytime, time and qotd answer a datagram with the same reply as over TCP."""
    clock.advance(KNOWN_TIME)
    port, guard = yield udp_server(kind, kind, events, clock, **values)
    replies = yield ask(port)
    yield port.stopListening()
    assert replies == [expected]
    counters = guard.counters
    assert (counters.datagrams_in, counters.datagrams_out) == (1, 1)
    assert (counters.bytes_in, counters.bytes_out) == (3, len(expected))


@pytest_twisted.inlineCallbacks
def test_udp_chargen_whole_lines_under_512(events: Any, clock: Clock) -> Any:
    """Each chargen datagram is whole pattern lines, at most 512 bytes, continuing."""
    port, _ = yield udp_server("chargen", "chargen", events, clock)
    replies = yield ask(port, count=3)
    yield port.stopListening()
    assert all(len(reply) <= 512 for reply in replies)
    assert [chargen_start(reply) for reply in replies] == [0, 6, 12]


@pytest_twisted.inlineCallbacks
def test_udp_discard_counts_and_never_answers(events: Any, clock: Clock) -> Any:
    """Discard counts datagrams and never replies; an echo sent after proves it."""
    discard_port, guard = yield udp_server("discard", "discard", events, clock)
    echo_guard = DatagramGuard(UdpEchoSettings(name="echo"), events, "echo", clock.seconds)
    echo_port = reactor.listenUDP(0, UdpEcho("echo", echo_guard, events), interface="127.0.0.1")
    client = DatagramCollector()
    client_port = reactor.listenUDP(0, client, interface="127.0.0.1")
    for _ in range(3):
        client_port.write(b"junk", address(discard_port))
    client_port.write(b"ping", address(echo_port))
    received = yield client.wait_datagrams(1)
    # Loopback keeps order: a discard reply would have arrived before the echo.
    assert received == [(b"ping", address(echo_port))]
    assert (guard.counters.datagrams_in, guard.counters.bytes_in) == (3, 12)
    assert (guard.counters.datagrams_out, guard.counters.bytes_out) == (0, 0)
    yield close_all(client_port, echo_port, discard_port)


@pytest_twisted.inlineCallbacks
def test_udp_low_source_port_dropped(events: Any, clock: Clock) -> Any:
    """A datagram from below min_source_port is counted as dropped and unanswered."""
    clock.advance(KNOWN_TIME)
    strict_port, strict = yield udp_server(
        "daytime", "daytime", events, clock, min_source_port=65535
    )
    open_port, _ = yield udp_server("daytime", "daytime-open", events, clock)
    client = DatagramCollector()
    client_port = reactor.listenUDP(0, client, interface="127.0.0.1")
    dropped = next_event(events, DROPPED, "daytime")
    client_port.write(b"?", address(strict_port))
    drop = yield dropped
    client_port.write(b"?", address(open_port))
    received = yield client.wait_datagrams(1)
    assert received == [(KNOWN_DAYTIME, address(open_port))]
    assert "below min_source_port" in drop["reason"]
    assert (strict.counters.datagrams_in, strict.counters.dropped) == (1, 1)
    assert strict.counters.datagrams_out == 0
    yield close_all(client_port, open_port, strict_port)
