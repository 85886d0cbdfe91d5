"""
Flow control of the TCP echo (and so of L{StreamProtocol}) in memory: a
client that does not read stops the server reading, and idle clients are
told goodbye, then dropped after a grace period if they never read it.
No sockets and no wall-clock time: L{memory.MemoryTCP} on a task.Clock.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.task import Clock

from memory import serve
from netlab.core.events import DISCONNECTED
from netlab.protocols.base import SHUTDOWN_GRACE
from netlab.protocols.echo import BULK_READ, EchoFactory, EchoSettings


def echo_factory(events: Any, clock: Clock, **settings: Any) -> EchoFactory:
    return EchoFactory(EchoSettings(name="echo", **settings), events, clock)


@pytest.mark.parametrize(
    ("settings", "unit", "answer"),
    [
        ({"mode": "plain"}, bytes(range(256)) * 256, None),
        ({"mode": "ok", "unit": "line"}, b"a line to answer\n" * 4096,
         b"OK...a line to answer\n" * 4096),
        ({"mode": "upper"}, "straße\n".encode() * 8192, b"STRASSE\n" * 8192),
    ],
    ids=["plain", "ok-line", "upper-chunk"],
)
def test_server_stops_reading_while_its_client_does_not(
    events: Any, clock: Clock, settings: dict[str, str], unit: bytes, answer: bytes | None
) -> None:
    """
    A client that sends 8 units without reading: the server pauses reading
    once its unsent answers pass its buffer size, holds no more than about
    that, reads nothing more while paused, and resumes once the client has
    read; in the end every answer arrives, in order.
    """
    factory = echo_factory(events, clock, **settings)
    server, transport = serve(factory, clock)
    assert transport.producer is transport and transport.streaming
    for _ in range(8):
        transport.peer_write(unit)
    assert not transport.reading, "the server kept reading from a client that does not read"
    held = server.bytes_in
    assert held < 8 * len(unit)
    assert transport.unsent <= 2 * BULK_READ
    transport.peer_write(unit)
    assert server.bytes_in == held, "read while paused"
    pauses = 0
    while transport.waiting_input or transport.unsent:
        # Input waits only while the server does not read.
        assert not transport.waiting_input or not transport.reading
        assert transport.unsent <= 2 * BULK_READ
        pauses += 1
        transport.peer_read()
    assert pauses > 1
    assert transport.reading
    assert transport.read_by_peer == (answer or unit) * 9
    assert server.bytes_in == 9 * len(unit)


def test_idle_client_told_then_closed(events: Any, clock: Clock) -> None:
    """An idle client hears why at exactly idle_timeout, then is closed once it has read that."""
    factory = echo_factory(events, clock, mode="ok", idle_timeout=30)
    _, transport = serve(factory, clock)
    clock.advance(20)
    transport.peer_write(b"still here\n")
    clock.advance(29.9)
    assert transport.peer_read() == b"OK...still here\n"
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.peer_read() == b"Idle for 30 seconds, closing. Bye.\r\n"
    clock.advance(0)
    assert transport.lost_reason is not None and transport.lost_reason.check(ConnectionDone)
    assert events.kinds(DISCONNECTED)[-1]["reason"] == "idle timeout"
    assert clock.getDelayedCalls() == [], "the abort after the grace period is still pending"


def test_idle_client_that_never_reads_is_aborted_after_the_grace(
    events: Any, clock: Clock
) -> None:
    """
    An idle client that does not read never drains the goodbye: it is
    aborted SHUTDOWN_GRACE seconds after the idle timeout, unsent data and
    all, and its connection slot comes back.
    """
    factory = echo_factory(events, clock, idle_timeout=10, max_connections_per_peer=1)
    _, transport = serve(factory, clock)
    transport.peer_write(b"x" * 4 * BULK_READ)
    assert not transport.reading
    _, refused = serve(factory, clock, port=40001)
    assert refused.peer_read().startswith(b"ERROR too many connections from")
    clock.advance(10)
    assert transport.value().endswith(b"Idle for 10 seconds, closing. Bye.\r\n")
    clock.advance(SHUTDOWN_GRACE - 1)
    assert transport.lost_reason is None
    assert factory.counters.connections_open == 1
    clock.advance(1)
    clock.advance(0)
    assert transport.lost_reason is not None and transport.lost_reason.check(ConnectionAborted)
    assert transport.unsent > 0
    assert factory.counters.connections_open == 0
    assert events.kinds(DISCONNECTED)[-1]["reason"] == "idle timeout"
    again, again_transport = serve(factory, clock, port=40002)
    assert again in factory.open_protocols
    again_transport.peer_close()
    clock.advance(0)
    assert not factory.open_protocols


def test_plain_idle_goodbye_after_unread_echo(events: Any, clock: Clock) -> None:
    """The goodbye comes after what was echoed and not yet read, never before it."""
    factory = echo_factory(events, clock, idle_timeout=5)
    _, transport = serve(factory, clock)
    transport.peer_write(b"\x00\x01")
    clock.advance(5)
    assert transport.peer_read() == b"\x00\x01Idle for 5 seconds, closing. Bye.\r\n"
    clock.advance(0)
    assert not factory.open_protocols
