"""
Tests for netlab.protocols.http.status: the resources served in process on
loopback port 0 and fetched with real curl, plus the real daemon end to end.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from daemon import Daemon, running_daemon
from helpers import close_all, connect
from httptest import Served, curl_sync, fetch, http_config, parse_response, run_curl, serve
from netlab.core.events import HTTP_REQUEST
from netlab.protocols.http import routes, status


class GetStub(Resource):
    """Stands in for inspect's /get, where redirect chains end."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        """An empty JSON object, as /get's stand-in."""
        return b"{}\n"


def serve_status(events: Any, clock: Any = None, rng: random.Random | None = None,
                 **settings: Any) -> Served:
    """The status resources, and a stand-in /get, on a NetlabSite on loopback port 0."""
    root = Resource()
    root.putChild(b"get", GetStub())
    return serve(events, clock or reactor, routes.of(status), root=root, status_random=rng,
                 **settings)


class WatchedClock(Clock):
    """A Clock that tells a test when something schedules a call C{delay} seconds away."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[tuple[float, Deferred[IDelayedCall]]] = []

    def callLater(self, delay: float, *args: Any, **kwargs: Any) -> IDelayedCall:
        call = super().callLater(delay, *args, **kwargs)
        for entry in list(self.waiting):
            if entry[0] == delay:
                self.waiting.remove(entry)
                entry[1].callback(call)
        return call

    def scheduled(self, delay: float) -> Deferred[IDelayedCall]:
        """Fires with the next call scheduled C{delay} seconds from now."""
        d: Deferred[IDelayedCall] = Deferred()
        self.waiting.append((delay, d))
        return d


@pytest_twisted.inlineCallbacks
def test_status_codes_with_and_without_bodies(events: Any) -> Any:
    """Each code comes back as asked; 204 and 304 have neither a body nor a length."""
    served = serve_status(events)
    for code in (200, 201, 418, 500, 503):
        got = yield fetch(served.url(f"/status/{code}"))
        assert got.status == code
        assert got.headers["content-type"] == "text/plain; charset=utf-8"
    teapot = yield fetch(served.url("/status/418"))
    assert teapot.body == b"418 I'm a teapot\n"
    for code in (204, 304):
        got = yield fetch(served.url(f"/status/{code}"))
        assert got.status == code
        assert got.body == b""
        assert "content-length" not in got.headers
        assert "transfer-encoding" not in got.headers
    unauthorized = yield fetch(served.url("/status/401"))
    assert unauthorized.headers["www-authenticate"] == 'Basic realm="Fake Realm", charset="UTF-8"'
    posted = yield fetch(served.url("/status/202"), "-X", "POST", "-d", "x=1")
    assert posted.status == 202
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_status_redirects_point_at_redirect_1(events: Any) -> Any:
    """A redirect code comes with httpbin's Location, /redirect/1, so curl -L ends at /get;
    another 3xx (300, 304) and the rest have no Location."""
    served = serve_status(events)
    for code in (301, 302, 303, 305, 307, 308):
        got = yield fetch(served.url(f"/status/{code}"))
        assert (got.status, got.headers.get("location")) == (code, "/redirect/1"), code
    for code in (200, 300, 304, 404):
        got = yield fetch(served.url(f"/status/{code}"))
        assert "location" not in got.headers, code
    out, err, code = yield run_curl(
        "-L", "-o", "/dev/null", "-w", "%{num_redirects} %{url_effective} %{http_code}",
        served.url("/status/302"),
    )
    assert code == 0, err
    assert out.decode() == f"2 {served.base}/get 200"
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_status_list_picks_with_the_injected_random(events: Any) -> Any:
    """A comma list is chosen from with the seeded Random the context supplies."""
    served = serve_status(events, rng=random.Random(1234))
    expected = random.Random(1234)
    wanted = [expected.choice([200, 500, 418]) for _ in range(12)]
    got = []
    for _ in range(12):
        answer = yield fetch(served.url("/status/200,500,418"))
        got.append(answer.status)
    assert got == wanted
    assert len(set(got)) > 1
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_bad_status_codes_are_400_with_a_clear_line(events: Any) -> Any:
    """Malformed, out-of-range and 1xx codes get a 400 that explains, never echoes."""
    served = serve_status(events)
    for path in ("/status/zz%3Cb%3E", "/status/99", "/status/600", "/status/2000",
                 "/status/200,x", "/status/", "/status"):
        got = yield fetch(served.url(path))
        assert got.status == 400, path
        assert b"/status/CODE" in got.body
        assert b"<b>" not in got.body
    for path in ("/status/100", "/status/101", "/status/199,200"):
        got = yield fetch(served.url(path))
        assert got.status == 400, path
        assert b"1xx codes are informational" in got.body
    deeper = yield fetch(served.url("/status/200/more"))
    assert deeper.status == 404
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_delay_answers_only_when_the_clock_has_advanced(events: Any) -> Any:
    """/delay/2 schedules its answer on the context's clock and sends nothing before."""
    clock = WatchedClock()
    served = serve_status(events, clock=clock)
    scheduled = clock.scheduled(2.0)
    answer = run_curl("-i", served.url("/delay/2"))
    call = yield scheduled
    clock.advance(1.5)
    assert call.active()
    assert not events.kinds(HTTP_REQUEST)
    assert not answer.called
    clock.advance(0.5)
    out, err, code = yield answer
    assert code == 0, err
    got = parse_response(out)
    assert got.status == 200
    seen = json.loads(got.body)
    assert set(seen) == DELAY_FIELDS
    assert (seen["delay"], seen["url"], seen["args"]) == (2.0, served.url("/delay/2"), {})
    assert got.headers["content-type"] == "application/json"
    yield served.close()
    assert clock.getDelayedCalls() == []


