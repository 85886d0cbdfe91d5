"""
Tests for netlab.protocols.http.paced: /drip and /sse. Their timing is
watched in memory (the whole site on a MemoryTCP and a task.Clock: each
piece is on the wire only once its tick has come), then each is fetched
once with real curl on loopback.
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from httptest import build_site, serve
from memory import MemoryTCP
from memory import serve as connect_in_memory
from netlab.protocols.http import paced, routes
from test_http_status import dechunk


def request_in_memory(events: Any, clock: Clock, target: str, method: str = "GET",
                      **settings: Any) -> MemoryTCP:
    """The paced routes on C{clock}, one in-memory connection that has sent C{target}."""
    site = build_site(events, clock, routes.of(paced), **settings)
    _, transport = connect_in_memory(site, clock)
    transport.peer_write(f"{method} {target} HTTP/1.1\r\nHost: lab\r\n\r\n".encode())
    return transport


def head_and_body(data: bytes) -> tuple[list[str], bytes]:
    """A response's status line and header lines, and what follows them."""
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


def on_tick(wire: MemoryTCP, clock: Clock, wait: float) -> bytes:
    """Nothing is sent in the first three quarters of C{wait}; what is, at its end."""
    clock.advance(wait * 0.75)
    assert wire.peer_read() == b""
    clock.advance(wait * 0.25)
    return wire.peer_read()


def test_drip_each_byte_on_its_tick(events: Any, clock: Clock) -> None:
    """/drip?numbytes=5&duration=2&delay=1&code=201: nothing for a second, then the head
    and one byte, then one byte every half second, the last two seconds after the first."""
    wire = request_in_memory(events, clock, "/drip?numbytes=5&duration=2&delay=1&code=201")
    head, body = head_and_body(on_tick(wire, clock, 1))
    assert head[0] == "HTTP/1.1 201 Created"
    assert "Content-Length: 5" in head
    assert "Content-Type: application/octet-stream" in head
    assert "Cache-Control: no-store" in head
    assert body == b"*"
    for _ in range(4):
        assert on_tick(wire, clock, 0.5) == b"*"
    clock.advance(10)
    assert wire.peer_read() == b""
    assert wire.connected  # a Content-Length body: the connection is kept for the next request


def test_drip_many_bytes_in_pieces(events: Any, clock: Clock) -> None:
    """1000 bytes over 0.05 s go out in six writes, 10 ms apart, not 1000 timers."""
    wire = request_in_memory(events, clock, "/drip?numbytes=1000&duration=0.05")
    clock.advance(0)
    _, body = head_and_body(wire.peer_read())
    pieces = [body]
    for _ in range(5):
        assert len(clock.getDelayedCalls()) <= 2  # the pacer's next step, the idle timeout
        clock.advance(0.01)
        pieces.append(wire.peer_read())
    assert [len(piece) for piece in pieces] == [166, 167, 167, 166, 167, 167]
    assert b"".join(pieces) == b"*" * 1000


def test_drip_stops_when_the_client_goes(events: Any, clock: Clock) -> None:
    """A client that hangs up mid-drip (or during the delay) leaves no DelayedCall behind."""
    for target in ("/drip?numbytes=10&duration=9", "/drip?delay=5"):
        wire = request_in_memory(events, clock, target)
        clock.advance(1)
        wire.peer_close()
        clock.advance(0)
        assert clock.getDelayedCalls() == [], target


def test_drip_head_at_once(events: Any, clock: Clock) -> None:
    """HEAD /drip has the headers (its Content-Length too) at once, and no body."""
    wire = request_in_memory(events, clock, "/drip?numbytes=7&delay=3", method="HEAD")
    head, body = head_and_body(wire.peer_read())
    assert head[0] == "HTTP/1.1 200 OK"
    assert "Content-Length: 7" in head
    assert body == b""


