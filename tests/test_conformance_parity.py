"""
The httpbin parity script's comparison (conformance/httpbin_parity.py) on
canned answers, so it cannot rot while nobody runs it against httpbin: what
it calls the same and what a difference, how intended differences are told
apart, and that its tables still fit its probes and httpbin's routes.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections import Counter
from typing import Any

import pytest

import httpbin_parity as parity
from httpbin_parity import Known, Probe, Reply

NETLAB = "http://127.0.0.1:8080"
HTTPBIN = "http://127.0.0.1:9090"
GET = Probe("GET", "/get?a=1", (("X-Sent", "yes"),))


def reply(
    status: int = 200, headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | Any = b"", base: str = NETLAB,
) -> Reply:
    """A canned answer; a body that is not bytes is sent as JSON."""
    pairs = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
        pairs.append(("content-type", "application/json"))
    return Reply(status, tuple((name.lower(), value) for name, value in pairs), body, base)


def theirs(*args: Any, **kwargs: Any) -> Reply:
    return reply(*args, **kwargs, base=HTTPBIN)


def hows(probe: Probe, ours: Reply, other: Reply) -> list[str]:
    return [str(d) for d in parity.compare(probe, ours, other)]


def aspects(probe: Probe, ours: Reply, other: Reply) -> list[str]:
    return [d.aspect for d in parity.compare(probe, ours, other)]


def inspection(base: str, **changes: Any) -> dict[str, Any]:
    """An httpbin /get body as served from C{base}."""
    return {
        "args": {"a": "1"}, "origin": "127.0.0.1", "url": f"{base}/get?a=1",
        "headers": {"Host": base.removeprefix("http://"), "X-Sent": "yes",
                    "User-Agent": "netlab-parity"},
        **changes,
    }


def test_the_same_answer_from_two_servers_is_the_same():
    ours = reply(body=inspection(NETLAB))
    other = theirs(body=inspection(HTTPBIN))
    assert parity.compare(GET, ours, other) == []
    assert parity.verdict(GET, ours, other).row() == "same"


def test_another_status_is_the_only_difference_reported():
    ours = reply(404, {"content-type": "text/html"}, b"<p>no</p>")
    other = theirs(200, {"location": "/x"}, {"a": 1})
    assert hows(GET, ours, other) == ["status 404 vs httpbin 200"]


def test_json_keys_and_the_values_that_must_agree():
    ours = reply(body=inspection(NETLAB, args={"a": "2"}, extra=1, headers={
        "Host": "127.0.0.1:8080", "X-Sent": "no", "Accept-Encoding": "identity"}))
    other = theirs(body=inspection(HTTPBIN, json=None))
    assert hows(GET, ours, other) == [
        "extra key 'extra'", "no key 'json'",
        'args: {"a": "2"} vs httpbin {"a": "1"}',
        # Host (the port) and headers the client did not choose are not compared.
        'headers: {"X-Sent": "no"} vs httpbin {"X-Sent": "yes"}',
    ]


def test_urls_agree_modulo_host_and_port_and_quoting_is_its_own_aspect():
    other = theirs(body={"url": f"{HTTPBIN}/get?q=café"})
    assert aspects(GET, reply(body={"url": f"{NETLAB}/get?q=café"}), other) == []
    assert aspects(GET, reply(body={"url": f"{NETLAB}/get?q=caf%C3%A9"}), other) == [
        "json:url-quoting"
    ]
    assert aspects(GET, reply(body={"url": f"{NETLAB}/anything"}), other) == ["json:url"]


def test_a_uuid_is_compared_as_a_uuid4_not_by_value():
    probe = Probe("GET", "/uuid")
    four = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
    other = theirs(body={"uuid": "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"})
    assert hows(probe, reply(body={"uuid": four}), other) == []
    assert hows(probe, reply(body={"uuid": "not-a-uuid"}), other) == [
        'uuid: "not-a-uuid" vs httpbin true'
    ]


def test_newline_delimited_json_is_compared_line_by_line():
    probe = Probe("GET", "/stream/2")
    lines = [{"id": 0, "url": f"{NETLAB}/stream/2"}, {"id": 1, "url": f"{NETLAB}/stream/2"}]
    ours = reply(body=b"\n".join(json.dumps(line).encode() for line in lines) + b"\n",
                 headers={"content-type": "application/json"})
    other_lines = [{**line, "url": f"{HTTPBIN}/stream/2"} for line in lines]
    other = theirs(body=b"".join(json.dumps(x).encode() + b"\n" for x in other_lines),
                   headers={"content-type": "application/json"})
    assert hows(probe, ours, other) == []
    shorter = theirs(body=json.dumps(other_lines[0]).encode() + b"\n",
                     headers={"content-type": "application/json"})
    assert hows(probe, ours, shorter) == ["2 JSON lines vs httpbin 1"]


def test_content_type_and_charset():
    probe = Probe("GET", "/robots.txt")
    ours = reply(headers={"content-type": "text/plain; charset=UTF-8"}, body=b"x")
    assert aspects(probe, ours, theirs(headers={"content-type": "text/plain"}, body=b"x")) == [
        "charset"
    ]
    assert aspects(probe, ours, theirs(headers={"content-type": "Text/Plain; charset=utf-8"},
                                       body=b"x")) == []
    assert aspects(probe, ours, theirs(headers={"content-type": "text/html"}, body=b"x")) == [
        "content-type"
    ]


def test_a_redirect_or_error_body_type_is_its_own_aspect_and_its_body_is_not_compared():
    probe = Probe("GET", "/redirect/1", exact=True)
    ours = reply(302, {"location": "/get", "content-type": "text/plain"}, b"redirecting\n")
    other = theirs(302, {"location": "/get", "content-type": "text/html"}, b"<p>Redirecting</p>")
    assert aspects(probe, ours, other) == ["error-content-type:text/plain"]


def test_location_is_compared_modulo_this_server():
    probe = Probe("GET", "/absolute-redirect/1")
    other = theirs(302, {"location": f"{HTTPBIN}/get"})
    assert hows(probe, reply(302, {"location": f"{NETLAB}/get"}), other) == []
    assert hows(probe, reply(302, {"location": "http://localhost:8080/get"}), other) == []
    assert hows(probe, reply(302, {"location": "/get"}), other) == [
        "location '/get' vs httpbin '//HOST/get'"
    ]


def test_the_headers_a_client_acts_on():
    probe = Probe("GET", "/x")
    ours = reply(401, [("allow", "GET, HEAD"), ("www-authenticate", 'Basic realm="a"'),
                       ("content-encoding", "gzip"), ("content-range", "bytes 0-1/2"),
                       ("set-cookie", "a=1; Path=/"), ("set-cookie", "b=2")])
    same = theirs(401, [("allow", "HEAD,GET"), ("www-authenticate", 'basic realm="b"'),
                        ("content-encoding", "gzip"), ("content-range", "bytes 0-1/2"),
                        ("set-cookie", "b=2; HttpOnly"), ("set-cookie", "a=1")])
    assert hows(probe, ours, same) == []
    other = theirs(401, [("allow", "GET"), ("www-authenticate", "Digest nonce=x"),
                         ("content-range", "bytes 0-0/2"), ("set-cookie", "a=2")])
    assert aspects(probe, ours, other) == [
        "allow", "www-authenticate", "content-encoding", "content-range", "set-cookie",
    ]


def test_etags_presence_form_and_fixed_values():
    loose, fixed = Probe("GET", "/static/f"), Probe("GET", "/etag/abc", exact=True)
    strong = theirs(headers={"etag": '"abc"'})
    assert aspects(loose, reply(headers={"etag": '"xyz"'}), strong) == []
    assert aspects(fixed, reply(headers={"etag": '"xyz"'}), strong) == ["etag"]
    assert aspects(loose, reply(headers={"etag": 'W/"abc"'}), strong) == ["etag-form"]
    assert aspects(loose, reply(headers={"etag": "abc"}), strong) == ["etag-form"]
    assert aspects(loose, reply(), strong) == ["etag"]


def test_bodies_of_deterministic_routes_must_be_equal():
    octets = {"content-type": "application/octet-stream"}
    seeded = Probe("GET", "/bytes/4?seed=1", exact=True)
    assert hows(seeded, reply(body=b"abcd", headers=octets),
                theirs(body=b"abcd", headers=octets)) == []
    assert aspects(seeded, reply(body=b"abcd", headers=octets),
                   theirs(body=b"abce", headers=octets)) == ["body"]
    random = Probe("GET", "/bytes/4")
    assert hows(random, reply(body=b"abcd", headers=octets),
                theirs(body=b"wxyz", headers=octets)) == []


def test_known_differences_are_intended_and_the_rest_unexpected():
    known = [Known("GET /get*", "json-extra:port|json:args", "netlab says more")]
    ours = reply(body=inspection(NETLAB, port=1, args={}))
    found = parity.verdict(GET, ours, theirs(body=inspection(HTTPBIN)), known)
    assert (found.unexpected, [d.aspect for d, _ in found.intended]) == (
        [], ["json-extra:port", "json:args"])
    assert found.row().startswith("intended: extra key 'port'")
    other_probe = Probe("GET", "/headers")
    found = parity.verdict(other_probe, ours, theirs(body=inspection(HTTPBIN)), known)
    assert [d.aspect for d in found.unexpected] == ["json-extra:port", "json:args"]
    assert found.row().startswith("differs: extra key 'port'")


def test_the_report_counts_and_exits_non_zero_only_on_unexpected_differences():
    same = parity.verdict(GET, reply(body={"a": 1}), theirs(body={"a": 1}), [])
    intended = parity.verdict(GET, reply(body={"a": 1}), theirs(body={"a": 2}),
                              [Known("*", "json:a", "why")])
    unexpected = parity.verdict(GET, reply(500), theirs(200), [])
    out = io.StringIO()
    assert parity.report([same, intended], out, every=False) == 0
    assert "2 same" not in out.getvalue()
    assert "1 same, 1 differ (1 only as intended, 0 unexpected)" in out.getvalue()
    out = io.StringIO()
    assert parity.report([same, intended, unexpected], out, every=False) == 1
    assert out.getvalue().endswith(
        "httpbin parity: 1 same, 2 differ (1 only as intended, 1 unexpected)\n")
    assert "* why: GET /get?a=1 (X-Sent: yes)" in out.getvalue()


def test_probe_names_are_unique():
    names = Counter(probe.name for probe in parity.probes())
    assert [name for name, count in names.items() if count > 1] == []


def test_every_httpbin_route_has_a_probe():
    assert parity.unprobed(parity.HTTPBIN_ROUTES, parity.probes()) == []
    assert parity.unprobed(["/new/<int:n>"], parity.probes()) == ["/new/<int:n>"]


def test_every_known_difference_names_probes_that_exist():
    names = [probe.name for probe in parity.probes()]
    for known in parity.KNOWN:
        assert known.reason
        assert any(parity._matches(name, known.probes) for name in names), known.probes


def test_a_digest_answer_matches_rfc_2617s_example():
    # RFC 2617, 3.5: Mufasa's request for /dir/index.html.
    probe = Probe("GET", "/dir/index.html")
    challenge = reply(401, {"www-authenticate": (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    ), "set-cookie": "fake=fake_value; Path=/"})
    login = parity.digest_login("Mufasa", "Circle Of Life", cnonce="0a4f113b")
    headers = dict(login(probe, challenge))
    assert 'response="6629fae49393a05397450978507c4ef1"' in headers["Authorization"]
    assert "qop=auth, nc=00000001" in headers["Authorization"]
    assert headers["Cookie"] == "fake=fake_value"


def test_a_conditional_follow_up_sends_the_etag_received():
    assert parity.same_etag(GET, reply(headers={"etag": 'W/"1"'})) == (("If-None-Match", 'W/"1"'),)
    assert parity.same_etag(GET, reply()) == ()


@pytest.mark.parametrize(("coding", "encode"), [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
    ("br", lambda data: data[::-1]),
])
def test_bodies_are_decoded_before_comparing(coding, encode):
    body = b'{"gzipped": true}'
    assert parity.decode_body(encode(body), coding, lambda data: data[::-1]) == body


def test_a_body_that_does_not_decode_is_kept():
    assert parity.decode_body(b"not gzip", "gzip", None) == b"not gzip"
    assert parity.decode_body(b"br body", "br", None) == b"br body"


def test_the_netlab_config_serves_only_the_site_on_loopback(tmp_path):
    config = parity.netlab_config(tmp_path)
    assert 'listen = ["tcp:0:interface=127.0.0.1"]' in config
    assert f"static_dir = {json.dumps(str(tmp_path))}" in config
    assert "echo = []" in config and "enabled = false" in config


def test_nonce_cookies_are_compared_by_name_not_value():
    probe = Probe("GET", "/digest-auth/auth/user/passwd")
    ours = reply(401, [("set-cookie", "fake=fake_value; Path=/"),
                       ("set-cookie", "last_nonce=0a1b2c; Path=/")])
    same = theirs(401, [("set-cookie", "last_nonce=ffee99; Path=/"),
                        ("set-cookie", "fake=fake_value; Path=/")])
    assert hows(probe, ours, same) == []
    missing = theirs(401, [("set-cookie", "fake=fake_value; Path=/")])
    assert hows(probe, ours, missing) == [
        "cookies set ['fake=fake_value', 'last_nonce=NONCE'] vs httpbin ['fake=fake_value']"
    ]
    other_value = theirs(401, [("set-cookie", "fake=other; Path=/"),
                               ("set-cookie", "last_nonce=ffee99; Path=/")])
    assert aspects(probe, ours, other_value) == ["set-cookie"]
