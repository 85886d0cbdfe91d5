"""
What the chat says, to its users and in its log (issue 14, item 13): each
log line says what happened, once, in the order it happened; the UDP chat
asks for no nick it was given; /help shows what the user may run.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from test_chat_hub import User, joined, real_hub
from test_chat_udp import udp_chat_in_memory


def lines(events: Any) -> list[str]:
    """The chat's log lines, as the log shows them."""
    return [event["what"] for event in events.kinds("chat")]


def test_login_line_says_what_happened(events: Any, clock: Clock) -> None:
    """Not "chat: alice (...) nick": the nick was taken, the user is in."""
    hub = real_hub(events, clock, None)
    joined(hub, "alice")
    assert lines(events)[:2] == ["logged in", "join #lobby"]


def test_quit_reason_said_once(events: Any, clock: Clock) -> None:
    """/quit off to class is logged as "quit: off to class", not "quit: quit: ..."."""
    hub = real_hub(events, clock, None)
    alice = joined(hub, "alice")
    alice.say("/quit off to class")
    assert lines(events)[-1] == "quit: off to class"
    bob = joined(hub, "bob")
    bob.session.lost("closed by client")
    assert lines(events)[-1] == "quit: closed by client"


def test_a_visitor_without_a_nick_is_not_a_question_mark(events: Any, clock: Clock) -> None:
    """Someone who leaves before choosing a nick is logged as having none, not as "?"."""
    hub = real_hub(events, clock, None)
    visitor = User(hub)
    visitor.session.lost("closed by client")
    (quit,) = events.kinds("chat")
    assert quit["nick"] == "(no nick)"


def test_help_lists_only_what_the_user_may_run(events: Any, clock: Clock) -> None:
    """/help for a user who is no operator names no operator command."""
    hub = real_hub(events, clock, None)
    alice = joined(hub, "alice")
    shown = "\n".join(alice.say("/help"))
    for name in ("/kick", "/mute", "/ban", "/unban", "/wall"):
        assert name not in shown, shown


def test_udp_join_with_a_nick_is_not_asked_for_one(events: Any, clock: Clock) -> None:
    """JOIN carol (from a trusted address) greets carol without asking her to choose."""
    chat, sent = udp_chat_in_memory(events, clock, open_to=("198.51.100.0/24",))
    carol = ("198.51.100.7", 50000)
    chat.datagramReceived(b"JOIN carol", carol)
    said = [data.decode() for data in sent.to(carol)]
    assert any(line.startswith("Hello carol!") for line in said), said
    assert not any("Choose a nick" in line for line in said), said
    chat.stopProtocol()


def test_udp_member_quits_before_it_disconnects(events: Any, clock: Clock) -> None:
    """The log tells the story in order: the part and the quit, then the disconnect."""
    chat, _ = udp_chat_in_memory(events, clock, open_to=("198.51.100.0/24",))
    carol = ("198.51.100.7", 50000)
    chat.datagramReceived(b"JOIN carol", carol)
    chat.datagramReceived(b"LEAVE", carol)
    story = [
        e["what"] if e["netlab_event"] == "chat" else e["netlab_event"]
        for e in events.seen if e["netlab_event"] in ("chat", "disconnected")
    ]
    assert story == ["logged in", "join #lobby", "part #lobby: quit", "quit", "disconnected"]
    chat.stopProtocol()
