"""
Tests for httpbin's /digest-auth (netlab.protocols.http.digest) and
/hidden-basic-auth: real curl --digest, Python's HTTPDigestAuthHandler,
and hand-made answers (computed here from RFC 7616, independently of the
server's code) for what those clients do not send.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread

from httptest import Response, Served, serve
from netlab.protocols.http import digest, routes, status
from netlab.protocols.http.digest import parse_digest

HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256, "SHA-512": hashlib.sha512}


def serve_auth(events: Any, clock: Clock) -> Served:
    """The digest and status resources on loopback port 0."""
    return serve(events, clock, routes.of(digest, status), root=routes.Root())


def challenge_of(answer: Response) -> dict[str, str]:
    """The parameters of a 401's Digest challenge, read as urllib reads them."""
    assert answer.status == 401, answer
    scheme, _, rest = answer.headers["www-authenticate"].partition(" ")
    assert scheme == "Digest"
    return urllib.request.parse_keqv_list(urllib.request.parse_http_list(rest))


def client_answer(
    challenge: dict[str, str], user: str, password: str, uri: str, qop: str | None = None,
    method: str = "GET", body: bytes = b"",
) -> str:
    """The Authorization header a client sends for C{challenge} (RFC 7616, 3.4.1)."""
    algorithm = challenge.get("algorithm", "MD5")

    def h(text: str | bytes) -> str:
        return HASHES[algorithm](text.encode() if isinstance(text, str) else text).hexdigest()

    ha1 = h(f"{user}:{challenge['realm']}:{password}")
    ha2 = h(f"{method}:{uri}:{h(body)}") if qop == "auth-int" else h(f"{method}:{uri}")
    nonce = challenge["nonce"]
    header = (f'Digest username="{user}", realm="{challenge["realm"]}", nonce="{nonce}",'
              f' uri="{uri}", algorithm={algorithm}, opaque="{challenge["opaque"]}"')
    if qop is None:
        return header + f', response="{h(f"{ha1}:{nonce}:{ha2}")}"'
    cnonce = "0a4f113b"
    answer = h(f"{ha1}:{nonce}:00000001:{cnonce}:{qop}:{ha2}")
    return header + f', qop={qop}, nc=00000001, cnonce="{cnonce}", response="{answer}"'


@pytest.mark.parametrize(("qop", "algorithm"), [
    ("auth", "MD5"), ("auth", "SHA-256"), ("auth-int", "MD5"), ("none", "MD5"),
])
@pytest_twisted.inlineCallbacks
def test_curl_digest(events: Any, clock: Clock, qop: str, algorithm: str) -> Any:
    """curl --digest -u user:passwd is challenged once, then authenticated."""
    served = serve_auth(events, clock)
    try:
        path = f"/digest-auth/{qop}/alice/s3cret/{algorithm}"
        right = yield served.fetch(path, "--digest", "-u", "alice:s3cret")
        wrong = yield served.fetch(path, "--digest", "-u", "alice:guess")
        first = yield served.fetch(path)
    finally:
        yield served.close()
    assert right.status == 200
    assert right.json() == {"authenticated": True, "user": "alice"}
    assert wrong.status == 401
    offered = challenge_of(first)
    assert offered["realm"] == "me@kennethreitz.com"
    assert offered["algorithm"] == algorithm
    assert offered.get("qop") == (None if qop == "none" else qop)
    assert offered["stale"] == "false"
    assert first.text().startswith("401 Unauthorized: ")
    assert ("set-cookie", "fake=fake_value; Path=/") in first.all_headers
    assert ("set-cookie", "stale_after=never; Path=/") in first.all_headers


