"""
Flow control of the telnet/netcat chat in memory: a member who stops
reading is dropped once their unsent output passes C{max_output} while the
others keep talking, one who catches up is kept, and idle members are
warned before they are closed.  No sockets and no wall-clock time:
L{memory.MemoryTCP} on a L{memory.PassClock}, one C{advance(0)} per
reactor pass.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionAborted, ConnectionDone

from helpers import make_hub
from memory import BUFFER_SIZE, MemoryTCP, PassClock, serve
from netlab.core.events import DISCONNECTED, DROPPED
from netlab.protocols.chat.line import ChatFactory

QUIT = b"* stuck has quit (too slow: output backlog over max_output)\r\n"
LINE = b"x" * 900


class Chat:
    """A chat front-end on its own hub, on a clock where each advance(0) is one pass."""

    def __init__(self, events: Any, **settings: Any) -> None:
        self.clock = PassClock()
        self.hub = make_hub(events, self.clock, **settings)
        self.factory = ChatFactory(self.hub.settings, events, self.clock, self.hub)
        self.ports = iter(range(40000, 41000))

    def join(self, nick: str) -> MemoryTCP:
        """A user who has chosen C{nick}, is in #lobby and has read everything so far."""
        _, transport = serve(self.factory, self.clock, port=next(self.ports))
        transport.peer_write(nick.encode() + b"\r\n")
        self.clock.advance(0)
        assert b"You are now in #lobby" in transport.peer_read()
        return transport

    def say(self, user: MemoryTCP, text: bytes) -> None:
        """C{user} sends one line, and the reactor makes one pass."""
        user.peer_write(text + b"\r\n")
        self.clock.advance(0)


def test_reader_that_stops_reading_is_dropped_others_go_on(events: Any) -> None:
    """
    A member who reads nothing is dropped (aborted) as soon as their unsent
    output passes max_output, not before; the room hears why, and talking
    goes on between the others, every line delivered.
    """
    chat = Chat(events, flood_lines=10_000, max_output=262_144)
    stuck = chat.join("stuck")
    talker, listener = chat.join("talker"), chat.join("listener")
    stuck.peer_read()
    heard = b""
    for i in range(1000):
        before = stuck.unsent
        chat.say(talker, b"%d " % i + LINE)
        heard += listener.peer_read()
        if stuck.disconnected:
            break
        assert stuck.unsent <= 262_144, "kept past max_output"
    else:
        raise AssertionError("the non-reading member was never dropped")
    # Dropped on the write that took the backlog past max_output.
    assert before <= 262_144 < stuck.unsent
    assert 200 < i < 300
    assert not stuck.reading
    assert [e["what"] for e in events.kinds(DROPPED)] == ["a slow reader"]
    assert chat.hub.counters.extra["slow_consumers"] == 1
    chat.say(talker, b"after the drop")
    chat.clock.advance(0)
    heard += listener.peer_read()
    assert stuck.lost_reason is not None and stuck.lost_reason.check(ConnectionAborted)
    assert heard.count(b"<talker> ") == i + 2
    assert QUIT in heard
    assert heard.endswith(b"<talker> after the drop\r\n")
    assert [e["reason"] for e in events.kinds(DISCONNECTED)] == [
        "too slow: output backlog over max_output"
    ]
    assert not talker.disconnecting and not listener.disconnecting
    assert [s.name for s in chat.hub.room("#lobby").members] == ["talker", "listener"]


def test_room_hears_of_the_drop_before_lines_said_after_it(events: Any) -> None:
    """
    A line read in the reactor pass after a member was dropped reaches the
    room after the quit notice, not before it (the notice is not left for
    the next pass).
    """
    chat = Chat(events, flood_lines=10_000, max_output=262_144)
    stuck = chat.join("stuck")
    talker, listener = chat.join("talker"), chat.join("listener")
    heard = b""
    for i in range(1000):
        chat.say(talker, b"%d " % i + LINE)
        heard += listener.peer_read()
        if stuck.disconnected:
            break
    # Input read right after the pass of the drop, before its connectionLost.
    chat.say(talker, b"after the drop")
    chat.clock.advance(0)
    heard += listener.peer_read()
    assert QUIT in heard
    assert heard.index(QUIT) < heard.index(b"<talker> after the drop")


