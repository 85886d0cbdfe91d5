"""
httpbin-style endpoints for practising with HTTP clients: chosen status
codes, slow answers, random bytes, streams, redirects, cookies, Basic
authentication, compression and conditional requests.

Every number in a path is checked against the C{[http]} limits before
anything is done, and an over-limit or malformed request gets one 400 line
naming what is wrong (never echoing the request). Reflected data is only
ever served as JSON or plain text.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import random
import re
import struct
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from twisted.web import http, pages
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.forms import describe_body
from netlab.protocols.http.inspect import Inspector, bad_request, send_json
from netlab.protocols.http.multipart import ParseError

STATUS_CODE = re.compile(r"[1-5][0-9]{2}")
WHOLE = re.compile(r"[0-9]{1,9}")
SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")
WEIGHT = re.compile(r"[0-9]{1,9}(\.[0-9]{0,9})?|\.[0-9]{1,9}")
# RFC 6265: a cookie name is an RFC 7230 token, a value is cookie-octets.
COOKIE_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
COOKIE_VALUE = re.compile(rb"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
# Browsers drop tabs and newlines from URLs and read "\" as "/", so a
# Location with any of them can point somewhere other than it seems to.
UNSAFE_URL = re.compile(r"[^\x21-\x7e]|\\")
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
CACHE_LAST_MODIFIED = 1_704_067_200  # 2024-01-01 00:00:00 UTC: fixed on purpose
CACHE_ETAG = b'"netlab-cache-1"'
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# What httpbin's /delay/N answers (netlab adds the delay).
DELAY_FIELDS = ("args", "data", "files", "form", "headers", "origin", "url")
# httpbin's /status/3xx Location: a redirect chain of one that ends at /get.
# 308 too, which httpbin leaves out: RFC 9110 wants a Location with it as
# with 301, 302, 303 and 307.
STATUS_REDIRECTS = frozenset({301, 302, 303, 305, 307, 308})
STATUS_LOCATION = b"/redirect/1"
# httpbin's Basic challenge (its realm is a fake one: the credentials are in
# the URL), with RFC 7617's charset, which tells clients to send UTF-8.
BASIC_CHALLENGE = b'Basic realm="Fake Realm", charset="UTF-8"'


def json_body(request: Request, data: object) -> bytes:
    """C{data} as an C{application/json} body."""
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return json.dumps(data, indent=2).encode() + b"\n"


def text_body(request: Request, text: str) -> bytes:
    """C{text} as a plain-text body: never HTML, whatever it contains."""
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return text.encode()


def no_store(request: Request) -> None:
    """
    Marks a generated body (random bytes, a stream, a delayed answer) as not
    to be stored: each request makes a new one, and a cache that kept one
    would hide the very behaviour a student is trying to watch.
    """
    request.setHeader(b"Cache-Control", b"no-store")


class Refusal(Resource):
    """
    The site's one-line plain-text 400 (L{inspect.bad_request}) as a
    resource, for a C{getChild} that finds a bad value in the path: the same
    answer whatever the method, and whatever lies below.
    """

    isLeaf = True

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why

    def render(self, request: Request) -> bytes:
        return bad_request(request, self.why)


class Leaf(Resource):
    """A resource with nothing below it: any longer path is 404."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        return pages.notFound()


class Numbered(Resource):
    """
    C{/NAME/NUMBER}: the number is parsed and checked against its limit
    here, so the leaf that C{make} builds only ever sees a valid one.
    """

    def __init__(
        self,
        usage: str,
        pattern: re.Pattern[str],
        convert: Callable[[str], float],
        lowest: float,
        limit: float,
        setting: str,
        make: Callable[[Any], IResource],
    ) -> None:
        super().__init__()
        self.usage = usage
        self.pattern = pattern
        self.convert = convert
        self.lowest = lowest
        self.limit = limit
        self.setting = setting
        self.make = make

    def getChild(self, path: bytes, request: Request) -> IResource:
        text = path.decode("ascii", "replace")
        if not self.pattern.fullmatch(text) or self.convert(text) < self.lowest:
            return Refusal(self.usage)
        value = self.convert(text)
        if value > self.limit:
            # text matched the pattern: only digits (and a point) are echoed.
            limit = f"{self.limit:g}" if isinstance(self.limit, float) else str(self.limit)
            return Refusal(f"{text} is over the limit: {self.setting} is {limit}")
        return self.make(value)

    def render_GET(self, request: Request) -> object:
        return bad_request(request, self.usage)

    render_HEAD = render_GET


