"""
The protocol edges of the web site (issue 12): what a request over a limit,
in absolute form, with a method the resource lacks, with two Host headers
or none at all (an idle keep-alive connection) gets, and HEAD's quiet log.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from httptest import Served, parse_response, run_curl, serve
from netlab.protocols.http import front, inspect, routes, timepage
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