# httpbin's /delay answer, and the delay netlab adds.
DELAY_FIELDS = {"args", "data", "files", "form", "headers", "origin", "url", "delay"}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest_twisted.inlineCallbacks
def test_delay_describes_the_request_and_its_body(events: Any, method: str) -> Any:
    """/delay/N answers every method httpbin's does with httpbin's description of the request,
    its body parsed (a form as form, anything else as data)."""
    served = serve_status(events)
    try:
        form = yield fetch(served.url("/delay/0?a=1"), "-X", method, "-d", "x=1&x=2",
                           "-H", "X-Lab: yes")
        seen = form.json()
        assert (form.status, set(seen)) == (200, DELAY_FIELDS)
        assert (seen["args"], seen["form"], seen["data"]) == ({"a": "1"}, {"x": ["1", "2"]}, "")
        assert (seen["headers"]["X-Lab"], seen["origin"], seen["files"]) == ("yes", "127.0.0.1",
                                                                            {})
        text = yield fetch(served.url("/delay/0"), "-X", method, "-H", "Content-Type: text/plain",
                           "--data-binary", "hello")
        assert (text.json()["data"], text.json()["form"]) == ("hello", {})
    finally:
        yield served.close()


@pytest_twisted.inlineCallbacks
def test_delay_refuses_a_broken_form_at_once(events: Any) -> Any:
    """A multipart body that does not parse is a 400 line before any waiting: the clock,
    never advanced, is not needed."""
    served = serve_status(events, clock=Clock())
    try:
        got = yield fetch(served.url("/delay/5"), "-m", "20", "-X", "POST",
                          "-H", "Content-Type: multipart/form-data; boundary=zz",
                          "--data-binary", "not multipart")
        assert got.status == 400
        assert got.text().startswith("400 Bad Request: ")
    finally:
        yield served.close()


@pytest_twisted.inlineCallbacks
def test_delay_cancelled_when_the_client_disconnects(events: Any) -> Any:
    """A client that hangs up during a delay leaves no DelayedCall behind."""
    clock = WatchedClock()
    served = serve_status(events, clock=clock)
    scheduled = clock.scheduled(5.0)
    client = yield connect(served.port)
    client.send(b"GET /delay/5 HTTP/1.1\r\nHost: test\r\n\r\n")
    call = yield scheduled
    assert client.data == b""
    yield close_all(client)
    yield served.close()
    assert call.cancelled
    assert clock.getDelayedCalls() == []
    assert not events.kinds(HTTP_REQUEST)


