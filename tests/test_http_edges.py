"""
The protocol edges of the web site (issue 12): what a request over a limit,
in absolute form, with a method the resource lacks, with two Host headers
or none at all (an idle keep-alive connection) gets, and HEAD's quiet log.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from helpers import require_tool
from httptest import Served, build_site, parse_response, run_curl, serve
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
        b"GET HTTP://other.invalid:8080/thing?a=b HTTP/1.1\r\nHost: wrong\r\n\r\n"
        b"OPTIONS http://other.invalid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\n\r\nok\n" in data
    assert b"HTTP/1.1 204 No Content\r\n" in data
    first = events.kinds("http_request")[0]
    assert first["path"] == "/thing?a=b"


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
