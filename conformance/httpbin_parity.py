#!/usr/bin/env python3
"""
httpbin parity: send the same requests to httpbin 0.10 (from PyPI, on
gunicorn) and to netlab's web site (the real daemon, C{twistd -n netlab}),
and print, per request, whether the answers agree and if not, how.

    .venv/bin/python conformance/httpbin_parity.py            # every request
    .venv/bin/python conformance/httpbin_parity.py --only /cookies

Both servers listen on 127.0.0.1, on ports the kernel picks, and are stopped
by PID at the end.  httpbin runs from its own venv, made once under
C{~/.cache/netlab-conformance/httpbin-venv} with the versions pinned below,
so Flask never enters netlab's.

What is compared: the status code; the media type and charset; for JSON
bodies the set of keys and the values (C{url} modulo scheme, host and port,
C{headers} only for the ones the client sent, C{uuid} only as a uuid); the
bodies of deterministic routes byte for byte; and the headers a client acts
on: C{Location} (modulo host and port), C{Allow}, the C{WWW-Authenticate}
scheme, C{Content-Encoding}, C{ETag} (present, weak or strong, and its value
where the route fixes it), C{Content-Range} and the cookies C{Set-Cookie}
sets (a nonce cookie by name only, L{NONCE_COOKIES}).  A difference that
netlab makes on purpose is listed in L{KNOWN} with the reason; the exit
status is 1 when any other difference is found.

The comparison (L{compare}, L{verdict}) is plain Python on L{Reply}s:
C{tests/test_conformance_parity.py} runs it on canned answers.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import gzip
import hashlib
import http.client
import json
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
import venv
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

# What works on Python 3.11 (checked with these versions): httpbin 0.10.4
# runs on Flask 3.1 and Werkzeug 3.1 without flasgger (its landing page is
# then a static page); gunicorn 27 for the server, httplint for
# conformance/httplint_check.py; brotli for decoding /brotli's body.
HTTPBIN_PINS = (
    "httpbin==0.10.4",
    "flask==3.1.3",
    "werkzeug==3.1.9",
    "gunicorn==27.0.1",
    "httplint==2026.10.4",
    "brotli==1.2.1",
)
DEFAULT_VENV = Path.home() / ".cache" / "netlab-conformance" / "httpbin-venv"
PINS_STAMP = "netlab-conformance-pins.txt"
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0
HOST = "127.0.0.1"

Headers = tuple[tuple[str, str], ...]


# -- what goes over the wire -------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """
    One answer: the status, the headers (names lower-cased, in order, repeats
    kept), the body with its content coding undone, and the server's base URL
    (C{http://127.0.0.1:PORT}) to compare URLs modulo host and port.
    """

    status: int
    headers: Headers
    body: bytes
    base: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header C{name}, or None."""
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        """Every value of header C{name}, in order."""
        return [value for key, value in self.headers if key == name.lower()]


FollowUp = Callable[["Probe", Reply], Headers]


@dataclass(frozen=True)
class Probe:
    """
    One request sent to both servers.  With C{then}, the request is sent
    once, C{then(probe, first_reply)} gives headers to add, and the second
    answer is the one compared (a digest login, a conditional GET with the
    ETag just received).  C{exact} says the body is the same on every server
    (fixed content, or random bytes from the same seed).
    """

    method: str
    path: str
    headers: Headers = ()
    body: bytes = b""
    note: str = ""
    exact: bool = False
    then: FollowUp | None = None

    @property
    def name(self) -> str:
        """How the table names it: method, path, and what is special about it."""
        label = f"{self.method} {self.path}"
        note = self.note or ", ".join(f"{name}: {value}" for name, value in self.headers)
        return f"{label} ({note})" if note else label


@dataclass(frozen=True)
class Difference:
    """One way two answers differ: the C{aspect} compared and how, in words."""

    aspect: str
    how: str

    def __str__(self) -> str:
        return self.how


@dataclass(frozen=True)
class Known:
    """
    A difference netlab makes on purpose: on probes whose name matches
    C{probes} (fnmatch patterns, C{|} between alternatives), in an aspect
    matching C{aspect} (the same), for C{reason}.
    """

    probes: str
    aspect: str
    reason: str

    def covers(self, probe: Probe, difference: Difference) -> bool:
        """Whether this explains C{difference} on C{probe}; C{|} separates alternatives."""
        return _matches(probe.name, self.probes) and _matches(difference.aspect, self.aspect)


def _matches(text: str, patterns: str) -> bool:
    return any(fnmatch.fnmatchcase(text, pattern) for pattern in patterns.split("|"))


# -- comparing two answers ---------------------------------------------------

# The headers a client acts on; each has its own comparison in compare().
ETAG = re.compile(r'^(W/)?"?(.*?)"?$')


def media_type(reply: Reply) -> tuple[str, str]:
    """The Content-Type's type and charset, lower-cased ("" for what is absent)."""
    value = reply.header("content-type") or ""
    kind, *params = (part.strip() for part in value.split(";"))
    charset = ""
    for param in params:
        name, _, setting = param.partition("=")
        if name.strip().lower() == "charset":
            charset = setting.strip().strip('"').lower()
    return kind.lower(), charset


def is_json(reply: Reply) -> bool:
    kind, _ = media_type(reply)
    return kind == "application/json" or kind.endswith("+json")


def parse_json(body: bytes) -> list[Any] | None:
    """
    The JSON documents in the body: one, or one per line of newline-delimited
    JSON (C{/stream}); None when it is neither.
    """
    try:
        return [json.loads(body)]
    except ValueError:
        pass
    try:
        return [json.loads(line) for line in body.splitlines() if line.strip()] or None
    except ValueError:
        return None


def relative_to(url: str, base: str) -> str:
    """C{url} with the server's own scheme, host and port replaced by C{//HOST}."""
    for prefix in (base, base.replace("127.0.0.1", "localhost")):
        if prefix and url.startswith(prefix):
            return "//HOST" + url[len(prefix):]
    return url


def cookie_pairs(reply: Reply) -> list[str]:
    """What C{Set-Cookie} sets: C{name=value} of each, attributes left out, sorted."""
    return sorted(value.split(";", 1)[0].strip() for value in reply.all("set-cookie"))


# Cookies whose values are nonces, random on each server and each run
# (/digest-auth's last_nonce): compared by name only.
NONCE_COOKIES = frozenset({"last_nonce"})


def cookies_set(reply: Reply) -> list[str]:
    """L{cookie_pairs} for comparing: a nonce cookie's value is C{NONCE}."""
    pairs = (pair.partition("=") for pair in cookie_pairs(reply))
    return [f"{name}=NONCE" if name in NONCE_COOKIES else f"{name}={value}"
            for name, _, value in pairs]


def allow_set(reply: Reply) -> set[str]:
    return {
        method.strip().upper()
        for value in reply.all("allow")
        for method in value.split(",")
        if method.strip()
    }


def auth_scheme(reply: Reply) -> str:
    value = reply.header("www-authenticate")
    return value.split(None, 1)[0].lower() if value else ""


def etag_shape(reply: Reply) -> tuple[bool, bool, str] | None:
    """An ETag as (weak, quoted, opaque value); None without one."""
    value = reply.header("etag")
    if value is None:
        return None
    match = ETAG.match(value.strip())
    assert match is not None  # the pattern matches any text
    return bool(match[1]), value.strip().removeprefix("W/").startswith('"'), match[2]


def compare(probe: Probe, ours: Reply, theirs: Reply) -> list[Difference]:
    """Every way netlab's answer (C{ours}) differs from httpbin's (C{theirs})."""
    found: list[Difference] = []

    def differ(aspect: str, mine: object, other: object, what: str = "") -> None:
        if mine != other:
            found.append(Difference(aspect, f"{what or aspect} {mine!r} vs httpbin {other!r}"))

    differ("status", ours.status, theirs.status)
    if found:
        # Another status is another answer: its type, headers and body follow from it.
        return found
    kind, charset = media_type(ours)
    their_kind, their_charset = media_type(theirs)
    # A redirect's or an error's body is read by people, not programs: its own aspect.
    differ(f"error-content-type:{kind}" if ours.status >= 300 else "content-type",
           kind, their_kind, "content-type")
    if kind == their_kind:
        differ("charset", charset, their_charset)
    differ(
        "location",
        relative_to(ours.header("location") or "", ours.base),
        relative_to(theirs.header("location") or "", theirs.base),
    )
    differ("allow", sorted(allow_set(ours)), sorted(allow_set(theirs)))
    differ("www-authenticate", auth_scheme(ours), auth_scheme(theirs), "WWW-Authenticate scheme")
    differ("content-encoding", ours.header("content-encoding"), theirs.header("content-encoding"))
    differ("content-range", ours.header("content-range"), theirs.header("content-range"))
    differ("set-cookie", cookies_set(ours), cookies_set(theirs), "cookies set")
    found.extend(_compare_etags(probe, ours, theirs))
    found.extend(_compare_bodies(probe, ours, theirs))
    return found


def _compare_etags(probe: Probe, ours: Reply, theirs: Reply) -> list[Difference]:
    mine, other = etag_shape(ours), etag_shape(theirs)
    if (mine is None) != (other is None):
        return [Difference("etag", f"ETag {ours.header('etag')!r} vs httpbin "
                                   f"{theirs.header('etag')!r}")]
    if mine is None or other is None:
        return []
    found = []
    if mine[:2] != other[:2]:
        found.append(Difference("etag-form", f"ETag {ours.header('etag')!r} vs httpbin "
                                             f"{theirs.header('etag')!r} (weak, quoted)"))
    if probe.exact and mine[2] != other[2]:
        found.append(Difference("etag", f"ETag value {mine[2]!r} vs httpbin {other[2]!r}"))
    return found


def _compare_bodies(probe: Probe, ours: Reply, theirs: Reply) -> list[Difference]:
    if probe.method == "HEAD" or not (ours.body or theirs.body):
        return []
    if ours.status >= 300 and not (is_json(ours) and is_json(theirs)):
        return []  # see error-content-type
    if is_json(ours) and is_json(theirs):
        mine, other = parse_json(ours.body), parse_json(theirs.body)
        if mine is not None and other is not None:
            return compare_documents(probe, mine, other, ours.base, theirs.base)
    if probe.exact and ours.body != theirs.body:
        return [Difference("body", f"body {len(ours.body)} bytes "
                                   f"{hashlib.sha256(ours.body).hexdigest()[:12]} vs httpbin "
                                   f"{len(theirs.body)} bytes "
                                   f"{hashlib.sha256(theirs.body).hexdigest()[:12]}")]
    return []


def compare_documents(
    probe: Probe, mine: list[Any], other: list[Any], my_base: str, their_base: str
) -> list[Difference]:
    """Two bodies' JSON documents (L{parse_json}): one each, or line by line."""
    if len(mine) != len(other):
        return [Difference("json-lines", f"{len(mine)} JSON lines vs httpbin {len(other)}")]
    if len(mine) == 1:
        return compare_json(probe, mine[0], other[0], my_base, their_base)
    found: set[Difference] = set()
    for mine_line, other_line in zip(mine, other, strict=True):
        found.update(compare_json(probe, mine_line, other_line, my_base, their_base, "[]"))
    return sorted(found, key=str)


def compare_json(
    probe: Probe, mine: Any, other: Any, my_base: str, their_base: str, where: str = ""
) -> list[Difference]:
    """The differences between two JSON documents: keys, then the values that must agree."""
    found: list[Difference] = []
    if not (isinstance(mine, dict) and isinstance(other, dict)):
        if mine != other:
            return [Difference("json", f"JSON {_short(mine)} vs httpbin {_short(other)}")]
        return []
    extra, missing = sorted(mine.keys() - other.keys()), sorted(other.keys() - mine.keys())
    for key in extra:
        found.append(Difference(f"json-extra:{key}", f"{where}extra key {key!r}"))
    for key in missing:
        found.append(Difference(f"json-missing:{key}", f"{where}no key {key!r}"))
    for key in sorted(mine.keys() & other.keys()):
        aspect, how = _value_difference(probe, key, mine[key], other[key], my_base, their_base)
        if how:
            found.append(Difference(aspect, f"{where}{key}: {how}"))
    return found


def _value_difference(
    probe: Probe, key: str, mine: Any, other: Any, my_base: str, their_base: str
) -> tuple[str, str]:
    """The aspect and how two values of C{key} differ; C{how} is "" when they agree."""
    aspect = f"json:{key}"
    if key == "url" and isinstance(mine, str) and isinstance(other, str):
        mine, other = relative_to(mine, my_base), relative_to(other, their_base)
        if unquote(mine) == unquote(other):
            aspect = "json:url-quoting"
    elif key == "uuid":
        mine, other = _is_uuid4(mine) or mine, _is_uuid4(other) or other
    elif key == "headers" and isinstance(mine, dict) and isinstance(other, dict):
        mine, other = _sent_headers(probe, mine), _sent_headers(probe, other)
    if mine == other:
        return aspect, ""
    return aspect, f"{_short(mine)} vs httpbin {_short(other)}"


def _sent_headers(probe: Probe, shown: dict[str, Any]) -> dict[str, Any]:
    """The entries of a C{headers} field for the headers the probe itself sent."""
    sent = {name.lower() for name, _ in probe.headers}
    return {name: value for name, value in shown.items() if name.lower() in sent}


def _is_uuid4(value: Any) -> bool:
    try:
        return isinstance(value, str) and uuid.UUID(value).version == 4
    except ValueError:
        return False


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Verdict:
    """A probe's result: every difference, split into intended (with reasons) and not."""

    probe: Probe
    unexpected: list[Difference] = field(default_factory=list)
    intended: list[tuple[Difference, Known]] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.unexpected or self.intended)

    def row(self) -> str:
        """
        The table's cell: C{same}; C{differs: HOW; ...} for unexpected
        differences (with a count of intended ones); C{intended: HOW; ...}.
        """
        if self.same:
            return "same"
        if not self.unexpected:
            return "intended: " + "; ".join(str(d) for d, _ in self.intended)
        row = "differs: " + "; ".join(str(d) for d in self.unexpected)
        return row + (f" (+{len(self.intended)} intended)" if self.intended else "")


def verdict(
    probe: Probe, ours: Reply, theirs: Reply, known: Sequence[Known] | None = None
) -> Verdict:
    """L{compare}, with each difference looked up in the C{known} table (L{KNOWN})."""
    result = Verdict(probe)
    for difference in compare(probe, ours, theirs):
        reason = next((k for k in (KNOWN if known is None else known)
                       if k.covers(probe, difference)), None)
        if reason is None:
            result.unexpected.append(difference)
        else:
            result.intended.append((difference, reason))
    return result


def summary(verdicts: Sequence[Verdict]) -> str:
    same = sum(v.same for v in verdicts)
    unexpected = sum(bool(v.unexpected) for v in verdicts)
    intended = len(verdicts) - same - unexpected
    return (f"{same} same, {len(verdicts) - same} differ "
            f"({intended} only as intended, {unexpected} unexpected)")


# -- the requests ------------------------------------------------------------


CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def digest_login(user: str, password: str, cnonce: str = "") -> FollowUp:
    """
    A follow-up that answers the first reply's Digest challenge (RFC 7616),
    sending back the cookies the challenge set; C{cnonce} is random unless given.
    """

    def answer(probe: Probe, challenge: Reply) -> Headers:
        value = challenge.header("www-authenticate") or ""
        params = {name: quoted or bare for name, quoted, bare in CHALLENGE_PARAM.findall(value)}
        algorithm = params.get("algorithm", "MD5")
        digest = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256,
                  "SHA-512": hashlib.sha512}.get(algorithm, hashlib.md5)

        def h(text: str) -> str:
            return digest(text.encode()).hexdigest()

        qop = params.get("qop", "auth").split(",")[0].strip()
        uri, nonce, count = probe.path, params.get("nonce", ""), "00000001"
        client_nonce = cnonce or secrets.token_hex(8)
        first = h(f"{user}:{params.get('realm', '')}:{password}")
        second = h(f"{probe.method}:{uri}")
        if qop == "auth-int":
            second = h(f"{probe.method}:{uri}:{digest(probe.body).hexdigest()}")
        response = h(f"{first}:{nonce}:{count}:{client_nonce}:{qop}:{second}")
        fields = {"username": user, "realm": params.get("realm", ""), "nonce": nonce,
                  "uri": uri, "response": response, "opaque": params.get("opaque", ""),
                  "algorithm": algorithm, "cnonce": client_nonce}
        header = "Digest " + ", ".join(f'{k}="{v}"' for k, v in fields.items())
        header += f", qop={qop}, nc={count}"
        cookies = "; ".join(cookie_pairs(challenge))
        return (("Authorization", header),) + ((("Cookie", cookies),) if cookies else ())

    return answer


