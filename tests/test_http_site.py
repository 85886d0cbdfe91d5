"""Tests for netlab.protocols.http.site: the Site's limits, OPTIONS/HEAD and access events."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from helpers import close_all, connect
from httptest import build_site
from netlab.core._twisted import tcp_buffered_bytes
from netlab.protocols.http.routes import Root
from netlab.protocols.http.site import NetlabSite


class Later(Resource):
    """A streamed answer: headers at once, then the test writes and finishes it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []

    def render_GET(self, request: Request) -> int:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.write(b"")
        self.requests.append(request)
        return NOT_DONE_YET


class Big(Resource):
    """A 4 MiB body of a checkable pattern, more than the kernel takes in one send."""

    isLeaf = True
    body = bytes(range(256)) * 16384

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"application/octet-stream")
        return self.body


class Echoish(Resource):
    """A small resource: GET says ok, POST says how many body bytes it got."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"ok\n"

    def render_POST(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        assert request.content is not None
        return b"%d\n" % len(request.content.read())


def site(events: Any, clock: Any, **settings: Any) -> NetlabSite:
    """A site with only L{Echoish} at /thing."""
    root = Root()
    root.putChild(b"thing", Echoish())
    return build_site(events, clock, root=root, **settings)


@pytest_twisted.inlineCallbacks
def exchange(factory: NetlabSite, request: bytes, until: bytes | None = None) -> Any:
    """Send raw bytes on a real socket; what came back once the server closed (or C{until})."""
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = yield connect(port)
    client.send(request)
    if until is None:
        yield client.closed
    else:
        yield client.wait_text(until)
        yield close_all(client)
    yield factory.when_idle()
    yield port.stopListening()
    return client.data


@pytest_twisted.inlineCallbacks
def test_raw_http10_request(events: Any, clock: Clock) -> Any:
    """A request typed by hand, HTTP/1.0 and a blank line, gets a valid response."""
    data = yield exchange(site(events, clock), b"GET /thing HTTP/1.0\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert body == b"ok\n"


@pytest_twisted.inlineCallbacks
def test_raw_http11_with_host(events: Any, clock: Clock) -> Any:
    """An HTTP/1.1 request with Host and Connection: close is answered and closed."""
    data = yield exchange(
        site(events, clock),
        b"GET /thing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\nok\n")


def test_bare_lf_request_is_answered_at_once(events: Any, clock: Clock) -> None:
    """Lines ended by a bare LF (nc, telnetlib) end the headers: answered as they arrive,
    not 408 after header_timeout."""
    factory = site(events, clock)
    channel = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /thing HTTP/1.0\n\n")
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert body == b"ok\n"
    assert transport.disconnecting
    channel.connectionLost(Failure(ConnectionDone()))


@pytest_twisted.inlineCallbacks
def test_bare_lf_and_crlf_keep_alive(events: Any, clock: Clock) -> Any:
    """LF, CRLF and a mix of both, with a body, on one kept-alive connection."""
    data = yield exchange(
        site(events, clock),
        b"GET /thing HTTP/1.1\nHost: x\n\n"
        b"POST /thing HTTP/1.1\r\nHost: x\nContent-Length: 4\r\n\r\na\nb\n"
        b"GET /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    responses = data.split(b"HTTP/1.1 200 OK\r\n")
    assert len(responses) == 4 and responses[0] == b""
    assert [r.partition(b"\r\n\r\n")[2] for r in responses[1:]] == [b"ok\n", b"4\n", b"ok\n"]


@pytest_twisted.inlineCallbacks
def test_head_and_options(events: Any, clock: Clock) -> Any:
    """HEAD answers GET's headers without a body; OPTIONS lists the allowed methods."""
    data = yield exchange(
        site(events, clock),
        b"HEAD /thing HTTP/1.1\r\nHost: x\r\n\r\n"
        b"OPTIONS /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    head_response, _, options_response = data.partition(b"HTTP/1.1 204")
    assert head_response.startswith(b"HTTP/1.1 200 OK")
    assert b"ok\n" not in head_response
    assert b"Allow: GET, HEAD, OPTIONS, POST" in options_response


@pytest_twisted.inlineCallbacks
def test_declared_body_too_large(events: Any, clock: Clock) -> Any:
    """A Content-Length over max_body is answered 413 before any of the body is sent."""
    data = yield exchange(
        site(events, clock, max_body=1000),
        b"POST /thing HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert b"max_body (1000 bytes)" in data
    assert events.kinds("refused")[0]["limit"].startswith("request body over max_body")


@pytest_twisted.inlineCallbacks
def test_declared_body_too_large_gets_no_continue(events: Any, clock: Clock) -> Any:
    """A client that waits for 100 Continue before a body over max_body gets only the 413."""
    data = yield exchange(
        site(events, clock, max_body=1000),
        b"POST /thing HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
        b"Expect: 100-continue\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert b"100 Continue" not in data


@pytest_twisted.inlineCallbacks
def test_configure_applies_new_limits(events: Any, clock: Clock) -> Any:
    """configure() (a reload) hands the site new limits for the next request."""
    factory = site(events, clock, max_body=1000)
    factory.configure(replace(factory.context.settings, max_body=10, idle_timeout=30))
    assert factory.timeOut == 30
    data = yield exchange(
        factory, b"POST /thing HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")


@pytest_twisted.inlineCallbacks
def test_chunked_body_too_large(events: Any, clock: Clock) -> Any:
    """A chunked body is cut off with 413 as soon as what arrived passes max_body."""
    chunk = b"x" * 600
    request = b"POST /thing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    request += (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 3
    data = yield exchange(site(events, clock, max_body=1000), request)
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")


@pytest_twisted.inlineCallbacks
def test_body_within_limit(events: Any, clock: Clock) -> Any:
    """A body up to max_body is accepted."""
    data = yield exchange(
        site(events, clock, max_body=1000),
        b"POST /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n"
        + b"y" * 1000,
    )
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(b"1000\n")


def test_slowloris_header_deadline(events: Any, clock: Clock) -> None:
    """Headers trickled byte by byte are cut off at header_timeout with 408.  (In memory:
    the deadline starts when the request's first byte arrives, which over a socket would
    race the clock.)"""
    factory = site(events, clock, header_timeout=10, idle_timeout=60)
    channel = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /thing HTTP/1.1\r\n")
    for i in range(9):
        channel.dataReceived(b"X-Slow-%d: yes\r\n" % i)
        clock.advance(1)
    assert not transport.disconnecting
    channel.dataReceived(b"X-Still: coming\r\n")
    clock.advance(1)
    assert transport.disconnecting
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    channel.connectionLost(Failure(ConnectionDone()))


@pytest_twisted.inlineCallbacks
def test_keepalive_requests_reset_deadline(events: Any, clock: Clock) -> Any:
    """Each request on a kept-alive connection gets its own header deadline."""
    factory = site(events, clock, header_timeout=10, idle_timeout=60)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = yield connect(port)
    for n in range(1, 4):
        clock.advance(9)
        client.send(b"GET /thing HTTP/1.1\r\nHost: x\r\n\r\n")
        yield client.wait_for(lambda data, n=n: data.count(b"ok\n") == n)
    yield close_all(client)
    yield factory.when_idle()
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_per_peer_cap(events: Any, clock: Clock) -> Any:
    """Past max_connections_per_peer a client gets a 503 naming the limit."""
    factory = site(events, clock, max_connections_per_peer=1)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    first = yield connect(port)
    first.send(b"GET /thing HTTP/1.1\r\nHost: x\r\n\r\n")
    yield first.wait_text(b"ok\n")
    second = yield connect(port)
    yield second.closed
    assert second.data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"too many connections from 127.0.0.1 (limit 1)" in second.data
    yield close_all(first)
    yield factory.when_idle()
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_access_event(events: Any, clock: Clock) -> Any:
    """Each request is one access event: method, path, status, bytes, duration, client."""
    yield exchange(site(events, clock), b"GET /thing?x=1 HTTP/1.0\r\n\r\n")
    yield exchange(site(events, clock), b"GET /missing HTTP/1.0\r\n\r\n")
    first, second = events.kinds("http_request")
    assert (first["method"], first["path"], first["status"], first["nbytes"]) == (
        "GET", "/thing?x=1", 200, 3,
    )
    assert first["peer"].startswith("127.0.0.1:")
    assert second["status"] == 404


def with_child(events: Any, clock: Any, name: bytes, child: Resource) -> NetlabSite:
    """A site with only C{child} at C{/name}."""
    root = Root()
    root.putChild(name, child)
    return build_site(events, clock, root=root)


@pytest_twisted.inlineCallbacks
def hang_up(client: Any, factory: NetlabSite, port: Any) -> Any:
    """Close C{client}, wait until the site has no connection, stop listening."""
    yield close_all(client)
    yield factory.when_idle()
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_response_sent_during_the_request(events: Any, clock: Clock) -> Any:
    """A small response is in the kernel by the time it is logged, nothing left for a later pass."""
    factory = site(events, clock)
    queued: list[tuple[int, bool]] = []

    def look(event: dict[str, Any]) -> None:
        if event.get("netlab_event") == "http_request":
            (channel,) = factory.channels
            transport = channel.transport
            queued.append((tcp_buffered_bytes(transport), transport in reactor.getWriters()))

    unsubscribe = events.subscribe(look)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = yield connect(port)
    client.transport.write(b"GET /thing HTTP/1.1\r\nHost: x\r\n\r\n")
    yield client.wait_text(b"\r\n\r\nok\n")
    client.transport.write(b"GET /thing HTTP/1.1\r\nHost: x\r\n\r\n")
    data = yield client.wait_for(lambda data: data.count(b"\r\n\r\nok\n") == 2)
    unsubscribe()
    assert queued == [(0, False), (0, False)]
    first, second = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert b"Content-Length: 3\r\n" in first and first.endswith(b"\r\n\r\nok\n")
    assert second.endswith(b"\r\n\r\nok\n")
    yield hang_up(client, factory, port)


@pytest_twisted.inlineCallbacks
def test_streamed_response_headers_go_out_first(events: Any, clock: Clock) -> Any:
    """Headers written with no body yet reach the client; the chunks follow in order."""
    later = Later()
    factory = with_child(events, clock, b"later", later)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = yield connect(port)
    client.transport.write(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
    head = yield client.wait_text(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked\r\n" in head
    (request,) = later.requests
    request.write(b"one\n")
    request.write(b"two\n")
    request.finish()
    data = yield client.wait_text(b"0\r\n\r\n")
    assert data[len(head):] == b"4\r\none\n\r\n4\r\ntwo\n\r\n0\r\n\r\n"
    yield hang_up(client, factory, port)


@pytest_twisted.inlineCallbacks
def test_big_response_to_a_paused_reader(events: Any, clock: Clock) -> Any:
    """A body larger than the kernel takes waits in Twisted's buffer and arrives intact."""
    factory = with_child(events, clock, b"big", Big())
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = yield connect(port)
    client.transport.pauseProducing()
    logged: Deferred[int] = Deferred()

    def look(event: dict[str, Any]) -> None:
        if event.get("netlab_event") == "http_request":
            (channel,) = factory.channels
            logged.callback(tcp_buffered_bytes(channel.transport))

    unsubscribe = events.subscribe(look)
    client.transport.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    waiting = yield logged
    unsubscribe()
    assert waiting > 0, "the kernel cannot have taken 4 MiB at once"
    client.transport.resumeProducing()
    data = yield client.wait_for(lambda data: data.endswith(Big.body[-1000:]))
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % len(Big.body) in head.split(b"\r\n")
    assert body == Big.body
    yield hang_up(client, factory, port)
