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
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.websocket import WebSocketClientEndpoint
from zope.interface import implementer

from daemon import running_daemon
from helpers import require_tool
from httptest import build_site, curl_sync, http_config, run_curl, when_idle
from memory import MemoryTCP
from netlab.protocols.http import forms, inspect, routes, websocket
from netlab.protocols.http.http2 import REFUSED_BODY_DRAIN, NetlabH2Connection
from netlab.protocols.http.routes import Root
from netlab.protocols.http.site import NetlabChannel, NetlabSite
from selfsigned import client_options, server_options, write_pem

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
            self.send_body(stream_id, body, end)
        else:
            self.send()
        return stream_id

    def send_body(self, stream_id: int, body: bytes, end: bool = True) -> None:
        """Send C{body} on C{stream_id} in frames h2 allows, reading the answers between."""
        frames = [body[i:i + 16_384] for i in range(0, len(body), 16_384)] or [b""]
        for frame in frames[:-1]:
            self.conn.send_data(stream_id, frame)
            if self.conn.outbound_flow_control_window < 16_384:
                self.send()
        self.conn.send_data(stream_id, frames[-1], end_stream=end)
        self.send()

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


def test_h2_get_is_answered_and_booked(events: Any, clock: Clock) -> None:
    """A GET over HTTP/2 is answered, logged once with its version, and the connection
    is counted open once and closed once, with its bytes."""
    site = make_site(events, clock)
    client = H2Client(site, clock)
    assert isinstance(client.channel.http2, NetlabH2Connection)
    stream = client.request("GET", "/get?x=1")
    status, _, body = client.answer(stream)
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


def test_h2_declared_body_over_max_body_is_413_and_drained(events: Any, clock: Clock) -> None:
    """A Content-Length over max_body is answered 413 with a line saying why, even when
    much of its body came in the same read; the rest of the body is read and dropped,
    its flow-control window given back, and the connection serves the next request."""
    site = make_site(events, clock, max_body=30_000)
    client = H2Client(site, clock)
    stream = client.request("POST", "/post", body=b"x" * 60_000, length=200_000, end=False)
    status, headers, body = client.answer(stream)
    assert status == 413 and headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert body == b"413 Content Too Large: request body over max_body (30000 bytes)\n"
    assert client.ended(stream) and client.reset(stream) is None
    [refused] = events.kinds("refused")
    assert refused["limit"] == "request body over max_body (30000 bytes)"
    # More than the connection's window (64 KiB) of body is dropped: without its
    # window given back, the next request's body could not come.
    client.send_body(stream, b"y" * 140_000)
    assert client.reset(stream) is None
    again = client.request("POST", "/post", body=b"a" * 20_000)
    status, _, body = client.answer(again)
    assert status == 200 and json.loads(body)["data"] == "a" * 20_000
    assert site.counters.connections_open == 1
    assert [e["status"] for e in events.kinds("http_request")] == [200]
    assert not client.channel.http2.streams  # type: ignore[union-attr]


def test_h2_refused_body_past_the_drain_is_reset(events: Any, clock: Clock) -> None:
    """A client that goes on sending a refused body past REFUSED_BODY_DRAIN is told to
    stop: its stream is reset with NO_ERROR; the connection goes on."""
    site = make_site(events, clock, max_body=1000)
    client = H2Client(site, clock)
    stream = client.request("POST", "/post", body=b"x" * 2000, end=False)
    assert client.answer(stream)[0] == 413
    client.send_body(stream, b"y" * REFUSED_BODY_DRAIN, end=False)
    assert client.reset(stream) is None
    client.send_body(stream, b"y" * 16_384, end=False)
    assert client.reset(stream) == 0
    assert not client.channel.http2.streams  # type: ignore[union-attr]
    assert client.answer(client.request("GET", "/get"))[0] == 200


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
    client.send_body(stream, b"x" * 10, end=True)
    assert client.reset(stream) is None
    assert not client.channel.http2.streams  # type: ignore[union-attr]
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
    assert not client.channel.http2.streams  # type: ignore[union-attr]


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


# -- real sockets: curl and a WebSocket client on a loopback TLS port ----------------


class ServedTLS:
    """A NetlabSite on a free loopback TLS port (the throwaway localhost certificate)."""

    def __init__(self, site: NetlabSite) -> None:
        self.site = site
        self.port: Any = reactor.listenSSL(0, site, server_options(), interface="127.0.0.1")
        self.number: int = self.port.getHost().port

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.number}{path}"

    @pytest_twisted.inlineCallbacks
    def close(self) -> Any:
        yield when_idle(self.site)
        yield self.port.stopListening()


def curl_head_and_body(out: bytes) -> tuple[str, bytes]:
    """curl -i output: the status line, and the body."""
    head, _, body = out.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode().strip(), body


