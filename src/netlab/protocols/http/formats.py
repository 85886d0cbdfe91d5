"""
httpbin's fixed formats and methods: C{/put}, C{/patch}, C{/delete},
C{/response-headers}, the sample documents (C{/json}, C{/html}, C{/xml},
C{/robots.txt}, C{/deny}, C{/encoding/utf8}) and the small dynamic ones
(C{/uuid}, C{/base64/VALUE}, C{/bearer}, C{/hostname}).

They exist so that a student's client can be pointed at the same paths as
at httpbin.org and get the same field names and shapes back. Where httpbin
would reflect request data as HTML (C{/base64}, a C{Content-Type} asked of
C{/response-headers}) netlab answers plain text or JSON instead, and bad
input gets one plain-text 400 line rather than a 200 with an apology.
"""

from __future__ import annotations

import base64
import binascii
import re
import socket
import uuid
from typing import Any
from urllib.parse import parse_qsl

from twisted.web import pages, server
from twisted.web.resource import IResource, Resource

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.forms import answer_with_body
from netlab.protocols.http.inspect import (
    InspectionResource,
    Inspector,
    bad_request,
    header_text,
    pretty_json,
    send_json,
    send_text,
)

HTML_TYPE = b"text/html; charset=utf-8"
XML_TYPE = b"application/xml"

# What httpbin's /put, /patch and /delete (and /post) report.
METHOD_FIELDS = ("args", "data", "files", "form", "headers", "json", "origin", "url")

# /response-headers: an RFC 9110 token for a name, no control characters
# (CR and LF above all: header injection) in a value, and small caps.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]{0,1024}")
MAX_RESPONSE_HEADERS = 32
# Names that would change how the answer is framed or read, not what it says.
RESERVED_HEADERS = frozenset({
    "connection", "content-encoding", "content-length", "keep-alive", "te", "trailer",
    "transfer-encoding", "upgrade", "x-content-type-options",
})
# The only media types a client may ask /response-headers for: reflected
# query data is never served as HTML (or anything a browser would run).
SAFE_TYPES = frozenset({"application/json", "text/plain"})

BASE64_HINT = "Incorrect Base64 data try: SFRUUEJJTiBpcyBhd2Vzb21l"
BASE64_VALUE = re.compile(r"[A-Za-z0-9_\-+]{1,4096}={0,2}")

SLIDESHOW: dict[str, Any] = {
    "slideshow": {
        "author": "Yours Truly",
        "date": "date of publication",
        "slides": [
            {"title": "Wake up to WonderWidgets!", "type": "all"},
            {
                "items": [
                    "Why <em>WonderWidgets</em> are great",
                    "Who <em>buys</em> WonderWidgets",
                ],
                "title": "Overview",
                "type": "all",
            },
        ],
        "title": "Sample Slide Show",
    }
}

SLIDESHOW_XML = """<?xml version='1.0' encoding='us-ascii'?>

<!--  A SAMPLE set of slides  -->

<slideshow 
    title="Sample Slide Show"
    date="Date of publication"
    author="Yours Truly"
    >

    <!-- TITLE SLIDE -->
    <slide type="all">
      <title>Wake up to WonderWidgets!</title>
    </slide>

    <!-- OVERVIEW -->
    <slide type="all">
        <title>Overview</title>
        <item>Why <em>WonderWidgets</em> are great</item>
        <item/>
        <item>Who <em>buys</em> WonderWidgets</item>
    </slide>

</slideshow>"""  # noqa: W291 - httpbin's sample.xml, trailing space and all

HTML_PAGE = """<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>Moby-Dick</title>
  </head>
  <body>
      <h1>Herman Melville - Moby-Dick</h1>

      <div>
        <p>
          Call me Ishmael. Some years ago - never mind how long precisely - having
          little or no money in my purse, and nothing particular to interest me on
          shore, I thought I would sail about a little and see the watery part of
          the world.
        </p>
      </div>
  </body>
</html>
"""

UTF8_PAGE = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>UTF-8 demo</title></head>
<body>
<h1>Unicode Demo</h1>
<pre>
UTF-8 encoded sample text
‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾

Mathematics:    ∮ E⋅da = Q,  n → ∞, ∑ f(i) = ∏ g(i), ∀x∈ℝ: ⌈x⌉ = −⌊−x⌋
Greek:          Σὲ γνωρίζω ἀπὸ τὴν κόψη
Russian:        Зарегистрируйтесь сейчас на Десятую Международную Конференцию
Georgian:       გთხოვთ ახლავე გაიაროთ რეგისტრაცია
Thai:           ๏ แผ่นดินฮั่นเสื่อมโทรมแสนสังเวช
Amharic:        ሰማይ አይታረስ ንጉሥ አይከሰስ።
Runes:          ᚻᛖ ᚳᚹᚫᚦ ᚦᚫᛏ ᚻᛖ ᛒᚢᛞᛖ ᚩᚾ ᚦᚫᛗ
Braille:        ⡌⠁⠧⠑ ⠼⠁⠒  ⡍⠜⠇⠑⠹⠰⠎ ⡣⠕⠌
Japanese:       いろはにほへとちりぬるを
Box drawing:    ╔══╦══╗  ┌──┬──┐
                ║  ║  ║  │  │  │
                ╚══╩══╝  └──┴──┘
