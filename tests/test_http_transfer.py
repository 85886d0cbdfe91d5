"""
Tests for netlab.protocols.http.transfer and the httpbin forms added to
status.py (weighted /status, /cache/N, /cookies/set/NAME/VALUE,
/redirect/N?absolute=true): served in process on loopback port 0 and
fetched with real curl, as a student would.
"""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path
from typing import Any

import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from httptest import Served, run_curl, serve
from netlab.protocols.http import inspect, routes, status, transfer
from test_http_status import dechunk

# httpbin 0.10's /stream-bytes/16?seed=7 (and /bytes/16?seed=7), on CPython's random.
HTTPBIN_SEED_7 = bytes.fromhex("a54dca182530bb1d6d132cded6237b2e")


def serve_transfer(events: Any, clock: Clock, rng: random.Random | None = None,
                   **settings: Any) -> Served:
    """The transfer, status and inspection resources (for /get) on loopback port 0."""
    return serve(events, clock, routes.of(transfer, status, inspect), status_random=rng,
                 **settings)


@pytest_twisted.inlineCallbacks
def test_range_whole_part_suffix_and_unsatisfiable(events: Any, clock: Clock) -> Any:
    """/range/N is abc... with a fixed ETag, quoted as RFC 9110 wants (httpbin sends it bare:
    httplint warns); curl -r gets 206 with Content-Range, a range past the end 416 with
    Content-Range; the whole has none (httplint: a 200 should not carry one)."""
    served = serve_transfer(events, clock, max_bytes=1000)
    whole = yield served.fetch("/range/30")
    assert whole.status == 200
    assert whole.body == b"abcdefghijklmnopqrstuvwxyzabcd"
    assert whole.headers["etag"] == '"range30"'
    assert whole.headers["accept-ranges"] == "bytes"
    assert "content-range" not in whole.headers
    assert whole.headers["content-type"] == "application/octet-stream"
    part = yield served.fetch("/range/30", "-r", "24-27")
    assert part.status == 206
    assert part.body == b"yzab"
    assert part.headers["content-range"] == "bytes 24-27/30"
    assert part.headers["content-length"] == "4"
    suffix = yield served.fetch("/range/30", "-H", "Range: bytes=-3")
    assert (suffix.status, suffix.body) == (206, b"bcd")
    open_end = yield served.fetch("/range/30", "-r", "28-")
    assert (open_end.status, open_end.body) == (206, b"cd")
    for wanted in ("30-", "5-2", "10-30"):
        past = yield served.fetch("/range/30", "-r", wanted)
        assert past.status == 416, wanted
        assert past.headers["content-range"] == "bytes */30"
        assert past.body == b""
    unreadable = yield served.fetch("/range/30", "-H", "Range: lines=1-2")
    assert (unreadable.status, len(unreadable.body)) == (200, 30)
    over = yield served.fetch("/range/1001")
    assert over.status == 400
    assert b"max_bytes is 1000" in over.body
    for path in ("/range/0", "/range/x", "/range"):
        bad = yield served.fetch(path)
        assert bad.status == 400, path
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_range_download_resumed_by_curl(events: Any, clock: Clock, tmp_path: Path) -> Any:
    """curl -C - finishes a half-downloaded /range/N from where the file ends."""
    served = serve_transfer(events, clock)
    target = tmp_path / "download"
    target.write_bytes(b"abcdefghij")
    out, err, code = yield run_curl("-C", "-", "-o", str(target), "-w", "%{http_code}",
                                    served.url("/range/52"))
    assert code == 0, err
    assert out == b"206"
    assert target.read_bytes() == b"abcdefghijklmnopqrstuvwxyz" * 2
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_stream_bytes_chunked_seeded_and_capped(events: Any, clock: Clock) -> Any:
    """/stream-bytes/N comes chunk_size bytes a chunk; a seed repeats it (httpbin's bytes for
    the seed, as conformance/httpbin_parity.py checks); over max_bytes 400."""
    served = serve_transfer(events, clock, max_bytes=5000)
    raw = yield served.fetch("/stream-bytes/25?chunk_size=10&seed=7", "--raw")
    assert raw.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in raw.headers
    chunks = dechunk(raw.body)
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    assert b"".join(chunks)[:16] == HTTPBIN_SEED_7
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["cache-control"] == "no-store"
    again = yield served.fetch("/stream-bytes/25?seed=7")
    assert again.body == b"".join(chunks)
    whole = yield served.fetch("/stream-bytes/5000")
    assert len(whole.body) == 5000
    one_each = yield served.fetch("/stream-bytes/3?chunk_size=0", "--raw")
    assert [len(chunk) for chunk in dechunk(one_each.body)] == [1, 1, 1]
    over = yield served.fetch("/stream-bytes/5001")
    assert over.status == 400
    assert b"max_bytes is 5000" in over.body
    for query in ("?seed=x", "?chunk_size=-1"):
        bad = yield served.fetch("/stream-bytes/10" + query)
        assert bad.status == 400, query
        assert b"whole number" in bad.body
    yield served.close()


