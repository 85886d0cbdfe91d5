"""
httpbin's transfer and conditional-request endpoints: byte ranges, chunked
random bytes, deflate and brotli, pages of links, ETags and absolute
redirects.

They reuse status.py's checks: every number in a path is parsed and capped
by the C{[http]} limits in L{status.Numbered}, and a bad request gets the
same one-line plain-text 400. Nothing from the request is echoed as HTML.
"""

from __future__ import annotations

import os
import re
import zlib
from functools import partial

import brotli
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.inspect import Inspector, bad_request, send_json
from netlab.protocols.http.status import (
    WHOLE,
    Compressed,
    Leaf,
    Numbered,
    Redirect,
    Refusal,
    httpbin_random,
    no_store,
    text_body,
)

# "bytes=A-B", "bytes=A-" or "bytes=-N": one range, as httpbin serves.
BYTE_RANGE = re.compile(r"\s*bytes\s*=\s*([0-9]{0,18})\s*-\s*([0-9]{0,18})\s*")
# An entity tag's opaque part (RFC 9110, 8.8.3): no quotes, spaces or controls.
ETAG_TEXT = re.compile(r"[\x21\x23-\x7e]{1,256}")
ETAG_ITEM = re.compile(r'\s*(?:W/)?"?([^"]*)"?\s*')
LINKS_LIMIT = 256
STREAM_CHUNK = 10 * 1024


def alphabet(first: int, last: int) -> bytes:
    """Bytes C{first} to C{last} of httpbin's endless C{abc...zabc...}: the same every time."""
    return bytes(ord("a") + (i % 26) for i in range(first, last + 1))


def byte_range(header: bytes | None, size: int) -> tuple[int, int] | None:
    """
    The first and last byte C{Range} asks for out of C{size}, as httpbin
    reads it: no header, or one it cannot read, is the whole; None when the
    range lies outside the data (416).
    """
    match = BYTE_RANGE.fullmatch(header.decode("latin-1")) if header else None
    if match is None or not (match[1] or match[2]):
        return 0, size - 1
    if not match[1]:
        first, last = max(0, size - int(match[2])), size - 1
    else:
        first = int(match[1])
        last = int(match[2]) if match[2] else size - 1
    if first > last or first >= size or last >= size:
        return None
    return first, last


class RangeBytes(Leaf):
    """
    C{/range/N}: N bytes of C{abc...} with C{Accept-Ranges} and a fixed
    C{ETag}, so a student can see a client resume a download (C{curl -r},
    C{curl -C -}) against data that never changes. The tag is quoted and
    C{Content-Range} comes only with a 206 or 416, as RFC 9110 says (httpbin
    sends a bare tag and a C{Content-Range} with the whole, and httplint
    warns of both).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def render_GET(self, request: Request) -> object:
        request.setHeader(b"ETag", b'"range%d"' % self.size)
        request.setHeader(b"Accept-Ranges", b"bytes")
        wanted = byte_range(request.getHeader(b"Range"), self.size)
        if wanted is None:
            request.setResponseCode(http.REQUESTED_RANGE_NOT_SATISFIABLE)
            request.setHeader(b"Content-Range", b"bytes */%d" % self.size)
            return b""
        first, last = wanted
        request.setHeader(b"Content-Type", b"application/octet-stream")
        if (first, last) != (0, self.size - 1):
            request.setResponseCode(http.PARTIAL_CONTENT)
            request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (first, last, self.size))
        return alphabet(first, last)

    render_HEAD = render_GET


def query_whole(request: Request, name: bytes) -> int | str | None:
    """The whole number C{?name=} gives, None without one, or why it is bad."""
    values = (request.args or {}).get(name)
    if values is None:
        return None
    text = values[0].decode("ascii", "replace")
    if not WHOLE.fullmatch(text):
        return f"{name.decode()} must be a whole number"
    return int(text)


class StreamBytes(Leaf):
    """
    C{/stream-bytes/N?chunk_size=C&seed=S}: N random bytes written C{C} at a
    time with no length, so HTTP/1.1 sends them chunked: what a student
    reading a chunked body by hand needs. C{seed} makes them repeatable.
    """

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def render_GET(self, request: Request) -> object:
        seed = query_whole(request, b"seed")
        chunk = query_whole(request, b"chunk_size")
        for why in (seed, chunk):
            if isinstance(why, str):
                return bad_request(request, why)
        assert not isinstance(seed, str) and not isinstance(chunk, str)
        data = os.urandom(self.count) if seed is None else httpbin_random(seed, self.count)
        size = STREAM_CHUNK if chunk is None else max(1, chunk)
        request.setHeader(b"Content-Type", b"application/octet-stream")
        no_store(request)
        for start in range(0, self.count, size):
            request.write(data[start:start + size])
        request.finish()
        return NOT_DONE_YET

    render_HEAD = render_GET


class Links(Resource):
    """C{/links/N}: redirects to the first page, C{/links/N/0}."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def getChild(self, path: bytes, request: Request) -> IResource:
        text = path.decode("ascii", "replace")
        if path == b"":
            return self
        if not WHOLE.fullmatch(text):
            return Refusal("use /links/N/OFFSET with whole numbers")
        return LinkPage(self.count, int(text))

    def render_GET(self, request: Request) -> object:
        location = b"/links/%d/0" % self.count
        request.redirect(location)
        return text_body(request, f"redirecting to {location.decode()}\n")

    render_HEAD = render_GET


