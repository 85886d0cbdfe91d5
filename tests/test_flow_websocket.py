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


def frame(payload: bytes, opcode: int = 0x1, final: bool = True, size: int | None = None,
          rsv: int = 0) -> bytes:
    """
    One frame as a client must send it: masked (RFC 6455 5.3); C{final}
    clear for a fragment, C{size} to declare more payload than C{payload}
    (a frame still arriving), C{rsv} the reserved bits (0x40: RSV1, the
    compressed bit of permessage-deflate).
    """
    mask = b"abcd"
    # XOR as one big integer: fast enough for megabyte messages.
    padded = payload + b"\0" * (-len(payload) % 4)
    masked = int.from_bytes(padded) ^ int.from_bytes(mask * (len(padded) // 4))
    body = masked.to_bytes(len(padded))[:len(payload)]
    size = len(payload) if size is None else size
    first = (0x80 if final else 0) | rsv | opcode
    if size < 126:
        head = bytes([first, 0x80 | size])
    elif size < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + body


def raw_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The first header byte (FIN, RSV, opcode) and payload of each of the server's frames."""
    found = []
    while data:
        size, start = data[1] & 0x7F, 2
        if size == 126:
            size, start = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, start = struct.unpack("!Q", data[2:10])[0], 10
        found.append((data[0], data[start:start + size]))
        data = data[start + size:]
    return found


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """The opcodes and payloads of the server's (unmasked, unfragmented) frames in C{data}."""
    return [(first & 0x0F, payload) for first, payload in raw_frames(data)]


def messages(data: bytes) -> list[bytes]:
    """The payloads of the server's (unmasked, unfragmented) frames in C{data}, in order."""
    return [payload for _, payload in frames(data)]


def close_code(data: bytes) -> int | None:
    """The code of the server's close frame in C{data}, or None without one."""
    for opcode, payload in frames(data):
        if opcode == 0x8:
            return int(struct.unpack("!H", payload[:2])[0])
    return None


def open_socket(site: Any, clock: PassClock, path: bytes, port: int) -> MemoryTCP:
    """Upgrade a connection to the WebSocket at C{path}; the HTTP answer is read."""
    transport, head = upgrade(site, clock, path, port)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return transport


def upgrade(site: Any, clock: PassClock, path: bytes, port: int,
            headers: bytes = b"") -> tuple[MemoryTCP, bytes]:
    """Ask for a WebSocket at C{path}, with C{headers} (CRLF-terminated lines) too."""
    _, transport = serve(site, clock, port=port)
    transport.peer_write((UPGRADE % path)[:-2] + headers + b"\r\n")
    clock.advance(0)
    return transport, transport.peer_read()


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


MIB = 1_048_576
PONG = 0xA


def echo_site(events: Any, clock: PassClock, **settings: Any) -> Any:
    """The site with the WebSocket endpoints, on C{clock}."""
    return build_site(events, clock, routes.of(websocket), root=Root(), **settings)


def ws_dropped(events: Any) -> list[dict[str, Any]]:
    """The WebSocket service's dropped events."""
    return [e for e in events.kinds(DROPPED) if e["service"] == "http-ws"]


def test_message_of_exactly_max_body_is_echoed(events: Any) -> None:
    """
    The cap counts a message's payload, not its frame headers and masks: a
    1 MiB message passes a 1 MiB max_body, whole or in 64 KiB fragments, and
    one byte more is refused (1009) while it still arrives.
    """
    clock = PassClock()
    site = echo_site(events, clock, max_body=MIB)
    user = open_socket(site, clock, b"/ws/echo", 40000)
    message = bytes(range(256)) * (MIB // 256)
    user.peer_write(frame(message, opcode=0x2))
    clock.advance(0)
    assert messages(user.peer_read()) == [message]
    pieces = [message[i:i + 65536] for i in range(0, MIB, 65536)]
    fragmented = [frame(pieces[0], opcode=0x2, final=False)]
    fragmented += [frame(piece, opcode=0x0, final=False) for piece in pieces[1:-1]]
    fragmented += [frame(pieces[-1], opcode=0x0)]
    user.peer_write(b"".join(fragmented))
    clock.advance(0)
    assert messages(user.peer_read()) == [message]
    assert not user.disconnecting and not ws_dropped(events)
    # One byte over, declared in the header, only 2 of it sent: refused now.
    user.peer_write(frame(message[:2 * 65536], opcode=0x2, size=MIB + 1))
    clock.advance(0)
    assert not user.disconnecting
    user.peer_write(frame(message + b"x", opcode=0x2)[2 * 65536 + 14:])
    clock.advance(0)
    assert close_code(user.peer_read()) == 1009
    assert user.disconnecting
    assert len(ws_dropped(events)) == 1
    clock.advance(0)


def test_pongs_between_fragments_do_not_reset_the_size(events: Any) -> None:
    """
    Only a completed message starts the count again: an empty pong after
    each 64 KiB fragment does not carry a message past max_body, and the
    socket is closed (1009) as soon as the fragments pass it.
    """
    clock = PassClock()
    site = echo_site(events, clock, max_body=MIB)
    user = open_socket(site, clock, b"/ws/echo", 40000)
    piece = b"p" * 65536
    user.peer_write(frame(piece, opcode=0x2, final=False))
    sent = len(piece)
    for _ in range(100):  # bounded: 6.4 MiB, far past the cap
        user.peer_write(frame(b"", opcode=PONG))
        user.peer_write(frame(piece, opcode=0x0, final=False))
        clock.advance(0)
        sent += len(piece)
        if user.disconnecting:
            break
    assert user.disconnecting, "a 6 MiB message in fragments got past a 1 MiB max_body"
    assert sent == MIB + 65536
    assert close_code(user.peer_read()) == 1009
    [event] = ws_dropped(events)
    assert "longer than 1048576 bytes" in event["reason"]
    clock.advance(0)


def test_pongs_and_pings_do_not_count_toward_the_size(events: Any) -> None:
    """Control frames between fragments are not part of the message: exactly max_body passes."""
    clock = PassClock()
    site = echo_site(events, clock, max_body=1000)
    user = open_socket(site, clock, b"/ws/echo", 40000)
    user.peer_write(frame(b"a" * 500, final=False) + frame(b"x" * 125, opcode=PONG))
    user.peer_write(frame(b"b" * 500, opcode=0x0))
    clock.advance(0)
    assert messages(user.peer_read()) == [b"a" * 500 + b"b" * 500]
    assert not user.disconnecting


def test_a_message_still_arriving_is_activity(events: Any) -> None:
    """
    A slow client sending one large message in fragments, or one frame a
    few bytes at a time, is not idle: the idle timer restarts with every
    piece, the message comes back whole, and a client that leaves halfway
    has the bytes it sent counted when it disconnects.
    """
    clock = PassClock()
    site = echo_site(events, clock, idle_timeout=10)
    user = open_socket(site, clock, b"/ws/echo", 40000)
    for n in range(5):
        user.peer_write(frame(b"%d" % n, opcode=0x1 if n == 0 else 0x0, final=False))
        clock.advance(6)
    one = frame(b"z" * 40, opcode=0x0)
    for i in range(0, len(one), 10):
        user.peer_write(one[i:i + 10])
        clock.advance(6)
    assert not user.disconnecting
    assert messages(user.peer_read()) == [b"01234" + b"z" * 40]
    user.peer_write(frame(b"q" * 100, opcode=0x2, final=False))
    user.peer_write(frame(b"r" * 50, opcode=0x0, final=False)[:20])
    clock.advance(6)
    assert not user.disconnecting
    user.peer_close()
    clock.advance(0)
    [gone] = [e for e in events.kinds("disconnected") if e["service"] == "http-ws"]
    assert gone["bytes_in"] == 45 + 100 + 14  # the last frame: 2 + 4 header bytes, 14 of payload


def test_upgrade_without_host_is_400(events: Any) -> None:
    """
    An upgrade request with no Host header (or two) is the client's error:
    400 and one refused event, not a 500 from wsproto's handshake.
    """
    clock = PassClock()
    site = echo_site(events, clock)
    without_host = UPGRADE.replace(b"Host: 127.0.0.1\r\n", b"")
    two_hosts = UPGRADE.replace(b"Host: 127.0.0.1\r\n", b"Host: a.example\r\nHost: b.example\r\n")
    for port, request in enumerate((without_host, two_hosts), start=40000):
        _, user = serve(site, clock, port=port)
        user.peer_write(request % b"/ws/echo")
        clock.advance(0)
        answer = user.peer_read()
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert b"\r\nupgrade:" not in answer.lower()
        user.peer_close()
        clock.advance(0)
    # No Host: the WebSocket endpoint refuses the upgrade.  Two Host headers:
    # the site refuses the request itself before any resource sees it.
    refused = [(e["service"], e["limit"]) for e in events.kinds("refused")]
    assert refused == [
        ("http-ws", "WebSocket upgrade without a Host header"),
        ("http", "more than one Host header"),
    ]
    assert not [e for e in events.kinds("connected") if e["service"] == "http-ws"]
