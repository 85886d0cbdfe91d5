"""
Tests that every over-cap or malformed value anywhere on the web site gets
the same answer: 400, C{text/plain; charset=utf-8}, one line saying what is
wrong (and, over a cap, the setting and its limit), never an HTML page.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.task import Clock

from httptest import Response, Served, serve
from netlab.protocols.http import routes, status
from netlab.protocols.http.routes import Root

# Bad values given in the query (or where a path's number is not the only
# thing to check): each one 400, as every numbered path below is.
BAD_QUERIES = (
    "/bytes/10?seed=abc",
    "/stream-bytes/10?chunk_size=x",
    "/status/abc",
    "/status/200:x",
    "/cache/abc",
    "/etag/a%22b",
    "/links/3/x",
    "/base64/%2A%2A",
    "/redirect-to?url=javascript:alert(1)",
    "/cookies/set?a%3Bb=1",
    "/response-headers?Content-Length=1",
    "/time?format=xml",
    "/drip?numbytes=abc",
    "/drip?duration=-1",
    "/drip?code=abc",
    "/drip?numbytes=0",
    "/drip?numbytes=1001",
    "/drip?delay=999",
    "/sse?count=abc",
    "/sse?count=0",
    "/sse?count=21",
    "/sse?duration=x",
    "/sse?delay=999",
    "/digest-auth/auth/u/p/SHA-1",
)


def serve_everything(events: Any, clock: Clock) -> Served:
    """Every route of the table, with small caps, on loopback port 0."""
    return serve(
        events, clock, routes.ROUTES, root=Root(), max_delay=5.0, max_bytes=1000,
        max_stream=20, max_redirects=5,
    )


def numbered_paths(served: Served) -> list[str]:
    """The table's paths whose resource takes a number below it (C{/delay/N}, ...)."""
    root = served.site.resource
    return [
        route.path for route in routes.ROUTES
        if isinstance(root.getStaticEntity(route.path.encode()[1:]), status.Numbered)
    ]


def is_one_plain_line(answer: Response) -> bool:
    """A 400 whose body is one line of plain text that starts by saying so."""
    body = answer.body.decode("utf-8")
    return (
        answer.status == 400
        and answer.headers.get("content-type") == "text/plain; charset=utf-8"
        and body.startswith("400 Bad Request: ")
        and body.endswith("\n")
        and body.count("\n") == 1
        and "<" not in body
    )


@pytest_twisted.inlineCallbacks
def test_delay_refusals_are_plain_text(events: Any, clock: Clock) -> Any:
    """/delay/999 (over max_delay) and /delay/abc are one plain-text line, not an HTML page."""
    served = serve_everything(events, clock)
    try:
        over = yield served.fetch("/delay/999")
        malformed = yield served.fetch("/delay/abc")
    finally:
        yield served.close()
    assert is_one_plain_line(over), over
    assert over.body == b"400 Bad Request: 999 is over the limit: max_delay is 5\n"
    assert is_one_plain_line(malformed), malformed
    assert b"/delay/SECONDS" in malformed.body
    assert b"abc" not in malformed.body


@pytest_twisted.inlineCallbacks
def test_every_bad_value_is_one_plain_line(events: Any, clock: Clock) -> Any:
    """Each numbered route, with a word, a negative, a huge number and nothing, and each
    query with a bad value: 400 and one plain-text line."""
    served = serve_everything(events, clock)
    paths = numbered_paths(served)
    assert {"/delay", "/bytes", "/stream", "/range", "/links"} <= set(paths), paths
    tried = []
    for path in paths:
        for bad in ("abc", "-1", "99999999", "1.5e3", ""):
            tried.append(f"{path}/{bad}")
    tried.extend(paths)
    tried.extend(BAD_QUERIES)
    answers = {}
    try:
        for target in tried:
            answers[target] = yield served.fetch(target)
    finally:
        yield served.close()
    wrong = {target: answer for target, answer in answers.items()
             if not is_one_plain_line(answer)}
    assert not wrong, sorted(wrong)
