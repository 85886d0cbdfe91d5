"""
permessage-deflate (RFC 7692) and protocol errors on the WebSocket
endpoints: negotiation, compressed echo, C{max_body} held to the inflated
size of a message (a compression bomb is refused without being inflated),
the C{websocket_deflate} setting, and one logged event for each protocol
error a client makes.  In memory, frames written by hand; then a
C{websockets} client against the site on a loopback port.
"""

from __future__ import annotations

import os
import tracemalloc
import zlib
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from helpers import listen, make_hub
from httptest import build_site
from memory import MemoryTCP, PassClock, serve
from netlab.core.events import DROPPED
from netlab.protocols.http import routes, websocket
from netlab.protocols.http.routes import Root
from test_flow_websocket import (
    UPGRADE,
    close_code,
    echo_site,
    frame,
    messages,
    raw_frames,
    upgrade,
)
from test_http_websocket import ws_disconnected

MIB = 1_048_576
TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
RSV1 = 0x40
OFFER = b"Sec-WebSocket-Extensions: %s\r\n"
# What a browser offers.
BROWSER_OFFER = b"permessage-deflate; client_max_window_bits"


def deflated(message: bytes, compressor: Any = None) -> bytes:
    """C{message} as a permessage-deflate payload (RFC 7692 7.2.1): flushed, tail removed."""
    compressor = compressor or zlib.compressobj(wbits=-15)
    data: bytes = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def inflated(payload: bytes, wbits: int = -15) -> bytes:
    """A server's compressed payload, inflated with a window of C{-wbits} bits."""
    return zlib.decompressobj(wbits).decompress(payload + b"\x00\x00\xff\xff")


def extensions_header(head: bytes) -> str | None:
    """The Sec-WebSocket-Extensions value of a 101 answer, or None."""
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-extensions":
            return value.strip()
    return None


def deflate_socket(events: Any, clock: PassClock, offer: bytes = BROWSER_OFFER,
                   **settings: Any) -> tuple[MemoryTCP, str | None]:
    """An echo socket whose client offered C{offer}; the accepted extension."""
    site = echo_site(events, clock, **settings)
    user, head = upgrade(site, clock, b"/ws/echo", 40000, OFFER % offer)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return user, extensions_header(head)


def ws_events(events: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in events.kinds(kind) if e["service"] == "http-ws"]


def test_deflate_negotiated_and_both_ways_compressed(events: Any) -> None:
    """
    A browser's offer is accepted with server_no_context_takeover; compressed
    messages, whole or in fragments with a ping between them, come back
    compressed, and the client may keep its compression context.
    """
    clock = PassClock()
    user, accepted = deflate_socket(events, clock)
    assert accepted == "permessage-deflate; server_no_context_takeover"
    client = zlib.compressobj(wbits=-15)
    text = ("netlab echoes this line. " * 4000).encode()
    payload = deflated(text, client)
    assert len(payload) < len(text) // 50
    user.peer_write(frame(payload, TEXT, rsv=RSV1))
    clock.advance(0)
    [(first, answer)] = raw_frames(user.peer_read())
    assert first == 0x80 | RSV1 | TEXT
    assert len(answer) < len(text) // 50 and inflated(answer) == text
    # Context takeover on the client's side: random bytes sent twice are a
    # few bytes the second time, a reference to the first.
    block = os.urandom(8000)
    for _ in range(2):
        payload = deflated(block, client)
        user.peer_write(frame(payload, BINARY, rsv=RSV1))
        clock.advance(0)
        [(first, answer)] = raw_frames(user.peer_read())
        assert inflated(answer) == block
    assert len(payload) < 100
    # Fragmented: RSV1 on the first frame only, a ping in between.
    binary = bytes(range(256)) * 1000
    payload = deflated(binary, client)
    third = len(payload) // 3
    user.peer_write(frame(payload[:third], BINARY, final=False, rsv=RSV1))
    user.peer_write(frame(b"are you there", PING))
    user.peer_write(frame(payload[third:2 * third], CONTINUATION, final=False))
    user.peer_write(frame(payload[2 * third:], CONTINUATION))
    clock.advance(0)
    answers = raw_frames(user.peer_read())
    assert answers[0] == (0x80 | PONG, b"are you there")
    assert answers[1][0] == 0x80 | RSV1 | BINARY and inflated(answers[1][1]) == binary
    # An uncompressed message is still fine.
    user.peer_write(frame(b"plain", TEXT))
    clock.advance(0)
    [(first, answer)] = raw_frames(user.peer_read())
    assert inflated(answer) == b"plain"
    assert not user.disconnecting and not ws_events(events, DROPPED)


