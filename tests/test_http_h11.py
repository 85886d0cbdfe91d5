"""
netlab's HTTP framing read by h11, a strict HTTP/1.1 client: every answer,
refusals and edge cases included, is a well-formed message that h11 parses
without a protocol error, on a kept-alive connection where one is promised.
The site runs in this process on a loopback port; the client runs in a
thread (it blocks), the site's clock is the test's.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import h11
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread

from httptest import Served, serve
from netlab.protocols.http import routes

Answer = tuple[h11.Response, bytes]


def site(events: Any, clock: Clock, **settings: Any) -> Served:
    """Every route of the site (a static folder aside) on a free loopback port."""
    return serve(events, clock, routes.ROUTES, **settings)


class StrictClient:
    """One connection, read through h11: each answer's head and whole body."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.conn = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=65536)

    def request(self, method: str, target: str, *headers: tuple[str, str],
                body: bytes = b"", raw: bytes | None = None) -> None:
        """Send a request through h11, or send C{raw} bytes in its place."""
        fields = [("Host", "127.0.0.1"), *headers]
        if body:
            fields.append(("Content-Length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=fields))
        if body:
            data += self.conn.send(h11.Data(data=body))
        if body or method in ("GET", "HEAD", "OPTIONS", "DELETE"):
            data += self.conn.send(h11.EndOfMessage())
        self.sock.sendall(data if raw is None else raw)

    def answer(self) -> Answer:
        """The next response, read to its end: h11 raises on any framing error."""
        head: h11.Response | None = None
        body = b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return head, body
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError("closed before a whole response")

    def next_cycle(self) -> None:
        self.conn.start_next_cycle()

    def close(self) -> None:
        self.sock.close()


def in_thread(port: int, talk: Callable[[StrictClient], Any]) -> Any:
    """Run C{talk} with a fresh client in a thread: the site answers meanwhile."""
    def run() -> Any:
        client = StrictClient(port)
        try:
            return talk(client)
        finally:
            client.close()
    return deferToThread(run)


def header(response: h11.Response, name: bytes) -> bytes | None:
    return dict(response.headers).get(name.lower())


@pytest_twisted.inlineCallbacks
def test_keep_alive_answers_parse_strictly(events: Any, clock: Clock) -> Any:
    """GET, HEAD, a chunked stream, a multi-range answer, a 405 and an OPTIONS, one after
    another on one kept-alive connection: each a whole, well-framed message."""
    web = site(events, clock)

    def talk(client: StrictClient) -> list[Answer]:
        answers = []
        for method, target, extra in (
            ("GET", "/get?a=1", ()),
            ("HEAD", "/get", ()),
            ("GET", "/stream-bytes/3000?chunk_size=700&seed=1", ()),
            ("GET", "/range/1000", (("Range", "bytes=500-509"),)),
            ("PUT", "/time", ()),
            ("OPTIONS", "/anything", ()),
            ("GET", "/json", ()),
        ):
            client.request(method, target, *extra)
            if method == "PUT":
                client.sock.sendall(client.conn.send(h11.EndOfMessage()))
            answers.append(client.answer())
            client.next_cycle()
        return answers

    (get, head, stream, ranges, put, options, json_) = yield in_thread(web.number, talk)
    assert get[0].status_code == 200 and b'"a": "1"' in get[1]
    assert head[0].status_code == 200 and head[1] == b""
    assert int(header(head[0], b"content-length") or 0) > 0
    assert stream[0].status_code == 200 and len(stream[1]) == 3000
    assert header(stream[0], b"transfer-encoding") == b"chunked"
    assert ranges[0].status_code == 206 and len(ranges[1]) == 10
    assert header(ranges[0], b"content-range") == b"bytes 500-509/1000"
    assert put[0].status_code == 405 and header(put[0], b"allow")
    assert options[0].status_code == 204 and options[1] == b""
    assert json_[0].status_code == 200
    yield web.close()


@pytest_twisted.inlineCallbacks
def test_refusals_parse_strictly(events: Any, clock: Clock) -> Any:
    """A request line or headers over the limits (414, 431) and two Host headers (400):
    each refusal is a whole message that says it closes the connection."""
    web = site(events, clock)

    def talk_to(raw: bytes | None, target: str = "/get", *extra: tuple[str, str]) -> Any:
        def talk(client: StrictClient) -> Answer:
            client.request("GET", target, *extra, raw=raw)
            return client.answer()
        return in_thread(web.number, talk)

    long_line = yield talk_to(None, "/get?" + "a" * 16400)
    big_header = yield talk_to(None, "/get", ("X-Big", "b" * 16400))
    two_hosts = yield talk_to(b"GET /get HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    for (response, body), status in ((long_line, 414), (big_header, 431), (two_hosts, 400)):
        assert response.status_code == status, body
        assert header(response, b"connection") == b"close"
        assert body.endswith(b"\n") and body.count(b"\n") == 1
    yield web.close()


@pytest_twisted.inlineCallbacks
def test_body_deadline_refusal_parses_strictly(events: Any, clock: Clock) -> Any:
    """A trickled body's 408 reaches a strict client as a whole early response."""
    web = site(events, clock, body_timeout=20, body_min_rate=500)

    def talk(client: StrictClient) -> Answer:
        client.request("POST", "/anything", ("Content-Length", "1000"),
                       ("Expect", "100-continue"))
        first = client.conn.next_event()
        while first is h11.NEED_DATA:
            client.conn.receive_data(client.sock.recv(65536))
            first = client.conn.next_event()
        assert isinstance(first, h11.InformationalResponse) and first.status_code == 100
        client.sock.sendall(client.conn.send(h11.Data(data=b"y")))
        # The site's clock moves in the reactor's thread, past the body's deadline.
        reactor.callFromThread(clock.advance, 21)
        return client.answer()

    response, body = yield in_thread(web.number, talk)
    assert response.status_code == 408
    assert b"body_min_rate" in body
    yield web.close()
