"""
Small real-socket helpers for tests: listen on loopback port 0, connect
clients that collect what they receive, and wait on Deferreds, not sleeps.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any, NoReturn

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.python.failure import Failure

from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.chat.settings import ChatSettings


def require_tool(name: str) -> str:
    """
    The path of a real client program; skip without it on a developer's
    machine, but fail under CI, which must install it.
    """
    path = shutil.which(name)
    if path is None:
        cannot_run(f"{name} is not installed")
    return path


def cannot_run(message: str) -> NoReturn:
    """Skip, or under CI fail: CI must run every real-client test."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run this test")
    pytest.skip(message)


class ReadyServer(Protocol):
    """Hands itself to the test once connected, and says when it is gone."""

    def __init__(self, ready: Deferred[Any]) -> None:
        self.ready = ready
        self.gone: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.ready.callback(self)

    def connectionLost(self, reason: object = None) -> None:
        self.gone.callback(None)


class Collector(Protocol):
    """A client that keeps everything it receives and can wait for it."""

    def __init__(self) -> None:
        self.data = b""
        self.closed: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self._waiting: list[tuple[Any, Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        self._check()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        waiting, self._waiting = self._waiting, []
        for _, d in waiting:
            d.errback(AssertionError(f"closed while waiting; got {self.data!r}"))
        self.reason = reason
        self.closed.callback(None)

    def _check(self) -> None:
        for entry in list(self._waiting):
            test, d = entry
            if test(self.data):
                self._waiting.remove(entry)
                d.callback(self.data)

    def wait_for(self, test: Any) -> Deferred[bytes]:
        """Fires with all data so far once C{test(data)} holds."""
        d: Deferred[bytes] = Deferred()
        self._waiting.append((test, d))
        self._check()
        return d

    def wait_bytes(self, count: int) -> Deferred[bytes]:
        """Fires once at least C{count} bytes have arrived."""
        return self.wait_for(lambda data: len(data) >= count)

    def wait_text(self, text: bytes) -> Deferred[bytes]:
        """Fires once C{text} has arrived."""
        return self.wait_for(lambda data: text in data)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> Deferred[None]:
        """Close and wait until the connection is gone."""
        assert self.transport is not None
        self.transport.loseConnection()
        return self.closed


def listen(factory: Factory) -> IListeningPort:
    """Listen on a free loopback port."""
    return reactor.listenTCP(0, factory, interface="127.0.0.1")


def connect(port: IListeningPort) -> Deferred[Collector]:
    """Connect a L{Collector} to C{port}."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
    return connectProtocol(endpoint, Collector())


class DatagramCollector(DatagramProtocol):
    """A UDP client that keeps the datagrams it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Any]] = []
        self._waiting: list[tuple[int, Deferred[list[tuple[bytes, Any]]]]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))
        for entry in list(self._waiting):
            if len(self.received) >= entry[0]:
                self._waiting.remove(entry)
                entry[1].callback(self.received)

    def wait_for_text(self, text: str) -> Deferred[list[tuple[bytes, Any]]]:
        """Fires once a datagram containing C{text} has arrived."""
        d: Deferred[list[tuple[bytes, Any]]] = Deferred()

        def check(_: object = None) -> None:
            if any(text.encode() in data for data, _ in self.received):
                d.callback(self.received)
            else:
                self.wait_datagrams(len(self.received) + 1).addCallback(check)

        check()
        return d

    def wait_datagrams(self, count: int) -> Deferred[list[tuple[bytes, Any]]]:
        d: Deferred[list[tuple[bytes, Any]]] = Deferred()
        self._waiting.append((count, d))
        if len(self.received) >= count:
            self._waiting.remove((count, d))
            d.callback(self.received)
        return d


@inlineCallbacks
def close_all(*things: Any) -> Any:
    """Stop listening ports and close client connections, waiting for each."""
    for thing in things:
        if isinstance(thing, Collector):
            if thing.transport is not None and not thing.closed.called:
                yield thing.close()
        elif hasattr(thing, "stopListening"):
            yield thing.stopListening()


@inlineCallbacks
def shut_down(factory: Any, port: IListeningPort, *clients: Collector) -> Any:
    """Close C{clients}, wait until the server has seen every connection go, stop listening."""
    yield close_all(*clients)
    yield factory.when_idle()
    yield port.stopListening()


@inlineCallbacks
def chat_user(port: IListeningPort, nick: str) -> Any:
    """A telnet-style chat client that has chosen C{nick} and is in #lobby."""
    client = yield connect(port)
    yield client.wait_text(b"Choose a nick")
    client.send(nick.encode() + b"\r\n")
    yield client.wait_text(b"You are now in #lobby")
    return client


def make_hub(
    events: Any, clock: Any, store: Any = None, *,
    verify: Callable[[str, str], Deferred[bool]] = lambda password, stored: succeed(False),
    make_hash: Callable[[str], Deferred[str]] = lambda password: succeed("x"),
    **settings: Any,
) -> ChatHub:
    """A chat hub named "chat" with C{settings}; by default no password ever matches."""
    return ChatHub(
        ChatSettings(name="chat", **settings), events, clock, store,
        verify=verify, make_hash=make_hash,
    )