def same_etag(probe: Probe, first: Reply) -> Headers:
    """A follow-up that asks again with If-None-Match: the ETag just received."""
    tag = first.header("etag")
    return (("If-None-Match", tag),) if tag else ()


def basic(user: str, password: str) -> Headers:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return (("Authorization", f"Basic {token}"),)


FORM = (("Content-Type", "application/x-www-form-urlencoded"),)
JSON = (("Content-Type", "application/json"),)
TEXT = (("Content-Type", "text/plain"),)
BOUNDARY = "netlab-parity-boundary"
MULTIPART = (("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),)
MULTIPART_BODY = (
    f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n"
    f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"datafile\"; "
    f"filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\n\r\n"
    f"--{BOUNDARY}--\r\n"
).encode()
GZIP = (("Accept-Encoding", "gzip"),)


def probes() -> list[Probe]:
    """Every httpbin 0.10 route with its methods, typical parameters and error cases."""
    p = Probe
    listing = [
        # Inspection.
        p("GET", "/get"),
        p("GET", "/get?a=1&b=two&b=three", (("X-Parity", "yes"),)),
        p("GET", "/get?q=caf%C3%A9&empty=", note="UTF-8 and empty args"),
        p("HEAD", "/get"),
        p("OPTIONS", "/get"),
        p("POST", "/get", FORM, b"x=1", note="wrong method"),
        p("GET", "/headers", (("X-Custom", "value"), ("Accept", "*/*"))),
        p("GET", "/ip"),
        p("GET", "/user-agent", (("User-Agent", "parity/1.0"),)),
        p("GET", "/uuid"),
        # The methods: /anything takes every one; /post, /put ... only their own.
        p("GET", "/anything?x=1"),
        p("GET", "/anything/sub/path?x=1"),
        p("POST", "/anything", FORM, b"a=1&a=2&b=3", note="form"),
        p("POST", "/anything", JSON, b'{"k": [1, 2]}', note="JSON"),
        p("PUT", "/anything", TEXT, b"plain text", note="text"),
        p("PATCH", "/anything", JSON, b'{"k": null}', note="JSON"),
        p("DELETE", "/anything"),
        p("TRACE", "/anything"),
        p("POST", "/post", FORM, b"name=x&foo=bar", note="form"),
        p("POST", "/post", JSON, b'{"a": 1, "b": "two"}', note="JSON"),
        p("POST", "/post", JSON, b'{"a": ', note="broken JSON"),
        p("POST", "/post", TEXT, b"just text", note="text"),
        p("POST", "/post", MULTIPART, MULTIPART_BODY, note="multipart with a file"),
        p("POST", "/post", note="no body"),
        p("GET", "/post", note="wrong method"),
        p("PUT", "/put", JSON, b'{"a": 1}'),
        p("PATCH", "/patch", FORM, b"a=1"),
        p("DELETE", "/delete?x=1"),
        p("GET", "/put", note="wrong method"),
        p("GET", "/delete", note="wrong method"),
        # Status codes.
        *(p("GET", f"/status/{code}")
          for code in (200, 201, 204, 301, 302, 304, 401, 402, 404, 406, 407, 418, 500, 503)),
        p("GET", "/status/406", (("Accept", "application/json"),), note="Accept: JSON"),
        p("POST", "/status/201"),
        p("PUT", "/status/404"),
        p("GET", "/status/200:1,500:0"),
        p("GET", "/status/abc"),
        p("GET", "/status/200:x,500:1", note="bad weight"),
        # Response headers.
        p("GET", "/response-headers?X-Foo=bar&X-Foo=baz&freeform=hi"),
        p("POST", "/response-headers?X-Foo=bar"),
        p("GET", "/response-headers?Content-Type=text/plain"),
        # Redirects (never followed).
        p("GET", "/redirect/1"),
        p("GET", "/redirect/3"),
        p("GET", "/redirect/3?absolute=true"),
        p("GET", "/redirect/0"),
        p("GET", "/redirect/21", note="over netlab's cap"),
        p("GET", "/relative-redirect/1"),
        p("GET", "/relative-redirect/2"),
        p("GET", "/absolute-redirect/1"),
        p("GET", "/absolute-redirect/2"),
        p("GET", "/redirect-to?url=/get"),
        p("GET", "/redirect-to?url=/get&status_code=307"),
        p("GET", "/redirect-to?url=/get&status_code=200", note="not a redirect code"),
        p("POST", "/redirect-to?url=/get&status_code=303"),
        p("GET", "/redirect-to?url=http://example.com/", note="another host"),
        p("GET", "/redirect-to", note="no url"),
        # Cookies.
        p("GET", "/cookies", (("Cookie", "a=1; b=two"),)),
        p("GET", "/cookies"),
        p("GET", "/cookies/set?k1=v1&k2=v2"),
        p("GET", "/cookies/set/name/value"),
        p("GET", "/cookies/delete?a", (("Cookie", "a=1; b=2"),)),
        # Authentication, right and wrong.
        p("GET", "/basic-auth/user/passwd", basic("user", "passwd"), note="right"),
        p("GET", "/basic-auth/user/passwd", basic("user", "wrong"), note="wrong"),
        p("GET", "/basic-auth/user/passwd", note="none"),
        p("GET", "/hidden-basic-auth/user/passwd", basic("user", "passwd"), note="right"),
        p("GET", "/hidden-basic-auth/user/passwd", basic("user", "wrong"), note="wrong"),
        p("GET", "/bearer", (("Authorization", "Bearer abc123"),), note="token"),
        p("GET", "/bearer", note="none"),
        p("GET", "/bearer", (("Authorization", "Basic dXNlcjpwYXNzd2Q="),), note="not bearer"),
        p("GET", "/digest-auth/auth/user/passwd", note="none"),
        p("GET", "/digest-auth/auth/user/passwd", note="right",
          then=digest_login("user", "passwd")),
        p("GET", "/digest-auth/auth/user/passwd", note="wrong",
          then=digest_login("user", "nope")),
        p("GET", "/digest-auth/auth/user/passwd/SHA-256", note="right",
          then=digest_login("user", "passwd")),
        p("GET", "/digest-auth/auth-int/user/passwd/MD5/never", note="right",
          then=digest_login("user", "passwd")),
        p("GET", "/digest-auth/bogus/user/passwd", note="bad qop"),
        # Compressed bodies (decoded before comparing).
        p("GET", "/gzip", GZIP),
        p("GET", "/deflate", (("Accept-Encoding", "deflate"),)),
        p("GET", "/brotli", (("Accept-Encoding", "br"),)),
        # Generated bodies: random ones from the same seed must be the same.
        p("GET", "/bytes/16"),
        p("GET", "/bytes/16?seed=7", exact=True),
        p("GET", "/bytes/200000", note="over the cap"),
        p("GET", "/stream-bytes/32?seed=7&chunk_size=5", exact=True),
        p("GET", "/stream-bytes/200000?seed=1", note="over the cap"),
        p("GET", "/stream/3"),
        p("GET", "/stream/101", note="over the cap"),
        p("GET", "/delay/0"),
        p("POST", "/delay/0", FORM, b"a=1"),
        p("GET", "/delay/abc"),
        p("GET", "/drip?numbytes=5&duration=0&delay=0", exact=True),
        p("GET", "/drip?numbytes=0&duration=0", note="no bytes"),
        p("GET", "/drip?numbytes=3&duration=0&code=202"),
        p("GET", "/range/26", exact=True),
        p("GET", "/range/26", (("Range", "bytes=0-9"),), exact=True),
        p("GET", "/range/26", (("Range", "bytes=20-"),), exact=True),
        p("GET", "/range/26", (("Range", "bytes=30-40"),), note="unsatisfiable"),
        p("GET", "/range/0"),
        p("GET", "/range/200000", note="over the cap"),
        p("GET", "/base64/SFRUUEJJTiBpcyBhd2Vzb21l", exact=True),
        p("GET", "/base64/!!notbase64", note="bad data"),
        p("GET", "/links/3/1", exact=True),
        p("GET", "/links/3"),
        # Caching and conditional requests.
        p("GET", "/cache"),
        p("GET", "/cache", (("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"),)),
        p("GET", "/cache", (("If-None-Match", '"x"'),)),
        p("GET", "/cache/60"),
        p("GET", "/etag/abc", exact=True),
        p("GET", "/etag/abc", (("If-None-Match", '"abc"'),), exact=True),
        p("GET", "/etag/abc", (("If-None-Match", '"zzz"'),), exact=True),
        p("GET", "/etag/abc", (("If-Match", '"zzz"'),), exact=True),
        p("GET", "/etag/abc", (("If-Match", '"abc"'),), exact=True),
        # Fixed documents.
        p("GET", "/json", exact=True),
        p("GET", "/html"),
        p("GET", "/xml", exact=True),
        p("GET", "/robots.txt", exact=True),
        p("GET", "/deny", exact=True),
        p("GET", "/encoding/utf8"),
        p("GET", "/forms/post"),
        # Images, chosen by Accept or named.
        *(p("GET", "/image", (("Accept", accept),), note=f"Accept: {accept}")
          for accept in ("image/webp", "image/svg+xml", "image/jpeg", "image/png", "image/*",
                         "text/plain")),
        *(p("GET", f"/image/{kind}", exact=True) for kind in ("png", "jpeg", "svg", "webp")),
        # A static file (netlab's static_dir is httpbin's static folder).
        p("GET", "/static/favicon.ico", exact=True),
        p("GET", "/static/favicon.ico", note="If-None-Match: its ETag", then=same_etag),
        p("GET", "/static/favicon.ico", (("Range", "bytes=0-9"),), exact=True),
        p("GET", "/static/nothing-here"),
        # Neither has these.
        p("GET", "/no-such-route"),
        p("GET", "/"),
    ]
    return listing


# httpbin 0.10.4's routes (its Flask url_map), each of which probes() must
# reach: tests/test_conformance_parity.py checks it, and a run compares it
# with the url_map of the httpbin it starts.
HTTPBIN_ROUTES = (
    "/", "/absolute-redirect/<int:n>", "/anything", "/anything/<path:anything>",
    "/base64/<value>", "/basic-auth/<user>/<passwd>", "/bearer", "/brotli", "/bytes/<int:n>",
    "/cache", "/cache/<int:value>", "/cookies", "/cookies/delete", "/cookies/set",
    "/cookies/set/<name>/<value>", "/deflate", "/delay/<delay>", "/delete", "/deny",
    "/digest-auth/<qop>/<user>/<passwd>", "/digest-auth/<qop>/<user>/<passwd>/<algorithm>",
    "/digest-auth/<qop>/<user>/<passwd>/<algorithm>/<stale_after>", "/drip",
    "/encoding/utf8", "/etag/<etag>", "/forms/post", "/get", "/gzip", "/headers",
    "/hidden-basic-auth/<user>/<passwd>", "/html", "/image", "/image/jpeg", "/image/png",
    "/image/svg", "/image/webp", "/ip", "/json", "/links/<int:n>", "/links/<int:n>/<int:offset>",
    "/patch", "/post", "/put", "/range/<int:numbytes>", "/redirect-to", "/redirect/<int:n>",
    "/relative-redirect/<int:n>", "/response-headers", "/robots.txt", "/static/<path:filename>",
    "/status/<codes>", "/stream-bytes/<int:n>", "/stream/<int:n>", "/user-agent", "/uuid",
    "/xml",
)


def route_pattern(route: str) -> re.Pattern[str]:
    """A Flask rule as a regular expression over a request's path (without its query)."""
    parts = re.split(r"(<[^>]+>)", route)
    pattern = "".join(
        ("[0-9]+" if part.startswith("<int:") else ".+" if part.startswith("<path:") else "[^/]+")
        if part.startswith("<") else re.escape(part)
        for part in parts
    )
    return re.compile(pattern)


def unprobed(routes: Sequence[str], listing: Sequence[Probe]) -> list[str]:
    """The routes no probe in C{listing} reaches."""
    paths = [probe.path.partition("?")[0] for probe in listing]
    return [r for r in routes if not any(route_pattern(r).fullmatch(p) for p in paths)]


# The differences netlab makes on purpose.  Probe patterns are fnmatch
# patterns over Probe.name ("METHOD /path (note)"); aspects over
# Difference.aspect.
KNOWN: tuple[Known, ...] = (
    Known("GET /", "*",
          "netlab's / is the course's front page (the dashboard, the classic report), "
          "not httpbin's landing page"),
    Known("*", "|".join(f"json-extra:{key}" for key in (
              "client_host", "client_port", "server_host", "server_port", "http_version",
              "path", "query", "method")),
          "the inspection routes also report the client's port, the server side, the HTTP "
          "version, the path and the query (and /get its method)"),
    Known("*", "json:url-quoting",
          "url is the target as the client sent it, percent-encoded; httpbin (Werkzeug) "
          "decodes it into an IRI"),
    Known("*multipart*", "json:files",
          "uploads are described by name, type, size and sha256, not echoed"),
    Known("*", "error-content-type:text/plain",
          "a redirect or an error carries one plain-text line; httpbin sends HTML or nothing"),
    Known("* /status/*", "content-type|charset",
          "/status/CODE answers the code and reason as one plain-text line; httpbin an "
          "empty body (text/html, or no type) or its own picture"),
    Known("OPTIONS *", "status",
          "OPTIONS is 204 No Content with Allow; httpbin 200 with an empty HTML body"),
    Known("GET /redirect/0|GET /delay/abc|GET /range/0", "status",
          "bad input is a 400 line; httpbin fails with a 500 (a 404 for /range/0)"),
    Known("*", "error-content-type:",
          "an error without a body (416) names no Content-Type; httpbin says text/plain"),
    Known("*over the cap*|*over netlab's cap*", "status",
          "a number over its [http] cap (max_bytes, max_stream, max_redirects) is a 400 "
          "naming the setting; httpbin silently clamps"),
    Known("GET /redirect-to?url=http://example.com/ (another host)", "status",
          "no open redirect: only relative URLs or [http] redirect_hosts"),
    Known("GET /redirect-to (no url)|GET /redirect-to?url=/get&status_code=200*", "status",
          "/redirect-to without a url or with a status_code that is not 3xx is a 400; httpbin "
          "redirects anyway (to 'None', or with 302)"),
    Known("GET /relative-redirect/*", "location",
          "/relative-redirect sends paths relative to the current one (1, ../get), which "
          "survive a proxy's prefix; httpbin sends absolute paths"),
    Known("GET /etag/*|GET /range/*", "etag-form",
          "the entity-tag is sent quoted, as RFC 9110 requires; httpbin sends it bare "
          "(httplint warns)"),
    Known("GET /range/26", "content-range",
          "Content-Range only with a 206 or 416; httpbin also sends it with the whole "
          "(httplint warns)"),
    Known("GET /robots.txt|GET /deny", "charset",
          "plain text names its charset (utf-8); httpbin names none"),
    Known("GET /static/*", "etag-form|etag",
          "/static/ sends a weak ETag made of size and mtime; httpbin (Flask) a strong one "
          "of mtime, size and a hash of the path"),
    Known("GET /response-headers?Content-Type=*", "content-type",
          "a Content-Type asked for replaces application/json; httpbin sends both headers"),
    Known("GET /base64/*", "content-type|charset|status",
          "decoded base64 is plain text, never HTML, and bad base64 is a 400 line"),
    Known("GET /cache (If-*", "status|content-type|etag",
          "/cache answers a conditional request as RFC 9110 says (304 only when the ETag "
          "matches or it is not modified since); httpbin 304s on any such header"),
    Known("GET /cache", "etag-form",
          "/cache's ETag is fixed and quoted, so a client can revalidate with it; httpbin's "
          "is a bare random uuid on every answer, which no If-None-Match can match"),
    Known("* /delay/*", "json-extra:delay",
          "/delay/N also says how long it waited"),
    Known("GET /image/*", "body",
          "netlab ships its own small images (httpbin's are not ours to ship): the same "
          "type, another picture"),
)


# -- talking to a server -----------------------------------------------------


BrotliDecoder = Callable[[bytes], bytes]


def decode_body(body: bytes, coding: str | None, brotli: BrotliDecoder | None) -> bytes:
    """Undo a content coding so bodies can be compared; unknown or broken ones are kept."""
    coding = (coding or "").strip().lower()
    try:
        if coding == "gzip":
            return gzip.decompress(body)
        if coding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if coding == "br" and brotli is not None:
            return brotli(body)
    except (OSError, EOFError, zlib.error):
        pass
    return body


def exchange(
    base: str, port: int, method: str, path: str, headers: Headers, body: bytes,
    brotli: BrotliDecoder | None = None,
) -> Reply:
    """One request on a fresh connection with http.client; redirects are not followed."""
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if body or method in ("POST", "PUT", "PATCH"):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        raw = response.read()
        pairs = tuple((name.lower(), value) for name, value in response.getheaders())
        status = response.status
    finally:
        connection.close()
    reply = Reply(status, pairs, raw, base)
    coding = reply.header("content-encoding")
    return Reply(status, pairs, decode_body(raw, coding, brotli), base)


def ask(server: Server, probe: Probe, brotli: BrotliDecoder | None) -> Reply:
    """Send C{probe} to C{server}; with a follow-up, twice, and the second answer."""
    headers = probe.headers
    if not any(name.lower() == "user-agent" for name, _ in headers):
        headers = (("User-Agent", "netlab-parity"), *headers)
    reply = exchange(server.base, server.port, probe.method, probe.path, headers, probe.body,
                     brotli)
    if probe.then is not None:
        reply = exchange(server.base, server.port, probe.method, probe.path,
                         headers + probe.then(probe, reply), probe.body, brotli)
    return reply


# -- the two servers ---------------------------------------------------------


@dataclass
class Server:
    """A server process we started, its port, and what it has logged."""

    name: str
    process: subprocess.Popen[str]
    port: int
    lines: list[str]

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it is still there after 15 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, argv: Sequence[str], ready: re.Pattern[str], cwd: Path,
          port_of: Callable[[list[str]], int | None]) -> Server:
    """
    Start C{argv}, reading its log until a line matches C{ready}; the port
    is what C{port_of} finds in the lines so far.
    """
    process = subprocess.Popen(
        list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    lines: list[str] = []
    arrived: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, arrived, lines), daemon=True).start()
    server = Server(name, process, 0, lines)
    try:
        while True:
            line = arrived.get(timeout=STARTUP_TIMEOUT)
            if line is None:
                raise RuntimeError(f"{name} exited while starting:\n" + "\n".join(lines))
            if ready.search(line):
                break
        port = port_of(lines)
        if port is None:
            raise RuntimeError(f"{name} said no port:\n" + "\n".join(lines))
        server.port = port
    except BaseException:
        server.stop()
        raise
    return server


