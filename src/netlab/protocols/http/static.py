"""
The instructor's files under C{/static/}, from C{[http] static_dir}.

C{twisted.web.static.File} does the HTTP: Last-Modified and
If-Modified-Since (304), Range (206, multipart for several ranges), HEAD,
content types by extension. This module adds what a folder shared with a
room of students needs:

* nothing outside the folder: every resolved file and folder must have its
  real path (symlinks followed) inside the folder's real path; C{..},
  C{%2e%2e} and encoded slashes never name a child;
* no dotfiles: a path segment starting with "." (in the URL or in the real
  path of a symlink's target) is 404, so C{.git} or C{.env} never leaks;
* folders list their files only when C{static_listing} is true, and never
  list dotfiles or links that lead outside; otherwise a folder is 403. A
  folder with an C{index.html} (or C{index.htm}) serves it either way, as a
  web server would;
* byte ranges are answered here rather than by Twisted, whose producer
  for several ranges raises C{ValueError} once a part crosses its buffer
  size (the connection then hangs until the idle timeout) and which sends
  each range as asked, so C{bytes=0-,0-,...} multiplies a file. Ranges
  are sorted, and overlapping or adjacent ones merged; one range left is a
  plain 206 with C{Content-Range}, several are C{multipart/byteranges};
  none inside the file is 416 with C{Content-Range: bytes */SIZE}. A
  malformed header, or one with more than C{max_ranges} ranges, is
  ignored (as RFC 9110 allows): the whole file with 200, so a client that
  asks too much still gets its answer, and never a bigger one than the file;
* files send a weak C{ETag}, C{W/"SIZE-MTIME"} in hex (mtime in
  nanoseconds): weak because a file rewritten with the same size within
  the file system's timestamp granularity would keep its tag, so the tag
  promises only "probably the same", which is all If-None-Match needs.
  If-None-Match (weak comparison, lists and C{*}) answers 304 and, when
  present, overrides If-Modified-Since (RFC 9110, 13.2.2);
* C{Cache-Control: no-cache}: a cache may keep a file but must revalidate
  it (with the ETag or the date) before each use, since the instructor may
  change it at any time; without it, caches guess a freshness lifetime
  from Last-Modified (httpbin's Flask sends the same);
* an unknown extension is C{application/octet-stream}, never HTML, and
  C{nosniff} stops browsers guessing otherwise. The folder's own C{.html}
  files are served as C{text/html}: they are the instructor's pages.

With C{static_dir = ""}, nothing is installed and C{/static/} is the
site's 404.
"""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.internet.interfaces import IPullProducer
from twisted.web import http, pages, server, static
from twisted.web.resource import IResource
from twisted.web.server import Request
from zope.interface import implementer

from netlab.protocols.http.context import HttpContext

UNKNOWN_TYPE = "application/octet-stream"
EXTRA_TYPES = {
    ".md": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".toml": "text/plain; charset=utf-8",
    ".py": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".pcap": "application/vnd.tcpdump.pcap",
}


def is_inside(real: str, top: str) -> bool:
    """Whether the real path C{real} is C{top} or below it."""
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


RANGE_SPEC = re.compile(rb"([0-9]{0,18})-([0-9]{0,18})")


def parse_ranges(header: bytes, limit: int) -> list[tuple[int | None, int | None]] | None:
    """
    The (first, last) byte positions of a C{Range} header, either of them
    C{None} where left out (C{500-}, C{-500}); C{None} when the header is to
    be ignored: not C{bytes}, malformed, a range that ends before it starts,
    or more than C{limit} ranges. Nothing is built before the count is
    checked, so a long header costs no more than its split.
    """
    unit, equals, value = header.partition(b"=")
    if not equals or unit.strip().lower() != b"bytes":
        return None
    specs = [spec.strip() for spec in value.split(b",")]
    specs = [spec for spec in specs if spec]
    if not specs or len(specs) > limit:
        return None
    ranges: list[tuple[int | None, int | None]] = []
    for spec in specs:
        match = RANGE_SPEC.fullmatch(spec)
        if match is None or match.group(1) == match.group(2) == b"":
            return None
        first = int(match.group(1)) if match.group(1) else None
        last = int(match.group(2)) if match.group(2) else None
        if first is not None and last is not None and last < first:
            return None
        ranges.append((first, last))
    return ranges