class StatusRoot(Resource):
    """C{/status/CODE} or C{/status/CODE,CODE,...} (one chosen at random)."""

    usage = (
        "use /status/CODE or /status/CODE,CODE,... (or CODE:WEIGHT,...)"
        " with codes from 200 to 599"
    )

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def getChild(self, path: bytes, request: Request) -> IResource:
        items = [text.partition(":") for text in path.decode("ascii", "replace").split(",")]
        if not all(STATUS_CODE.fullmatch(code) for code, _, _ in items):
            return Refusal(self.usage)
        codes = [int(code) for code, _, _ in items]
        if any(code < 200 for code in codes):
            # A 1xx is never a final answer: a client would wait for another.
            return Refusal("1xx codes are informational, not a final answer: " + self.usage)
        if not any(colon for _, colon, _ in items):
            return StatusCode(codes, self.rng)
        # httpbin's CODE:WEIGHT, a missing weight counting 1.
        weights = [
            (float(weight) if WEIGHT.fullmatch(weight) else -1.0) if colon else 1.0
            for _, colon, weight in items
        ]
        if min(weights) < 0 or sum(weights) <= 0:
            return Refusal(
                "a weight must be a number, e.g. /status/200:0.9,500:0.1, and not all zero"
            )
        return StatusCode(codes, self.rng, weights)

    def render_GET(self, request: Request) -> object:
        return bad_request(request, self.usage)

    render_HEAD = render_GET


class StatusCode(Leaf):
    """Answers with one of its codes, and a body only where one is allowed."""

    def __init__(
        self, codes: list[int], rng: random.Random, weights: list[float] | None = None
    ) -> None:
        super().__init__()
        self.codes = codes
        self.rng = rng
        self.weights = weights

    def render_GET(self, request: Request) -> object:
        if self.weights is None:
            code = self.rng.choice(self.codes)
        else:
            code = self.rng.choices(self.codes, self.weights)[0]
        request.setResponseCode(code)
        if code in http.NO_BODY_CODES:
            # Neither a body nor a Content-Length may follow a 204 or 304.
            request.write(b"")
            request.finish()
            return NOT_DONE_YET
        if code == http.RESET_CONTENT:
            return b""
        if code in STATUS_REDIRECTS:
            request.setHeader(b"Location", STATUS_LOCATION)
        if code == http.UNAUTHORIZED:
            request.setHeader(b"WWW-Authenticate", BASIC_CHALLENGE)
        phrase = http.RESPONSES.get(code, b"Unknown Status").decode("ascii", "replace")
        return text_body(request, f"{code} {phrase}\n")

    render_HEAD = render_POST = render_PUT = render_PATCH = render_DELETE = render_GET


class Delay(Leaf):
    """
    Answers after C{seconds}, without blocking, unless the client leaves
    first: httpbin's description of the request and its body (parsed when
    it arrives, so a malformed one is refused at once), and the delay.
    """

    def __init__(self, seconds: float, reactor: Any, inspector: Inspector) -> None:
        super().__init__()
        self.seconds = seconds
        self.reactor = reactor
        self.inspector = inspector

    def render_GET(self, request: Request) -> object:
        seen = self.inspector.describe(request)
        try:
            seen.update(describe_body(request))
        except ParseError as error:
            return bad_request(request, str(error))
        answer = {key: seen[key] for key in DELAY_FIELDS}
        answer["delay"] = self.seconds
        call = self.reactor.callLater(self.seconds, self._answer, request, answer)

        def gone(reason: object) -> None:
            if call.active():
                call.cancel()

        request.notifyFinish().addErrback(gone)
        return NOT_DONE_YET

    def _answer(self, request: Request, answer: dict[str, Any]) -> None:
        body = send_json(request, answer)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()

    render_HEAD = render_POST = render_PUT = render_PATCH = render_DELETE = render_GET