def test_sse_pings_on_their_ticks(events: Any, clock: Clock) -> None:
    """/sse?count=3&duration=1&delay=0.5: go-httpbin's pings, 0.5 s apart after the delay,
    with the clock's time in milliseconds, then the stream ends."""
    clock.advance(1000)
    wire = request_in_memory(events, clock, "/sse?count=3&duration=1s&delay=500ms")
    head, body = head_and_body(on_tick(wire, clock, 0.5))
    assert head[0] == "HTTP/1.1 200 OK"
    assert "Content-Type: text/event-stream; charset=utf-8" in head
    assert "Transfer-Encoding: chunked" in head
    pieces = [body, on_tick(wire, clock, 0.5), on_tick(wire, clock, 0.5)]
    text = b"".join(b"".join(dechunk(piece + b"0\r\n\r\n")) for piece in pieces[:-1])
    text += b"".join(dechunk(pieces[-1]))  # the last piece ends the chunked body itself
    assert text == (
        b"retry: 2000\n\n"
        b'event: ping\ndata: {"id":0,"timestamp":1000500}\n\n'
        b'event: ping\ndata: {"id":1,"timestamp":1001000}\n\n'
        b'event: ping\ndata: {"id":2,"timestamp":1001500}\n\n'
    )
    clock.advance(10)
    assert wire.peer_read() == b""


def test_sse_stops_when_the_client_goes(events: Any, clock: Clock) -> None:
    """A client that leaves mid-stream stops the pings: no DelayedCall is left."""
    wire = request_in_memory(events, clock, "/sse?count=10&duration=9")
    clock.advance(2)
    assert b"event: ping" in wire.peer_read()
    wire.peer_close()
    clock.advance(0)
    assert clock.getDelayedCalls() == []


def test_caps_and_bad_values(events: Any, clock: Clock) -> None:
    """Over max_delay, max_bytes, max_stream, or malformed: one plain 400 line that says so."""
    refusals = {
        "/drip?duration=3&delay=2.5": "duration + delay is 5.5 seconds, over the limit:"
                                      " max_delay is 5",
        "/drip?numbytes=101": "numbytes 101 is over the limit: max_bytes is 100",
        "/drip?numbytes=0": "numbytes must be a whole number of at least 1",
        "/drip?code=99": "code must be a status code from 200 to 599",
        "/drip?delay=soon": "delay must be a number of seconds, e.g. delay=1.5",
        "/sse?count=21": "count 21 is over the limit: max_stream is 20",
        "/sse?duration=6": "duration + delay is 6 seconds, over the limit: max_delay is 5",
        "/sse?duration=-1": "duration must be a number of seconds, e.g. duration=1.5",
    }
    for target, why in refusals.items():
        wire = request_in_memory(events, clock, target, max_delay=5.0, max_bytes=100,
                                 max_stream=20)
        head, body = head_and_body(wire.peer_read())
        assert head[0] == "HTTP/1.1 400 Bad Request", target
        assert "Content-Type: text/plain; charset=utf-8" in head
        assert body == f"400 Bad Request: {why}\n".encode(), target


@pytest_twisted.inlineCallbacks
def test_drip_and_sse_with_curl(events: Any) -> Any:
    """Real curl on loopback: /drip's bytes with its code, /sse's pings in order."""
    served = serve(events, reactor, routes.of(paced))
    try:
        dripped = yield served.fetch("/drip?numbytes=4&duration=0.15&delay=0.05&code=418")
        pinged = yield served.fetch("/sse?count=3&duration=0.1", "-N")
    finally:
        yield served.close()
    assert dripped.status == 418
    assert dripped.body == b"****"
    assert dripped.headers["content-length"] == "4"
    assert pinged.headers["content-type"] == "text/event-stream; charset=utf-8"
    events_seen = [block for block in pinged.body.decode().split("\n\n") if "data:" in block]
    data = [json.loads(block.split("data: ", 1)[1]) for block in events_seen]
    assert [block.splitlines()[0] for block in events_seen] == ["event: ping"] * 3
    assert [item["id"] for item in data] == [0, 1, 2]
    assert data[0]["timestamp"] <= data[1]["timestamp"] <= data[2]["timestamp"]