@pytest.mark.parametrize("qop", ["auth", "none"])
@pytest_twisted.inlineCallbacks
def test_urllib_digest_handler(events: Any, clock: Clock, qop: str) -> Any:
    """Python's HTTPDigestAuthHandler logs in with httpbin's realm; a wrong password is 401."""
    served = serve_auth(events, clock)
    url = served.url(f"/digest-auth/{qop}/bob/pa55")

    def login(password: str) -> tuple[int, Any]:
        passwords = urllib.request.HTTPPasswordMgr()
        passwords.add_password("me@kennethreitz.com", served.base, "bob", password)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPDigestAuthHandler(passwords)
        )
        try:
            with opener.open(url, timeout=30) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            error.close()
            return error.code, None

    try:
        right = yield deferToThread(login, "pa55")
        wrong = yield deferToThread(login, "nope")
    finally:
        yield served.close()
    assert right == (200, {"authenticated": True, "user": "bob"})
    assert wrong == (401, None)


@pytest.mark.parametrize(("qop", "algorithm"), [("auth", "SHA-512"), ("auth-int", "SHA-256")])
@pytest_twisted.inlineCallbacks
def test_hand_made_answers(events: Any, clock: Clock, qop: str, algorithm: str) -> Any:
    """What curl and urllib do not send (SHA-512, auth-int with SHA-256) checks out too,
    and only for this URL and that user."""
    served = serve_auth(events, clock)
    path = f"/digest-auth/{qop}/carol/pw/{algorithm.lower()}"
    try:
        offered = challenge_of((yield served.fetch(path)))
        answer = client_answer(offered, "carol", "pw", path, qop)
        right = yield served.fetch(path, "-H", f"Authorization: {answer}")
        other_uri = client_answer(offered, "carol", "pw", path + "?x=1", qop)
        moved = yield served.fetch(path + "?x=1", "-H", f"Authorization: {other_uri}")
        elsewhere = yield served.fetch(path + "?y=2", "-H", f"Authorization: {other_uri}")
        other_user = client_answer(offered, "dave", "pw", path, qop)
        impostor = yield served.fetch(path, "-H", f"Authorization: {other_user}")
        wrong_qop = client_answer(offered, "carol", "pw", path, None)
        downgraded = yield served.fetch(path, "-H", f"Authorization: {wrong_qop}")
    finally:
        yield served.close()
    assert offered["algorithm"] == algorithm
    assert right.json() == {"authenticated": True, "user": "carol"}
    assert moved.status == 200  # the query is part of the URI, as the client sent it
    assert [elsewhere.status, impostor.status, downgraded.status] == [401, 401, 401]


@pytest_twisted.inlineCallbacks
def test_stale_nonces_and_cookies(events: Any, clock: Clock) -> Any:
    """httpbin's cookies: stale_after counts successes down to a stale=true challenge,
    a nonce that failed (last_nonce) is stale when used again, and a nonce this site
    never gave is challenged afresh, not stale."""
    served = serve_auth(events, clock)
    path = "/digest-auth/auth/erin/pw/MD5/2"
    try:
        first = yield served.fetch(path)
        offered = challenge_of(first)
        answer = client_answer(offered, "erin", "pw", path, "auth")
        counted = yield served.fetch(path, "-H", f"Authorization: {answer}",
                                     "-b", "stale_after=2; fake=fake_value")
        run_out = yield served.fetch(path, "-H", f"Authorization: {answer}",
                                     "-b", "stale_after=0")
        wrong = client_answer(offered, "erin", "bad", path, "auth")
        failed = yield served.fetch(path, "-H", f"Authorization: {wrong}")
        again = yield served.fetch(path, "-H", f"Authorization: {answer}",
                                   "-b", f"last_nonce={offered['nonce']}")
        forged = dict(offered, nonce="f" * 64)
        made_up = yield served.fetch(
            path, "-H", f"Authorization: {client_answer(forged, 'erin', 'pw', path, 'auth')}")
    finally:
        yield served.close()
    assert ("set-cookie", "stale_after=2; Path=/") in first.all_headers
    assert counted.status == 200
    assert ("set-cookie", "stale_after=1; Path=/") in counted.all_headers
    assert challenge_of(run_out)["stale"] == "true"
    assert challenge_of(failed)["stale"] == "false"
    assert ("set-cookie", f"last_nonce={offered['nonce']}; Path=/") in failed.all_headers
    assert challenge_of(again)["stale"] == "true"
    assert challenge_of(made_up)["stale"] == "false"
    assert not any(value.startswith("last_nonce=") for name, value in made_up.all_headers
                   if name == "set-cookie")


