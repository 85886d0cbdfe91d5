"""Tests for write_now: straight to the kernel when nothing is buffered, else Twisted's buffer."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import InvalidAddressError
from twisted.internet.protocol import DatagramProtocol, Factory

from helpers import ReadyServer as Server
from helpers import close_all, connect
from netlab.core._twisted import tcp_buffer_empty
from netlab.core.fastwrite import send_datagram, write_now


@pytest_twisted.inlineCallbacks
def test_direct_then_buffered_in_order() -> Any:
    """An idle transport sends at once; once it has a backlog, later writes queue behind it."""
    ready: Deferred[Any] = Deferred()
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: Server(ready)), interface="127.0.0.1")
    client = yield connect(port)
    server = yield ready
    transport = server.transport
    write_now(transport, b"first")
    assert tcp_buffer_empty(transport)
    assert transport not in reactor.getWriters()
    yield client.wait_text(b"first")

    client.transport.pauseProducing()
    big = bytes(range(256)) * 32768  # 8 MiB: more than the kernel takes at once
    write_now(transport, big)
    assert not tcp_buffer_empty(transport), "some of it must wait in Twisted's buffer"
    write_now(transport, b"last")
    assert not tcp_buffer_empty(transport)
    client.transport.resumeProducing()
    data = yield client.wait_bytes(len(b"first") + len(big) + len(b"last"))
    assert data == b"first" + big + b"last"
    yield close_all(client)
    yield server.gone
    yield port.stopListening()


class Datagrams(DatagramProtocol):
    """Keeps what arrives, and fires C{arrived} with the first."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Any]] = []
        self.arrived: Deferred[None] = Deferred()
        self._waiting: list[Deferred[None]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))
        if not self.arrived.called:
            self.arrived.callback(None)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def wait_more(self) -> Deferred[None]:
        """Fires when the next datagram arrives."""
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d


@pytest_twisted.inlineCallbacks
def test_send_datagram_straight_and_after_a_refusal() -> Any:
    """A datagram goes out from the port; an ICMP refusal surfacing on send raises nothing."""
    sender, receiver = Datagrams(), Datagrams()
    sending = reactor.listenUDP(0, sender, interface="127.0.0.1")
    receiving = reactor.listenUDP(0, receiver, interface="127.0.0.1")
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    nobody = closed.getsockname()
    closed.close()
    # A witness port, sent to after each refused datagram: once the witness
    # has its datagram, the port unreachable answer to the one before it
    # is back too (loopback delivers in order), with no timed wait.
    witness = Datagrams()
    witnessing = reactor.listenUDP(0, witness, interface="127.0.0.1")
    for n in range(3):  # the port unreachable answer surfaces on a later send
        send_datagram(sending, b"anyone?", nobody)
        send_datagram(sending, b"seen?", ("127.0.0.1", witnessing.getHost().port))
        while len(witness.received) <= n:
            yield witness.wait_more()
    send_datagram(sending, b"hello", ("127.0.0.1", receiving.getHost().port))
    yield receiver.arrived
    assert receiver.received == [(b"hello", ("127.0.0.1", sending.getHost().port))]
    yield sending.stopListening()
    yield receiving.stopListening()
    yield witnessing.stopListening()


@pytest_twisted.inlineCallbacks
def test_send_datagram_keeps_twisteds_address_checks() -> Any:
    """A host name is refused with Twisted's own error, as transport.write refuses it."""
    port = reactor.listenUDP(0, Datagrams(), interface="127.0.0.1")
    with pytest.raises(InvalidAddressError):
        send_datagram(port, b"x", ("localhost", 9))
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_write_after_the_peer_reset_loses_the_connection() -> Any:
    """A send the kernel refuses (the peer reset) raises nothing; the connection is lost."""
    ready: Deferred[Any] = Deferred()
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: Server(ready)), interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    server = yield ready
    # SO_LINGER 0: close() sends RST, so the server's next sends fail.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()
    # Before the reactor has read the reset: the send itself must fail.
    assert server.transport.connected
    for _ in range(3):
        write_now(server.transport, b"anyone there?")
    yield server.gone
    yield port.stopListening()
