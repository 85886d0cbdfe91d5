"""
The protocol edges of the web site (issue 12): what a request over a limit,
in absolute form, with a method the resource lacks, with two Host headers
or none at all (an idle keep-alive connection) gets, and HEAD's quiet log.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest_twisted
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from helpers import connect, require_tool
from httptest import Served, build_site, fetch, parse_response, run_curl, serve
from netlab.protocols.http import front, inspect, routes, status, timepage
from netlab.protocols.http.site import NetlabSite
from test_http_site import exchange, site


def served(events: Any, clock: Clock, **settings: Any) -> Served:
    """/get and friends, /time and / on a free loopback port."""
    return serve(events, clock, routes.of(inspect, timepage, front), **settings)


def connected(factory: NetlabSite) -> tuple[Any, StringTransport]:
    """A channel of C{factory} on an in-memory transport (time is the site's clock)."""
    address = IPv4Address("TCP", "127.0.0.1", 40000)
    channel = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    return channel, transport


# -- 1. a request line or header section over the limit ----------------------


@pytest_twisted.inlineCallbacks
def test_request_line_too_long_is_414(events: Any, clock: Clock) -> Any:
    """A request line over the limit is answered 414, not an empty reply; one refusal."""
    web = served(events, clock)
    out, err, code = yield run_curl("-i", web.url("/get?" + "a" * 16400))
    assert code == 0, err
    response = parse_response(out)
    assert response.status == 414
    assert response.headers["connection"] == "close"
    (refused,) = events.kinds("refused")
    assert "request line" in refused["limit"]
    yield web.close()


@pytest_twisted.inlineCallbacks
def test_header_line_too_long_is_431(events: Any, clock: Clock) -> Any:
    """One header line over the limit is answered 431."""
    web = served(events, clock)
    out, err, code = yield run_curl("-i", "-H", "X-Big: " + "b" * 16400, web.url("/get"))
    assert code == 0, err
    assert parse_response(out).status == 431
    assert len(events.kinds("refused")) == 1
    yield web.close()


@pytest_twisted.inlineCallbacks
def test_headers_too_large_in_total_is_431(events: Any, clock: Clock) -> Any:
    """Headers each within the limit but too many bytes together are answered 431."""
    web = served(events, clock)
    big = [arg for n in range(5) for arg in ("-H", f"X-Big-{n}: " + "c" * 4000)]
    out, err, code = yield run_curl("-i", *big, web.url("/get"))
    assert code == 0, err
    assert parse_response(out).status == 431
    assert len(events.kinds("refused")) == 1
    yield web.close()


@pytest_twisted.inlineCallbacks
def test_too_many_headers_is_431(events: Any, clock: Clock) -> Any:
    """More header lines than the channel's maxHeaders are answered 431."""
    many = b"".join(b"X-%d: y\r\n" % n for n in range(600))
    request = b"GET /thing HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"
    data = yield exchange(site(events, clock), request)
    assert data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert len(events.kinds("refused")) == 1


# -- 2. absolute-form targets (what a client sends to a proxy) ----------------


@pytest_twisted.inlineCallbacks
def test_absolute_form_through_curl_proxy(events: Any, clock: Clock) -> Any:
    """curl -x (netlab as the proxy) sends GET http://example.invalid/get: the path is
    routed and the report's url is the whole URL, as httpbin's is."""
    web = served(events, clock)
    curl = require_tool("curl")
    out, err, code = yield getProcessOutputAndValue(
        curl, ["-sS", "-i", "-x", web.base, "http://example.invalid/get?x=1"], env={})
    assert code == 0, err
    response = parse_response(out)
    assert response.status == 200
    report = response.json()
    assert report["url"] == "http://example.invalid/get?x=1"
    assert (report["path"], report["args"]) == ("/get", {"x": "1"})
    assert report["headers"]["Host"] == "example.invalid"
    yield web.close()


@pytest_twisted.inlineCallbacks
def test_absolute_form_authority_wins_over_host(events: Any, clock: Clock) -> Any:
    """RFC 9112 3.2.2: with an absolute-form target the Host header is replaced by its
    authority; a target without a path is the root's."""
    data = yield exchange(
        site(events, clock),
        b"GET HTTP://other.invalid:8080/thing?a=b HTTP/1.1\r\nHost: wrong\r\n\r\n",
        until=b"ok\n",
    )
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    first = events.kinds("http_request")[0]
    assert first["path"] == "/thing?a=b"
    # The front page answers OPTIONS (204 and its methods): the target was the root.
    data = yield exchange(
        build_site(events, clock, routes.of(front)),
        b"OPTIONS http://other.invalid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"\r\nAllow: GET, HEAD, OPTIONS, POST\r\n" in data


# -- 3. a method the resource does not answer ---------------------------------


@pytest_twisted.inlineCallbacks
def test_unsupported_method_is_405_with_allow(events: Any, clock: Clock) -> Any:
    """curl -X PUT /time gets 405 and the Allow list OPTIONS gives, not Twisted's 501 Huh?"""
    web = served(events, clock)
    for method, path in (("PUT", "/time"), ("DELETE", "/"), ("PATCH", "/get"), ("POST", "/time")):
        response = yield web.fetch(path, "-X", method)
        assert response.status == 405, (method, path)
        options = yield web.fetch(path, "-X", "OPTIONS")
        assert options.status == 204
        assert response.headers["allow"] == options.headers["allow"], (method, path)
        assert "GET" in response.headers["allow"]
    statuses = [event["status"] for event in events.kinds("http_request")]
    assert statuses == [405, 204] * 4
    yield web.close()


@pytest_twisted.inlineCallbacks
def test_unknown_method_on_a_known_path_is_405(events: Any, clock: Clock) -> Any:
    """A method nobody implements is still answered by what the resource allows."""
    data = yield exchange(
        site(events, clock), b"BREW /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"\r\nAllow: GET, HEAD, OPTIONS, POST\r\n" in data


@pytest_twisted.inlineCallbacks
def test_options_on_an_unknown_path_is_404(events: Any, clock: Clock) -> Any:
    """OPTIONS where there is nothing is 404, as every other method there: not a 204
    with an Allow list that says HEAD and OPTIONS work on a page that does not exist."""
    web = served(events, clock)
    for path in ("/nowhere", "/ws/nowhere"):
        response = yield web.fetch(path, "-X", "OPTIONS")
        assert response.status == 404, path
        assert "allow" not in response.headers
    yield web.close()


# -- 6. HEAD is answered without Twisted's "I think I'll eat it" --------------


def test_head_logs_no_eaten_body(events: Any, clock: Clock) -> None:
    """HEAD on every GET resource of these modules: headers and a Content-Length, no body,
    and none of Twisted's warnings about a body it had to eat."""
    factory = build_site(events, clock, routes.of(inspect, timepage, front, status))
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        for path in (b"/", b"/get", b"/headers", b"/ip", b"/user-agent", b"/time",
                     b"/status/200", b"/cookies", b"/cache"):
            channel, transport = connected(factory)
            channel.dataReceived(b"HEAD %s HTTP/1.0\r\n\r\n" % path)
            head, _, body = transport.value().partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200 OK\r\n"), (path, head)
            assert body == b"", path
            channel.connectionLost(Failure(ConnectionDone()))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    eaten = [e for e in seen if "eat it" in e.get("log_format", "")]
    assert eaten == []


# -- 4. two Host headers --------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_two_host_headers_are_400(events: Any, clock: Clock) -> Any:
    """RFC 9112 3.2: a request with more than one Host is 400, and is not served."""
    for request in (
        b"GET /thing HTTP/1.1\r\nHost: a\r\nhost: b\r\nConnection: close\r\n\r\n",
        b"GET /thing HTTP/1.1\r\nHOST: a\r\nConnection: close\r\nHost: a\r\n\r\n",
    ):
        data = yield exchange(site(events, clock), request)
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data
        assert data.count(b"HTTP/1.1") == 1 and b"ok\n" not in data
    refusals = [event["limit"] for event in events.kinds("refused")]
    assert refusals == ["more than one Host header"] * 2
    assert events.kinds("http_request") == []


# -- 5. an idle keep-alive connection -----------------------------------------


def test_idle_keepalive_closed_quietly_at_idle_timeout(events: Any, clock: Clock) -> None:
    """Between requests a kept-alive connection owes no headers: past header_timeout it
    gets no 408 and no refusal; at idle_timeout it is closed without a word."""
    factory = site(events, clock, header_timeout=10, idle_timeout=60)
    channel, transport = connected(factory)
    channel.dataReceived(b"GET /thing HTTP/1.1\r\nHost: x\r\n\r\n")
    answered = transport.value()
    assert answered.startswith(b"HTTP/1.1 200 OK\r\n") and answered.endswith(b"ok\n")
    clock.advance(11)
    assert (transport.value(), transport.disconnecting) == (answered, False)
    clock.advance(48)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting
    assert transport.value() == answered
    assert events.kinds("refused") == []
    channel.connectionLost(Failure(ConnectionDone()))
    assert clock.getDelayedCalls() == []


def test_fresh_silent_connection_is_idle_not_408(events: Any, clock: Clock) -> None:
    """A connection that has sent nothing yet (a browser's spare one) is idle too."""
    factory = site(events, clock, header_timeout=10, idle_timeout=30)
    channel, transport = connected(factory)
    clock.advance(29)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting and transport.value() == b""
    assert events.kinds("refused") == []
    channel.connectionLost(Failure(ConnectionDone()))


def test_header_deadline_starts_with_the_first_byte(events: Any, clock: Clock) -> None:
    """After an idle spell, a request whose first byte has come has header_timeout to end
    its headers: 408 and one refusal then."""
    factory = site(events, clock, header_timeout=10, idle_timeout=60)
    channel, transport = connected(factory)
    channel.dataReceived(b"GET /thing HTTP/1.1\r\nHost: x\r\n\r\n")
    answered = transport.value()
    clock.advance(40)
    channel.dataReceived(b"G")
    clock.advance(9)
    channel.dataReceived(b"ET /thing HTTP/1.1\r\n")
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting
    assert transport.value()[len(answered):].startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert len(events.kinds("refused")) == 1
    channel.connectionLost(Failure(ConnectionDone()))


# -- 6. a request body must keep coming ----------------------------------------


def post_head(length: int | None = None) -> bytes:
    """A POST's head to /thing: C{length} bytes declared, or chunked."""
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return b"POST /thing HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n"


def test_trickled_body_is_408_after_body_timeout(events: Any, clock: Clock) -> None:
    """One body byte every 20 s (what filled the site with 1,000 connections) is cut off:
    20 s of grace, then at least body_min_rate bytes a second; 408, one refusal."""
    factory = site(events, clock, body_timeout=20, body_min_rate=500, idle_timeout=600)
    channel, transport = connected(factory)
    channel.dataReceived(post_head(1000))
    channel.dataReceived(b"y")
    clock.advance(19)
    channel.dataReceived(b"y")
    clock.advance(1)
    # Two bytes bought 4 ms beyond the 20 s of grace.
    assert not transport.disconnecting
    clock.advance(0.005)
    assert transport.disconnecting
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"body_min_rate" in transport.value()
    (refused,) = events.kinds("refused")
    assert "request body" in refused["limit"]
    channel.connectionLost(Failure(ConnectionDone()))
    assert clock.getDelayedCalls() == []


def test_trickled_chunked_body_is_408(events: Any, clock: Clock) -> None:
    """The same for a chunked body, whose length nobody knows in advance."""
    factory = site(events, clock, body_timeout=10, body_min_rate=100, idle_timeout=600)
    channel, transport = connected(factory)
    channel.dataReceived(post_head())
    for _ in range(10):
        channel.dataReceived(b"1\r\ny\r\n")
        clock.advance(1)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    channel.connectionLost(Failure(ConnectionDone()))


def test_body_at_the_minimum_rate_is_served(events: Any, clock: Clock) -> None:
    """A slow but steady upload (600 bytes a second against a 500 minimum) goes on past
    body_timeout for as long as it keeps the rate, and is answered."""
    factory = site(events, clock, body_timeout=20, body_min_rate=500, idle_timeout=600)
    channel, transport = connected(factory)
    channel.dataReceived(post_head(60_000))
    for _ in range(100):
        channel.dataReceived(b"y" * 600)
        clock.advance(1)
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.value().endswith(b"\r\n\r\n60000\n")
    assert events.kinds("refused") == []
    # The body is in: nothing is owed, so nothing fires at the old deadline.
    clock.advance(500)
    assert not transport.disconnecting
    channel.connectionLost(Failure(ConnectionDone()))
    assert clock.getDelayedCalls() == []


def test_body_deadline_follows_a_reload(events: Any, clock: Clock) -> None:
    """The deadline is worked out when it falls due, from the settings then in force."""
    factory = site(events, clock, body_timeout=20, body_min_rate=500, idle_timeout=600)
    channel, transport = connected(factory)
    channel.dataReceived(post_head(1000) + b"y")
    factory.configure(replace(factory.context.settings, body_timeout=60))
    clock.advance(21)
    assert not transport.disconnecting
    clock.advance(40)
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    channel.connectionLost(Failure(ConnectionDone()))


def test_bodies_in_progress_count_against_the_per_peer_cap(events: Any, clock: Clock) -> None:
    """Connections part-way through a body hold their peer's slots: the next is 503."""
    factory = site(events, clock, max_connections_per_peer=2, idle_timeout=600)
    slow = [connected(factory) for _ in range(2)]
    for channel, _ in slow:
        channel.dataReceived(post_head(1000) + b"y" * 10)
    third = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
    transport = StringTransport()
    third.makeConnection(transport)
    assert transport.value().startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"too many connections from 127.0.0.1 (limit 2)" in transport.value()
    for channel, _ in slow:
        channel.connectionLost(Failure(ConnectionDone()))


@pytest_twisted.inlineCallbacks
def test_trickling_client_gets_408_over_a_socket(events: Any, clock: Clock) -> Any:
    """Over a real socket: a client that asked to go on (C{Expect: 100-continue}), was
    told to, and then sends one byte, gets the 408 and is hung up on; a client after it
    is served."""
    web = served(events, clock, body_timeout=20, body_min_rate=500, idle_timeout=600)
    slow = yield connect(web.port)
    slow.send(
        b"POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    # The 100 is sent once the headers are in, when the body's deadline starts.
    yield slow.wait_text(b"HTTP/1.1 100 Continue\r\n\r\n")
    slow.send(b"y")
    clock.advance(21)
    yield slow.closed
    assert b"HTTP/1.1 408 Request Timeout\r\n" in slow.data
    response = yield fetch(web.url("/get"))
    assert response.status == 200
    yield web.close()


# -- the byte counts ------------------------------------------------------------


def test_pipelined_requests_counted_once(events: Any, clock: Clock) -> None:
    """Requests pipelined in one read are held while the first is answered and then fed
    through the channel again: their bytes count once, not once per pass."""
    factory = site(events, clock)
    channel, transport = connected(factory)
    sent = (
        b"POST /thing HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        + b"GET /thing HTTP/1.1\r\nHost: x\r\n\r\n" * 3
    )
    channel.dataReceived(sent)
    assert transport.value().count(b"HTTP/1.1 200 OK\r\n") == 4
    assert (channel.bytes_in, factory.counters.bytes_in) == (len(sent), len(sent))
    channel.connectionLost(Failure(ConnectionDone()))
