"""Tests for netlab.protocols.http.inspect: httpbin-style request inspection, asked with curl."""

from __future__ import annotations

import base64
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.web.test.requesthelper import DummyRequest

from httptest import build_site, fetch_once
from netlab.protocols.http import forms, inspect, routes
from netlab.protocols.http.inspect import forwarded_origin, header_pairs, prefers_text
from netlab.protocols.http.routes import Root
from netlab.protocols.http.site import NetlabSite


def make_site(events: Any, clock: Any, **settings: Any) -> NetlabSite:
    """A site with only the inspection and form resources."""
    return build_site(events, clock, routes.of(inspect, forms), root=Root(), **settings)


@pytest_twisted.inlineCallbacks
def curl(site: NetlabSite, path: str, *options: str) -> Any:
    """Run the real curl against C{site} on a loopback port; its L{Response}."""
    answer = yield fetch_once(site, path, *options)
    if answer.status < 400:
        assert "text/html" not in answer.content_type
    return answer


@pytest_twisted.inlineCallbacks
def test_get_reports_args_and_request(events: Any, clock: Any) -> Any:
    """/get shows parsed query args (repeats as lists), method, path, peer and server."""
    answer = yield curl(make_site(events, clock), "/get?a=1&b=2&b=3&empty=&sp=x%20y")
    assert answer.status == 200
    seen = answer.json()
    assert seen["args"] == {"a": "1", "b": ["2", "3"], "empty": "", "sp": "x y"}
    assert seen["method"] == "GET"
    assert seen["path"] == "/get"
    assert seen["url"] == f"http://127.0.0.1:{answer.port}/get?a=1&b=2&b=3&empty=&sp=x%20y"
    assert seen["origin"] == "127.0.0.1"
    assert isinstance(seen["client_port"], int) and seen["client_port"] > 0
    assert seen["server_host"] == "127.0.0.1"
    assert seen["server_port"] == answer.port
    assert seen["http_version"] == "HTTP/1.1"
    assert "data" not in seen


@pytest_twisted.inlineCallbacks
def test_headers_as_received(events: Any, clock: Any) -> Any:
    """Custom and repeated headers come back as sent, on /get and /headers."""
    options = ("-H", "X-Lab-Token: abc 123", "-H", "X-Twice: one", "-H", "X-Twice: two")
    answer = yield curl(make_site(events, clock), "/get", *options)
    headers = answer.json()["headers"]
    assert headers["X-Lab-Token"] == "abc 123"
    assert headers["X-Twice"] == "one, two"
    assert headers["Host"] == f"127.0.0.1:{answer.port}"
    only = yield curl(make_site(events, clock), "/headers", *options)
    assert only.json()["headers"]["X-Lab-Token"] == "abc 123"
    assert set(only.json()) == {"headers"}


@pytest_twisted.inlineCallbacks
def test_format_text_report(events: Any, clock: Any) -> Any:
    """?format=text gives the classic plain report with its three sections."""
    answer = yield curl(
        make_site(events, clock), "/get?format=text&x=1", "-H", "X-Lab: yes", "-A", "lab/1"
    )
    report = answer.text()
    for section in ("CLIENT VALUES:", "SERVER VALUES:", "HEADERS RECEIVED:"):
        assert section in report
    assert report.index("CLIENT VALUES:") < report.index("SERVER VALUES:")
    assert report.index("SERVER VALUES:") < report.index("HEADERS RECEIVED:")
    assert "client_address=('127.0.0.1', " in report
    assert "command=GET\n" in report
    assert "path=/get?format=text&x=1\n" in report
    assert "real path=/get\n" in report
    assert "query=format=text&x=1\n" in report
    assert "request_version=HTTP/1.1\n" in report
    assert "server_version=TwistedWeb/" in report
    assert "sys_version=Python/" in report
    assert "X-Lab=yes\n" in report
    assert "User-Agent=lab/1\n" in report