@pytest_twisted.inlineCallbacks
def test_curl_http2_and_http11_on_one_tls_port(events: Any) -> Any:
    """curl --http2 gets HTTP/2 (ALPN) and httpbin's JSON, curl --http1.1 gets HTTP/1.1 on
    the same port; each request is one access event with its version, each connection
    is counted open and closed."""
    served = ServedTLS(make_site(events, reactor))
    try:
        out, err, code = yield run_curl("-k", "-i", "--http2", served.url("/get?via=h2"))
        assert code == 0, err
        status, body = curl_head_and_body(out)
        assert status == "HTTP/2 200"
        seen = json.loads(body)
        assert seen["http_version"] == "HTTP/2" and seen["args"] == {"via": "h2"}
        assert seen["origin"] == "127.0.0.1"
        out, err, code = yield run_curl("-k", "-i", "--http1.1", served.url("/get"))
        assert code == 0, err
        status, body = curl_head_and_body(out)
        assert status == "HTTP/1.1 200 OK"
        assert json.loads(body)["http_version"] == "HTTP/1.1"
    finally:
        yield served.close()
    versions = [(e["version"], e["status"]) for e in events.kinds("http_request")]
    assert versions == [("HTTP/2", 200), ("HTTP/1.1", 200)]
    counters = served.site.counters
    assert counters.connections_total == 2 and counters.connections_open == 0
    closed = events.kinds("disconnected")
    assert len(closed) == 2 and all(e["bytes_in"] > 0 and e["bytes_out"] > 0 for e in closed)


@pytest_twisted.inlineCallbacks
def test_curl_http2_body_over_max_body_is_413(events: Any, tmp_path: Path) -> Any:
    """A POST over max_body on HTTP/2: curl sees the 413 and the line saying why."""
    big = tmp_path / "big"
    big.write_bytes(b"b" * 200_000)
    served = ServedTLS(make_site(events, reactor, max_body=1000))
    try:
        out, err, code = yield run_curl(
            "-k", "-i", "--http2", "--data-binary", f"@{big}", served.url("/post"))
        status, body = curl_head_and_body(out)
        assert status == "HTTP/2 413", (out, err, code)
        assert body == b"413 Content Too Large: request body over max_body (1000 bytes)\n"
    finally:
        yield served.close()
    [refused] = events.kinds("refused")
    assert refused["limit"] == "request body over max_body (1000 bytes)"


@implementer(IPolicyForHTTPS)
class TrustThrowaway:
    """Trust only the throwaway localhost certificate, and offer HTTP/1.1 by ALPN, as a
    browser does for a WebSocket."""

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return client_options(alpn=[b"http/1.1"])


class EchoUser:
    """A WebSocket client that waits for one message."""

    def __init__(self) -> None:
        self.message: Deferred[str] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self.transport: Any = None

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.message.callback(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        self.closed.callback(None)


class EchoUsers:
    def buildProtocol(self, url: str) -> EchoUser:
        return EchoUser()


@pytest_twisted.inlineCallbacks
def test_websocket_over_http11_on_the_tls_port(events: Any) -> Any:
    """A WebSocket (HTTP/1.1 upgrade) still works on a TLS port that offers h2."""
    site = build_site(events, reactor, routes.of(websocket), root=Root())
    served = ServedTLS(site)
    try:
        endpoint = WebSocketClientEndpoint.new(
            reactor, f"wss://127.0.0.1:{served.number}/ws/echo", tlsPolicy=TrustThrowaway())
        user = yield Deferred.fromCoroutine(endpoint.connect(EchoUsers()))
        user.transport.sendTextMessage("over TLS")
        echoed = yield user.message
        assert echoed == "over TLS"
        user.transport.loseConnection()
        yield user.closed
    finally:
        yield served.close()
    assert any(e["status"] == 101 and e["version"] == "HTTP/1.1"
               for e in events.kinds("http_request"))


def test_daemon_serves_http2_on_its_ssl_listener(tmp_path: Path) -> None:
    """The real daemon, on an ssl: listen string: curl --http2 gets HTTP/2, and the
    access line in its log shows the request."""
    require_tool("curl")
    key, cert = write_pem(tmp_path)
    listen = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    with running_daemon(tmp_path, http_config(listen=listen)) as running:
        port = running.port("http")
        result = curl_sync(
            "-i", "--http2", "--cacert", str(cert), "--resolve", f"localhost:{port}:127.0.0.1",
            f"https://localhost:{port}/get")
        assert result.returncode == 0, result.stderr
        status, body = curl_head_and_body(result.stdout)
        assert status == "HTTP/2 200"
        assert json.loads(body)["http_version"] == "HTTP/2"
        running.wait_for_log(r'http: 127\.0\.0\.1:\d+ "GET /get" 200 \d+ bytes')