class LinkPage(Leaf):
    """
    C{/links/N/OFFSET}: httpbin's HTML page of N numbered links, OFFSET not
    a link: a small site for a crawler or C{wget -r} to walk. Only numbers
    go into the page.
    """

    def __init__(self, count: int, offset: int) -> None:
        super().__init__()
        self.count = count
        self.offset = offset

    def render_GET(self, request: Request) -> object:
        html = ["<html><head><title>Links</title></head><body>"]
        for i in range(self.count):
            if i == self.offset:
                html.append(f"{i} ")
            else:
                html.append(f"<a href='/links/{self.count}/{i}'>{i}</a> ")
        html.append("</body></html>")
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return "".join(html).encode()

    render_HEAD = render_GET


def etag_list(header: bytes | None) -> list[str]:
    """The tags of an C{If-None-Match} or C{If-Match}, quotes and C{W/} dropped, as httpbin."""
    if not header:
        return []
    found = (ETAG_ITEM.match(part) for part in header.decode("latin-1").split(","))
    return [match[1] for match in found if match]


class Etags(Resource):
    """C{/etag/TAG}: the tag must be printable ASCII without quotes, as in a real ETag."""

    usage = "use /etag/TAG with a tag of printable ASCII, no quotes"

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.inspector = Inspector(context)

    def getChild(self, path: bytes, request: Request) -> IResource:
        text = path.decode("ascii", "replace")
        if not ETAG_TEXT.fullmatch(text):
            return Refusal(self.usage)
        return Etag(text, self.inspector)

    def render_GET(self, request: Request) -> object:
        return bad_request(request, self.usage)

    render_HEAD = render_GET


class Etag(Leaf):
    """
    A page whose C{ETag} is the path's: C{If-None-Match} naming it (or C{*})
    gets 304, C{If-Match} naming another gets 412 (without the tag), as
    httpbin answers; the tag is sent quoted, as RFC 9110 wants, so a real
    cache sends it back.
    """

    def __init__(self, tag: str, inspector: Inspector) -> None:
        super().__init__()
        self.tag = tag
        self.inspector = inspector

    def render_GET(self, request: Request) -> object:
        none_match = etag_list(request.getHeader(b"If-None-Match"))
        if_match = etag_list(request.getHeader(b"If-Match"))
        if not none_match and if_match and self.tag not in if_match and "*" not in if_match:
            request.setResponseCode(http.PRECONDITION_FAILED)
            return text_body(request, "412 Precondition Failed\n")
        request.setHeader(b"ETag", f'"{self.tag}"'.encode())
        if self.tag in none_match or "*" in none_match:
            request.setResponseCode(http.NOT_MODIFIED)
            request.write(b"")
            request.finish()
            return NOT_DONE_YET
        return send_json(request, self.inspector.describe(request))

    render_HEAD = render_GET


def range_bytes(context: HttpContext) -> Numbered:
    """C{/range/N}, up to C{max_bytes}."""
    return Numbered(
        "use /range/N with N at least 1, e.g. /range/1024", WHOLE, int, 1,
        context.settings.max_bytes, "max_bytes", RangeBytes,
    )


def stream_bytes(context: HttpContext) -> Numbered:
    """C{/stream-bytes/N}, up to C{max_bytes}."""
    return Numbered(
        "use /stream-bytes/N, e.g. /stream-bytes/1024?chunk_size=100", WHOLE, int, 0,
        context.settings.max_bytes, "max_bytes", StreamBytes,
    )


def deflate(context: HttpContext) -> Compressed:
    """C{/deflate}: zlib-wrapped deflate (RFC 9110's "deflate")."""
    return Compressed(context, "deflated", b"deflate", zlib.compress)


def brotli_json(context: HttpContext) -> Compressed:
    """C{/brotli}: Brotli (RFC 7932), C{Content-Encoding: br}."""
    return Compressed(context, "brotli", b"br", brotli.compress)


def links(context: HttpContext) -> Numbered:
    """C{/links/N[/OFFSET]}, N up to C{max_stream} (and never over 256: one page)."""
    limit = min(context.settings.max_stream, LINKS_LIMIT)
    setting = "max_stream" if limit == context.settings.max_stream else "the links limit"
    return Numbered(
        "use /links/N/OFFSET with N at least 1, e.g. /links/10/0", WHOLE, int, 1,
        limit, setting, Links,
    )


def etag(context: HttpContext) -> Etags:
    """C{/etag/TAG}."""
    return Etags(context)


def absolute_redirect(context: HttpContext) -> Numbered:
    """C{/absolute-redirect/N}: N redirects with absolute URLs, up to C{max_redirects}."""
    return Numbered(
        "use /absolute-redirect/N with N at least 1", WHOLE, int, 1,
        context.settings.max_redirects, "max_redirects",
        partial(Redirect, relative=False, absolute=True),
    )