@pytest_twisted.inlineCallbacks
def test_delay_limits(events: Any) -> Any:
    """A delay over max_delay or not a plain number is a 400 that names the problem."""
    served = serve_status(events, max_delay=3.0)
    over = yield fetch(served.url("/delay/3.5"))
    assert over.status == 400
    assert b"max_delay is 3" in over.body
    for path in ("/delay/-1", "/delay/nan", "/delay/inf", "/delay/1e3", "/delay/x", "/delay"):
        got = yield fetch(served.url(path))
        assert got.status == 400, path
        assert b"/delay/SECONDS" in got.body
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_bytes_length_seed_and_cap(events: Any) -> Any:
    """/bytes/N sends N octets; a seed repeats them, httpbin's very bytes; over max_bytes is
    400."""
    served = serve_status(events, max_bytes=5000)
    got = yield fetch(served.url("/bytes/5000"))
    assert got.status == 200
    assert len(got.body) == 5000
    assert got.headers["content-type"] == "application/octet-stream"
    again = yield fetch(served.url("/bytes/5000"))
    assert again.body != got.body
    seeded = yield fetch(served.url("/bytes/64?seed=42"))
    seeded_again = yield fetch(served.url("/bytes/64?seed=42"))
    # httpbin's bytes for a seed: Random(seed), then randint(0, 255) for each.
    draw = random.Random(42).randint
    assert seeded.body == seeded_again.body == bytes(draw(0, 255) for _ in range(64))
    empty = yield fetch(served.url("/bytes/0"))
    assert empty.status == 200
    assert empty.body == b""
    over = yield fetch(served.url("/bytes/5001"))
    assert over.status == 400
    assert b"max_bytes is 5000" in over.body
    bad_seed = yield fetch(served.url("/bytes/10?seed=abc"))
    assert bad_seed.status == 400
    yield served.close()


def dechunk(raw: bytes) -> list[bytes]:
    """The chunks of a chunked body, checking the framing and the final empty chunk."""
    chunks: list[bytes] = []
    while True:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert raw == b"\r\n"
            return chunks
        chunks.append(raw[:size])
        assert raw[size:size + 2] == b"\r\n"
        raw = raw[size + 2:]


@pytest_twisted.inlineCallbacks
def test_stream_lines_and_chunked_framing(events: Any) -> Any:
    """/stream/N sends N JSON lines in well-formed chunks, each httpbin's: the request's url,
    args, headers and origin, and the line's id; over max_stream is 400."""
    served = serve_status(events, max_stream=20)
    raw = yield fetch(served.url("/stream/7?x=1"), "--raw", "-H", "X-Lab: yes")
    assert raw.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in raw.headers
    chunks = dechunk(raw.body)
    lines = [json.loads(line) for line in b"".join(chunks).splitlines()]
    assert [line["id"] for line in lines] == list(range(7))
    for line in lines:
        assert list(line) == ["url", "args", "headers", "origin", "id"]
        assert line["url"] == served.url("/stream/7?x=1")
        assert (line["args"], line["origin"]) == ({"x": "1"}, "127.0.0.1")
        assert line["headers"]["X-Lab"] == "yes"
    decoded = yield fetch(served.url("/stream/20"))
    assert len(decoded.body.splitlines()) == 20
    over = yield fetch(served.url("/stream/21"))
    assert over.status == 400
    assert b"max_stream is 20" in over.body
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_redirect_chain_followed_by_curl(events: Any) -> Any:
    """curl -L follows /redirect/N and /relative-redirect/N through N hops to /get."""
    served = serve_status(events, max_redirects=5)
    for name in ("redirect", "relative-redirect"):
        out, err, code = yield run_curl(
            "-L", "-o", "/dev/null", "-w", "%{num_redirects} %{url_effective} %{http_code}",
            served.url(f"/{name}/5"),
        )
        assert code == 0, err
        assert out.decode() == f"5 {served.base}/get 200"
    first = yield fetch(served.url("/redirect/3"))
    assert first.status == 302
    assert first.headers["location"] == "/relative-redirect/2"
    last = yield fetch(served.url("/redirect/1"))
    assert last.headers["location"] == "/get"
    relative = yield fetch(served.url("/relative-redirect/1"))
    assert relative.headers["location"] == "../get"
    for path in ("/redirect/6", "/redirect/0", "/redirect/x"):
        got = yield fetch(served.url(path))
        assert got.status == 400, path
    yield served.close()