def httpbin_random(seed: int, count: int) -> bytes:
    """
    C{count} bytes from C{seed} exactly as httpbin makes them, one
    C{Random(seed).randint(0, 255)} each, so a seeded body is the one a test
    recorded against httpbin, but some ten times faster: CPython draws each
    as the top 9 bits of the next 32-bit Mersenne Twister word, taken if
    under 256, which is the top bit clear and the byte the next 8 bits. The
    words come C{getrandbits} at a time, least significant first.
    """
    source = random.Random(seed)
    found = bytearray()
    while len(found) < count:
        # Half the words are taken; ask for a few more than that.
        words = 2 * (count - len(found)) + 16
        block = source.getrandbits(32 * words).to_bytes(4 * words, "little")
        found += bytes(
            word >> 23 for (word,) in struct.iter_unpack("<I", block) if word < 0x80000000
        )
    return bytes(found[:count])


class RandomBytes(Leaf):
    """C{count} random bytes; C{?seed=} makes them the same every time: httpbin's."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def render_GET(self, request: Request) -> object:
        seed = (request.args or {}).get(b"seed")
        if seed is None:
            data = os.urandom(self.count)
        elif WHOLE.fullmatch(seed[0].decode("ascii", "replace")):
            data = httpbin_random(int(seed[0]), self.count)
        else:
            return bad_request(request, "seed must be a whole number")
        request.setHeader(b"Content-Type", b"application/octet-stream")
        no_store(request)
        return data

    render_HEAD = render_GET


class Stream(Leaf):
    """
    C{count} JSON lines, each written as it is made (chunked in HTTP/1.1):
    httpbin's, the request's C{url}, C{args}, C{headers} and C{origin} with
    the line's C{id}, one compact document a line.
    """

    def __init__(self, count: int, inspector: Inspector) -> None:
        super().__init__()
        self.count = count
        self.inspector = inspector

    def render_GET(self, request: Request) -> object:
        seen = self.inspector.describe(request)
        line = {key: seen[key] for key in ("url", "args", "headers", "origin")}
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        no_store(request)
        for number in range(self.count):
            request.write(json.dumps({**line, "id": number}).encode() + b"\n")
        request.finish()
        return NOT_DONE_YET

    render_HEAD = render_GET


class Redirect(Leaf):
    """
    One step of a redirect chain: C{hops} more to go, ending at C{/get}.
    C{/redirect/N} goes on, as httpbin's does, at C{/relative-redirect/N-1}
    (or C{/get}); C{/relative-redirect} sends paths relative to the current
    one, which survive being mounted under a proxy's prefix;
    C{/absolute-redirect} full URLs.
    """

    def __init__(self, hops: int, *, relative: bool, absolute: bool = False) -> None:
        super().__init__()
        self.hops = hops
        self.relative = relative
        self.absolute = absolute

    def location(self, request: Request) -> str:
        """
        The next hop. With C{?absolute=true} (httpbin's), C{/redirect/N}
        continues as C{/absolute-redirect}: full URLs, as old clients and
        some proxies want to see.
        """
        absolute = self.absolute or (
            not self.relative
            and (request.args or {}).get(b"absolute", [b""])[0].lower() == b"true"
        )
        if self.relative and not absolute:
            return f"{self.hops - 1}" if self.hops > 1 else "../get"
        name = "absolute-redirect" if absolute else "relative-redirect"
        path = f"/{name}/{self.hops - 1}" if self.hops > 1 else "/get"
        return base_url(request) + path if absolute else path

    def render_GET(self, request: Request) -> object:
        location = self.location(request)
        request.redirect(location.encode())
        return text_body(request, f"redirecting to {location}\n")

    render_HEAD = render_POST = render_PUT = render_PATCH = render_DELETE = render_GET


def base_url(request: Request) -> str:
    """
    This server's scheme and authority as the client named it (its Host),
    for an absolute C{Location}; the listening address when the Host could
    make the URL point somewhere else.
    """
    scheme = "https" if request.isSecure() else "http"
    host = (request.getHeader(b"Host") or b"").decode("latin-1")
    if not host or UNSAFE_URL.search(host) or any(c in host for c in "/?#@"):
        address = request.getHost()
        host = f"{getattr(address, 'host', 'localhost')}:{getattr(address, 'port', 80)}"
    return f"{scheme}://{host}"


def redirect_refusal(url: str, hosts: tuple[str, ...]) -> str | None:
    """
    Why C{url} may not be a redirect target, or None when it may: a path on
    this server, or an http(s) URL on one of C{hosts}. Anything a browser
    could read as another host ("//x", "///x", "\\x", "javascript:") is not
    a path.
    """
    if not url:
        return "url is missing: use /redirect-to?url=/path"
    if UNSAFE_URL.search(url):
        return "url must be printable ASCII without spaces or backslashes"
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return "url is not a valid URL"
    if not (parts.scheme or parts.netloc or url.startswith("//")):
        return None
    allowed = {host.lower().strip("[]").rstrip(".") for host in hosts}
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("http", "https") or not host or host not in allowed:
        return "url must be a relative URL or an http(s) URL on a host in redirect_hosts"
    return None


class RedirectTo(Leaf):
    """C{/redirect-to?url=...&status_code=302}, without an open redirect."""

    def __init__(self, hosts: tuple[str, ...]) -> None:
        super().__init__()
        self.hosts = hosts

    def render_GET(self, request: Request) -> object:
        args = request.args or {}
        url = args.get(b"url", [b""])[0].decode("utf-8", "replace")
        why = redirect_refusal(url, self.hosts)
        code_text = args.get(b"status_code", [b"302"])[0].decode("ascii", "replace")
        if why is None and not (STATUS_CODE.fullmatch(code_text) and code_text[0] == "3"):
            why = "status_code must be a redirect code from 300 to 399"
        if why is not None:
            return bad_request(request, why)
        request.setResponseCode(int(code_text))
        request.setHeader(b"Location", url.encode("ascii"))
        return text_body(request, f"redirecting to {url}\n")

    render_HEAD = render_POST = render_PUT = render_PATCH = render_DELETE = render_GET


def query_pairs(request: Request) -> list[tuple[bytes, bytes]]:
    """
    The query's names and values in order, keeping a bare C{name} (which
    C{request.args} drops) and not splitting on ";" (which it does).
    """
    _, _, query = request.uri.partition(b"?")
    return parse_qsl(query.partition(b"#")[0], keep_blank_values=True)


def cookie_refusal(names_values: list[tuple[bytes, bytes]], usage: str) -> str | None:
    """Why these cookies cannot be set as they are, or None."""
    if not names_values:
        return usage
    for name, value in names_values:
        if not COOKIE_NAME.fullmatch(name):
            return "a cookie name must be letters, digits and !#$%&'*+-.^_`|~"
        if not COOKIE_VALUE.fullmatch(value):
            return "a cookie value may not hold spaces, quotes, commas, semicolons or backslashes"
    return None


class Cookies(Resource):
    """C{/cookies}: the cookies the client sent, as JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.putChild(b"set", SetCookies())
        self.putChild(b"delete", DeleteCookies())

    def getChild(self, path: bytes, request: Request) -> IResource:
        return self if path == b"" else pages.notFound()

    def render_GET(self, request: Request) -> object:
        cookies = {
            name.decode("utf-8", "replace"): value.decode("utf-8", "replace")
            for name, value in request.received_cookies.items()
        }
        request.setHeader(b"Cache-Control", b"no-store")
        return json_body(request, {"cookies": cookies})

    render_HEAD = render_GET


