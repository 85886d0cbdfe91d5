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
    """
    A UDP chat on a loopback port.  The tests' clients are on loopback, which
    C{open_to} trusts by default; the cookie handshake is tested with an
    empty C{open_to} unless a test says otherwise.
    """

    def __init__(self, events: Any, clock: Clock, **settings: Any) -> None:
        self.clock = clock
        self.hub = make_hub(events, clock, flood_lines=100)
        settings.setdefault("open_to", ())
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


# -- trusted sources: no cookie ------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_trusted_plain_client_joins_by_its_first_line(events: Any, clock: Clock) -> Any:
    """From open_to, a client that only sends lines is a member at once, named by its port."""
    setup = Setup(events, clock, open_to=("127.0.0.0/8",))
    watcher = Watcher(setup.hub)
    collector, port = setup.client()
    nick = f"udp{port.getHost().port}"
    port.write(b"hello everyone\n")
    yield collector.wait_for_text(f"Hello {nick}!")
    assert f"* {nick} has joined #lobby" in watcher.shown
    assert any(line.endswith(f"<{nick}> hello everyone") for line in watcher.shown)
    watcher.session.line("hi back")
    yield collector.wait_for_text("<watcher> hi back")
    assert not any(t.startswith("COOKIE") for t in texts(collector.received))
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_trusted_join_takes_its_nick_without_a_cookie(events: Any, clock: Clock) -> Any:
    """From open_to, JOIN nick needs no cookie."""
    setup = Setup(events, clock, open_to=("127.0.0.0/8",))
    collector, port = setup.client()
    port.write(b"JOIN carol")
    yield collector.wait_for_text("Hello carol!")
    assert not any(t.startswith("COOKIE") for t in texts(collector.received))
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_untrusted_plain_client_gets_nothing(events: Any, clock: Clock) -> Any:
    """Outside open_to, lines from an unproven address get no answer; JOIN gets a cookie."""
    setup = Setup(events, clock, open_to=("10.0.0.0/8",))
    collector, port = setup.client()
    port.write(b"hello everyone\n")
    port.write(b"JOIN dave")
    received = yield collector.wait_datagrams(1)
    assert texts(received)[0].startswith("COOKIE ")
    assert setup.chat.members == {}
    yield setup.close()


@pytest_twisted.inlineCallbacks
def test_members_per_host_capped(events: Any, clock: Clock) -> Any:
    """One host cannot fill the chat from many ports: past the cap it is told why."""
    setup = Setup(events, clock, open_to=("127.0.0.0/8",), max_members_per_host=2)
    joined = []
    for nick in ("one", "two"):
        collector, port = setup.client()
        port.write(f"JOIN {nick}".encode())
        yield collector.wait_for_text(f"Hello {nick}!")
        joined.append((collector, port))
    (first, first_port), _ = joined
    third, port = setup.client()
    port.write(b"JOIN three")
    received = yield third.wait_datagrams(1)
    assert texts(received) == ["ERROR too many UDP chat members from your address (limit 2)"]
    assert len(setup.chat.members) == 2
    assert events.counters_for("udp-chat").refused == 1
    (refused,) = events.kinds("refused")
    assert "limit 2" in refused["limit"]
    # One leaves: its slot comes back for the next from that host.
    first_port.write(b"LEAVE")
    yield first.wait_for_text("Bye.")
    port.write(b"JOIN three")
    yield third.wait_for_text("Hello three!")
    assert len(setup.chat.members) == 2
    yield setup.close()


def test_free_nick_skips_taken_ones(events: Any, clock: Clock) -> None:
    """A port-made nick that someone holds gets a suffix."""
    setup_hub = make_hub(events, clock)
    holder = Watcher(setup_hub)
    holder.session.line("/nick udp5000")
    udp = UdpChatSettings(name="udp-chat")
    chat = UdpChat(udp, DatagramGuard(udp, events, "udp-chat", clock.seconds), events,
                   setup_hub, clock)
    newcomer = Watcher(setup_hub)
    assert chat.free_nick(5000, newcomer.session) == "udp5000-2"
    assert chat.free_nick(5001, newcomer.session) == "udp5001"