@pytest.mark.parametrize("url", [
    "/get", "get", "/cookies?x=1#top", "https://lab.example/page", "http://LAB.example:8080/",
])
def test_redirect_targets_allowed(url: str) -> None:
    """Relative URLs and http(s) URLs on a listed host may be redirect targets."""
    assert status.redirect_refusal(url, ("lab.example",)) is None


@pytest.mark.parametrize("url", [
    "", "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "/\t/evil.example", " //evil.example", "https://evil.example/",
    "https://lab.example@evil.example/", "https://lab.example.evil.example/",
    "javascript:alert(1)", "ftp://lab.example/", "http:lab.example", "http:///lab.example",
    "/caf\u00e9", "http://[::1/",
])
def test_redirect_targets_refused(url: str) -> None:
    """Anything a browser could take to another host is refused."""
    assert status.redirect_refusal(url, ("lab.example",)) is not None


@pytest_twisted.inlineCallbacks
def test_redirect_to_relative_ok_external_refused(events: Any) -> Any:
    """/redirect-to sends a client to a path or a listed host, never elsewhere."""
    served = serve_status(events, redirect_hosts=("lab.example",))
    got = yield fetch(served.url("/redirect-to?url=/get%3Fa%3D1&status_code=307"))
    assert got.status == 307
    assert got.headers["location"] == "/get?a=1"
    assert got.headers["content-type"] == "text/plain; charset=utf-8"
    listed = yield fetch(served.url("/redirect-to?url=https://lab.example/x"))
    assert listed.status == 302
    assert listed.headers["location"] == "https://lab.example/x"
    for query in ("url=https://evil.example/", "url=//evil.example", "url=%2F%5Cevil.example",
                  "url=/get&status_code=200", "url=/get&status_code=abc", ""):
        refused = yield fetch(served.url("/redirect-to?" + query))
        assert refused.status == 400, query
        assert "location" not in refused.headers
        assert b"evil.example" not in refused.body
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_cookies_set_read_delete_with_a_cookie_jar(events: Any, tmp_path: Path) -> Any:
    """curl's cookie jar keeps what /cookies/set sets and loses what /cookies/delete expires."""
    served = serve_status(events)
    jar = str(tmp_path / "jar.txt")
    with_jar = ("-L", "-b", jar, "-c", jar)
    set_ = yield fetch(served.url("/cookies/set?flavour=oatmeal&count=3"), *with_jar)
    assert set_.status == 200
    assert json.loads(set_.body) == {"cookies": {"flavour": "oatmeal", "count": "3"}}
    read = yield fetch(served.url("/cookies"), *with_jar)
    assert json.loads(read.body) == {"cookies": {"flavour": "oatmeal", "count": "3"}}
    assert read.headers["content-type"] == "application/json"
    # Without -L: curl 7.88 reloads the -b file when it follows a redirect,
    # and would write the deleted cookie back into the jar.
    deleted = yield fetch(served.url("/cookies/delete?flavour"), "-b", jar, "-c", jar)
    assert deleted.status == 302
    assert deleted.headers["location"] == "/cookies"
    assert deleted.headers["set-cookie"].startswith("flavour=; Expires=Thu, 01 Jan 1970")
    later = yield fetch(served.url("/cookies"), "-b", jar)
    assert json.loads(later.body) == {"cookies": {"count": "3"}}
    sent = yield fetch(served.url("/cookies"), "-b", "a=1; b=<x>")
    assert json.loads(sent.body) == {"cookies": {"a": "1", "b": "<x>"}}
    for query in ("/cookies/set", "/cookies/set?a%3Bb=1", "/cookies/set?a=b%3Bc",
                  "/cookies/set?a=b%20c", "/cookies/delete"):
        refused = yield fetch(served.url(query))
        assert refused.status == 400, query
        assert "set-cookie" not in refused.headers
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_basic_auth_right_wrong_and_missing(events: Any) -> Any:
    """Only the credentials in the URL get 200; wrong or none get 401 with httpbin's challenge
    (realm "Fake Realm") and one plain-text line."""
    served = serve_status(events)
    url = served.url("/basic-auth/ada/s%3Acret")
    right = yield fetch(url, "-u", "ada:s:cret")
    assert right.status == 200
    assert json.loads(right.body) == {"authenticated": True, "user": "ada"}
    for args in (("-u", "ada:wrong"), ("-u", "bob:s:cret"), ("-u", "ada:s:cretx"), ()):
        refused = yield fetch(url, *args)
        assert refused.status == 401, args
        assert refused.headers["www-authenticate"] == 'Basic realm="Fake Realm", charset="UTF-8"'
        assert refused.headers["content-type"] == "text/plain; charset=utf-8"
        assert refused.body == (b"401 Unauthorized: send the user name and password from this"
                                b" URL with HTTP Basic authentication\n")
    for path in ("/basic-auth/ada", "/basic-auth/ada/x/y", "/basic-auth"):
        missing = yield fetch(served.url(path), "-u", "ada:x")
        assert missing.status == 404, path
    yield served.close()


