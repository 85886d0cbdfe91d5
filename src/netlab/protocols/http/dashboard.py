"""
The dashboard (C{/}), the students' live event view (C{/events}) and
C{/healthz}.

Both pages are plain HTML rendered here, then kept up to date without a
reload by one small script reading a Server-Sent Events stream.  Nicks,
topics, paths and peers are user-controlled: the HTML escapes them, and the
script only ever sets C{textContent}.  A Content-Security-Policy that allows
no inline script is a second line of defence.

The dashboard leaves out the per-chunk C{received}/C{sent} events: they
carry payload samples.  Both pages show a student the events of their own
address only (the dashboard's counters and rooms are everyone's); the
instructor token (C{?token=}) shows everyone's events.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from html import escape
from importlib.resources import files
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import formatEvent
from twisted.web import pages, static
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from netlab.core.events import RECEIVED, SENT
from netlab.core.limits import peer_address
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.http.context import DaemonView, HttpContext
from netlab.protocols.http.sse import EventStream

RECENT_ON_DASHBOARD = 50
SNAPSHOT_INTERVAL = 1.0
KEEPALIVE_SECONDS = 15.0
PRIVATE_KINDS = frozenset({RECEIVED, SENT})
COUNTER_LABELS = {
    "connections_open": "open connections",
    "connections_total": "connections",
    "bytes_in": "bytes in",
    "bytes_out": "bytes out",
    "datagrams_in": "datagrams in",
    "datagrams_out": "datagrams out",
    "refused": "refused",
    "dropped": "dropped",
    "errors": "errors",
}
SECURITY_HEADERS = {
    b"Content-Security-Policy": (
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        b"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer",
    b"Cache-Control": b"no-store",
}
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/dashboard/netlab.css">
<script src="/dashboard/netlab.js" defer></script>
</head>
<body data-page="{page}">
<header><h1>{title}</h1><p id="status" class="status">loading</p></header>
<main>
{body}
</main>
</body>
</html>
"""


# -- what the pages show -------------------------------------------------------


