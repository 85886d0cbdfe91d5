"""Tests for UDP echo and its reflection guards, over real loopback sockets."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from helpers import DatagramCollector
from netlab.core.events import DROPPED
from netlab.core.limits import DatagramGuard
from netlab.protocols.udp import UdpEcho, UdpEchoSettings


def guard_for(events: Any, clock: Clock, **settings: Any) -> DatagramGuard:
    return DatagramGuard(UdpEchoSettings(name="udp", **settings), events, "udp", clock.seconds)


@pytest_twisted.inlineCallbacks
def udp_pair(guard: DatagramGuard, events: Any) -> Any:
    server_port = reactor.listenUDP(0, UdpEcho("udp", guard, events), interface="127.0.0.1")
    client = DatagramCollector()
    client_port = reactor.listenUDP(0, client, interface="127.0.0.1")
    client_port.connect("127.0.0.1", server_port.getHost().port)
    yield None
    return server_port, client, client_port


@pytest_twisted.inlineCallbacks
def test_echo_byte_exact(events: Any, clock: Clock) -> Any:
    """Each datagram comes back to its sender unchanged, empty ones included."""
    guard = guard_for(events, clock)
    server_port, client, client_port = yield udp_pair(guard, events)
    payloads = [b"hello", bytes(range(256)) * 20, b"", b"\xff\x00\r\n"]
    for payload in payloads:
        client_port.write(payload)
    received = yield client.wait_datagrams(len(payloads))
    assert [data for data, _ in received] == payloads
    assert guard.counters.datagrams_in == guard.counters.datagrams_out == 4
    yield client_port.stopListening()
    yield server_port.stopListening()


@pytest_twisted.inlineCallbacks
def test_oversized_dropped_not_truncated(events: Any, clock: Clock) -> Any:
    """A datagram over max_datagram is dropped and counted, never answered truncated."""
    guard = guard_for(events, clock, max_datagram=100)
    server_port, client, client_port = yield udp_pair(guard, events)
    client_port.write(b"x" * 101)
    client_port.write(b"y" * 100)
    received = yield client.wait_datagrams(1)
    assert received == [(b"y" * 100, ("127.0.0.1", server_port.getHost().port))]
    assert guard.counters.dropped == 1
    assert "max_datagram" in events.kinds(DROPPED)[0]["reason"]
    yield client_port.stopListening()
    yield server_port.stopListening()


@pytest_twisted.inlineCallbacks
def test_rate_limit_per_source(events: Any, clock: Clock) -> Any:
    """Past the burst a source is answered only as fast as its tokens refill."""
    guard = guard_for(events, clock, rate=1.0, burst=3)
    server_port, client, client_port = yield udp_pair(guard, events)
    for i in range(5):
        client_port.write(b"%d" % i)
    yield client.wait_datagrams(3)
    clock.advance(1.0)
    client_port.write(b"after")
    received = yield client.wait_datagrams(4)
    assert [data for data, _ in received] == [b"0", b"1", b"2", b"after"]
    assert guard.counters.dropped == 2
    # Logged once, not once per drop.
    assert len(events.kinds(DROPPED)) == 1
    yield client_port.stopListening()
    yield server_port.stopListening()


@pytest_twisted.inlineCallbacks
def test_rate_exempt_source(events: Any, clock: Clock) -> Any:
    """A source in rate_exempt is never rate limited (for load generators)."""
    guard = guard_for(events, clock, rate=1.0, burst=1, rate_exempt=("127.0.0.0/8",))
    server_port, client, client_port = yield udp_pair(guard, events)
    for i in range(20):
        client_port.write(b"%d" % i)
    received = yield client.wait_datagrams(20)
    assert len(received) == 20
    assert guard.counters.dropped == 0
    yield client_port.stopListening()
    yield server_port.stopListening()


@pytest.mark.parametrize(
    ("host", "port", "reason"),
    [
        ("127.0.0.1", 53, "source port 53 below min_source_port"),
        ("127.0.0.1", 1023, "source port 1023 below min_source_port"),
        ("255.255.255.255", 5000, "broadcast source"),
        ("10.1.2.255", 5000, "broadcast source"),
        ("224.0.0.1", 5000, "multicast source"),
        ("ff02::1", 5000, "multicast source"),
        ("0.0.0.0", 5000, "unspecified source"),
        ("::ffff:224.0.0.1", 5000, "multicast source"),
    ],
)
def test_guard_refuses_reflection_sources(
    events: Any, clock: Clock, host: str, port: int, reason: str
) -> None:
    """Privileged ports, broadcast, multicast and unspecified sources get no answer."""
    guard = guard_for(events, clock)
    assert not guard.admit(b"x", host, port)
    assert events.kinds(DROPPED)[0]["reason"] == reason
    assert guard.counters.dropped == 1


def test_guard_admits_ordinary_source(events: Any, clock: Clock) -> None:
    """An ordinary unicast source on a high port is answered."""
    guard = guard_for(events, clock)
    assert guard.admit(b"x", "127.0.0.1", 1024)
    assert guard.admit(b"x", "::1", 40000)


def test_min_source_port_configurable(events: Any, clock: Clock) -> None:
    """min_source_port = 0 answers any port, for labs that need it."""
    guard = guard_for(events, clock, min_source_port=0)
    assert guard.admit(b"x", "127.0.0.1", 7)


def test_drop_log_bounded(events: Any, clock: Clock) -> None:
    """Many drops log one event per interval, saying how many were suppressed."""
    guard = guard_for(events, clock, rate=1.0, burst=1)
    assert guard.admit(b"x", "127.0.0.1", 5000)
    for _ in range(100):
        assert not guard.admit(b"x", "127.0.0.1", 5000)
    assert len(events.kinds(DROPPED)) == 1
    clock.advance(10.5)
    assert guard.admit(b"x", "127.0.0.1", 5000)
    assert not guard.admit(b"x", "127.0.0.1", 5000)
    dropped = events.kinds(DROPPED)
    assert len(dropped) == 2
    assert "99 more" in dropped[1]["suppressed"]
    assert guard.counters.dropped == 101


def test_rate_limiter_memory_bounded(events: Any, clock: Clock) -> None:
    """The per-source buckets never outgrow max_sources."""
    guard = guard_for(events, clock, max_sources=16)
    for i in range(100):
        guard.admit(b"x", f"192.0.2.{i}", 5000)
    assert len(guard.rates) <= 16


def test_guard_refuses_own_service_ports(events: Any, clock: Clock) -> None:
    """A datagram from one of netlab's own UDP ports is never answered (no echo loops)."""
    ports = {7007, 7019}
    guard = DatagramGuard(
        UdpEchoSettings(name="udp"), events, "udp", clock.seconds, service_ports=ports
    )
    assert not guard.admit(b"x", "192.0.2.1", 7019)
    assert "loop guard" in events.kinds(DROPPED)[0]["reason"]
    assert guard.admit(b"x", "192.0.2.1", 40000)