def test_same_secret_compares_whole_values() -> None:
    """Equal secrets match; prefixes and different lengths do not."""
    assert status.same_secret(b"abc", b"abc")
    assert not status.same_secret(b"ab", b"abc")
    assert not status.same_secret(b"", b"abc")


@pytest_twisted.inlineCallbacks
def test_gzip_body_is_really_gzip(events: Any) -> Any:
    """/gzip is gzip on the wire (1f8b) and httpbin's JSON once curl --compressed unpacks it."""
    served = serve_status(events)
    raw = yield fetch(served.url("/gzip"))
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.body[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(raw.body))["gzipped"] is True
    unpacked = yield fetch(served.url("/gzip"), "--compressed", "-H", "X-Lab: yes")
    seen = json.loads(unpacked.body)
    # httpbin's four keys: the request's headers and origin too.
    assert set(seen) == {"gzipped", "headers", "method", "origin"}
    assert (seen["gzipped"], seen["method"], seen["origin"]) == (True, "GET", "127.0.0.1")
    assert seen["headers"]["X-Lab"] == "yes"
    assert unpacked.headers["content-type"] == "application/json"
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_cache_conditional_requests_get_304(events: Any) -> Any:
    """/cache is 200 with validators and httpbin's body (/get's), then 304 without a body
    when they match."""
    served = serve_status(events)
    first = yield fetch(served.url("/cache?a=1"), "-H", "X-Lab: yes")
    assert first.status == 200
    seen = first.json()
    assert {"args", "headers", "origin", "url"} <= set(seen)
    assert (seen["args"], seen["headers"]["X-Lab"], seen["url"]) == (
        {"a": "1"}, "yes", served.url("/cache?a=1"))
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    assert etag == '"netlab-cache-1"'
    last_modified = first.headers["last-modified"]
    assert last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"
    by_etag = yield fetch(served.url("/cache"), "-H", f"If-None-Match: {etag}")
    by_date = yield fetch(served.url("/cache"), "-H", f"If-Modified-Since: {last_modified}")
    for cached in (by_etag, by_date):
        assert cached.status == 304
        assert cached.body == b""
        assert "content-length" not in cached.headers
    stale_etag = yield fetch(
        served.url("/cache"), "-H", 'If-None-Match: "other"',
        "-H", f"If-Modified-Since: {last_modified}",
    )
    assert stale_etag.status == 200
    older = yield fetch(
        served.url("/cache"), "-H", "If-Modified-Since: Sun, 31 Dec 2023 00:00:00 GMT"
    )
    assert older.status == 200
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_head_works_where_get_does(events: Any) -> Any:
    """HEAD gets the GET status and headers and no body, even where GET streams or errs."""
    served = serve_status(events)
    for path, code in (("/status/418", 418), ("/status/204", 204), ("/stream/3", 200),
                       ("/bytes/10", 200), ("/gzip", 200), ("/cache", 200),
                       ("/redirect/2", 302), ("/redirect-to?url=//x", 400),
                       ("/basic-auth/a/b", 401), ("/cookies", 200), ("/delay/x", 400),
                       ("/delay", 400), ("/status", 400), ("/bytes/10?seed=x", 400)):
        got = yield fetch(served.url(path), "-I")
        assert got.status == code, path
        assert got.body == b"", path
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_head_during_delay(events: Any) -> Any:
    """HEAD /delay/N also waits, then answers headers only."""
    clock = WatchedClock()
    served = serve_status(events, clock=clock)
    scheduled = clock.scheduled(1.0)
    answer = run_curl("-I", served.url("/delay/1"))
    yield scheduled
    clock.advance(1)
    out, err, code = yield answer
    assert code == 0, err
    got = parse_response(out)
    assert got.status == 200
    assert got.body == b""
    yield served.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One real daemon for the end-to-end curl tests of this module."""
    config = http_config("max_redirects = 4")
    with running_daemon(tmp_path_factory.mktemp("http-status"), config) as running:
        yield running


def test_e2e_status_codes(daemon: Daemon) -> None:
    """The real daemon answers /status/418 and /status/204 as asked."""
    base = f"http://127.0.0.1:{daemon.port('http')}"
    teapot = curl_sync("-i", f"{base}/status/418")
    assert parse_response(teapot.stdout).status == 418
    empty = parse_response(curl_sync("-i", f"{base}/status/204").stdout)
    assert empty.status == 204
    assert empty.body == b""
    bad = curl_sync("-o", "/dev/null", "-w", "%{http_code}", f"{base}/status/99")
    assert bad.stdout == b"400"


def test_e2e_redirects_followed(daemon: Daemon) -> None:
    """curl -L follows the real daemon's /redirect/4 to /get in four hops; 5 is over the cap."""
    base = f"http://127.0.0.1:{daemon.port('http')}"
    done = curl_sync("-L", "-o", "/dev/null", "-w", "%{num_redirects} %{url_effective}",
                     f"{base}/redirect/4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"4 {base}/get"
    over = curl_sync("-o", "/dev/null", "-w", "%{http_code}", f"{base}/redirect/5")
    assert over.stdout == b"400"


def test_e2e_gzip(daemon: Daemon) -> None:
    """The real daemon's /gzip is gzip on the wire and JSON through curl --compressed."""
    base = f"http://127.0.0.1:{daemon.port('http')}"
    raw = curl_sync(f"{base}/gzip")
    assert raw.stdout[:2] == b"\x1f\x8b"
    unpacked = curl_sync("--compressed", f"{base}/gzip")
    assert json.loads(unpacked.stdout)["gzipped"] is True


@pytest_twisted.inlineCallbacks
def test_caching_headers_of_generated_bodies(events: Any) -> Any:
    """/gzip says its body depends on Accept-Encoding (Vary), even when sent regardless; the
    generated bodies of /bytes, /stream and /delay are never stored (Cache-Control: no-store)."""
    clock = WatchedClock()
    served = serve_status(events, clock=clock)
    try:
        zipped = yield fetch(served.url("/gzip"))
        assert zipped.headers["vary"] == "Accept-Encoding"
        for path in ("/bytes/10", "/bytes/10?seed=3", "/stream/2"):
            got = yield fetch(served.url(path))
            assert (got.status, got.headers.get("cache-control")) == (200, "no-store"), path
        scheduled = clock.scheduled(1.0)
        answer = run_curl("-i", served.url("/delay/1"))
        yield scheduled
        clock.advance(1.0)
        out, err, code = yield answer
        assert code == 0, err
        got = parse_response(out)
        assert (got.status, got.headers.get("cache-control")) == (200, "no-store")
    finally:
        yield served.close()