def _pump(stream: IO[str], arrived: queue.Queue[str | None], lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))
        arrived.put(lines[-1])
    arrived.put(None)


def ensure_venv(path: Path = DEFAULT_VENV) -> Path:
    """
    The venv with httpbin, gunicorn and httplint, made (or remade, when the
    pins changed) with this Python's venv module and pip; its python.
    """
    python = path / "bin" / "python"
    stamp = path / PINS_STAMP
    wanted = "\n".join(HTTPBIN_PINS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"parity: making {path} with {' '.join(HTTPBIN_PINS)}", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *HTTPBIN_PINS], check=True)
    stamp.write_text(wanted)
    return python


def httpbin_static_dir(python: Path) -> Path:
    """httpbin's own static folder, which netlab serves too, so /static/ has the same file."""
    found = subprocess.run(
        [str(python), "-c", "import importlib.util, os; "
         "print(os.path.dirname(importlib.util.find_spec('httpbin').origin))"],
        check=True, capture_output=True, text=True,
    )
    return Path(found.stdout.strip()) / "static"


GUNICORN_READY = re.compile(r"Booting worker with pid")
GUNICORN_PORT = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
NETLAB_READY = re.compile(r"\[netlab#info\] netlab ready:")
NETLAB_PORT = re.compile(r"\] http: listening on tcp 127\.0\.0\.1:(\d+)$")


