"""Tests for netlab.protocols.http.cors: httpbin's CORS headers, asked with real curl."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from httptest import Served, serve
from netlab.protocols.http import cors, dashboard, forms, front, inspect, metrics, routes, status

ORIGIN = "http://example.org"
CORS_HEADERS = (
    "access-control-allow-origin", "access-control-allow-credentials",
    "access-control-allow-methods", "access-control-allow-headers", "access-control-max-age",
)


def serve_all(events: Any, clock: Any, **settings: Any) -> Served:
    """The inspection routes beside the dashboard, /events, / and /metrics."""
    return serve(
        events, clock, routes.of(inspect, forms, status, dashboard, front, metrics),
        instructor_token="teacher", **settings,
    )


@pytest_twisted.inlineCallbacks
def fetch_all(events: Any, clock: Any, asks: list[tuple[str, tuple[str, ...]]],
              **settings: Any) -> Any:
    """curl each (path, options) of C{asks} on one site; the L{Response}s."""
    served = serve_all(events, clock, **settings)
    try:
        answers = []
        for path, options in asks:
            answers.append((yield served.fetch(path, *options)))
    finally:
        yield served.close()
    return answers


@pytest_twisted.inlineCallbacks
def test_origin_is_echoed_with_credentials(events: Any, clock: Any) -> Any:
    """An Origin comes back, with credentials and Vary: Origin, beside the route's own Vary."""
    (got,) = yield fetch_all(events, clock, [("/get", ("-H", f"Origin: {ORIGIN}"))])
    assert got.status == 200
    assert got.headers["access-control-allow-origin"] == ORIGIN
    assert got.headers["access-control-allow-credentials"] == "true"
    assert got.headers["vary"] == "Accept, Origin"
    assert "access-control-allow-methods" not in got.headers


@pytest_twisted.inlineCallbacks
def test_no_origin_is_star(events: Any, clock: Any) -> Any:
    """Without an Origin: *, and no credentials (browsers refuse them beside *)."""
    answers = yield fetch_all(events, clock, [("/get", ()), ("/ip", ()), ("/user-agent", ()),
                                              ("/headers", ()), ("/cookies", ())])
    for got in answers:
        assert got.status == 200
        assert got.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in got.headers
        assert "origin" not in got.headers.get("vary", "").lower()


@pytest_twisted.inlineCallbacks
def test_every_answer_of_an_inspection_route(events: Any, clock: Any) -> Any:
    """POSTs, 405s, 404s and HEADs on the inspection routes carry the Origin too."""
    origin = ("-H", f"Origin: {ORIGIN}")
    answers = yield fetch_all(events, clock, [
        ("/post", ("-d", "a=1", *origin)),
        ("/anything/x", ("-X", "PUT", *origin)),
        ("/post", origin),                          # GET on a POST-only route: 405
        ("/status/418", origin),
        ("/get", ("-I", *origin)),
    ])
    assert [got.status for got in answers] == [200, 200, 405, 418, 200]
    for got in answers:
        assert got.headers["access-control-allow-origin"] == ORIGIN


@pytest_twisted.inlineCallbacks
def test_preflight(events: Any, clock: Any) -> Any:
    """A preflight OPTIONS: 204, the resource's methods, the headers asked for, a max age."""
    (got, plain) = yield fetch_all(events, clock, [
        ("/anything", ("-X", "OPTIONS", "-H", f"Origin: {ORIGIN}",
                       "-H", "Access-Control-Request-Method: PUT",
                       "-H", "Access-Control-Request-Headers: X-Test")),
        ("/get", ("-X", "OPTIONS")),
    ])
    assert got.status == 204
    assert got.headers["access-control-allow-origin"] == ORIGIN
    assert got.headers["access-control-allow-credentials"] == "true"
    methods = got.headers["access-control-allow-methods"]
    assert methods == got.headers["allow"]
    assert {"PUT", "DELETE", "PATCH", "OPTIONS"} <= set(methods.split(", "))
    assert got.headers["access-control-allow-headers"] == "X-Test"
    assert got.headers["access-control-max-age"] == "3600"
    # Any OPTIONS, as httpbin's: the methods, and no headers nobody asked for.
    assert plain.status == 204
    assert plain.headers["access-control-allow-origin"] == "*"
    assert plain.headers["access-control-allow-methods"] == "GET, HEAD, OPTIONS"
    assert "access-control-allow-headers" not in plain.headers