class SetCookies(Resource):
    """
    C{/cookies/set?name=value}: sets them for the whole site, then shows
    them; C{/cookies/set/NAME/VALUE} (httpbin's path form) sets one.
    """

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        rest = request.postpath or []
        if len(rest) != 1:
            return pages.notFound("No Such Resource", "use /cookies/set/NAME/VALUE")
        request.postpath = []
        return SetOneCookie(path, rest[0])

    def render_GET(self, request: Request) -> object:
        pairs = query_pairs(request)
        why = cookie_refusal(pairs, "give the cookies in the query: ?name=value&other=value")
        if why is not None:
            return bad_request(request, why)
        for name, value in pairs:
            request.addCookie(name, value, path=b"/")
        request.redirect(b"/cookies")
        return text_body(request, "cookies set; redirecting to /cookies\n")

    render_HEAD = render_GET


class SetOneCookie(Leaf):
    """C{/cookies/set/NAME/VALUE}: sets that one cookie, then shows them all."""

    def __init__(self, name: bytes, value: bytes) -> None:
        super().__init__()
        self.name = name
        self.value = value

    def render_GET(self, request: Request) -> object:
        why = cookie_refusal([(self.name, self.value)], "use /cookies/set/NAME/VALUE")
        if why is not None:
            return bad_request(request, why)
        request.addCookie(self.name, self.value, path=b"/")
        request.redirect(b"/cookies")
        return text_body(request, "cookie set; redirecting to /cookies\n")

    render_HEAD = render_GET