@given(st.integers(min_value=0, max_value=2**64), st.integers(min_value=0, max_value=600))
def test_seeded_bytes_are_httpbins_randint_bytes(seed: int, count: int) -> None:
    """httpbin_random is httpbin's byte-by-byte randint(0, 255) on Random(seed), only faster."""
    draw = random.Random(seed).randint
    assert transfer.httpbin_random(seed, count) == bytes(draw(0, 255) for _ in range(count))


@pytest_twisted.inlineCallbacks
def test_deflate_is_deflate_on_the_wire(events: Any, clock: Clock) -> Any:
    """/deflate is zlib deflate on the wire and httpbin's JSON through curl --compressed."""
    served = serve_transfer(events, clock)
    raw = yield served.fetch("/deflate")
    assert raw.headers["content-encoding"] == "deflate"
    assert raw.headers["vary"] == "Accept-Encoding"
    body = json.loads(zlib.decompress(raw.body))
    assert body["deflated"] is True
    assert body["method"] == "GET"
    assert body["origin"] == "127.0.0.1"
    assert body["headers"]["Host"] == f"127.0.0.1:{served.number}"
    unpacked = yield served.fetch("/deflate", "--compressed")
    assert unpacked.json()["deflated"] is True
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_links_pages(events: Any, clock: Clock) -> Any:
    """/links/N redirects to page 0; /links/N/K links every page but K; N is capped."""
    served = serve_transfer(events, clock, max_stream=50)
    first = yield served.fetch("/links/3")
    assert first.status == 302
    assert first.headers["location"] == "/links/3/0"
    page = yield served.fetch("/links/3/1")
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.body == (
        b"<html><head><title>Links</title></head><body>"
        b"<a href='/links/3/0'>0</a> 1 <a href='/links/3/2'>2</a> </body></html>"
    )
    out, err, code = yield run_curl("-L", "-o", "/dev/null", "-w", "%{url_effective}",
                                    served.url("/links/3"))
    assert code == 0, err
    assert out.decode() == served.url("/links/3/0")
    over = yield served.fetch("/links/51/0")
    assert over.status == 400
    assert b"max_stream is 50" in over.body
    for path in ("/links/0", "/links/3/x", "/links/3/1/more"):
        bad = yield served.fetch(path)
        assert bad.status in (400, 404), path
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_links_never_over_one_page(events: Any, clock: Clock) -> Any:
    """However high max_stream is, /links/N stops at 256 links."""
    served = serve_transfer(events, clock, max_stream=10_000)
    page = yield served.fetch("/links/256/0")
    assert page.body.count(b"<a href=") == 255
    over = yield served.fetch("/links/257/0")
    assert over.status == 400
    assert b"the links limit is 256" in over.body
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_etag_conditionals(events: Any, clock: Clock) -> Any:
    """/etag/TAG: If-None-Match with it is 304, If-Match without it 412, else /get's JSON."""
    served = serve_transfer(events, clock)
    plain = yield served.fetch("/etag/abc")
    assert plain.status == 200
    assert plain.headers["etag"] == '"abc"'
    assert plain.json()["url"] == served.url("/etag/abc")
    for header in ('If-None-Match: "abc"', "If-None-Match: x, W/\"abc\"", "If-None-Match: *"):
        cached = yield served.fetch("/etag/abc", "-H", header)
        assert cached.status == 304, header
        assert cached.body == b""
        assert cached.headers["etag"] == '"abc"'
    changed = yield served.fetch("/etag/abc", "-H", 'If-None-Match: "xyz"')
    assert changed.status == 200
    refused = yield served.fetch("/etag/abc", "-H", 'If-Match: "xyz"')
    # No ETag on the 412, as httpbin: the tag asked for is not this one.
    assert (refused.status, "etag" in refused.headers) == (412, False)
    for header in ('If-Match: "abc"', "If-Match: *"):
        matched = yield served.fetch("/etag/abc", "-H", header)
        assert matched.status == 200, header
    both = yield served.fetch("/etag/abc", "-H", 'If-None-Match: "x"', "-H", 'If-Match: "x"')
    assert both.status == 200  # If-None-Match decides alone, as in httpbin
    for path in ("/etag/a%22b", "/etag/a%0d%0aX:1", "/etag/"):
        bad = yield served.fetch(path)
        assert bad.status == 400, path
        assert "x" not in bad.headers
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_cache_for_n_seconds(events: Any, clock: Clock) -> Any:
    """/cache/N is /get's JSON with Cache-Control: public, max-age=N; /cache is unchanged."""
    served = serve_transfer(events, clock)
    got = yield served.fetch("/cache/60")
    assert got.status == 200
    assert got.headers["cache-control"] == "public, max-age=60"
    assert got.json()["url"] == served.url("/cache/60")
    fixed = yield served.fetch("/cache")
    assert fixed.headers["cache-control"] == "no-cache"
    for path in ("/cache/x", "/cache/-1", "/cache/1/2"):
        bad = yield served.fetch(path)
        assert bad.status in (400, 404), path
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_absolute_redirects_followed_by_curl(events: Any, clock: Clock) -> Any:
    """/absolute-redirect/N and /redirect/N?absolute=true send full URLs, ending at /get."""
    served = serve_transfer(events, clock, max_redirects=5)
    first = yield served.fetch("/absolute-redirect/3")
    assert first.status == 302
    assert first.headers["location"] == served.url("/absolute-redirect/2")
    last = yield served.fetch("/absolute-redirect/1")
    assert last.headers["location"] == served.url("/get")
    asked = yield served.fetch("/redirect/3?absolute=true")
    assert asked.headers["location"] == served.url("/absolute-redirect/2")
    named = yield served.fetch("/redirect/1?absolute=TRUE", "-H", "Host: example.test:8080")
    assert named.headers["location"] == "http://example.test:8080/get"
    unchanged = yield served.fetch("/redirect/3?absolute=false")
    assert unchanged.headers["location"] == "/relative-redirect/2"
    for path in ("/absolute-redirect/5", "/redirect/5?absolute=true"):
        out, err, code = yield run_curl(
            "-L", "-o", "/dev/null", "-w", "%{num_redirects} %{url_effective} %{http_code}",
            served.url(path),
        )
        assert code == 0, err
        assert out.decode() == f"5 {served.base}/get 200"
    over = yield served.fetch("/absolute-redirect/6")
    assert over.status == 400
    assert b"max_redirects is 5" in over.body
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_cookie_set_by_path(events: Any, clock: Clock, tmp_path: Path) -> Any:
    """/cookies/set/NAME/VALUE sets that cookie in curl's jar and redirects to /cookies."""
    served = serve_transfer(events, clock)
    jar = str(tmp_path / "jar.txt")
    set_ = yield served.fetch("/cookies/set/flavour/oatmeal", "-L", "-b", jar, "-c", jar)
    assert set_.status == 200
    assert json.loads(set_.body) == {"cookies": {"flavour": "oatmeal"}}
    bare = yield served.fetch("/cookies/set/count/3")
    assert bare.status == 302
    assert bare.headers["location"] == "/cookies"
    assert bare.headers["set-cookie"] == "count=3; Path=/"
    for path in ("/cookies/set/a%3Bb/1", "/cookies/set/a/b%20c", "/cookies/set/a",
                 "/cookies/set/a/b/c"):
        refused = yield served.fetch(path)
        assert refused.status in (400, 404), path
        assert "set-cookie" not in refused.headers
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_weighted_status_uses_the_injected_random(events: Any, clock: Clock) -> Any:
    """/status/200:0.1,500:0.9 picks with random.choices on the context's seeded Random."""
    served = serve_transfer(events, clock, rng=random.Random(1))
    expected = random.Random(1)
    wanted = [expected.choices([200, 500], [0.1, 0.9])[0] for _ in range(12)]
    got = []
    for _ in range(12):
        answer = yield served.fetch("/status/200:0.1,500:0.9")
        got.append(answer.status)
    assert got == wanted
    assert set(got) == {200, 500}
    mixed = yield served.fetch("/status/418:0,201")  # a missing weight is 1
    assert mixed.status == 201
    never = yield served.fetch("/status/418:1,500:0")
    assert never.status == 418
    for path in ("/status/200:x", "/status/200:-1", "/status/200:0,500:0", "/status/200:",
                 "/status/200:1:2", "/status/200:nan", "/status/200:inf"):
        bad = yield served.fetch(path)
        assert bad.status == 400, path
        assert b"weight" in bad.body
    yield served.close()
