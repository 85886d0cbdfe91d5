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
* an unknown extension is C{application/octet-stream}, never HTML, and
  C{nosniff} stops browsers guessing otherwise. The folder's own C{.html}
  files are served as C{text/html}: they are the instructor's pages.

With C{static_dir = ""}, nothing is installed and C{/static/} is the
site's 404.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.web import pages, static
from twisted.web.resource import IResource
from twisted.web.server import Request

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

    def __init__(self, path: str, top: str, listing: bool) -> None:
        super().__init__(path, defaultType=UNKNOWN_TYPE)
        self.top = top
        self.listing = listing

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
        return StaticFolder(path, self.top, self.listing)

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
        return super().render_GET(request)

    render_HEAD = render_GET


def folder(context: HttpContext) -> StaticFolder | None:
    """C{/static/}: C{static_dir}, if one is configured."""
    directory = context.settings.static_dir
    if not directory:
        return None
    top = os.path.realpath(directory)
    return StaticFolder(top, top, context.settings.static_listing)