Emoji:          🌍 🐍 ✓
</pre>
</body>
</html>
"""  # noqa: RUF001 - the look-alike characters are the point of the demo

ROBOTS_TXT = """User-agent: *
Disallow: /deny
"""

ANGRY_ASCII = r"""
          .-''''''-.
        .' _      _ '.
       /   O      O   \
      :                :
      |                |
      :       __       :
       \  .-"`  `"-.  /
        '.          .'
          '-......-'
     YOU SHOULDN'T BE HERE
"""


def send_document(request: server.Request, content_type: bytes, text: str) -> bytes:
    """A fixed document: its type, and nosniff so a browser takes the type at its word."""
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return text.encode("utf-8")


class Leaf(Resource):
    """A page with nothing below it: C{/json/x} is 404, not C{/json} again."""

    def getChild(self, path: bytes, request: server.Request) -> IResource:
        return pages.notFound("No Such Resource", "There is nothing at this address.")


class MethodResource(InspectionResource):
    """
    The request and its body, described as httpbin's C{/put}, C{/patch} and
    C{/delete} do (C{args}, C{data}, C{files}, C{form}, C{headers}, C{json},
    C{origin}, C{url}); a subclass names the one method it answers.
    """

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.inspector = Inspector(context)

    def describe(self, request: server.Request) -> bytes:
        # httpbin's eight fields are the JSON answer; the text report needs them all.
        fields = None if self.inspector.wants_text(request) else METHOD_FIELDS
        return answer_with_body(self.inspector, request, fields)


class PutResource(MethodResource):
    """C{/put}: only PUT."""

    allowedMethods = (b"PUT",)

    def render_PUT(self, request: server.Request) -> bytes:
        return self.describe(request)


class PatchResource(MethodResource):
    """C{/patch}: only PATCH."""

    allowedMethods = (b"PATCH",)

    def render_PATCH(self, request: server.Request) -> bytes:
        return self.describe(request)


class DeleteResource(MethodResource):
    """C{/delete}: only DELETE."""

    allowedMethods = (b"DELETE",)

    def render_DELETE(self, request: server.Request) -> bytes:
        return self.describe(request)


def header_refusal(pairs: list[tuple[str, str]]) -> str | None:
    """Why C{pairs} cannot become response headers, or None when they can."""
    if len(pairs) > MAX_RESPONSE_HEADERS:
        return f"at most {MAX_RESPONSE_HEADERS} response headers"
    for name, value in pairs:
        if not HEADER_NAME.fullmatch(name):
            return "a header name must be a token of 1 to 64 characters"
        if not HEADER_VALUE.fullmatch(value):
            return "a header value must be at most 1024 characters, without CR, LF or controls"
        if name.lower() in RESERVED_HEADERS:
            return f"{name} is the server's to set"
        if name.lower() == "content-type":
            media = value.partition(";")[0].strip().lower()
            if media not in SAFE_TYPES:
                return "Content-Type may only be application/json or text/plain here"
    return None


class ResponseHeaders(Leaf):
    """
    C{/response-headers?Name=value...} (GET or POST): each query argument
    becomes a response header, and the JSON body lists them as httpbin's
    does: under the names as given (HTTP's are case-insensitive, JSON's
    keys are not), a repeated name's values as a list, with the
    C{Content-Type} and the body's own C{Content-Length}, keys sorted. The
    headers every answer gets (C{Server}, C{Date}, C{nosniff}) are left
    out, as httpbin's server adds its own after the body is made.
    """

    allowedMethods = (b"GET", b"HEAD", b"POST")

    def render_GET(self, request: server.Request) -> bytes:
        query = request.uri.partition(b"?")[2].decode("utf-8", "replace")
        try:
            pairs = parse_qsl(
                query, keep_blank_values=True, max_num_fields=MAX_RESPONSE_HEADERS
            )
        except ValueError:
            pairs = [("", "")] * (MAX_RESPONSE_HEADERS + 1)
        refusal = header_refusal(pairs)
        if refusal is not None:
            return bad_request(request, refusal)
        headers = request.responseHeaders
        headers.setRawHeaders(b"Content-Type", [b"application/json"])
        headers.setRawHeaders(b"X-Content-Type-Options", [b"nosniff"])
        chosen: dict[str, list[str]] = {}
        for name, value in pairs:
            chosen.setdefault(name, []).append(value)
        listed: dict[str, Any] = {}
        if not any(name.lower() == "content-type" for name in chosen):
            listed["Content-Type"] = "application/json"
        for name, values in chosen.items():
            headers.setRawHeaders(name.encode("latin-1"), [v.encode("utf-8") for v in values])
            listed[name] = values[0] if len(values) == 1 else values
        # The body names its own length: recompute until the number stops changing.
        length = 0
        while True:
            listed["Content-Length"] = str(length)
            body = (pretty_json(dict(sorted(listed.items()))) + "\n").encode("utf-8")
            if len(body) == length:
                return body
            length = len(body)

    render_POST = render_GET


class Document(Leaf):
    """A fixed document of httpbin's, served as it is."""

    def __init__(self, content_type: bytes, text: str) -> None:
        super().__init__()
        self.content_type = content_type
        self.text = text

    def render_GET(self, request: server.Request) -> bytes:
        return send_document(request, self.content_type, self.text)


