"""Tests for the chat's UDP front-end: address proof by cookie, then room traffic."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from helpers import DatagramCollector, make_hub
from netlab.core.limits import DatagramGuard
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.chat.settings import UdpChatSettings
from netlab.protocols.chat.udp import UdpChat


class Watcher:
    """A chat user on another front-end, who records what they are shown."""

    peer_host = "192.0.2.9"
    peer = "192.0.2.9:4000"

    def __init__(self, hub: ChatHub) -> None:
        self.shown: list[str] = []
        self.session = hub.connect(self)
        self.session.line("watcher")

    def send_line(self, text: str) -> None:
        self.shown.append(text)

    def end(self, reason: str) -> None:
        self.session.lost(reason)


class Setup:
    def __init__(self, events: Any, clock: Clock, **settings: Any) -> None:
        self.clock = clock
        self.hub = make_hub(events, clock, flood_lines=100)
        udp = UdpChatSettings(name="udp-chat", **settings)
        guard = DatagramGuard(udp, events, "udp-chat", clock.seconds)
        self.chat = UdpChat(udp, guard, events, self.hub, clock)
        self.port = reactor.listenUDP(0, self.chat, interface="127.0.0.1")
        self.clients: list[Any] = []

    def client(self) -> tuple[DatagramCollector, Any]:
        collector = DatagramCollector()
        port = reactor.listenUDP(0, collector, interface="127.0.0.1")
        port.connect("127.0.0.1", self.port.getHost().port)
        self.clients.append(port)
        return collector, port

    @pytest_twisted.inlineCallbacks
    def close(self) -> Any:
        for port in self.clients:
            yield port.stopListening()
        yield self.port.stopListening()


def texts(received: list[tuple[bytes, Any]]) -> list[str]:
    return [data.decode() for data, _ in received]


@pytest_twisted.inlineCallbacks
def member(setup: Setup, nick: str) -> Any:
    """A UDP client taken through JOIN and COOKIE; waits for its welcome."""
    collector, port = setup.client()
    port.write(f"JOIN {nick}".encode())
    (reply,) = yield collector.wait_datagrams(1)
    cookie = reply[0].decode().split()[1]
    port.write(f"COOKIE {cookie}".encode())
    yield collector.wait_for_text(f"Hello {nick}!")
    return collector, port


@pytest_twisted.inlineCallbacks
def test_join_cookie_handshake(events: Any, clock: Clock) -> Any:
    """JOIN gets exactly a cookie; the cookie sent back from the same address makes a member."""
    setup = Setup(events, clock)
    watcher = Watcher(setup.hub)
    collector, port = setup.client()
    port.write(b"hello before joining")
    port.write(b"/who")
    port.write(b"JOIN alice\n")
    received = yield collector.wait_datagrams(1)
    (cookie_line,) = texts(received)
    word, cookie = cookie_line.split()
    assert word == "COOKIE" and len(cookie) == 16
    port.write(f"COOKIE {cookie}\n".encode())
    yield collector.wait_for_text("Hello alice!")
    assert texts(collector.received)[1] == setup.hub.settings.motd
    assert "* alice has joined #lobby" in watcher.shown
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_cookie_from_another_address_ignored(events: Any, clock: Clock) -> Any:
    """A cookie only counts from the address it was sent to."""
    setup = Setup(events, clock)
    alice, alice_port = setup.client()
    alice_port.write(b"JOIN alice")
    (reply,) = yield alice.wait_datagrams(1)
    cookie = reply[0].decode().split()[1]
    mallory, mallory_port = setup.client()
    mallory_port.write(f"COOKIE {cookie}".encode())
    mallory_port.write(b"JOIN mallory")
    received = yield mallory.wait_datagrams(1)
    assert texts(received)[0].startswith("COOKIE ")
    assert setup.chat.members == {}
    alice_port.write(f"COOKIE {cookie}".encode())
    yield alice.wait_for_text("Hello alice!")
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_room_lines_both_ways(events: Any, clock: Clock) -> Any:
    """A UDP member and a user of another front-end share the room."""
    setup = Setup(events, clock)
    watcher = Watcher(setup.hub)
    collector, port = yield member(setup, "alice")
    watcher.session.line("hi udp")
    yield collector.wait_for_text("<watcher> hi udp")
    port.write(b"hello from udp\n")
    port.write(b"/who")
    yield collector.wait_for_text("In #lobby (2): watcher, alice")
    assert "[00:00] <alice> hello from udp" in watcher.shown
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_leave(events: Any, clock: Clock) -> Any:
    """LEAVE ends the membership; the room hears the quit."""
    setup = Setup(events, clock)
    watcher = Watcher(setup.hub)
    collector, port = yield member(setup, "alice")
    port.write(b"LEAVE")
    yield collector.wait_for_text("Bye.")
    assert setup.chat.members == {}
    assert watcher.shown[-1] == "* alice has quit (quit)"
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_member_expires_when_quiet(events: Any, clock: Clock) -> Any:
    """A member silent for member_timeout is dropped."""
    setup = Setup(events, clock, member_timeout=60)
    watcher = Watcher(setup.hub)
    collector, _ = yield member(setup, "alice")
    clock.advance(30)
    clock.advance(31)
    yield collector.wait_for_text("* Disconnected: idle timeout.")
    assert watcher.shown[-1] == "* alice has quit (idle timeout)"
    assert setup.chat.members == {}
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_cookie_expires(events: Any, clock: Clock) -> Any:
    """A cookie older than cookie_timeout no longer proves anything."""
    setup = Setup(events, clock, cookie_timeout=10)
    collector, port = setup.client()
    port.write(b"JOIN alice")
    (reply,) = yield collector.wait_datagrams(1)
    clock.advance(11)
    port.write(reply[0])
    port.write(b"JOIN again")
    received = yield collector.wait_datagrams(2)
    assert texts(received)[1].startswith("COOKIE ")
    assert setup.chat.members == {}
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_member_cap(events: Any, clock: Clock) -> Any:
    """Past max_members a proven address is told the chat is full."""
    setup = Setup(events, clock, max_members=1)
    yield member(setup, "alice")
    collector, port = setup.client()
    port.write(b"JOIN bob")
    (reply,) = yield collector.wait_datagrams(1)
    port.write(reply[0])
    received = yield collector.wait_datagrams(2)
    assert texts(received)[1] == "ERROR the UDP chat is full; try again later"
    assert len(setup.chat.members) == 1
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_pending_cap(events: Any, clock: Clock) -> Any:
    """Past max_pending outstanding cookies, new JOINs get no answer at all."""
    setup = Setup(events, clock, max_pending=1)
    first, first_port = setup.client()
    first_port.write(b"JOIN one")
    yield first.wait_datagrams(1)
    second, second_port = setup.client()
    second_port.write(b"JOIN two")
    # The first address still gets answers, proving the second's JOIN was handled.
    first_port.write(b"JOIN one")
    yield first.wait_datagrams(2)
    assert second.received == []
    assert setup.hub.counters.extra["udp_pending_full"] == 1
    yield setup.close()
