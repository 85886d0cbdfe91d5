"""Tests for netlab.protocols.framed over real loopback sockets."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from helpers import close_all, connect, listen
from memory import serve
from netlab.app import registry
from netlab.core.config import ConfigError
from netlab.core.events import DISCONNECTED, DROPPED
from netlab.protocols.framed import FramedEchoFactory, FramedEchoSettings, new_header


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


# -- every usual header shape --------------------------------------------------
#
# Each shape as the course's clients write it, and the settings that frame by it.


def zeros(width: int) -> Any:
    """The course's C{('%010d' % len(m)).encode() + m}, for any width."""
    return lambda m: ("%0*d" % (width, len(m))).encode() + m  # noqa: UP031 (the course's style)


def right(width: int) -> Any:
    """C{('%10d' % len(m)).encode() + m}: spaces before the digits."""
    return lambda m: ("%*d" % (width, len(m))).encode() + m  # noqa: UP031 (the course's style)


def left(width: int) -> Any:
    """C{f'{len(m):<10}'.encode() + m}: spaces after the digits."""
    return lambda m: f"{len(m):<{width}}".encode() + m

SHAPES: dict[str, tuple[dict[str, Any], Any]] = {
    "u8": ({"framing": "binary", "length_bytes": 1}, lambda m: struct.pack("B", len(m)) + m),
    "le16": (
        {"framing": "binary", "length_bytes": 2, "byte_order": "little"},
        lambda m: struct.pack("<H", len(m)) + m,
    ),
    "be16": ({"framing": "binary", "length_bytes": 2}, lambda m: struct.pack(">H", len(m)) + m),
    "le32": (
        {"framing": "binary", "byte_order": "little"}, lambda m: struct.pack("<I", len(m)) + m,
    ),
    "int32": ({"framing": "int32"}, lambda m: struct.pack("!I", len(m)) + m),
    "be64": ({"framing": "binary", "length_bytes": 8}, lambda m: struct.pack(">Q", len(m)) + m),
    "le64": (
        {"framing": "binary", "length_bytes": 8, "byte_order": "little"},
        lambda m: struct.pack("<Q", len(m)) + m,
    ),
    "zeros10": ({"framing": "digits"}, zeros(10)),
    "right10": ({"framing": "digits"}, right(10)),
    "left10": ({"framing": "digits"}, left(10)),
    "zeros4": ({"framing": "digits", "digits": 4}, zeros(4)),
    "right20": ({"framing": "digits", "digits": 20}, right(20)),
    "netstring": ({"framing": "netstring"}, netstring),
}

MESSAGES = [b"hello, world!", b"", "привет".encode(), bytes(range(200))]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_header_writes_what_the_client_writes(shape: str) -> None:
    """A payload framed by the server is byte for byte what the course's client sends."""
    settings, client_frame = SHAPES[shape]
    header = new_header(FramedEchoSettings(**settings))
    for message in MESSAGES:
        assert header.parse(client_frame(message), 0) == len(client_frame(message))
        assert header.frame(message) == client_frame(message), message


@pytest.mark.parametrize("shape", list(SHAPES))
def test_chunked_in_memory(shape: str, events: Any, clock: Clock) -> None:
    """Frames split anywhere (headers too, a byte per read) or run together are echoed whole."""
    settings, client_frame = SHAPES[shape]
    factory = framed(events, clock, **settings)
    stream = b"".join(client_frame(m) for m in MESSAGES)
    for size in (1, 3, len(stream)):
        protocol, transport = serve(factory, clock)
        for i in range(0, len(stream), size):
            transport.peer_write(stream[i:i + size])
        assert transport.peer_read() == stream
        assert protocol.close_reason is None
        transport.peer_close()
        clock.advance(0)
    assert factory.counters.dropped == 0


def refused_in_memory(factory: FramedEchoFactory, clock: Clock, *chunks: bytes) -> bytes:
    """What a client sending C{chunks} reads before the server closes."""
    protocol, transport = serve(factory, clock)
    for chunk in chunks:
        transport.peer_write(chunk)
    data = transport.peer_read()
    clock.advance(0)
    assert transport.lost_reason is not None, "the connection should be closed"
    assert protocol.close_reason is not None
    return data


def bad(header: str, width: int) -> bytes:
    return (
        f"ERROR bad length header {header!r}: "
        f"want {width} digits, padded with 0 or spaces"
    ).encode()


def over(size: int, limit: int = 10) -> bytes:
    return f"ERROR frame of {size} bytes is longer than max_frame ({limit})".encode()