@pytest_twisted.inlineCallbacks
def test_reply_and_prefix_to_loopback(events: Any, clock: Clock) -> Any:
    """The course's UDP server: a fixed reply, or a prefix; loopback may get more than it sent."""
    guard = guard_for(events, clock, reply="Thank you for the data")
    server_port, client, client_port = yield udp_pair(guard, events)
    client_port.write(b"hi")
    received = yield client.wait_datagrams(1)
    assert received[0][0] == b"Thank you for the data"
    guard.configure(UdpEchoSettings(name="udp", prefix="Your data: "))
    client_port.write(b"hi")
    received = yield client.wait_datagrams(2)
    assert received[1][0] == b"Your data: hi"
    assert guard.counters.dropped == 0
    yield client_port.stopListening()
    yield server_port.stopListening()


@pytest_twisted.inlineCallbacks
def test_amplifying_reply_only_to_amplify_to(events: Any, clock: Clock) -> Any:
    """
    Over real sockets, from a source outside amplify_to: a reply larger than
    its request is dropped, counted and reported once per interval; a reply
    no larger than its request still goes out.
    """
    guard = guard_for(events, clock, reply="okay", amplify_to=("192.0.2.0/24",))
    server_port, client, client_port = yield udp_pair(guard, events)
    for _ in range(3):
        client_port.write(b"x")
    # Loopback keeps order: once the witness is answered, the three were read.
    client_port.write(b"witness")
    received = yield client.wait_datagrams(1)
    assert [data for data, _ in received] == [b"okay"]
    assert guard.counters.dropped == 3
    (dropped,) = events.kinds(DROPPED)
    assert dropped["reason"] == "reply larger than the request, to a source not in amplify_to"
    assert dropped["what"] == "a 1-byte datagram"
    yield client_port.stopListening()
    yield server_port.stopListening()


class SentDatagrams:
    """A datagram transport that keeps what is written (for spoofed sources)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))


@pytest.mark.parametrize(
    ("host", "answered"),
    [
        ("192.0.2.7", True),
        ("::ffff:192.0.2.7", True),
        ("198.51.100.7", False),
        ("2001:db8::7", False),
    ],
)
def test_prefix_to_spoofable_sources(
    events: Any, clock: Clock, host: str, answered: bool
) -> None:
    """A prefix makes every reply larger: only amplify_to sources get one."""
    guard = guard_for(events, clock, prefix="Your data: ", amplify_to=("192.0.2.0/24",))
    protocol = UdpEcho("udp", guard, events)
    protocol.transport = SentDatagrams()  # type: ignore[assignment]
    protocol.datagramReceived(b"hi", (host, 40000))
    sent = protocol.transport.sent  # type: ignore[attr-defined]
    assert sent == ([(b"Your data: hi", (host, 40000))] if answered else [])
    assert guard.counters.dropped == (0 if answered else 1)


def test_default_amplify_to_is_loopback() -> None:
    """By default only this machine may be answered with more than it sent."""
    assert UdpEchoSettings().amplify_to == ("127.0.0.0/8", "::1/128")