def test_deflate_can_be_turned_off(events: Any) -> None:
    """
    With websocket_deflate = false no extension is agreed, and a compressed
    frame is then a protocol error: closed 1002, one event that says so.
    """
    clock = PassClock()
    user, accepted = deflate_socket(events, clock, websocket_deflate=False)
    assert accepted is None
    user.peer_write(frame(deflated(b"hello"), TEXT, rsv=RSV1))
    clock.advance(0)
    assert close_code(user.peer_read()) == 1002
    assert user.disconnecting
    [dropped] = ws_events(events, DROPPED)
    assert "Reserved bit set unexpectedly" in dropped["reason"]
    clock.advance(0)
    [gone] = ws_events(events, "disconnected")
    assert gone["reason"] == "protocol error, close code 1002"


@pytest.mark.parametrize(("offer", "accepted"), [
    # The first offer netlab can honour wins (RFC 7692 5.1): a window of 8
    # bits is one zlib cannot compress with, an unknown parameter makes an
    # offer invalid.
    (b"permessage-deflate; server_max_window_bits=8, permessage-deflate; x-fast, "
     b"permessage-deflate; server_max_window_bits=10; client_no_context_takeover, "
     b"permessage-deflate",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
     "client_no_context_takeover"),
    (b'permessage-deflate; server_max_window_bits="10"',
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
    (b"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=8",
     "permessage-deflate; server_no_context_takeover"),
    (b"permessage-deflate; client_max_window_bits=7", None),
    (b"permessage-deflate; server_no_context_takeover=1", None),
    (b"permessage-deflate; server_max_window_bits", None),
    (b"permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
])
def test_offers(events: Any, offer: bytes, accepted: str | None) -> None:
    """Which offer is accepted, with which parameters; malformed offers are declined."""
    clock = PassClock()
    user, agreed = deflate_socket(events, clock, offer)
    assert agreed == accepted
    user.peer_close()
    clock.advance(0)


def test_server_window_bits_are_honoured(events: Any) -> None:
    """
    Asked for server_max_window_bits=10, the server's compressor reaches no
    further back than 1 KiB: its answer inflates with a 10-bit window even
    when the message repeats itself 2,000 bytes apart.
    """
    clock = PassClock()
    user, accepted = deflate_socket(
        events, clock, b"permessage-deflate; server_max_window_bits=10")
    assert accepted is not None and "server_max_window_bits=10" in accepted
    block = os.urandom(2000)
    message = block * 8
    user.peer_write(frame(deflated(message), BINARY, rsv=RSV1))
    clock.advance(0)
    [(_, answer)] = raw_frames(user.peer_read())
    assert inflated(answer, wbits=-10) == message


def test_max_body_caps_the_inflated_message(events: Any) -> None:
    """
    max_body is the size of a message as the client meant it: exactly 1 MiB
    once inflated passes, whole or in fragments; one byte more is refused
    with 1009 and one dropped event, though it is only 1 KiB on the wire.
    """
    clock = PassClock()
    user, _ = deflate_socket(events, clock, max_body=MIB)
    exact = b"a" * MIB
    user.peer_write(frame(deflated(exact), BINARY, rsv=RSV1))
    clock.advance(0)
    [(_, answer)] = raw_frames(user.peer_read())
    assert inflated(answer) == exact
    payload = deflated(exact)
    user.peer_write(frame(payload[:100], BINARY, final=False, rsv=RSV1))
    user.peer_write(frame(payload[100:], CONTINUATION))
    clock.advance(0)
    [(_, answer)] = raw_frames(user.peer_read())
    assert inflated(answer) == exact
    assert not ws_events(events, DROPPED)
    over = deflated(exact + b"a")
    assert len(over) < 2000
    user.peer_write(frame(over, BINARY, rsv=RSV1))
    clock.advance(0)
    assert close_code(user.peer_read()) == 1009
    assert user.disconnecting
    [dropped] = ws_events(events, DROPPED)
    assert dropped["what"] == "a message"
    assert "longer than 1048576 bytes" in dropped["reason"]
    clock.advance(0)
    [gone] = ws_events(events, "disconnected")
    assert gone["reason"] == "message too big"


def test_compression_bomb_is_refused_without_inflating_it(events: Any) -> None:
    """
    64 MiB of zeros is 64 KiB deflated: under max_body on the wire, so only
    the inflater can refuse it, and it must do so after inflating at most
    max_body, not the whole bomb: the memory the server takes for it stays
    a few MiB (tracemalloc), and the answer is 1009.
    """
    clock = PassClock()
    user, _ = deflate_socket(events, clock, max_body=MIB)
    compressor = zlib.compressobj(wbits=-15)
    zeros = bytes(MIB)
    bomb = b"".join(compressor.compress(zeros) for _ in range(64))
    bomb += compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert len(bomb) < MIB // 8
    data = frame(bomb[:1000], TEXT, final=False, rsv=RSV1) + frame(bomb[1000:], CONTINUATION)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        user.peer_write(data)
        clock.advance(0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * MIB, f"{peak} bytes taken for a 64 MiB bomb"
    assert close_code(user.peer_read()) == 1009
    assert [e["what"] for e in ws_events(events, DROPPED)] == ["a message"]
    clock.advance(0)


def test_chat_refuses_an_inflated_line_too_long(events: Any) -> None:
    """The chat holds a compressed line to its cap too, with its error line first."""
    clock = PassClock()
    hub = make_hub(events, clock, max_line=100)
    site = build_site(events, clock, routes.of(websocket), root=Root(), hub=hub)
    user, head = upgrade(site, clock, b"/ws/chat", 40000, OFFER % BROWSER_OFFER)
    assert extensions_header(head) == "permessage-deflate; server_no_context_takeover"
    welcome = raw_frames(head.partition(b"\r\n\r\n")[2])
    assert welcome[-1][0] == 0x80 | RSV1 | TEXT
    assert b"Choose a nick" in inflated(welcome[-1][1])
    user.peer_write(frame(deflated(b"y" * 70_000), TEXT, rsv=RSV1))
    clock.advance(0)
    said = user.peer_read()
    assert inflated(raw_frames(said)[0][1]) == b"ERROR line longer than 100 bytes, closing"
    assert close_code(said) == 1009
    assert [e["what"] for e in ws_events(events, DROPPED)] == ["a message"]
    clock.advance(0)


@pytest.mark.parametrize(("name", "data", "code"), [
    ("invalid UTF-8", frame(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"),
     1007),
    # Fail fast: the first fragment already cannot be UTF-8; the rest never comes.
    ("invalid UTF-8, first fragment", frame(b"ok \xff", final=False), 1007),
    ("reserved bit", frame(b"x", rsv=0x20), 1002),
    ("unknown opcode", frame(b"x", opcode=0x3), 1002),
    ("ping over 125 bytes", frame(b"p" * 126, opcode=PING), 1002),
    ("fragmented ping", frame(b"p", opcode=PING, final=False), 1002),
    ("continuation first", frame(b"x", opcode=CONTINUATION), 1002),
    ("close code 999", frame(b"\x03\xe7", opcode=CLOSE), 1002),
])
def test_protocol_errors_close_with_their_code_and_are_logged(
    events: Any, name: str, data: bytes, code: int
) -> None:
    """
    A client that breaks RFC 6455 gets the close code for it at once, one
    dropped event saying what it did, and its disconnect names the error
    (not "closed by client"); the daemon goes on serving.
    """
    clock = PassClock()
    user, _ = deflate_socket(events, clock)
    user.peer_write(data)
    clock.advance(0)
    assert close_code(user.peer_read()) == code, name
    assert user.disconnecting
    [dropped] = ws_events(events, DROPPED)
    assert dropped["what"] == "a frame" and dropped["reason"]
    clock.advance(0)
    [gone] = ws_events(events, "disconnected")
    assert gone["reason"] == f"protocol error, close code {code}"


def test_a_bad_handshake_is_400(events: Any) -> None:
    """An upgrade request wsproto refuses (no Sec-WebSocket-Key) gets one 400 line and an event."""
    clock = PassClock()
    site = echo_site(events, clock)
    keyless = UPGRADE.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b"")
    _, user = serve(site, clock, port=40001)
    user.peer_write(keyless % b"/ws/echo")
    clock.advance(0)
    answer = user.peer_read()
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert answer.endswith(b"400 Bad Request: WebSocket handshake refused: "
                           b"Missing header, 'Sec-WebSocket-Key'.\n")
    [refused] = ws_events(events, "refused")
    assert "Sec-WebSocket-Key" in refused["limit"]
    user.peer_close()
    clock.advance(0)


def test_a_clean_close_is_still_closed_by_client(events: Any) -> None:
    """A client's own close frame (with its code echoed back) is no protocol error."""
    clock = PassClock()
    user, _ = deflate_socket(events, clock)
    user.peer_write(frame(b"\x03\xe8bye", opcode=CLOSE))
    clock.advance(0)
    assert messages(user.peer_read()) == [b"\x03\xe8bye"]
    clock.advance(0)
    assert not ws_events(events, DROPPED)
    [gone] = ws_events(events, "disconnected")
    assert gone["reason"] == "closed by client"


# -- a real client on a real socket ------------------------------------------------


def websockets_echo(url: str, message: str) -> tuple[str | None, str]:
    """With the websockets library (in a thread): the agreed extensions and the echo."""
    from websockets.sync.client import connect

    with connect(url, compression="deflate", max_size=4 * MIB, open_timeout=10,
                 close_timeout=10) as socket:
        socket.send(message)
        echoed = socket.recv(timeout=10)
        assert isinstance(echoed, str)
        return socket.response.headers.get("Sec-WebSocket-Extensions"), echoed


@pytest_twisted.inlineCallbacks
def test_websockets_client_negotiates_deflate(events: Any) -> Any:
    """
    The websockets library offers permessage-deflate to the site on a
    loopback port, gets it, and a 2 MiB compressible message comes back
    whole while far fewer bytes cross the wire.
    """
    site = echo_site(events, reactor, max_body=4 * MIB)
    port = listen(site)
    url = f"ws://127.0.0.1:{port.getHost().port}/ws/echo"
    message = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n"
                      for i in range(40_000))
    assert len(message) > 2 * MIB
    gone = ws_disconnected(events)
    agreed, echoed = yield threads.deferToThread(websockets_echo, url, message)
    yield gone
    yield site.when_idle()
    yield port.stopListening()
    assert agreed is not None and agreed.startswith("permessage-deflate")
    assert "server_no_context_takeover" in agreed
    assert echoed == message
    counters = events.counters["http-ws"]
    assert counters.extra["messages_in"] == 1
    # Counted as it arrived: the compressed payload.
    assert counters.bytes_in < len(message) // 10

