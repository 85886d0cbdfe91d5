"""Tests for netlab.core.accounting: admitting, opening and closing connections, in memory."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.logger import LogLevel

from netlab.core.accounting import ConnectionRecord, Refusal, ServiceBooks
from netlab.protocols.echo import EchoSettings


class Conn(ConnectionRecord):
    """A connection as the books see it."""


def address(host: str = "192.0.2.7", port: int = 4000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


def books(events: Any, clock: Clock, **settings: Any) -> ServiceBooks[Conn]:
    return ServiceBooks("echo", events, clock, EchoSettings(name="echo", **settings))


def opened(ledger: ServiceBooks[Conn], addr: Any, level: LogLevel = LogLevel.info) -> Conn:
    assert ledger.admit(addr) is None
    conn = Conn()
    conn.locate(addr)
    ledger.opened(conn, level)
    return conn


def test_open_and_close_are_counted_and_narrated(events: Any, clock: Clock) -> None:
    """Open: counted, narrated with the open count; close: duration and bytes narrated."""
    ledger = books(events, clock)
    clock.advance(10)
    conn = opened(ledger, address())
    assert (conn.peer_host, conn.peer, conn.started) == ("192.0.2.7", "192.0.2.7:4000", 10)
    (connected,) = events.kinds("connected")
    assert (connected["service"], connected["peer"], connected["open"]) == (
        "echo", "192.0.2.7:4000", 1,
    )
    assert connected["log_level"] == LogLevel.info
    conn.bytes_in, conn.bytes_out = 5, 7
    clock.advance(1.5)
    ledger.closed(conn, "quit")
    (gone,) = events.kinds("disconnected")
    assert (gone["reason"], gone["duration"], gone["bytes_in"], gone["bytes_out"]) == (
        "quit", "1.500", 5, 7,
    )
    counters = ledger.counters
    assert (counters.connections_open, counters.connections_total) == (0, 1)
    assert ledger.limits is not None and ledger.limits.open == 0


def test_level_is_the_callers(events: Any, clock: Clock) -> None:
    """HTTP channels are narrated at debug level; the books emit at the level asked."""
    ledger = books(events, clock)
    conn = opened(ledger, address(), LogLevel.debug)
    ledger.closed(conn, "closed", LogLevel.debug)
    assert [e["log_level"] for e in events.seen] == [LogLevel.debug, LogLevel.debug]


def test_per_peer_cap_refuses_and_counts(events: Any, clock: Clock) -> None:
    """Past the per-peer cap the refusal is counted, narrated and says why; a close frees a slot."""
    ledger = books(events, clock, max_connections_per_peer=1)
    first = opened(ledger, address())
    refusal = ledger.admit(address(port=4001))
    assert refusal == Refusal("too many connections from 192.0.2.7 (limit 1)", denied=False)
    (refused,) = events.kinds("refused")
    assert (refused["peer"], refused["limit"], refused["log_level"]) == (
        "192.0.2.7:4001", refusal.reason, LogLevel.warn,
    )
    assert ledger.counters.refused == 1
    ledger.closed(first, "closed by client")
    assert ledger.admit(address(port=4002)) is None


def test_access_list_denial(events: Any, clock: Clock) -> None:
    """A denied address is refused as denied (HTTP answers it 403), and takes no slot."""
    ledger = books(events, clock, deny=("192.0.2.0/24",))
    refusal = ledger.admit(address())
    assert refusal is not None and refusal.denied
    assert refusal.reason == "address 192.0.2.7 is denied"
    assert ledger.limits is not None and ledger.limits.open == 0


def test_configure_takes_new_caps_and_access(events: Any, clock: Clock) -> None:
    """A reload's settings apply to the next admission; open connections keep their slots."""
    ledger = books(events, clock)
    conn = opened(ledger, address())
    ledger.configure(EchoSettings(name="echo", max_connections_per_peer=1,
                                  deny=("198.51.100.0/24",)))
    assert ledger.admit(address(port=4001)) is not None
    assert ledger.admit(address("198.51.100.1")) == Refusal(
        "address 198.51.100.1 is denied", denied=True
    )
    ledger.closed(conn, "closed by client")
    assert ledger.limits is not None and ledger.limits.by_peer == {}


def test_unix_peer_is_local(events: Any, clock: Clock) -> None:
    """A Unix-socket client counts against the host "local"."""
    ledger = books(events, clock)
    conn = opened(ledger, UNIXAddress(None))
    assert (conn.peer_host, conn.peer) == ("local", "unix-client")
    assert ledger.limits is not None and ledger.limits.by_peer == {"local": 1}
    ledger.closed(conn, "closed by client")


def test_without_settings_only_counting(events: Any, clock: Clock) -> None:
    """Books without settings (WebSockets, UDP members) admit everyone and hold no slots."""
    ledger: ServiceBooks[Conn] = ServiceBooks("chat-udp", events, clock)
    assert ledger.limits is None
    conn = opened(ledger, address())
    ledger.closed(conn, "idle timeout")
    assert ledger.counters.connections_total == 1
    assert [e["netlab_event"] for e in events.seen] == ["connected", "disconnected"]


def test_when_idle_fires_after_the_close_is_narrated(events: Any, clock: Clock) -> None:
    """Whoever waits for the last close finds it in the log already."""
    ledger = books(events, clock)
    assert ledger.when_idle().called
    conn = opened(ledger, address())
    seen: list[list[str]] = []
    ledger.when_idle().addCallback(
        lambda _: seen.append([e["netlab_event"] for e in events.seen])
    )
    assert seen == []
    ledger.closed(conn, "closed by client")
    assert seen == [["connected", "disconnected"]]