class DeleteCookies(Leaf):
    """C{/cookies/delete?name&other}: expires them, then shows what is left."""

    def render_GET(self, request: Request) -> object:
        names = [name for name, _ in query_pairs(request)]
        why = cookie_refusal([(name, b"") for name in names], "name the cookies: ?name&other")
        if why is not None:
            return bad_request(request, why)
        for name in names:
            request.addCookie(name, b"", expires=EPOCH, max_age=b"0", path=b"/")
        request.redirect(b"/cookies")
        return text_body(request, "cookies deleted; redirecting to /cookies\n")

    render_HEAD = render_GET


def same_secret(given: bytes, expected: bytes) -> bool:
    """Compares in constant time, whatever the lengths (both are hashed first)."""
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


class BasicAuth(Resource):
    """
    C{/basic-auth/USER/PASS}: 200 for exactly those credentials, else 401.
    C{hidden}, httpbin's C{/hidden-basic-auth/USER/PASS}: 404 instead, the
    site's own "nothing here" page, so nothing says a password would help.
    """

    isLeaf = True

    def __init__(self, hidden: bool = False) -> None:
        super().__init__()
        self.hidden = hidden

    def render_GET(self, request: Request) -> object:
        path = request.postpath or []
        name = "hidden-basic-auth" if self.hidden else "basic-auth"
        if len(path) != 2 or not path[0]:
            return pages.notFound(
                "No Such Resource", f"use /{name}/USER/PASS"
            ).render(request)
        user, password = path
        # Both comparisons always run: how long this takes says nothing.
        user_ok = same_secret(request.getUser(), user)
        password_ok = same_secret(request.getPassword(), password)
        if not (user_ok & password_ok) and self.hidden:
            return pages.notFound(
                "No Such Resource", "There is nothing at this address."
            ).render(request)
        if not (user_ok & password_ok):
            request.setResponseCode(http.UNAUTHORIZED)
            request.setHeader(b"WWW-Authenticate", BASIC_CHALLENGE)
            return text_body(
                request, "401 Unauthorized: send the user name and password from this URL"
                " with HTTP Basic authentication\n",
            )
        return json_body(
            request, {"authenticated": True, "user": user.decode("utf-8", "replace")}
        )

    render_HEAD = render_GET


class Compressed(Leaf):
    """
    httpbin's compressed JSON (C{/gzip}, C{/deflate}, C{/brotli}): the
    request's origin, headers and method, with C{"NAME": true}, in
    C{encoding} whatever the client accepts. It still says C{Vary:
    Accept-Encoding}, as a server that compresses on request must, so
    students see the header that keeps a shared cache from handing the
    compressed body to a client that cannot read it.
    """

    def __init__(
        self, context: HttpContext, name: str, encoding: bytes, compress: Callable[[bytes], bytes]
    ) -> None:
        super().__init__()
        self.inspector = Inspector(context)
        self.name = name
        self.encoding = encoding
        self.compress = compress

    def render_GET(self, request: Request) -> object:
        seen = self.inspector.describe(request)
        body = send_json(request, {
            self.name: True, "headers": seen["headers"], "method": seen["method"],
            "origin": seen["origin"],
        })
        request.setHeader(b"Content-Encoding", self.encoding)
        request.setHeader(b"Vary", b"Accept-Encoding")
        return self.compress(body)

    render_HEAD = render_GET


class Cache(Leaf):
    """
    A page with a fixed C{ETag} and C{Last-Modified}, so a conditional
    request gets 304; its body is httpbin's, the C{/get} description. The
    validators stay fixed although the description changes with the
    request: they are what a student revalidates with, and httpbin's fresh
    random tag on each answer could never match. C{If-None-Match} wins over
    C{If-Modified-Since} when both are sent (RFC 9110, 13.2.2).
    C{/cache/N} is httpbin's other cache page (L{CacheFor}).
    """

    def __init__(self, inspector: Inspector) -> None:
        super().__init__()
        self.inspector = inspector

    def getChild(self, path: bytes, request: Request) -> IResource:
        text = path.decode("ascii", "replace")
        if not WHOLE.fullmatch(text):
            return Refusal("use /cache/SECONDS, e.g. /cache/60")
        return CacheFor(int(text), self.inspector)

    def render_GET(self, request: Request) -> object:
        cached = request.setETag(CACHE_ETAG)
        if request.getHeader(b"If-None-Match") is None:
            cached = request.setLastModified(CACHE_LAST_MODIFIED)
        else:
            request.lastModified = CACHE_LAST_MODIFIED
        if cached is http.CACHED:
            request.setHeader(b"Cache-Control", b"no-cache")
            request.write(b"")
            request.finish()
            return NOT_DONE_YET
        body = send_json(request, self.inspector.describe(request))
        # After send_json, whose headers say no-store: this page may be kept if revalidated.
        request.setHeader(b"Cache-Control", b"no-cache")
        return body

    render_HEAD = render_GET


