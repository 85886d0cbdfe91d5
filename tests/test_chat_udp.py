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
def test_pending_full_forgets_the_oldest_cookie(events: Any, clock: Clock) -> Any:
    """Past max_pending outstanding cookies, a new JOIN is answered and the oldest forgotten."""
    setup = Setup(events, clock, max_pending=1)
    first, first_port = setup.client()
    first_port.write(b"JOIN one")
    (first_cookie,) = yield first.wait_datagrams(1)
    second, second_port = setup.client()
    second_port.write(b"JOIN two")
    (second_cookie,) = yield second.wait_datagrams(1)
    assert texts([second_cookie])[0].startswith("COOKIE ")
    assert setup.hub.counters.extra["udp_pending_evicted"] == 1
    # The first cookie was forgotten: it proves nothing now; the second's does.
    first_port.write(first_cookie[0])
    second_port.write(second_cookie[0])
    yield second.wait_for_text("Hello two!")
    assert [m.session.name for m in setup.chat.members.values()] == ["two"]
    yield setup.close()


class SentDatagrams:
    """Stands in for the UDP port in memory: keeps what the chat sends, to whom."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((data, address))

    def to(self, address: tuple[str, int]) -> list[bytes]:
        return [data for data, to in self.sent if to == address]


def udp_chat_in_memory(events: Any, clock: Clock, **settings: Any) -> tuple[UdpChat, SentDatagrams]:
    settings.setdefault("open_to", ())
    udp = UdpChatSettings(name="udp-chat", rate=1000, burst=1000, **settings)
    hub = make_hub(events, clock)
    chat = UdpChat(udp, DatagramGuard(udp, events, "udp-chat", clock.seconds), events, hub, clock)
    sent = SentDatagrams()
    chat.transport = sent  # type: ignore[assignment]
    return chat, sent


def test_spoofed_join_flood_does_not_lock_out_a_real_join(events: Any, clock: Clock) -> None:
    """
    JOINs from 2,000 forged addresses (one per /24) fill max_pending; a real
    JOIN after them still gets its cookie at once, and the cookie works.
    """
    chat, sent = udp_chat_in_memory(events, clock)
    for i in range(2000):
        chat.datagramReceived(b"JOIN spoof", (f"10.{i // 200}.{i % 200}.7", 40000))
    assert len(chat.pending) == chat.settings.max_pending
    real = ("198.51.100.7", 50000)
    chat.datagramReceived(b"JOIN alice", real)
    (cookie,) = sent.to(real)
    assert cookie.startswith(b"COOKIE ")
    chat.datagramReceived(cookie, real)
    assert real in chat.members
    assert len(chat.pending) <= chat.settings.max_pending


def test_pending_capped_per_ipv4_24_and_ipv6_64(events: Any, clock: Clock) -> None:
    """
    One /24 (IPv4) or /64 (IPv6) holds at most max_pending_per_network
    cookies, its own oldest forgotten first; other networks keep theirs.
    """
    chat, sent = udp_chat_in_memory(events, clock, max_pending_per_network=4)
    neighbour = ("203.0.114.1", 40000)
    chat.datagramReceived(b"JOIN neighbour", neighbour)
    flood = [(f"203.0.113.{i}", 40000) for i in range(1, 101)]
    flood += [(f"2001:db8:1:2::{i:x}", 40000) for i in range(1, 101)]
    for address in flood:
        chat.datagramReceived(b"JOIN spoof", address)
    assert set(chat.pending) == {neighbour, *flood[96:100], *flood[196:200]}
    assert chat.hub.counters.extra["udp_pending_network_full"] == 192
    # A forgotten cookie proves nothing; a kept one does.
    chat.datagramReceived(sent.to(flood[0])[0], flood[0])
    assert flood[0] not in chat.members
    chat.datagramReceived(sent.to(neighbour)[0], neighbour)
    assert neighbour in chat.members


def test_pending_bookkeeping_follows_expiry_and_proof(events: Any, clock: Clock) -> None:
    """Cookies that expire or are used give their network's slots back."""
    chat, sent = udp_chat_in_memory(events, clock, max_pending_per_network=2, cookie_timeout=10)
    a, b, c = (("192.0.2.1", 40000), ("192.0.2.2", 40000), ("192.0.2.3", 40000))
    chat.datagramReceived(b"JOIN a", a)
    chat.datagramReceived(b"JOIN b", b)
    chat.datagramReceived(sent.to(a)[0], a)
    chat.datagramReceived(b"JOIN c", c)
    assert set(chat.pending) == {b, c}
    clock.advance(11)
    chat.sweep()
    assert chat.pending == {} and chat.pending_by_network == {}


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