@pytest.mark.parametrize("mode", ["inspection", "all"])
@pytest_twisted.inlineCallbacks
def test_never_on_the_dashboard_and_events(events: Any, clock: Any, mode: str) -> Any:
    """The dashboard, /events and / (the dashboard for a browser) never get CORS headers."""
    origin = ("-H", f"Origin: {ORIGIN}")
    preflight = ("-X", "OPTIONS", *origin, "-H", "Access-Control-Request-Method: GET")
    answers = yield fetch_all(events, clock, [
        ("/dashboard", origin),
        ("/dashboard?token=teacher", origin),
        ("/events", origin),
        ("/events?token=teacher", origin),
        ("/events/stream", preflight),
        ("/dashboard/stream", preflight),
        ("/dashboard/netlab.js", origin),
        ("/", ("-H", "Accept: text/html", *origin)),
        ("/", origin),
        ("/events", preflight),
    ], cors=mode)
    for got in answers:
        assert got.status in (200, 204)
        assert not set(CORS_HEADERS) & set(got.headers), got.headers


@pytest_twisted.inlineCallbacks
def test_metrics_only_with_all(events: Any, clock: Any) -> Any:
    """/metrics is not an inspection route: CORS with cors = "all" only."""
    (default,) = yield fetch_all(events, clock, [("/metrics", ("-H", f"Origin: {ORIGIN}"))])
    (everything,) = yield fetch_all(events, clock, [("/metrics", ("-H", f"Origin: {ORIGIN}"))],
                                    cors="all")
    assert default.status == everything.status == 200
    assert "access-control-allow-origin" not in default.headers
    assert everything.headers["access-control-allow-origin"] == ORIGIN


@pytest_twisted.inlineCallbacks
def test_off(events: Any, clock: Any) -> Any:
    """cors = "off": no CORS headers anywhere, preflight or not."""
    answers = yield fetch_all(events, clock, [
        ("/get", ("-H", f"Origin: {ORIGIN}")),
        ("/get", ()),
        ("/anything", ("-X", "OPTIONS", "-H", f"Origin: {ORIGIN}",
                       "-H", "Access-Control-Request-Method: PUT")),
    ], cors="off")
    for got in answers:
        assert got.status in (200, 204)
        assert not set(CORS_HEADERS) & set(got.headers)
        assert got.headers.get("vary", "") in ("", "Accept")


def test_route_table_defaults() -> None:
    """
    Every route of the table but the instructor and service surfaces gets
    CORS by default (a new httpbin-style route too); the dashboard, /events,
    / and /mail never.
    """
    off = {"/", "/dashboard", "/dashboard/stream", "/dashboard/netlab.js",
           "/dashboard/netlab.css", "/events", "/events/stream", "/healthz", "/metrics",
           "/ws/echo", "/ws/chat", "/chat", "/RPC2", "/static", "/mail", "/mail/login",
           "/mail/logout", "/mail/stream", "/mail/message", "/mail/mail.js", "/mail/mail.css"}
    for route in routes.ROUTES:
        path = route.path.encode()
        assert cors.applies("inspection", path) == (route.path not in off), route.path
        assert cors.applies("all", path) == (
            route.path.split("/")[1] not in ("", "dashboard", "events", "mail")), route.path
        assert not cors.applies("off", path)
    assert cors.applies("inspection", b"/some-new-route/x")
    assert not cors.applies("all", b"/events/stream?token=x")