@pytest_twisted.inlineCallbacks
def test_require_cookie(events: Any, clock: Clock) -> Any:
    """?require-cookie=true: no Cookie is a challenge, no fake cookie 403 with httpbin's error."""
    served = serve_auth(events, clock)
    path = "/digest-auth/auth/frank/pw?require-cookie=true"
    try:
        offered = challenge_of((yield served.fetch(path)))
        answer = client_answer(offered, "frank", "pw", path, "auth")
        no_cookie = yield served.fetch(path, "-H", f"Authorization: {answer}")
        other_cookie = yield served.fetch(path, "-H", f"Authorization: {answer}", "-b", "a=b")
        with_cookie = yield served.fetch(path, "-H", f"Authorization: {answer}",
                                         "-b", "fake=fake_value")
    finally:
        yield served.close()
    assert no_cookie.status == 401
    assert other_cookie.status == 403
    assert other_cookie.json() == {"errors": ["missing cookie set on challenge"]}
    assert with_cookie.status == 200


@pytest_twisted.inlineCallbacks
def test_digest_bad_paths(events: Any, clock: Clock) -> Any:
    """An unknown algorithm or stale_after is one plain 400 line; a short path is 404."""
    served = serve_auth(events, clock)
    try:
        algorithm = yield served.fetch("/digest-auth/auth/u/p/SHA-1")
        stale = yield served.fetch("/digest-auth/auth/u/p/MD5/soon")
        short = yield served.fetch("/digest-auth/auth/u")
        garbage = yield served.fetch("/digest-auth/auth/u/p", "-H", "Authorization: Digest ,,=")
    finally:
        yield served.close()
    assert algorithm.status == 400
    assert algorithm.text() == "400 Bad Request: the algorithm must be MD5, SHA-256 or SHA-512\n"
    assert stale.status == 400
    assert "stale_after" in stale.text()
    assert short.status == 404
    assert challenge_of(garbage)["stale"] == "false"


def test_parse_digest_quotes_and_escapes() -> None:
    """Quoted values may hold commas and escaped quotes; other schemes are not Digest."""
    assert parse_digest(b'Digest username="a\\"b, c", qop=auth, NC=00000001') == {
        "username": 'a"b, c', "qop": "auth", "nc": "00000001",
    }
    assert parse_digest(b"Basic dTpw") is None
    assert parse_digest(b'Digest username="unterminated') is None
    assert parse_digest(None) is None


@pytest_twisted.inlineCallbacks
def test_hidden_basic_auth(events: Any, clock: Clock) -> Any:
    """/hidden-basic-auth: the right user and password get httpbin's JSON; anything else
    the site's plain 404, with no WWW-Authenticate to say a password would help."""
    served = serve_auth(events, clock)
    try:
        right = yield served.fetch("/hidden-basic-auth/gina/pw", "-u", "gina:pw")
        wrong = yield served.fetch("/hidden-basic-auth/gina/pw", "-u", "gina:no")
        missing = yield served.fetch("/hidden-basic-auth/gina/pw")
        nothing = yield served.fetch("/no-such-page")
    finally:
        yield served.close()
    assert right.status == 200
    assert json.loads(right.body) == {"authenticated": True, "user": "gina"}
    for answer in (wrong, missing):
        assert answer.status == 404
        assert "www-authenticate" not in answer.headers
        assert answer.body == nothing.body
