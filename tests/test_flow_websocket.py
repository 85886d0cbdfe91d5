"""
Flow control of the WebSocket endpoints in memory: the echo stops reading
while its client does not read, and the browser chat drops a member whose
unsent output passes C{max_output} while the others keep talking.  The
whole site runs on a L{memory.MemoryTCP} and a L{memory.PassClock}; frames
are written and parsed here, by hand.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.error import ConnectionAborted

from helpers import make_hub
from httptest import build_site
from memory import MemoryTCP, PassClock, serve
from netlab.core.events import DROPPED
from netlab.protocols.http import routes, websocket
from netlab.protocols.http.routes import Root

UPGRADE = (
    b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final frame as a client must send it: masked (RFC 6455 5.3)."""
    mask = b"abcd"
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", size)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + body


def messages(data: bytes) -> list[bytes]:
    """The payloads of the server's (unmasked, unfragmented) frames in C{data}, in order."""
    found = []
    while data:
        size, start = data[1] & 0x7F, 2
        if size == 126:
            size, start = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, start = struct.unpack("!Q", data[2:10])[0], 10
        found.append(data[start:start + size])
        data = data[start + size:]
    return found


def open_socket(site: Any, clock: PassClock, path: bytes, port: int) -> MemoryTCP:
    """Upgrade a connection to the WebSocket at C{path}; the HTTP answer is read."""
    _, transport = serve(site, clock, port=port)
    transport.peer_write(UPGRADE % path)
    clock.advance(0)
    head = transport.peer_read()
    assert head.startswith(b"HTTP/1.1 101 "), head
    return transport


def test_echo_socket_stops_reading_while_its_client_does_not(events: Any) -> None:
    """
    A WebSocket echo client that sends without reading: the server stops
    reading once its answers back up, and every message comes back once the
    client reads again.
    """
    clock = PassClock()
    site = build_site(events, clock, routes.of(websocket), root=Root())
    user = open_socket(site, clock, b"/ws/echo", 40000)
    start = len(user.read_by_peer)
    message = b"m" * 60_000
    for _ in range(10):
        user.peer_write(frame(message, opcode=0x2))
        clock.advance(0)
    assert not user.reading
    assert user.waiting_input
    while user.waiting_input or user.unsent:
        user.peer_read()
        clock.advance(0)
    assert user.reading
    assert messages(user.read_by_peer[start:]) == [message] * 10


def test_browser_that_stops_reading_is_dropped_others_go_on(events: Any) -> None:
    """
    A browser chat member who reads nothing is dropped once the backlog
    passes max_output; the other browser hears the quit at once, before the
    rest of the messages read with the one that overflowed, and talking
    goes on.
    """
    clock = PassClock()
    hub = make_hub(events, clock, max_line=1000, flood_lines=10_000, max_output=262_144)
    site = build_site(events, clock, routes.of(websocket), root=Root(), hub=hub)
    users = {}
    for port, nick in enumerate((b"stuck", b"talker", b"listener"), start=40000):
        user = users[nick] = open_socket(site, clock, b"/ws/chat", port)
        user.peer_write(frame(nick))
        clock.advance(0)
        assert b"You are now in #lobby" in user.peer_read()
    stuck, talker, listener = users[b"stuck"], users[b"talker"], users[b"listener"]
    heard = b""
    for i in range(0, 1000, 10):
        # Ten messages a read: the drop comes in the middle of one.
        talker.peer_write(b"".join(frame(b"%d " % n + b"x" * 900) for n in range(i, i + 10)))
        clock.advance(0)
        heard += listener.peer_read()
        if stuck.disconnected:
            break
    else:
        raise AssertionError("the non-reading browser was never dropped")
    assert [e["what"] for e in events.kinds(DROPPED)] == ["a slow reader"]
    assert hub.counters.extra["slow_consumers"] == 1
    talker.peer_write(frame(b"after the drop"))
    clock.advance(0)
    clock.advance(0)
    heard += listener.peer_read()
    assert stuck.lost_reason is not None and stuck.lost_reason.check(ConnectionAborted)
    said = [m for m in messages(heard) if b"<talker>" in m or b"has quit" in m]
    assert len(said) == i + 12
    quit = said.index(b"* stuck has quit (too slow: output backlog over max_output)")
    # Before the rest of the read that overflowed, and what came after.
    last_of_read = next(n for n, m in enumerate(said) if b"<talker> %d " % (i + 9) in m)
    assert quit < last_of_read
    assert said[-1].endswith(b"<talker> after the drop")
    assert not talker.disconnecting and not listener.disconnecting
