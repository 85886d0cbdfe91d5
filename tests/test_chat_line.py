"""Tests for the chat's telnet/netcat front-end over real loopback sockets."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.task import Clock

from helpers import chat_user, listen, make_hub, shut_down
from netlab.protocols.chat.line import ChatFactory


def chat_factory(events: Any, clock: Clock, **settings: Any) -> ChatFactory:
    """The telnet chat front-end on a hub of its own."""
    hub = make_hub(events, clock, **settings)
    return ChatFactory(hub.settings, events, clock, hub)


@pytest_twisted.inlineCallbacks
def alice_and_bob(events: Any, clock: Clock, **settings: Any) -> Any:
    """A chat front-end listening, with alice then bob joined: (factory, port, alice, bob)."""
    factory = chat_factory(events, clock, **settings)
    port = listen(factory)
    alice = yield chat_user(port, "alice")
    bob = yield chat_user(port, "bob")
    return factory, port, alice, bob


@pytest_twisted.inlineCallbacks
def test_crlf_output_and_telnet_input(events: Any, clock: Clock) -> Any:
    """Output lines end in CRLF; telnet negotiation in input never reaches anyone."""
    factory, port, alice, bob = yield alice_and_bob(events, clock)
    assert alice.data.startswith(b"Welcome to the netlab chat. Type /help for the commands.\r\n")
    alice.send(b"\xff\xfb\x18hel\xff\xfd\x01lo\xff\xff there\n")
    data = yield bob.wait_text(b"there\r\n")
    assert data.endswith(b"<alice> hello there\r\n")
    assert b"\xff" not in data
    yield shut_down(factory, port, alice, bob)


@pytest_twisted.inlineCallbacks
def test_long_line_dropped_user_stays(events: Any, clock: Clock) -> Any:
    """A line over max_line gets one error line and is dropped; the user stays."""
    factory, port, alice, bob = yield alice_and_bob(events, clock, max_line=32)
    alice.send(b"y" * 100 + b"\nshort one\n")
    yield alice.wait_text(b"ERROR line longer than 32 bytes, dropped\r\n")
    data = yield bob.wait_text(b"short one\r\n")
    assert b"yyy" not in data
    yield shut_down(factory, port, alice, bob)


@pytest_twisted.inlineCallbacks
def test_idle_warning_then_disconnect(events: Any, clock: Clock) -> Any:
    """An idle user is warned first, then disconnected; the room hears why."""
    factory, port, alice, bob = yield alice_and_bob(
        events, clock, idle_timeout=100, idle_warning=10
    )
    clock.advance(90)
    yield alice.wait_text(b"type something within 10 seconds")
    bob.send(b"still here\n")
    yield alice.wait_text(b"<bob> still here")
    clock.advance(10)
    yield alice.closed
    assert b"Idle for 100 seconds, closing. Bye.\r\n" in alice.data
    yield bob.wait_text(b"* alice has quit (idle timeout)\r\n")
    assert bob.transport.connected
    yield shut_down(factory, port, bob)


@pytest_twisted.inlineCallbacks
def test_typing_resets_idle(events: Any, clock: Clock) -> Any:
    """A user who types after the warning stays connected."""
    factory = chat_factory(events, clock, idle_timeout=100, idle_warning=10)
    port = listen(factory)
    alice = yield chat_user(port, "alice")
    clock.advance(90)
    yield alice.wait_text(b"type something within 10 seconds")
    alice.send(b"/who\n")
    yield alice.wait_text(b"In #lobby (1): alice")
    clock.advance(50)
    assert alice.transport.connected
    yield shut_down(factory, port, alice)


@pytest_twisted.inlineCallbacks
def test_factory_shutdown_notice(events: Any, clock: Clock) -> Any:
    """Shutdown says "* server shutting down" to each user before closing."""
    factory = chat_factory(events, clock)
    port = listen(factory)
    alice = yield chat_user(port, "alice")
    yield port.stopListening()
    yield factory.shutdown()
    yield alice.closed
    assert alice.data.endswith(b"* server shutting down\r\n")


class CountingSocket:
    """A socket that keeps a copy of each send; everything else is the real socket's."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sends: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sends.append(bytes(data))
        sent: int = self.real.send(data)
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def server_side(factory: ChatFactory, nick: str) -> Any:
    """The server's connection of the user called C{nick}."""
    (line,) = [p for p in factory.open_protocols if p.session.nick == nick]
    return line


@pytest_twisted.inlineCallbacks
def test_lines_of_one_pass_go_out_in_one_send(events: Any, clock: Clock) -> Any:
    """Lines the room says in one reactor pass reach a member in one send, in order."""
    factory, port, alice, bob = yield alice_and_bob(events, clock)
    transport = server_side(factory, "bob").transport
    counting = transport.socket = CountingSocket(transport.socket)
    alice.send(b"one\ntwo\nthree\n")
    data = yield bob.wait_text(b"<alice> three\r\n")
    transport.socket = counting.real
    assert data.index(b"<alice> one") < data.index(b"<alice> two") < data.index(b"<alice> three")
    assert len(counting.sends) == 1 and counting.sends[0].count(b"<alice>") == 3
    yield shut_down(factory, port, alice, bob)


@pytest_twisted.inlineCallbacks
def test_lines_before_a_close_precede_the_goodbye(events: Any, clock: Clock) -> Any:
    """A line gathered for a member who is then closed arrives before the goodbye."""
    factory, port, alice, bob = yield alice_and_bob(events, clock)
    bob_line = server_side(factory, "bob")
    bob_line.send_line("* a notice gathered for later")
    bob_line.close("test", "Goodbye from the test.")
    yield bob.closed
    assert bob.data.endswith(b"* a notice gathered for later\r\nGoodbye from the test.\r\n")
    yield shut_down(factory, port, alice)