def merge_ranges(ranges: list[tuple[int | None, int | None]], size: int) -> list[tuple[int, int]]:
    """
    The parts of a file of C{size} bytes that C{ranges} ask for, as
    (offset, length), sorted, with overlapping and adjacent ranges merged
    into one; ranges wholly outside the file are dropped (all dropped: 416).
    """
    spans: list[tuple[int, int]] = []
    for first, last in ranges:
        if first is None:
            assert last is not None  # parse_ranges refuses "-"
            start, end = max(size - last, 0), size
        else:
            start, end = first, size if last is None else min(last + 1, size)
        if start < end:
            spans.append((start, end))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end - start) for start, end in merged]


@implementer(IPullProducer)
class MultipartProducer(static.StaticProducer):
    """
    Writes several parts of a file as C{multipart/byteranges}: each part's
    boundary and headers, then its bytes, at most C{bufferSize} at a time,
    then the closing boundary. Each call writes one piece and moves on, so
    no piece is ever sized from another (Twisted's version read a negative
    size once a boundary overflowed its buffer). A file that shrinks under
    it ends the connection, since the promised Content-Length cannot be met.

    @ivar parts: (head, offset, length) for each part.
    @ivar tail: the closing boundary.
    """

    def __init__(self, request: Request, fileObject: Any,
                 parts: list[tuple[bytes, int, int]], tail: bytes) -> None:
        super().__init__(request, fileObject)
        self.parts = parts
        self.tail = tail
        self.index = 0
        self.sent = 0

    def start(self) -> None:
        self.request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        request = self.request
        if request is None:
            return
        if self.index == len(self.parts):
            request.write(self.tail)
            request.unregisterProducer()
            request.finish()
            self.stopProducing()
            return
        head, offset, length = self.parts[self.index]
        piece = b""
        if self.sent == 0:
            piece = head
            self.fileObject.seek(offset)
        data = self.fileObject.read(min(self.bufferSize, length - self.sent))
        if not data:
            request.unregisterProducer()
            request.loseConnection()
            self.stopProducing()
            return
        self.sent += len(data)
        if self.sent == length:
            self.index += 1
            self.sent = 0
        request.write(piece + data)


NOT_FOUND = pages.notFound("File not found", "There is no such file here.")


