"""
HTTP/2 on the web site's TLS listeners (netlab.protocols.http.http2): in
memory, an h2 client against the Site on a task.Clock; then real curl
(--http2, --http1.1) and a real WebSocket client on a loopback TLS port,
and curl against the real daemon.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest_twisted
from hyperframe.frame import DataFrame
from twisted.internet import reactor, ssl
from twisted.internet.task import Clock
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.websocket import WebSocketClientEndpoint
from zope.interface import implementer

from daemon import running_daemon
from helpers import require_tool
from httptest import build_site, curl_sync, http_config, run_curl, when_idle
from memory import MemoryTCP, serve
from netlab.protocols.http import forms, inspect, routes, websocket
from netlab.protocols.http.http2 import NetlabH2Connection
from netlab.protocols.http.routes import Root
from netlab.protocols.http.site import NetlabChannel, NetlabSite
from selfsigned import _key_and_certificate, server_options, write_pem

# -- in memory -------------------------------------------------------------------


class MemoryTLS(MemoryTCP):
    """An in-memory connection on which TLS ALPN chose HTTP/2."""

    negotiatedProtocol = b"h2"


def make_site(events: Any, clock: Any, **settings: Any) -> NetlabSite:
    """A site with the inspection and form resources."""
    return build_site(events, clock, routes.of(inspect, forms), root=Root(), **settings)


class H2Client:
    """An h2 client (the h2 package's state machine) on one in-memory connection."""

    def __init__(self, site: NetlabSite, clock: Clock, host: str = "127.0.0.1") -> None:
        self.clock = clock
        transport = MemoryTLS(clock, host)
        protocol = site.buildProtocol(transport.getPeer())
        assert protocol is not None
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.channel: NetlabChannel = protocol
        self.transport = transport
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.events: list[Any] = []
        self.sent = 0
        self.send()

    def send(self, raw: bytes = b"") -> None:
        """Send what the client has to send (and C{raw} bytes after it), run the server's
        clock, read its answer."""
        data = self.conn.data_to_send() + raw
        self.sent += len(data)
        self.transport.peer_write(data)
        self.clock.advance(0)
        self.clock.advance(0)
        self.read()

    def read(self) -> None:
        self.events += self.conn.receive_data(self.transport.peer_read())
        pending = self.conn.data_to_send()
        if pending:
            self.sent += len(pending)
            self.transport.peer_write(pending)

    def request(
        self, method: str, path: str, body: bytes | None = None,
        length: int | None = None, end: bool = True,
    ) -> int:
        """Send a request on a new stream (its body too, in the same read); its stream id."""
        stream_id: int = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "https"),
                   (":authority", "localhost")]
        if length is not None:
            headers.append(("content-length", str(length)))
        self.conn.send_headers(stream_id, headers, end_stream=body is None and end)
        if body is not None:
            frames = [body[i:i + 16_384] for i in range(0, len(body), 16_384)] or [b""]
            for frame in frames[:-1]:
                self.conn.send_data(stream_id, frame)
            self.conn.send_data(stream_id, frames[-1], end_stream=end)
        self.send()
        return stream_id

    def answer(self, stream_id: int) -> tuple[int, dict[bytes, bytes], bytes]:
        """The status, headers and body the server sent on C{stream_id}."""
        status, headers, body = 0, {}, b""
        for event in self.events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
                status = int(headers[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
        return status, headers, body

    def ended(self, stream_id: int) -> bool:
        return any(isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id
                   for e in self.events)

    def reset(self, stream_id: int) -> int | None:
        """The error code the server reset C{stream_id} with, if it did."""
        for event in self.events:
            if isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                return int(event.error_code)
        return None


def data_frame(stream_id: int, data: bytes) -> bytes:
    """A DATA frame as a client whose frames were already sent would send it."""
    frame = DataFrame(stream_id)
    frame.data = data
    serialized: bytes = frame.serialize()
    return serialized


def test_h2_get_is_answered_and_booked(events: Any, clock: Clock) -> None:
    """A GET over HTTP/2 is answered, logged once with its version, and the connection
    is counted open once and closed once, with its bytes."""
    site = make_site(events, clock)
    client = H2Client(site, clock)
    assert isinstance(client.channel.http2, NetlabH2Connection)
    stream = client.request("GET", "/get?x=1")
    status, headers, body = client.answer(stream)
    assert status == 200 and client.ended(stream)
    seen = json.loads(body)
    assert seen["args"] == {"x": "1"} and seen["http_version"] == "HTTP/2"
    assert seen["origin"] == "127.0.0.1"
    [access] = events.kinds("http_request")
    assert (access["method"], access["path"], access["status"]) == ("GET", "/get?x=1", 200)
    assert access["version"] == "HTTP/2" and access["peer"] == "127.0.0.1:40000"
    assert site.counters.connections_open == 1 and site.counters.connections_total == 1
    client.transport.peer_close()
    clock.advance(0)
    assert site.counters.connections_open == 0
    [closed] = events.kinds("disconnected")
    assert closed["bytes_in"] == client.sent
    assert closed["bytes_out"] == access["nbytes"] > 0
    assert not clock.getDelayedCalls()


def test_h2_declared_body_over_max_body_is_413_then_reset(events: Any, clock: Clock) -> None:
    """A Content-Length over max_body is answered 413 with a line saying why, the stream is
    reset with NO_ERROR, even when much of its body came in the same read, and the
    connection serves the next request."""
    site = make_site(events, clock, max_body=30_000)
    client = H2Client(site, clock)
    stream = client.request("POST", "/post", body=b"x" * 60_000, length=200_000, end=False)
    status, headers, body = client.answer(stream)
    assert status == 413 and headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert body == b"413 Content Too Large: request body over max_body (30000 bytes)\n"
    assert client.ended(stream) and client.reset(stream) == 0
    [refused] = events.kinds("refused")
    assert refused["limit"] == "request body over max_body (30000 bytes)"
    # The client goes on sending the body (its frames were on their way).  What is
    # dropped, in the read of the headers and after the reset, must be given back to
    # the connection's flow-control window (64 KiB), or the next body could not come.
    late = b"".join(data_frame(stream, b"y" * 16_000) for _ in range(5))
    client.send(late)
    again = client.request("POST", "/post", body=b"a" * 20_000)
    status, _, body = client.answer(again)
    assert status == 200 and json.loads(body)["data"] == "a" * 20_000
    assert site.counters.connections_open == 1
    assert [e["status"] for e in events.kinds("http_request")] == [200]


def test_h2_streamed_body_over_max_body_is_413(events: Any, clock: Clock) -> None:
    """A body of no declared length is refused once what arrived passes max_body."""
    site = make_site(events, clock, max_body=100)
    client = H2Client(site, clock)
    stream = client.request("POST", "/post", body=b"x" * 60, end=False)
    assert client.answer(stream)[0] == 0
    client.conn.send_data(stream, b"x" * 60)
    client.send()
    status, _, body = client.answer(stream)
    assert status == 413 and body.startswith(b"413 Content Too Large")
    assert client.reset(stream) == 0
    within = client.request("POST", "/post", body=b"small")
    status, _, body = client.answer(within)
    assert status == 200 and json.loads(body)["data"] == "small"


def test_h2_whole_body_over_max_body_in_one_read(events: Any, clock: Clock) -> None:
    """Headers, the whole over-size body and its end in one read: 413, nothing rendered."""
    site = make_site(events, clock, max_body=10)
    client = H2Client(site, clock)
    stream = client.request("POST", "/post", body=b"z" * 20, length=20)
    assert client.answer(stream)[0] == 413 and client.ended(stream)
    assert not events.kinds("http_request")


def test_h2_idle_connection_times_out(events: Any, clock: Clock) -> None:
    """An HTTP/2 connection idle for idle_timeout gets a GOAWAY and is closed, on the
    site's clock, and leaves the books."""
    site = make_site(events, clock, idle_timeout=30)
    client = H2Client(site, clock)
    client.request("GET", "/get")
    clock.advance(31)
    client.read()
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in client.events)
    clock.advance(0)
    assert site.counters.connections_open == 0
    assert len(events.kinds("disconnected")) == 1