def test_reader_that_catches_up_is_kept(events: Any) -> None:
    """
    Falling behind and catching up again, three times over more than
    max_output in all, is no drop: the backlog counts from the last time
    the member caught up.
    """
    chat = Chat(events, flood_lines=10_000, max_output=262_144)
    slow = chat.join("slow")
    talker = chat.join("talker")
    total = 0
    for _ in range(3):
        while slow.unsent < 200_000:
            chat.say(talker, LINE)
        assert slow.unsent > BUFFER_SIZE
        total += len(slow.peer_read())
    assert total > 262_144
    assert not slow.disconnected
    assert not events.kinds(DROPPED)
    chat.say(talker, b"still with us?")
    assert slow.peer_read().endswith(b"<talker> still with us?\r\n")


def test_idle_member_warned_then_closed(events: Any) -> None:
    """
    An idle member is warned idle_warning seconds before idle_timeout, then
    told goodbye and closed; the room hears why, and the others stay.
    """
    chat = Chat(events, idle_timeout=100, idle_warning=10)
    alice, bob = chat.join("alice"), chat.join("bob")
    alice.peer_read()
    chat.clock.advance(89.9)
    chat.clock.advance(0)
    assert alice.peer_read() == b""
    chat.say(bob, b"keeping awake")
    chat.clock.advance(0.1)
    chat.clock.advance(0)
    assert alice.peer_read().endswith(
        b"* You have been idle a while: type something within 10 seconds or be"
        b" disconnected.\r\n"
    )
    chat.clock.advance(9.9)
    assert not alice.disconnecting
    chat.clock.advance(0.1)
    assert alice.peer_read() == b"Idle for 100 seconds, closing. Bye.\r\n"
    chat.clock.advance(0)
    chat.clock.advance(0)
    assert alice.lost_reason is not None and alice.lost_reason.check(ConnectionDone)
    assert bob.peer_read().endswith(b"* alice has quit (idle timeout)\r\n")
    assert not bob.disconnecting
    chat.clock.advance(1000)  # bob's warning
    chat.clock.advance(10)
    assert bob.disconnecting, "bob was idle too, after his own last line"


def test_typing_after_the_warning_keeps_the_member(events: Any) -> None:
    """A member who types after the warning starts a whole new idle period."""
    chat = Chat(events, idle_timeout=100, idle_warning=10)
    alice = chat.join("alice")
    chat.clock.advance(90)
    chat.clock.advance(0)
    assert b"idle a while" in alice.peer_read()
    chat.say(alice, b"/who")
    assert alice.peer_read() == b"In #lobby (1): alice\r\n"
    chat.clock.advance(89)
    chat.clock.advance(0)
    assert alice.peer_read() == b""
    assert not alice.disconnecting
    chat.clock.advance(1)
    chat.clock.advance(0)
    assert b"idle a while" in alice.peer_read()


def test_trickled_nick_closed_at_the_login_deadline(events: Any) -> None:
    """
    A client that trickles the bytes of a nick, never ending the line, is
    closed login_timeout seconds after it connected, however busy it looks.
    """
    chat = Chat(events, login_timeout=60)
    _, slowpoke = serve(chat.factory, chat.clock)
    chat.clock.advance(0)
    slowpoke.peer_read()
    for byte in b"vict":
        chat.clock.advance(14.9)
        slowpoke.peer_write(bytes([byte]))
        chat.clock.advance(0)
    assert not slowpoke.disconnecting
    chat.clock.advance(0.4)
    assert slowpoke.peer_read() == b"Login timed out after 60 seconds.\r\n"
    chat.clock.advance(0)
    chat.clock.advance(0)
    assert slowpoke.lost_reason is not None
    assert chat.hub.counters.extra["login_timeouts"] == 1


def test_bytes_count_as_activity_once_logged_in(events: Any) -> None:
    """After login a user typing a long line slowly is not idle: bytes count, not lines."""
    chat = Chat(events, idle_timeout=100, idle_warning=10)
    alice = chat.join("alice")
    chat.clock.advance(80)
    alice.peer_write(b"a long thought, typed sl")
    chat.clock.advance(0)
    chat.clock.advance(80)
    chat.clock.advance(0)
    assert alice.peer_read() == b""
    chat.clock.advance(10)
    chat.clock.advance(0)
    assert b"idle a while" in alice.peer_read()
