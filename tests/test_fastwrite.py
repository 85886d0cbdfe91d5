"""Tests for write_now: straight to the kernel when nothing is buffered, else Twisted's buffer."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol

from helpers import close_all, connect
from netlab.daemon.fastwrite import write_now


class Server(Protocol):
    """Hands its transport to the test once connected."""

    def __init__(self, ready: Deferred[Any]) -> None:
        self.ready = ready
        self.gone: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.ready.callback(self)

    def connectionLost(self, reason: object = None) -> None:
        self.gone.callback(None)


@pytest_twisted.inlineCallbacks
def test_direct_then_buffered_in_order() -> Any:
    """An idle transport sends at once; once it has a backlog, later writes queue behind it."""
    ready: Deferred[Any] = Deferred()
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: Server(ready)), interface="127.0.0.1")
    client = yield connect(port)
    server = yield ready
    transport = server.transport
    write_now(transport, b"first")
    assert transport._tempDataLen == 0
    assert transport not in reactor.getWriters()
    yield client.wait_text(b"first")

    client.transport.pauseProducing()
    big = bytes(range(256)) * 32768  # 8 MiB: more than the kernel takes at once
    write_now(transport, big)
    assert transport._tempDataLen > 0, "some of it must wait in Twisted's buffer"
    write_now(transport, b"last")
    assert transport._tempDataLen > 0
    client.transport.resumeProducing()
    data = yield client.wait_bytes(len(b"first") + len(big) + len(b"last"))
    assert data == b"first" + big + b"last"
    yield close_all(client)
    yield server.gone
    yield port.stopListening()