def first_port(pattern: re.Pattern[str]) -> Callable[[list[str]], int | None]:
    def find(lines: list[str]) -> int | None:
        for line in lines:
            match = pattern.search(line)
            if match:
                return int(match[1])
        return None

    return find


def start_httpbin(python: Path, workdir: Path) -> Server:
    """gunicorn httpbin:app on 127.0.0.1, a port the kernel picks, one sync worker."""
    argv = [str(python.with_name("gunicorn")), "--bind", f"{HOST}:0", "--workers", "1",
            "--no-control-socket", "--timeout", "60", "httpbin:app"]
    return start("httpbin", argv, GUNICORN_READY, workdir, first_port(GUNICORN_PORT))


def netlab_config(static_dir: Path) -> str:
    """A config running only the web site, on a free loopback port, serving C{static_dir}."""
    return (
        "udp_echo = []\necho = []\n\n[chat]\nenabled = false\n\n[http]\n"
        f'listen = ["tcp:0:interface={HOST}"]\n'
        f"static_dir = {json.dumps(str(static_dir))}\n"
    )


def start_netlab(workdir: Path, static_dir: Path, twistd: Path | None = None) -> Server:
    """The real daemon, C{twistd -n netlab}, with L{netlab_config}."""
    config = workdir / "netlab.toml"
    config.write_text(netlab_config(static_dir))
    twistd = twistd or Path(sys.executable).with_name("twistd")
    argv = [str(twistd), "-n", "--pidfile=", "netlab", "--config", str(config)]
    return start("netlab", argv, NETLAB_READY, workdir, first_port(NETLAB_PORT))


