"""Tests for netlab.protocols.http.formats: httpbin's fixed formats and methods, asked with curl."""

from __future__ import annotations

import base64
import json
import socket
import uuid
import xml.etree.ElementTree as ElementTree
from typing import Any

import pytest
import pytest_twisted

from httptest import build_site, fetch_once
from netlab.protocols.http import formats, forms, inspect, routes, websocket
from netlab.protocols.http.formats import decode_base64, header_refusal
from netlab.protocols.http.routes import Root
from netlab.protocols.http.site import NetlabSite

METHOD_FIELDS = {"args", "data", "files", "form", "headers", "json", "origin", "url"}


def make_site(events: Any, clock: Any, **settings: Any) -> NetlabSite:
    """A site with the formats routes, and inspection's for /anything."""
    return build_site(
        events, clock, routes.of(formats, inspect, forms, websocket), root=Root(), **settings
    )


# The real curl against a site served on a loopback port; its Response.
curl = fetch_once


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest_twisted.inlineCallbacks
def test_method_routes_describe_the_request(events: Any, clock: Any, method: str) -> Any:
    """/put, /patch, /delete answer their method with httpbin's eight fields, body parsed."""
    path = "/" + method.lower()
    answer = yield curl(
        make_site(events, clock), path + "?a=1&a=2", "-X", method,
        "-H", "Content-Type: application/json", "--data-binary", '{"n": 7}',
    )
    assert answer.status == 200
    seen = answer.json()
    assert set(seen) == METHOD_FIELDS
    assert seen["args"] == {"a": ["1", "2"]}
    assert seen["json"] == {"n": 7}
    assert seen["data"] == '{"n": 7}'
    assert seen["url"] == f"http://127.0.0.1:{answer.port}{path}?a=1&a=2"
    assert seen["origin"] == "127.0.0.1"
    form = yield curl(make_site(events, clock), path, "-X", method, "-F", "k=v")
    assert form.json()["form"] == {"k": "v"}
    wrong = yield curl(make_site(events, clock), path)
    assert wrong.status == 405
    assert method in wrong.headers["allow"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest_twisted.inlineCallbacks
def test_method_routes_give_the_text_report(events: Any, clock: Any, method: str) -> Any:
    """With Accept: text/plain, /put, /patch, /delete give the classic text report (they were
    a 500: the report needs more than httpbin's eight JSON fields)."""
    path = "/" + method.lower()
    answer = yield curl(make_site(events, clock), path + "?a=1", "-X", method,
                        "-H", "Accept: text/plain", "-d", "k=v")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    report = answer.text()
    assert f"command={method}\n" in report
    assert f"path={path}?a=1\n" in report
    assert "form k=v\n" in report


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest_twisted.inlineCallbacks
def test_anything_answers_each_method(events: Any, clock: Any, method: str) -> Any:
    """/anything already took PUT, PATCH and DELETE: it says which it got, with the body."""
    answer = yield curl(make_site(events, clock), "/anything/x", "-X", method, "-d", "a=b")
    seen = answer.json()
    assert seen["method"] == method
    assert seen["form"] == {"a": "b"}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest_twisted.inlineCallbacks
def test_response_headers(events: Any, clock: Any, method: str) -> Any:
    """Query args become headers (a repeat twice), and the body lists them as httpbin's does:
    under the names as given, with the Content-Type and the body's own Content-Length, and
    nothing the server adds to every answer (Server, Date, nosniff); keys sorted."""
    answer = yield curl(
        make_site(events, clock), "/response-headers?X-Lab=yes&X-Two=1&X-Two=2"
        "&Cache-Control=max-age%3D60&Content-Type=text/plain&freeform=hi", "-X", method,
    )
    assert answer.status == 200
    assert answer.headers["x-lab"] == "yes"
    assert [v for n, v in answer.all_headers if n == "x-two"] == ["1", "2"]
    assert answer.headers["cache-control"] == "max-age=60"
    assert answer.headers["content-type"] == "text/plain"
    assert answer.headers["freeform"] == "hi"
    listed = json.loads(answer.body)
    assert listed == {
        "Cache-Control": "max-age=60", "Content-Length": answer.headers["content-length"],
        "Content-Type": "text/plain", "X-Lab": "yes", "X-Two": ["1", "2"], "freeform": "hi",
    }
    assert list(listed) == sorted(listed)
    assert listed["Content-Length"] == str(len(answer.body))
    plain = yield curl(make_site(events, clock), "/response-headers?X-Foo=bar", "-X", method)
    assert json.loads(plain.body) == {
        "Content-Length": str(len(plain.body)), "Content-Type": "application/json",
        "X-Foo": "bar",
    }
    assert plain.headers["content-type"] == "application/json"


@pytest.mark.parametrize("query", [
    "X-Bad=a%0d%0aSet-Cookie:%20x=1",  # CR LF: header injection
    "X-Bad=a%0ab",
    "Bad%0d%0aName=1",
    "Content-Length=5",
    "Transfer-Encoding=chunked",
    "Content-Type=text/html",
    "X-Long=" + "a" * 1025,
    "&".join(f"X-{i}=1" for i in range(33)),
])
@pytest_twisted.inlineCallbacks
def test_response_headers_refused(events: Any, clock: Any, query: str) -> Any:
    """CR/LF or controls, framing headers, HTML, too long or too many: one plain 400 line."""
    answer = yield curl(make_site(events, clock), "/response-headers?" + query)
    assert answer.status == 400
    assert answer.text().startswith("400 Bad Request: ")
    assert "x-bad" not in answer.headers and "set-cookie" not in answer.headers


def test_header_refusal_allows_plain_pairs() -> None:
    assert header_refusal([("X-A", "b\tc"), ("Content-Type", "application/json; a=b")]) is None


@pytest_twisted.inlineCallbacks
def test_json_and_xml_slideshows(events: Any, clock: Any) -> Any:
    """/json and /xml are httpbin's sample slideshow."""
    site = make_site(events, clock)
    answer = yield curl(site, "/json")
    show = answer.json()["slideshow"]
    assert show["title"] == "Sample Slide Show"
    assert show["author"] == "Yours Truly"
    assert [s["title"] for s in show["slides"]] == ["Wake up to WonderWidgets!", "Overview"]
    doc = yield curl(make_site(events, clock), "/xml")
    assert doc.content_type == "application/xml"
    root = ElementTree.fromstring(doc.body)
    assert root.tag == "slideshow"
    assert root.get("title") == "Sample Slide Show"
    assert [t.text for t in root.iter("title")] == ["Wake up to WonderWidgets!", "Overview"]


@pytest_twisted.inlineCallbacks
def test_html_and_utf8_pages(events: Any, clock: Any) -> Any:
    """/html is a small HTML page; /encoding/utf8 is UTF-8 and says so."""
    page = yield curl(make_site(events, clock), "/html")
    assert page.status == 200
    assert page.content_type == "text/html; charset=utf-8"
    assert b"<h1>Herman Melville - Moby-Dick</h1>" in page.body
    demo = yield curl(make_site(events, clock), "/encoding/utf8")
    assert demo.content_type == "text/html; charset=utf-8"
    text = demo.body.decode("utf-8")
    assert "Зарегистрируйтесь" in text and "いろは" in text
    below = yield curl(make_site(events, clock), "/html/more")
    assert below.status == 404


@pytest_twisted.inlineCallbacks
def test_robots_and_deny(events: Any, clock: Any) -> Any:
    """/robots.txt disallows /deny, which is httpbin's angry text."""
    robots = yield curl(make_site(events, clock), "/robots.txt")
    assert robots.text() == "User-agent: *\nDisallow: /deny\n"
    deny = yield curl(make_site(events, clock), "/deny")
    assert "YOU SHOULDN'T BE HERE" in deny.text()


@pytest_twisted.inlineCallbacks
def test_uuid(events: Any, clock: Any) -> Any:
    """/uuid is a fresh version 4 UUID each time."""
    first = yield curl(make_site(events, clock), "/uuid")
    second = yield curl(make_site(events, clock), "/uuid")
    one, two = (uuid.UUID(answer.json()["uuid"]) for answer in (first, second))
    assert one.version == two.version == 4
    assert one != two
    assert set(first.json()) == {"uuid"}


@pytest_twisted.inlineCallbacks
def test_base64(events: Any, clock: Any) -> Any:
    """/base64/VALUE decodes URL-safe base64 to plain text; bad input is one 400 line."""
    answer = yield curl(make_site(events, clock), "/base64/SFRUUEJJTiBpcyBhd2Vzb21l")
    assert answer.status == 200
    assert answer.text() == "HTTPBIN is awesome"
    value = base64.urlsafe_b64encode("<b>ü?>".encode()).decode().rstrip("=")
    safe = yield curl(make_site(events, clock), "/base64/" + value)
    assert safe.text() == "<b>ü?>"  # plain text, never HTML
    for bad in ("not*base64", "%FF%FE", "_w", "A" * 4097):
        refused = yield curl(make_site(events, clock), "/base64/" + bad)
        assert refused.status == 400, bad
        assert refused.text() == (
            "400 Bad Request: Incorrect Base64 data try: SFRUUEJJTiBpcyBhd2Vzb21l\n"
        )
    bare = yield curl(make_site(events, clock), "/base64")
    assert bare.status == 400


def test_decode_base64_padding_optional() -> None:
    assert decode_base64("aGk") == decode_base64("aGk=") == "hi"
    assert decode_base64("-_8") is None  # decodes, but not to UTF-8


@pytest_twisted.inlineCallbacks
def test_bearer(events: Any, clock: Any) -> Any:
    """A Bearer token gets 200 and is shown back; none, or another scheme, gets 401."""
    answer = yield curl(make_site(events, clock), "/bearer", "-H", "Authorization: Bearer t0k")
    assert answer.status == 200
    assert answer.json() == {"authenticated": True, "token": "t0k"}
    for options in ((), ("-u", "a:b"), ("-H", "Authorization: Bearer ")):
        refused = yield curl(make_site(events, clock), "/bearer", *options)
        assert refused.status == 401, options
        assert refused.headers["www-authenticate"] == "Bearer"


@pytest_twisted.inlineCallbacks
def test_hostname(events: Any, clock: Any) -> Any:
    answer = yield curl(make_site(events, clock), "/hostname")
    assert answer.json() == {"hostname": socket.gethostname()}


@pytest_twisted.inlineCallbacks
def test_websocket_echo_alias(events: Any, clock: Any) -> Any:
    """/websocket/echo is /ws/echo under httpbin's name: the same resource, which tells a
    plain GET that it takes WebSocket connections only."""
    site = make_site(events, clock)
    root: Any = site.resource
    assert root.children[b"websocket"].children[b"echo"] is root.children[b"ws"].children[b"echo"]
    answer = yield curl(site, "/websocket/echo")
    assert answer.status == 426


@pytest_twisted.inlineCallbacks
def test_head_where_get(events: Any, clock: Any) -> Any:
    """HEAD works where GET does (headers, no body) and is 405 on the one-method routes."""
    answer = yield curl(make_site(events, clock), "/json", "-I")
    assert answer.status == 200 and answer.body == b""
    assert answer.content_type == "application/json"
    put = yield curl(make_site(events, clock), "/put", "-I")
    assert put.status == 405
    assert "PUT" in put.headers["allow"]