@pytest_twisted.inlineCallbacks
def test_accept_text_plain(events: Any, clock: Any) -> Any:
    """Accept: text/plain gets the text report; preferring JSON keeps JSON."""
    site = make_site(events, clock)
    text = yield curl(site, "/get", "-H", "Accept: text/plain")
    assert "HEADERS RECEIVED:" in text.text()
    assert text.headers["vary"] == "Accept"
    data = yield curl(site, "/get", "-H", "Accept: application/json, text/plain;q=0.5")
    assert data.json()["path"] == "/get"
    forced = yield curl(site, "/get?format=json", "-H", "Accept: text/plain")
    assert forced.json()["args"] == {"format": "json"}


@pytest.mark.parametrize(
    ("accept", "text"),
    [
        ("text/plain", True),
        ("text/*", True),
        ("*/*", False),
        ("application/json", False),
        ("text/plain, */*;q=0.1", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("text/plain;q=0.2, application/json;q=0.9", False),
        ("text/plain, application/json", False),
        ("text/plain;q=bogus, */*", False),
        ("", False),
    ],
)
def test_prefers_text(accept: str, text: bool) -> None:
    """Accept headers choose text only when they prefer text/plain to JSON."""
    assert prefers_text(accept) is text


@pytest_twisted.inlineCallbacks
def test_ip_and_user_agent(events: Any, clock: Any) -> Any:
    """/ip gives origin and /user-agent the User-Agent, httpbin's shapes."""
    site = make_site(events, clock)
    ip = yield curl(site, "/ip")
    assert ip.json() == {"origin": "127.0.0.1"}
    agent = yield curl(site, "/user-agent", "-A", "netlab-test/1.0 (lab)")
    assert agent.json() == {"user-agent": "netlab-test/1.0 (lab)"}
    text = yield curl(site, "/user-agent?format=text", "-A", "netlab-test/1.0")
    assert text.text() == "netlab-test/1.0\n"


@pytest_twisted.inlineCallbacks
def test_anything_put_binary_body(events: Any, clock: Any, tmp_path: Path) -> Any:
    """/anything/... takes PUT; a body that is not UTF-8 comes back as a base64 data: URI."""
    payload = bytes(range(256)) * 3
    (tmp_path / "blob").write_bytes(payload)
    answer = yield curl(
        make_site(events, clock), "/anything/deep/path?k=v", "-X", "PUT",
        "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{tmp_path / 'blob'}",
    )
    seen = answer.json()
    assert seen["method"] == "PUT"
    assert seen["path"] == "/anything/deep/path"
    assert seen["args"] == {"k": "v"}
    prefix = "data:application/octet-stream;base64,"
    assert seen["data"].startswith(prefix)
    assert base64.b64decode(seen["data"][len(prefix):]) == payload
    assert seen["json"] is None
    assert seen["form"] == {} and seen["files"] == {}


@pytest_twisted.inlineCallbacks
def test_anything_methods_and_text_body(events: Any, clock: Any) -> Any:
    """PATCH and DELETE reach /anything; a UTF-8 JSON body is data and json."""
    site = make_site(events, clock)
    patched = yield curl(
        site, "/anything", "-X", "PATCH", "-H", "Content-Type: application/json",
        "--data-binary", '{"ünï": [1, 2]}',
    )
    seen = patched.json()
    assert seen["method"] == "PATCH"
    assert seen["data"] == '{"ünï": [1, 2]}'
    assert seen["json"] == {"ünï": [1, 2]}
    deleted = yield curl(site, "/anything/x", "-X", "DELETE")
    assert deleted.json()["method"] == "DELETE"
    assert deleted.json()["data"] == ""


@pytest_twisted.inlineCallbacks
def test_head_and_wrong_method(events: Any, clock: Any) -> Any:
    """HEAD /get answers headers only; POST /get is 405."""
    site = make_site(events, clock)
    head = yield curl(site, "/get", "-I")
    assert head.status == 200
    assert head.content_type == "application/json"
    assert head.body == b""
    post = yield curl(site, "/get", "-d", "x=1")
    assert post.status == 405
    assert post.headers["allow"] == "GET, HEAD, OPTIONS"


@pytest_twisted.inlineCallbacks
def test_forwarded_for_from_trusted_proxy(events: Any, clock: Any) -> Any:
    """Behind a trusted proxy, origin is the right-most untrusted X-Forwarded-For hop."""
    site = make_site(events, clock, trusted_proxies=("127.0.0.0/8", "10.0.0.0/8"))
    answer = yield curl(
        site, "/get", "-H", "X-Forwarded-For: 198.51.100.1, 203.0.113.7, 10.1.2.3"
    )
    seen = answer.json()
    assert seen["origin"] == "203.0.113.7"
    assert seen["headers"]["X-Forwarded-For"] == "198.51.100.1, 203.0.113.7, 10.1.2.3"
    ip = yield curl(site, "/ip", "-H", "X-Forwarded-For: 203.0.113.9")
    assert ip.json() == {"origin": "203.0.113.9"}


@pytest_twisted.inlineCallbacks
def test_forwarded_for_from_untrusted_peer(events: Any, clock: Any) -> Any:
    """Without a trusted proxy, X-Forwarded-For is only reported, never believed."""
    site = make_site(events, clock, trusted_proxies=("192.0.2.0/24",))
    answer = yield curl(site, "/get", "-H", "X-Forwarded-For: 203.0.113.7")
    seen = answer.json()
    assert seen["origin"] == "127.0.0.1"
    assert seen["headers"]["X-Forwarded-For"] == "203.0.113.7"


TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "origin"),
    [
        ("192.0.2.1", ["203.0.113.7"], "192.0.2.1"),
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("10.0.0.1", ["1.1.1.1, 203.0.113.7, 10.0.0.2"], "203.0.113.7"),
        ("10.0.0.1", ["1.1.1.1", "203.0.113.7"], "203.0.113.7"),
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
        ("10.0.0.1", ["203.0.113.7, garbage, 10.0.0.2"], "10.0.0.2"),
        ("10.0.0.1", ["garbage"], "10.0.0.1"),
        ("10.0.0.1", ["203.0.113.7:4711"], "203.0.113.7"),
        ("10.0.0.1", ["[2001:db8::1]:80"], "2001:db8::1"),
        ("::1", ["2001:db8::7"], "2001:db8::7"),
        ("::ffff:10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    ],
)
def test_forwarded_origin_walk(peer: str, forwarded: list[str], origin: str) -> None:
    """The right-to-left walk stops at the first untrusted or unparsable hop."""
    assert forwarded_origin(peer, forwarded, TRUSTED) == origin


def test_header_names_as_sent_when_the_channel_keeps_them() -> None:
    """Raw header lines kept by the channel win over Twisted's canonical names."""
    request: Any = DummyRequest([b"get"])
    request.requestHeaders.addRawHeader(b"x-lower", b"1")
    assert header_pairs(request) == [("X-Lower", "1")]
    request.raw_headers = [(b"x-lower", b"1"), (b"X-UPPER", b"caf\xc3\xa9"), (b"X-Old", b"\xe9")]
    assert header_pairs(request) == [("x-lower", "1"), ("X-UPPER", "café"), ("X-Old", "é")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_pretty_json_is_json_dumps(value: Any) -> None:
    """pretty_json writes exactly what json.dumps(indent=2, ensure_ascii=False) writes."""
    assert inspect.pretty_json(value) == json.dumps(value, indent=2, ensure_ascii=False)


@pytest_twisted.inlineCallbacks
def test_inspection_routes_have_nothing_below_them(events: Any, clock: Any) -> Any:
    """As httpbin: /get/x, /headers/, /post/x are 404, not /get answered under another
    name; /anything is the one that takes any path below it."""
    site = make_site(events, clock)
    for path in ("/get/x", "/get/", "/headers/x", "/ip/x/y", "/user-agent/x", "/post/x"):
        answer = yield fetch_once(site, path)
        assert answer.status == 404, path
    answer = yield fetch_once(site, "/anything/x/y")
    assert answer.status == 200
    assert answer.json()["url"].endswith("/anything/x/y")