@contextmanager
def both_servers(venv_path: Path = DEFAULT_VENV) -> Iterator[tuple[Server, Server, Path]]:
    """httpbin and netlab, running; yields (netlab, httpbin, httpbin venv's python)."""
    python = ensure_venv(venv_path)
    static_dir = httpbin_static_dir(python)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parity-")))
        (workdir / "httpbin").mkdir()
        (workdir / "netlab").mkdir()
        httpbin = start_httpbin(python, workdir / "httpbin")
        stack.callback(httpbin.stop)
        netlab = start_netlab(workdir / "netlab", static_dir)
        stack.callback(netlab.stop)
        yield netlab, httpbin, python


def httpbin_routes(python: Path) -> list[str]:
    """The rules of the installed httpbin's url_map (its static files' included)."""
    found = subprocess.run(
        [str(python), "-c", "import httpbin; print('\\n'.join(r.rule for r in "
         "httpbin.app.url_map.iter_rules()))"],
        check=True, capture_output=True, text=True,
    )
    return found.stdout.split()


def brotli_decoder(python: Path) -> BrotliDecoder:
    """Brotli decoding by the httpbin venv's python, which has the module (netlab's need not)."""

    def decode(body: bytes) -> bytes:
        done = subprocess.run(
            [str(python), "-c", "import brotli, sys; "
             "sys.stdout.buffer.write(brotli.decompress(sys.stdin.buffer.read()))"],
            input=body, capture_output=True, timeout=30,
        )
        return done.stdout if done.returncode == 0 else body

    return decode