def describe_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event as the pages show it: plain JSON-safe text, formatted once."""
    when = datetime.fromtimestamp(event.get("log_time") or 0.0)
    level = event.get("log_level")
    return {
        "time": when.strftime("%H:%M:%S"),
        "service": str(event.get("service", "-")),
        "kind": str(event.get("netlab_event", "-")),
        "peer": str(event.get("peer", "-")),
        "level": getattr(level, "name", str(level)),
        "text": formatEvent(event),
    }


def service_names(context: HttpContext) -> list[str]:
    """
    Every service: the configured ones first (from the registry, so a
    service shows before its first connection), then the listening ones in
    the order they bound, then whatever else has counted (the WebSockets).
    """
    names = dict.fromkeys(name for name, _ in context.services)
    names.update(dict.fromkeys(context.events.listening))
    names.update(dict.fromkeys(sorted(context.events.counters)))
    return list(names)


def snapshot(context: HttpContext, scope: Scope | None = None) -> dict[str, Any]:
    """
    Everything the dashboard shows to C{scope}, as JSON-safe data (with no
    scope, nobody's events: the counters and rooms only).
    """
    events = context.events
    kinds = dict(context.services)
    services = []
    for name in service_names(context):
        counters = events.counters[name].snapshot() if name in events.counters else {}
        services.append({
            "name": name,
            "kind": kinds.get(name, "-"),
            "listening": list(events.listening.get(name, [])),
            "counters": [
                [key, COUNTER_LABELS.get(key, key.replace("_", " ")), value]
                for key, value in counters.items()
            ],
        })
    public = [
        e for e in events.recent
        if scope is not None and e.get("netlab_event") not in PRIVATE_KINDS and scope.shows(e)
    ]
    return {
        "services": services,
        "rooms": rooms(context.hub),
        "events": [describe_event(e) for e in reversed(public[-RECENT_ON_DASHBOARD:])],
        "ready": is_ready(context.service),
    }


def rooms(hub: ChatHub | None) -> list[dict[str, Any]] | None:
    """The chat's rooms with their topics and members, or C{None} without a chat."""
    if hub is None:
        return None
    return [
        {
            "name": room.name,
            "topic": room.topic,
            "users": [{"nick": s.name, "oper": bool(s.oper)} for s in room.members],
        }
        for room in sorted(hub.rooms.values(), key=lambda r: r.name.lower())
    ]


def is_ready(service: DaemonView | None) -> bool:
    """Whether every listener has bound its port (no daemon service: yes)."""
    if service is None:
        return True
    return all(getattr(listener, "port", None) is not None for listener in service.listeners)


def peer_host(peer: str) -> str | None:
    """The host part of an event's C{host:port} or C{[v6]:port} peer."""
    if peer.startswith("["):
        host, bracket, _ = peer[1:].partition("]")
        return host if bracket else None
    host, colon, port = peer.rpartition(":")
    return host if colon and port.isdigit() else None


def normal_host(host: str) -> str:
    """C{host} with IPv4-mapped IPv6 and zone ids folded, so one client is one host."""
    address = peer_address(host)
    return host if address is None else str(address)


# -- HTML ----------------------------------------------------------------------


def html_page(request: Request, page: str, title: str, body: str) -> bytes:
    """A whole page; C{body} is already escaped HTML."""
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    for name, value in SECURITY_HEADERS.items():
        request.setHeader(name, value)
    return PAGE.format(title=escape(title), page=escape(page), body=body).encode()


def service_html(service: dict[str, Any]) -> str:
    listening = "".join(f"<li>{escape(a)}</li>" for a in service["listening"])
    counters = "".join(
        f'<div><dt>{escape(label)}</dt><dd data-counter="{escape(key)}">{value}</dd></div>'
        for key, label, value in service["counters"]
    )
    return (
        f'<section class="card" data-service="{escape(service["name"])}">'
        f'<h3>{escape(service["name"])}</h3>'
        f'<ul class="addresses">{listening or "<li class=muted>not listening</li>"}</ul>'
        f'<dl class="counters">{counters}</dl></section>'
    )


def room_html(room: dict[str, Any]) -> str:
    users = "".join(
        f'<li>{escape(u["nick"])}{" (oper)" if u["oper"] else ""}</li>' for u in room["users"]
    )
    topic = escape(room["topic"]) if room["topic"] else "no topic"
    return (
        f'<section class="card room" data-room="{escape(room["name"])}">'
        f'<h3>{escape(room["name"])}</h3><p class="topic">{topic}</p>'
        f'<ul class="users">{users or "<li class=muted>nobody</li>"}</ul></section>'
    )


def event_html(event: dict[str, Any]) -> str:
    return (
        f'<li data-kind="{escape(event["kind"])}"><time>{escape(event["time"])}</time>'
        f'<span class="text">{escape(event["text"])}</span></li>'
    )


def dashboard_html(data: dict[str, Any]) -> str:
    chat = data["rooms"]
    rooms_html = (
        '<p class="muted">The chat is not running.</p>' if chat is None
        else "".join(room_html(r) for r in chat)
    )
    return (
        '<section><h2>Services</h2><div id="services" class="cards">'
        + "".join(service_html(s) for s in data["services"])
        + '</div></section>\n<section><h2>Chat rooms</h2><div id="rooms" class="cards">'
        + rooms_html
        + '</div></section>\n<section><h2>Recent events</h2><ol id="events" class="events">'
        + "".join(event_html(e) for e in data["events"])
        + "</ol></section>"
    )


# -- resources -----------------------------------------------------------------


class DashboardPage(Resource):
    """C{GET /}: the dashboard; its children are its stream and its assets."""

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.context = context

    def render_GET(self, request: Request) -> bytes:
        scope = events_scope(request, self.context)
        if scope is None:
            return FORBIDDEN.render(request)
        body = dashboard_html(snapshot(self.context, scope))
        return html_page(request, "dashboard", f"netlab: {self.context.settings.name}", body)


class DashboardStream(Resource):
    """
    C{GET /dashboard/stream}: a C{snapshot} event at once, then every
    second in which something changed; a comment now and then otherwise.
    """

    isLeaf = True

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.context = context

    def render_GET(self, request: Request) -> bytes | int:
        scope = events_scope(request, self.context)
        if scope is None:
            return FORBIDDEN.render(request)
        if request.method == b"HEAD":
            request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
            return b""
        stream = EventStream(request)
        last: list[str] = [""]
        quiet = [0]

        def tick() -> None:
            data = snapshot(self.context, scope)
            text = json.dumps(data, sort_keys=True)
            if text != last[0]:
                if stream.send(data, event="snapshot"):
                    last[0] = text
                    quiet[0] = 0
                return
            quiet[0] += 1
            if quiet[0] * SNAPSHOT_INTERVAL >= KEEPALIVE_SECONDS:
                quiet[0] = 0
                stream.comment()

        loop = LoopingCall(tick)
        loop.clock = self.context.reactor
        def stop() -> None:
            if loop.running:
                loop.stop()

        loop.start(SNAPSHOT_INTERVAL, now=True)
        stream.on_close(stop)
        return NOT_DONE_YET


@dataclass(frozen=True)
class Scope:
    """
    Whose events a request may see: everyone's (the instructor token) or
    those of its own host (C{None} for a client without one: a Unix socket).
    """

    everyone: bool
    host: str | None = None

    def shows(self, event: dict[str, Any]) -> bool:
        if self.everyone:
            return True
        host = peer_host(str(event.get("peer", "")))
        return host is not None and normal_host(host) == self.host

    def describe(self) -> str:
        if self.everyone:
            return "every client (instructor view)"
        if self.host is None:
            return "your address (none on this socket)"
        return f"your address, {self.host}"


def events_scope(request: Request, context: HttpContext) -> Scope | None:
    """The L{Scope} of C{request}; C{None} for a wrong instructor token."""
    given = request.args.get(b"token")
    if given is not None:
        expected = context.settings.instructor_token.encode()
        if expected and hmac.compare_digest(given[0], expected):
            return Scope(everyone=True)
        return None
    host = getattr(request.getClientAddress(), "host", None)
    return Scope(everyone=False, host=normal_host(host) if host else None)


FORBIDDEN = pages.forbidden("Forbidden", "That instructor token is not right.")


class EventsPage(Resource):
    """C{GET /events}: what the server saw from your address, live."""

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.context = context

    def render_GET(self, request: Request) -> bytes:
        scope = events_scope(request, self.context)
        if scope is None:
            return FORBIDDEN.render(request)
        seen = [describe_event(e) for e in self.context.events.recent if scope.shows(e)]
        body = (
            f'<p class="scope">Events from {escape(scope.describe())}: connections, '
            "byte counts and "
            "payload samples, with CR, LF and telnet IAC bytes shown escaped.</p>"
            '<ol id="events" class="events">'
            + "".join(event_html(e) for e in reversed(seen))
            + "</ol>"
        )
        return html_page(request, "events", "netlab: what the server saw", body)


class EventsStream(Resource):
    """
    C{GET /events/stream}: a C{reset} event, the matching recent events,
    then each new matching event as it happens.
    """

    isLeaf = True

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.context = context

    def render_GET(self, request: Request) -> bytes | int:
        scope = events_scope(request, self.context)
        if scope is None:
            return FORBIDDEN.render(request)
        if request.method == b"HEAD":
            request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
            return b""
        stream = EventStream(request)
        stream.send({}, event="reset")
        for event in list(self.context.events.recent):
            if scope.shows(event):
                stream.send(describe_event(event), event="netlab")

        def push(event: dict[str, Any]) -> None:
            if scope.shows(event):
                stream.send(describe_event(event), event="netlab")

        stream.on_close(self.context.events.subscribe(push))
        stream.keepalive(self.context.reactor, KEEPALIVE_SECONDS)
        return NOT_DONE_YET


class Healthz(Resource):
    """C{GET /healthz}: 200 once every listener is bound, 503 before (and while stopping)."""

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.context = context

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        if is_ready(self.context.service):
            return b"ok\n"
        request.setResponseCode(503)
        return b"not ready: some listeners are not bound\n"


def asset(name: str) -> bytes:
    return files("netlab.protocols.http").joinpath("assets", name).read_bytes()


def script(context: HttpContext) -> Resource:
    """C{/dashboard/netlab.js}: the dashboard's script."""
    return static.Data(asset("netlab.js"), "text/javascript; charset=utf-8")


def stylesheet(context: HttpContext) -> Resource:
    """C{/dashboard/netlab.css}: the dashboard's style."""
    return static.Data(asset("netlab.css"), "text/css; charset=utf-8")
