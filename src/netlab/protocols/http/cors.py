"""
Cross-origin resource sharing (CORS) headers, as httpbin sends them, so a
page on another origin (a student's own JavaScript exercise, a notebook
served from elsewhere) can C{fetch()} the inspection routes and read the
answer.

httpbin's C{set_cors_headers} answers every request with
C{Access-Control-Allow-Origin}: the request's C{Origin}, or C{*} without
one, and C{Access-Control-Allow-Credentials: true}; and every C{OPTIONS}
with C{Access-Control-Allow-Methods}, C{Access-Control-Max-Age: 3600} and,
when asked for, C{Access-Control-Allow-Headers} (the headers requested).
netlab does the same, with three differences:

* C{Access-Control-Allow-Credentials} comes only with an echoed Origin
  (browsers ignore it beside C{*}), and then with C{Vary: Origin}, so a
  cache never hands one origin's answer to another;
* C{Access-Control-Allow-Methods} lists what the resource answers (its
  C{Allow}), not a fixed list;
* not every route gets them (C{[http] cors}):

  - C{"inspection"} (the default): every route but the ones in
    L{NOT_INSPECTION}, so a route added to the table later (an httpbin-style
    one) gets CORS without being listed here;
  - C{"all"}: every route but the ones in L{NEVER};
  - C{"off"}: none.

Why some routes never get them: an echoed Origin with credentials lets any
web site a visitor opens read that route's answers, with the visitor's
cookies and from the visitor's address.  httpbin does it because it holds
nothing private, and neither do the inspection routes (they show the
request that was sent).  The dashboard and C{/events} show the events of
the visitor's address (everyone's, with the instructor token), C{/}
serves the dashboard to a browser, and C{/mail} shows the visitor's mail:
another site must not read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twisted.web.server import Request

# The first path segments that never get CORS headers (b"" is "/").
NEVER: frozenset[bytes] = frozenset({b"", b"dashboard", b"events", b"mail"})

# And, by default, the surfaces that are not httpbin's: the health check,
# the scrape, WebSockets (which check their own Origin: allowed_origins),
# the chat, XML-RPC and the static folder.
NOT_INSPECTION: frozenset[bytes] = NEVER | frozenset(
    {b"healthz", b"metrics", b"ws", b"chat", b"RPC2", b"static"}
)

MODES = ("inspection", "all", "off")

# How long a browser may cache a preflight's answer (httpbin's hour).
MAX_AGE = b"3600"


def applies(mode: str, path: bytes) -> bool:
    """Whether the route at C{path} (a request's path, from its C{/}) gets CORS under C{mode}."""
    if mode == "off":
        return False
    first = path[1:].partition(b"/")[0]
    return first not in (NOT_INSPECTION if mode == "inspection" else NEVER)


def add_origin(request: Request) -> None:
    """
    C{Access-Control-Allow-Origin} (and, echoing an Origin, credentials and
    C{Vary: Origin}) on C{request}'s response, just before its head is sent:
    after the resource has set its own headers, so its C{Vary} is kept.
    """
    origin = request.requestHeaders.getRawHeaders(b"origin")
    headers = request.responseHeaders
    if not origin:
        headers.setRawHeaders(b"Access-Control-Allow-Origin", [b"*"])
        return
    headers.setRawHeaders(b"Access-Control-Allow-Origin", [origin[0]])
    headers.setRawHeaders(b"Access-Control-Allow-Credentials", [b"true"])
    vary = headers.getRawHeaders(b"vary")
    headers.setRawHeaders(b"Vary", [b", ".join([*vary, b"Origin"]) if vary else b"Origin"])


def add_preflight(request: Request, allowed: bytes) -> None:
    """
    An C{OPTIONS} answer's CORS part (as httpbin's, on every OPTIONS): the
    methods the resource answers, how long to cache that, and the headers the
    browser asked to send, all allowed (nothing here is private).
    """
    headers = request.responseHeaders
    headers.setRawHeaders(b"Access-Control-Allow-Methods", [allowed])
    headers.setRawHeaders(b"Access-Control-Max-Age", [MAX_AGE])
    asked = request.requestHeaders.getRawHeaders(b"access-control-request-headers")
    if asked:
        headers.setRawHeaders(b"Access-Control-Allow-Headers", [b", ".join(asked)])