class CacheFor(Leaf):
    """
    C{/cache/N}: httpbin's C{/get} answer with C{Cache-Control: public,
    max-age=N}, to watch a browser or proxy reuse it for N seconds.
    """

    def __init__(self, seconds: int, inspector: Inspector) -> None:
        super().__init__()
        self.seconds = seconds
        self.inspector = inspector

    def render_GET(self, request: Request) -> object:
        body = send_json(request, self.inspector.describe(request))
        # After send_json, whose headers say no-store: this page is the exception.
        request.setHeader(b"Cache-Control", b"public, max-age=%d" % self.seconds)
        return body

    render_HEAD = render_GET


def status_codes(context: HttpContext) -> StatusRoot:
    """C{/status/CODE,...}, choosing with C{context.status_random} if set."""
    return StatusRoot(context.status_random or random.Random())


def delay(context: HttpContext) -> Numbered:
    """C{/delay/SECONDS}, up to C{max_delay}."""
    return Numbered(
        "use /delay/SECONDS, e.g. /delay/1.5", SECONDS, float, 0, context.settings.max_delay,
        "max_delay", partial(Delay, reactor=context.reactor, inspector=Inspector(context)),
    )


def random_bytes(context: HttpContext) -> Numbered:
    """C{/bytes/N}, up to C{max_bytes}."""
    return Numbered(
        "use /bytes/N, e.g. /bytes/1024", WHOLE, int, 0, context.settings.max_bytes,
        "max_bytes", RandomBytes,
    )


def stream(context: HttpContext) -> Numbered:
    """C{/stream/N}, up to C{max_stream}."""
    return Numbered(
        "use /stream/N, e.g. /stream/10", WHOLE, int, 1, context.settings.max_stream,
        "max_stream", partial(Stream, inspector=Inspector(context)),
    )


def _redirects(context: HttpContext, name: str, relative: bool) -> Numbered:
    return Numbered(
        f"use /{name}/N with N at least 1", WHOLE, int, 1, context.settings.max_redirects,
        "max_redirects", partial(Redirect, relative=relative),
    )


def redirect(context: HttpContext) -> Numbered:
    """C{/redirect/N}: N redirects (on through C{/relative-redirect}), up to C{max_redirects}."""
    return _redirects(context, "redirect", relative=False)


def relative_redirect(context: HttpContext) -> Numbered:
    """C{/relative-redirect/N}: N relative redirects, up to C{max_redirects}."""
    return _redirects(context, "relative-redirect", relative=True)


def redirect_to(context: HttpContext) -> RedirectTo:
    """C{/redirect-to?url=...}, to C{redirect_hosts} only."""
    return RedirectTo(context.settings.redirect_hosts)


def cookies(context: HttpContext) -> Cookies:
    """C{/cookies}, C{/cookies/set}, C{/cookies/delete}."""
    return Cookies()


def basic_auth(context: HttpContext) -> BasicAuth:
    """C{/basic-auth/USER/PASSWORD}."""
    return BasicAuth()


def hidden_basic_auth(context: HttpContext) -> BasicAuth:
    """C{/hidden-basic-auth/USER/PASSWORD}: 404, not 401, without them."""
    return BasicAuth(hidden=True)


def gzipped(context: HttpContext) -> Compressed:
    """C{/gzip}: gzip (RFC 1952), without a timestamp, so the bytes are the same each time."""
    return Compressed(context, "gzipped", b"gzip", partial(gzip.compress, mtime=0))


def cache(context: HttpContext) -> Cache:
    """C{/cache} and C{/cache/N}."""
    return Cache(Inspector(context))
