"""Tests for netlab.protocols.framed over real loopback sockets."""

from __future__ import annotations

import struct
from typing import Any

import pytest_twisted
from twisted.internet.task import Clock

from helpers import close_all, connect, listen
from netlab.core.events import DISCONNECTED
from netlab.protocols.framed import FramedEchoFactory, FramedEchoSettings


def framed(events: Any, clock: Any, **settings: Any) -> FramedEchoFactory:
    return FramedEchoFactory(FramedEchoSettings(name="framed", **settings), events, clock)


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


def int32(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


@pytest_twisted.inlineCallbacks
def exchange(factory: FramedEchoFactory, chunks: list[bytes], expect: int) -> Any:
    port = listen(factory)
    client = yield connect(port)
    for chunk in chunks:
        client.send(chunk)
    data = yield client.wait_bytes(expect)
    yield close_all(client)
    yield factory.when_idle()
    yield port.stopListening()
    return data


@pytest_twisted.inlineCallbacks
def test_int32_frames_echoed(events: Any, clock: Clock) -> Any:
    """int32 frames are echoed whole, also when split and coalesced by the stream."""
    factory = framed(events, clock)
    stream = int32(b"hello") + int32(b"") + int32(bytes(range(256)))
    chunks = [stream[i:i + 3] for i in range(0, len(stream), 3)]
    data = yield exchange(factory, chunks, len(stream))
    assert data == stream


@pytest_twisted.inlineCallbacks
def test_netstring_frames_echoed(events: Any, clock: Clock) -> Any:
    """Netstrings are echoed whole, split byte by byte or several at once."""
    factory = framed(events, clock, framing="netstring")
    stream = b"5:hello,0:,3:a:b,"
    chunks = [stream[i:i + 1] for i in range(len(stream))]
    data = yield exchange(factory, chunks, len(stream))
    assert data == stream


@pytest_twisted.inlineCallbacks
def check_refused(factory: FramedEchoFactory, send: bytes) -> Any:
    port = listen(factory)
    client = yield connect(port)
    client.send(send)
    yield client.closed
    yield factory.when_idle()
    yield port.stopListening()
    return client.data


@pytest_twisted.inlineCallbacks
def test_int32_too_long(events: Any, clock: Clock) -> Any:
    """A header over max_frame gets one error frame and the connection closes."""
    factory = framed(events, clock, max_frame=10)
    data = yield check_refused(factory, int32(b"ok") + struct.pack("!I", 11))
    message = b"ERROR frame of 11 bytes is longer than max_frame (10)"
    assert data == int32(b"ok") + int32(message)
    assert factory.counters.dropped == 1
    assert "max_frame" in events.kinds(DISCONNECTED)[0]["reason"]


@pytest_twisted.inlineCallbacks
def test_netstring_too_long(events: Any, clock: Clock) -> Any:
    """A netstring length over max_frame is refused before its body arrives."""
    factory = framed(events, clock, framing="netstring", max_frame=10)
    data = yield check_refused(factory, b"11:")
    assert data == netstring(b"ERROR frame of 11 bytes is longer than max_frame (10)")


@pytest_twisted.inlineCallbacks
def test_netstring_endless_length(events: Any, clock: Clock) -> Any:
    """A length with more digits than max_frame could have is refused at once."""
    factory = framed(events, clock, framing="netstring", max_frame=10)
    data = yield check_refused(factory, b"123")
    assert data == netstring(b"ERROR frame longer than max_frame (10)")


@pytest_twisted.inlineCallbacks
def test_netstring_garbage(events: Any, clock: Clock) -> Any:
    """Text that is not a netstring gets an error frame and a close."""
    factory = framed(events, clock, framing="netstring")
    data = yield check_refused(factory, b"hello\n")
    assert data == netstring(b"ERROR bad netstring length")


@pytest_twisted.inlineCallbacks
def test_netstring_missing_comma(events: Any, clock: Clock) -> Any:
    """A netstring whose body is not followed by a comma is refused."""
    factory = framed(events, clock, framing="netstring")
    data = yield check_refused(factory, b"2:ab;")
    assert data == netstring(b"ERROR netstring not terminated by a comma")