class Listing(static.DirectoryLister):
    """A folder's file list; nothing lies below it (a C{//} in the URL)."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        return NOT_FOUND


class StaticFolder(static.File):
    """
    A file or folder below the static root; every child is checked against
    the root's real path before it is served.

    @ivar top: the real path of C{static_dir}.
    @ivar listing: whether folders without an index list their files.
    """

    contentTypes = {**static.File.contentTypes, **EXTRA_TYPES}
    indexNames = ["index.html", "index.htm"]
    processors: dict[str, Any] = {}
    childNotFound = NOT_FOUND  # type: ignore[assignment]
    forbidden = pages.forbidden("Forbidden", "This file may not be read.")  # type: ignore[assignment]
    unlisted = pages.forbidden("Forbidden", "This folder does not list its files.")

    def __init__(self, path: str, top: str, listing: bool, max_ranges: int = 16) -> None:
        super().__init__(path, defaultType=UNKNOWN_TYPE)
        self.top = top
        self.listing = listing
        self.max_ranges = max_ranges

    def allowed(self, path: str) -> bool:
        """
        Whether C{path} may be served: its real path is inside the root and
        no segment of it below the root is a dotfile (a link may lead to one).
        """
        real = os.path.realpath(path)
        if not is_inside(real, self.top):
            return False
        below = os.path.relpath(real, self.top)
        return below == "." or not any(part.startswith(".") for part in below.split(os.sep))

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path.startswith(b".") or b"/" in path or b"\\" in path or b"\x00" in path:
            return self.childNotFound
        child: Any = super().getChild(path, request)
        if isinstance(child, static.File) and not self.allowed(child.path):
            return self.childNotFound
        return child

    def createSimilarFile(self, path: str) -> StaticFolder:
        return StaticFolder(path, self.top, self.listing, self.max_ranges)

    def listNames(self) -> list[str]:
        """The names a listing shows: no dotfiles, nothing that leads outside."""
        return [
            name for name in super().listNames()
            if not name.startswith(".") and self.allowed(os.path.join(self.path, name))
        ]

    def directoryListing(self) -> IResource:
        if not self.listing or not self.allowed(self.path):
            return self.unlisted
        return Listing(
            self.path, self.listNames(), self.contentTypes, self.contentEncodings,
            self.defaultType,
        )

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Cache-Control", b"no-cache")
        self.restat(False)
        if self.isfile():
            tag = entity_tag(self.path)
            request.setHeader(b"ETag", tag)
            wanted = request.getHeader(b"If-None-Match")
            if wanted is not None and os.access(self.path, os.R_OK):
                if none_match_hits(wanted, tag):
                    request.setResponseCode(http.NOT_MODIFIED)
                    request.write(b"")
                    request.finish()
                    return server.NOT_DONE_YET
                # A tag that does not match wins over any date (RFC 9110, 13.2.2).
                request.requestHeaders.removeHeader(b"If-Modified-Since")
        return super().render_GET(request)

    render_HEAD = render_GET

    def content_headers(self, request: Request, length: int) -> None:
        """Content-Length, and the file's type and encoding, for a whole or one-range answer."""
        request.setHeader(b"Content-Length", b"%d" % length)
        if self.type:
            request.setHeader(b"Content-Type", self.type.encode("latin-1"))
        if self.encoding:
            request.setHeader(b"Content-Encoding", self.encoding.encode("latin-1"))

    def makeProducer(self, request: Request, fileForReading: Any) -> static.StaticProducer:
        """
        The producer of this answer, its status and headers set: the whole
        file, one range, several as multipart, or nothing with 416 (see the
        module's docstring).
        """
        size = self.getFileSize()
        header = request.getHeader(b"Range")
        ranges = None if header is None else parse_ranges(header, self.max_ranges)
        if ranges is None:
            request.setResponseCode(http.OK)
            self.content_headers(request, size)
            return static.NoRangeStaticProducer(request, fileForReading)
        spans = merge_ranges(ranges, size)
        if not spans:
            request.setResponseCode(http.REQUESTED_RANGE_NOT_SATISFIABLE)
            request.setHeader(b"Content-Range", b"bytes */%d" % size)
            self.content_headers(request, 0)
            return static.SingleRangeStaticProducer(request, fileForReading, 0, 0)
        request.setResponseCode(http.PARTIAL_CONTENT)
        if len(spans) == 1:
            [(offset, length)] = spans
            request.setHeader(b"Content-Range", content_range(offset, length, size))
            self.content_headers(request, length)
            return static.SingleRangeStaticProducer(request, fileForReading, offset, length)
        boundary = os.urandom(12).hex().encode("ascii")
        kind = (self.type or UNKNOWN_TYPE).encode("latin-1")
        parts = [
            (b"\r\n--%s\r\nContent-Type: %s\r\nContent-Range: %s\r\n\r\n"
             % (boundary, kind, content_range(offset, length, size)), offset, length)
            for offset, length in spans
        ]
        tail = b"\r\n--%s--\r\n" % boundary
        total = sum(len(head) + length for head, _, length in parts) + len(tail)
        request.setHeader(b"Content-Type", b"multipart/byteranges; boundary=" + boundary)
        request.setHeader(b"Content-Length", b"%d" % total)
        return MultipartProducer(request, fileForReading, parts, tail)


def entity_tag(path: str) -> bytes:
    """The weak ETag of the file at C{path}: its size and mtime (see the module docstring)."""
    info = os.stat(path)
    return b'W/"%x-%x"' % (info.st_size, info.st_mtime_ns)


def none_match_hits(header: bytes, tag: bytes) -> bool:
    """Whether an C{If-None-Match} value names C{tag}, or C{*}, comparing weakly."""
    if header.strip() == b"*":
        return True
    opaque = tag.removeprefix(b"W/")
    return any(
        candidate.strip().removeprefix(b"W/") == opaque for candidate in header.split(b",")
    )


def content_range(offset: int, length: int, size: int) -> bytes:
    """The C{Content-Range} value of C{length} bytes from C{offset} of C{size}."""
    return b"bytes %d-%d/%d" % (offset, offset + length - 1, size)


def folder(context: HttpContext) -> StaticFolder | None:
    """C{/static/}: C{static_dir}, if one is configured."""
    directory = context.settings.static_dir
    if not directory:
        return None
    top = os.path.realpath(directory)
    settings = context.settings
    return StaticFolder(top, top, settings.static_listing, settings.max_ranges)
