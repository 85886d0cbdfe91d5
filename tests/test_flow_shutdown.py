"""
Shutdown ordering in memory: a factory says goodbye to every open
connection, aborts the ones still draining after SHUTDOWN_GRACE, and fires
once all are gone; the chat tells everyone first; the daemon stops its
listeners before the goodbyes and closes the chat store after them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from conftest import RecordedEvents
from helpers import make_hub
from memory import BUFFER_SIZE, serve
from netlab.app.registry import parse
from netlab.app.service import NetlabService
from netlab.core.events import SHUTDOWN
from netlab.protocols.base import SHUTDOWN_GRACE
from netlab.protocols.chat.line import ChatFactory
from netlab.protocols.echo import EchoFactory, EchoSettings


def test_goodbye_to_all_abort_laggards_then_fire(events: Any, clock: Clock) -> None:
    """
    Every client is told and closed; the Deferred waits for a client that
    does not read, which is aborted SHUTDOWN_GRACE seconds later, and then
    fires, leaving nothing scheduled.
    """
    factory = EchoFactory(EchoSettings(name="echo", mode="upper"), events, clock)
    readers = [serve(factory, clock, port=40000 + n)[1] for n in range(2)]
    _, laggard = serve(factory, clock, port=40002)
    laggard.peer_write((b"x" * 100 + b"\n") * 4000)
    assert laggard.unsent > BUFFER_SIZE
    done = factory.shutdown()
    assert [e["count"] for e in events.kinds(SHUTDOWN)] == [3]
    for reader in readers:
        assert reader.peer_read() == b"Server shutting down.\r\n"
    clock.advance(0)
    for reader in readers:
        assert reader.lost_reason is not None and reader.lost_reason.check(ConnectionDone)
    assert laggard.value().endswith(b"Server shutting down.\r\n")
    assert not done.called
    clock.advance(SHUTDOWN_GRACE - 1)
    assert not done.called and laggard.lost_reason is None
    clock.advance(1)
    clock.advance(0)
    assert laggard.lost_reason is not None and laggard.lost_reason.check(ConnectionAborted)
    assert done.called
    assert factory.counters.connections_open == 0
    assert clock.getDelayedCalls() == []


def test_shutdown_with_everyone_reading_cancels_the_grace(events: Any, clock: Clock) -> None:
    """When every goodbye drains, the Deferred fires and no abort stays scheduled."""
    factory = EchoFactory(EchoSettings(name="echo", mode="ok"), events, clock)
    _, client = serve(factory, clock)
    done = factory.shutdown()
    client.peer_read()
    clock.advance(0)
    assert done.called
    assert clock.getDelayedCalls() == []
    assert factory.shutdown().called, "a shutdown with nobody connected fires at once"


def test_byte_exact_echo_closes_without_a_word(events: Any, clock: Clock) -> None:
    """
    A plain echo never injects bytes, so shutdown closes it without text:
    its client gets exactly the bytes it sent; an echo with a banner (or in
    a text mode) keeps its goodbye line.
    """
    factory = EchoFactory(EchoSettings(name="echo", mode="plain"), events, clock)
    _, client = serve(factory, clock)
    client.peer_write(b"\x00\xffbinary")
    assert client.peer_read() == b"\x00\xffbinary"
    done = factory.shutdown()
    clock.advance(0)
    assert client.peer_read() == b""
    assert client.lost_reason is not None and client.lost_reason.check(ConnectionDone)
    assert done.called
    greeting = EchoSettings(name="greeting", mode="plain", banner="Hi")
    factory = EchoFactory(greeting, events, clock)
    _, client = serve(factory, clock)
    factory.shutdown()
    assert client.peer_read() == b"Hi\r\nServer shutting down.\r\n"


def test_chat_tells_everyone_before_closing(events: Any, clock: Clock) -> None:
    """Chatting users and one still choosing a nick all hear the notice, then are closed."""
    hub = make_hub(events, clock)
    factory = ChatFactory(hub.settings, events, clock, hub)
    _, alice = serve(factory, clock, port=40000)
    alice.peer_write(b"alice\r\n")
    _, newcomer = serve(factory, clock, port=40001)
    clock.advance(0)
    alice.peer_read()
    newcomer.peer_read()
    done = factory.shutdown()
    for user in (alice, newcomer):
        assert user.peer_read() == b"* server shutting down\r\n"
    clock.advance(0)
    assert done.called
    assert not hub.sessions


class ClosingStore:
    """Stands in for the chat store: notes what was still open when it was closed."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.open_at_close: int | None = None

    def close(self) -> Any:
        self.open_at_close = len(self.factory.open_protocols)
        return succeed(None)


def test_service_stops_listeners_then_says_goodbye_then_closes_the_store(tmp_path: Any) -> None:
    """
    The daemon stops every listener before the first goodbye, and closes
    the chat store only once every connection is gone (a laggard included,
    after SHUTDOWN_GRACE); only then does it log its stop.
    """
    reactor = MemoryReactorClock()
    config = parse({
        "echo": [{"listen": ["tcp:0:interface=127.0.0.1"], "mode": "ok"}],
        "udp_echo": [],
        "chat": {"listen": ["tcp:0:interface=127.0.0.1"],
                 "database": str(tmp_path / "chat.sqlite3")},
        "http": {"enabled": False},
    })
    events = RecordedEvents(level="info")
    service = NetlabService(config, reactor, events=events)
    service.startService()
    echo, chat = service.factories
    store = ClosingStore(chat)
    service.context.resources[:] = [store]  # type: ignore[list-item]
    listening_at_goodbye: list[bool] = []
    events.subscribe(
        lambda e: e["netlab_event"] == SHUTDOWN
        and listening_at_goodbye.append(any(s.running for s in service.listeners))
    )
    _, reader = serve(echo, reactor, port=40000)
    _, laggard = serve(chat, reactor, port=40001)
    laggard.peer_write(b"laggard\r\n")
    reactor.advance(0)
    stopped: list[object] = []
    service.stopService().addCallback(stopped.append)
    reactor.advance(0)
    assert listening_at_goodbye == [False, False]
    assert reader.peer_read() == b"Server shutting down.\r\n"
    assert laggard.value().endswith(b"* server shutting down\r\n")
    reactor.advance(0)
    assert reader.lost_reason is not None
    assert store.open_at_close is None and not stopped
    assert not events.kinds("daemon_stop")
    reactor.advance(SHUTDOWN_GRACE)
    reactor.advance(0)
    assert laggard.lost_reason is not None and laggard.lost_reason.check(ConnectionAborted)
    assert store.open_at_close == 0
    assert stopped
    kinds = [e["netlab_event"] for e in events.seen]
    assert kinds.count("daemon_stop") == 1
    # The laggard's leaving is narrated (the room told, then the disconnect)
    # before the daemon logs its stop, which is the last word.
    assert kinds[-1] == "daemon_stop", kinds