# -- the report --------------------------------------------------------------


def report(verdicts: Sequence[Verdict], out: IO[str] = sys.stdout, every: bool = True) -> int:
    """
    Print the table, the intended differences with their reasons (and, when
    C{every} probe ran, the known ones not seen), the summary; the exit status.
    """
    width = max(len(v.probe.name) for v in verdicts)
    for v in verdicts:
        print(f"{v.probe.name:<{width}}  {v.row()}", file=out)
    used: dict[Known, list[str]] = {}
    for v in verdicts:
        for _, reason in v.intended:
            names = used.setdefault(reason, [])
            if v.probe.name not in names:
                names.append(v.probe.name)
    if used:
        print("\nIntended differences:", file=out)
        for reason, names in used.items():
            some = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            print(f"* {reason.reason}: {some}", file=out)
    unused = [k for k in KNOWN if k not in used] if every else []
    if unused:
        print("\nKnown differences not seen this run:", file=out)
        for reason in unused:
            print(f"* {reason.probes} ({reason.aspect}): {reason.reason}", file=out)
    unexpected = [v for v in verdicts if v.unexpected]
    print(f"\nhttpbin parity: {summary(verdicts)}", file=out)
    return 1 if unexpected else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help=f"httpbin's venv (default {DEFAULT_VENV})")
    parser.add_argument("--only", default="",
                        help="only the requests whose name contains this text")
    parser.add_argument("--show", action="store_true",
                        help="print both answers (status, headers, body) under each row")
    args = parser.parse_args(argv)
    chosen = [probe for probe in probes() if args.only in probe.name]
    verdicts = []
    with both_servers(args.venv) as (netlab, httpbin, python):
        live = httpbin_routes(python)
        if set(live) != set(HTTPBIN_ROUTES):
            print(f"parity: httpbin's routes changed: new {sorted(set(live) - set(HTTPBIN_ROUTES))}"
                  f", gone {sorted(set(HTTPBIN_ROUTES) - set(live))}", file=sys.stderr)
        brotli = brotli_decoder(python)
        for probe in chosen:
            ours, theirs = ask(netlab, probe, brotli), ask(httpbin, probe, brotli)
            verdicts.append(verdict(probe, ours, theirs))
            if args.show:
                print(f"== {probe.name}\n{show(ours, 'netlab')}{show(theirs, 'httpbin')}")
    return report(verdicts, every=not args.only)


def show(reply: Reply, who: str, limit: int = 600) -> str:
    """An answer as text, for --show: status, headers, the start of the body."""
    lines = [f"-- {who}: {reply.status}"]
    lines += [f"   {name}: {value}" for name, value in reply.headers]
    body = reply.body[:limit].decode("utf-8", "replace")
    lines += ["   " + line for line in body.splitlines()]
    if len(reply.body) > limit:
        lines.append(f"   ... ({len(reply.body)} bytes)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