class SlideshowJson(Leaf):
    """C{/json}: httpbin's sample slideshow as JSON."""

    def render_GET(self, request: server.Request) -> bytes:
        return send_json(request, SLIDESHOW)


class Uuid(Leaf):
    """C{/uuid}: a fresh version 4 UUID, for clients that need a unique value."""

    def render_GET(self, request: server.Request) -> bytes:
        return send_json(request, {"uuid": str(uuid.uuid4())})


def decode_base64(value: str) -> str | None:
    """URL-safe (or standard) base64 as UTF-8 text, padding optional; None if it is not."""
    if not BASE64_VALUE.fullmatch(value):
        return None
    value = value.rstrip("=")
    padded = value + "=" * (-len(value) % 4)
    try:
        data = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        return data.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


class Base64Root(Resource):
    """C{/base64/VALUE}: the value decoded; C{/base64} alone says how to use it."""

    def getChild(self, path: bytes, request: server.Request) -> IResource:
        return Base64Value(path.decode("latin-1"))

    def render_GET(self, request: server.Request) -> bytes:
        return bad_request(request, "usage: /base64/VALUE, " + BASE64_HINT)


class Base64Value(Leaf):
    """One C{/base64/VALUE}: its text, as plain text (httpbin's is HTML)."""

    def __init__(self, value: str) -> None:
        super().__init__()
        self.value = value

    def render_GET(self, request: server.Request) -> bytes:
        text = decode_base64(self.value)
        if text is None:
            return bad_request(request, BASE64_HINT)
        return send_text(request, text)


class Bearer(Leaf):
    """C{/bearer}: 200 with the token for C{Authorization: Bearer TOKEN}, else 401."""

    def render_GET(self, request: server.Request) -> bytes:
        authorization = request.getHeader(b"authorization")
        scheme, _, token = header_text(authorization or b"").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            request.setResponseCode(401)
            request.setHeader(b"WWW-Authenticate", b"Bearer")
            return send_text(request, "401 Unauthorized: send Authorization: Bearer TOKEN\n")
        return send_json(request, {"authenticated": True, "token": token})


class Hostname(Leaf):
    """C{/hostname}: the server's host name (go-httpbin's), to tell servers apart."""

    def render_GET(self, request: server.Request) -> bytes:
        return send_json(request, {"hostname": socket.gethostname()})


def put(context: HttpContext) -> PutResource:
    """C{/put}."""
    return PutResource(context)


def patch(context: HttpContext) -> PatchResource:
    """C{/patch}."""
    return PatchResource(context)


def delete(context: HttpContext) -> DeleteResource:
    """C{/delete}."""
    return DeleteResource(context)


def response_headers(context: HttpContext) -> ResponseHeaders:
    """C{/response-headers}."""
    return ResponseHeaders()


def slideshow_json(context: HttpContext) -> SlideshowJson:
    """C{/json}."""
    return SlideshowJson()


def html(context: HttpContext) -> Document:
    """C{/html}: a short HTML page (Moby-Dick's opening, as httpbin's is from Moby-Dick)."""
    return Document(HTML_TYPE, HTML_PAGE)


def xml(context: HttpContext) -> Document:
    """C{/xml}."""
    return Document(XML_TYPE, SLIDESHOW_XML)


def robots(context: HttpContext) -> Document:
    """C{/robots.txt}: disallows C{/deny}."""
    return Document(b"text/plain; charset=utf-8", ROBOTS_TXT)


def deny(context: HttpContext) -> Document:
    """C{/deny}: what a crawler that ignored robots.txt finds."""
    return Document(b"text/plain; charset=utf-8", ANGRY_ASCII)


def utf8(context: HttpContext) -> Document:
    """C{/encoding/utf8}: many scripts in one UTF-8 page, for testing decoders."""
    return Document(HTML_TYPE, UTF8_PAGE)


def make_uuid(context: HttpContext) -> Uuid:
    """C{/uuid}."""
    return Uuid()


def base64_decoder(context: HttpContext) -> Base64Root:
    """C{/base64}."""
    return Base64Root()


def bearer(context: HttpContext) -> Bearer:
    """C{/bearer}."""
    return Bearer()


def hostname(context: HttpContext) -> Hostname:
    """C{/hostname}."""
    return Hostname()