@pytest.mark.parametrize(
    ("settings", "chunks", "answer"),
    [
        ({"framing": "digits"}, [b"hello"], zeros(10)(bad("hello", 10))),
        ({"framing": "digits", "digits": 4}, [b"00", b"-5"], zeros(4)(bad("00-5", 4))),
        ({"framing": "digits", "digits": 4}, [b"1 2"], zeros(4)(bad("1 2", 4))),
        ({"framing": "digits", "digits": 4}, [b"    "], zeros(4)(bad("    ", 4))),
        (
            {"framing": "digits", "max_frame": 10}, [b"0000000011abc"],
            zeros(10)(over(11)),
        ),
        (
            {"framing": "digits", "digits": 3, "max_frame": 10}, [b"  2ok", b" 11"],
            b"  2ok" + right(3)(over(11)),
        ),
        (
            {"framing": "digits", "digits": 3, "max_frame": 10}, [b"2  ok", b"11 "],
            b"2  ok" + left(3)(over(11)),
        ),
        ({"framing": "digits", "digits": 1, "max_frame": 5}, [b"7"], b"9" + over(7, 5)[:9]),
        (
            {"framing": "binary", "length_bytes": 2, "byte_order": "little", "max_frame": 10},
            [b"\x02\x00ok\x0b", b"\x00"],
            b"\x02\x00ok" + struct.pack("<H", len(over(11))) + over(11),
        ),
        (
            {"framing": "binary", "length_bytes": 8, "max_frame": 10}, [b"\xff" * 8],
            struct.pack(">Q", len(over(2**64 - 1))) + over(2**64 - 1),
        ),
        (
            {"framing": "binary", "length_bytes": 1, "max_frame": 10}, [b"\x0b"],
            struct.pack("B", len(over(11))) + over(11),
        ),
    ],
    ids=[
        "text-for-digits", "minus-sign", "space-inside", "only-spaces", "digits-too-long",
        "right-aligned-error", "left-aligned-error", "error-cut-to-one-digit",
        "le16-too-long", "u64-huge", "u8-too-long",
    ],
)
def test_bad_header_in_memory(
    settings: dict[str, Any], chunks: list[bytes], answer: bytes, events: Any, clock: Clock
) -> None:
    """
    A bad or over-long header gets one error frame in the client's own framing
    (padding of its last good header; cut to what the header can say), once
    enough of it has arrived to know, one logged refusal, and a close.
    """
    factory = framed(events, clock, **settings)
    assert refused_in_memory(factory, clock, *chunks) == answer
    assert factory.counters.dropped == 1
    (dropped,) = events.kinds(DROPPED)
    assert dropped["what"] == "a frame"


# -- config --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "key", "shown", "why"),
    [
        (["framing = 'binary'", "length_bytes = 3"], "length_bytes", "3", "one of 1, 2, 4, 8"),
        (["framing = 'binary'", "length_bytes = 16"], "length_bytes", "16", "from 1 to 8"),
        (["framing = 'binary'", "length_bytes = 2.0"], "length_bytes", "2.0", "whole number"),
        (["framing = 'binary'", "byte_order = 'middle'"], "byte_order", '"middle"', "big, little"),
        (["framing = 'digits'", "digits = 0"], "digits", "0", "from 1 to 20"),
        (["framing = 'digits'", "digits = 21"], "digits", "21", "from 1 to 20"),
        (["framing = 'int16'"], "framing", '"int16"', "int32, netstring, binary, digits"),
        (
            ["framing = 'int32'", "length_bytes = 2"], "length_bytes", "2",
            'only used with framing = "binary" (this listener\'s framing is "int32")',
        ),
        (
            ["byte_order = 'little'"], "byte_order", '"little"',
            'only used with framing = "binary"',
        ),
        (
            ["framing = 'binary'", "digits = 4"], "digits", "4",
            'only used with framing = "digits" (this listener\'s framing is "binary")',
        ),
    ],
    ids=[
        "width-3", "width-16", "width-float", "byte-order", "no-digits", "too-many-digits",
        "framing", "width-with-int32", "order-with-int32", "digits-with-binary",
    ],
)
def test_config_errors(
    tmp_path: Path, lines: list[str], key: str, shown: str, why: str
) -> None:
    """Each refused header setting names the file, the key and the value, and says why."""
    path = tmp_path / "netlab.toml"
    path.write_text("[[framed_echo]]\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as e:
        registry.load(path)
    message = str(e.value)
    assert message.startswith(f"{path}: [framed_echo][0].{key} = {shown}: "), message
    assert why in message


def test_config_accepts_every_shape() -> None:
    """Every shape of the table above loads, with the documented defaults elsewhere."""
    for settings, _ in SHAPES.values():
        (loaded,) = registry.parse({"framed_echo": [settings]}).framed_echo
        assert {key: getattr(loaded, key) for key in settings} == settings
    (default,) = registry.parse({"framed_echo": [{}]}).framed_echo
    assert (default.framing, default.length_bytes, default.byte_order, default.digits) == (
        "int32", 4, "big", 10,
    )
