"""
The dashboard (C{/}), the students' live event view (C{/events}) and
C{/healthz}.

Both pages are plain HTML rendered here, then kept up to date without a
reload by one small script reading a Server-Sent Events stream.  Nicks,
topics, paths, peers and the browser's C{Host} are user-controlled: the
HTML escapes them, and the script only ever sets C{textContent}.  A
Content-Security-Policy that allows no inline script is a second line of
defence.

The dashboard is the daemon's home page: one card per service with its
addresses, a line to try each with, the counters its kind declares
(L{ServiceKind.shown_counters}) and a small chart of its last few minutes,
links to every page, and the recent events.  It leaves out the per-chunk
C{received}/C{sent} events: they carry payload samples.  Both pages show a
student the events of their own address only (the dashboard's counters
and rooms are everyone's); the instructor token (C{?token=}) shows
everyone's events.

The charts are drawn in the browser from per-second samples that the
server keeps (L{History}): a page opened now shows the last few minutes at
once, not a chart that starts empty.
"""

from __future__ import annotations

import hmac
import json
import re
from collections import deque
from collections.abc import Callable, Mapping
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

from netlab import __version__
from netlab.core.events import RECEIVED, SENT, ServiceCounters
from netlab.core.kinds import DATAGRAM, STREAM, transport, transport_counters
from netlab.core.limits import peer_address
from netlab.core.workertable import WorkerTable
from netlab.protocols.chat.hub import CHATTING, ChatHub
from netlab.protocols.http.context import DaemonView, HttpContext
from netlab.protocols.http.sse import EventStream

TITLE = f"netlab {__version__}"
RECENT_ON_DASHBOARD = 50
SAMPLE_INTERVAL = 1.0
HISTORY_SECONDS = 180
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
    # The chat's: who is in it now (the hub's own "users" counts logins).
    "users_online": "users",
    "rooms": "rooms",
    "users": "logins",
    # The site's WebSocket connections, which it books under NAME-ws.
    "websocket_connections_open": "WebSockets",
    "websocket_connections_total": "WebSockets in all",
    "websocket_messages_in": "WS msgs in",
    "websocket_messages_out": "WS msgs out",
}
# What each card's chart draws, per second, when its card shows the counter.
CHARTED = (
    ("connections_total", "connections/s"),
    ("datagrams_in", "datagrams/s"),
    ("messages", "messages/s"),
    ("bytes", "bytes/s"),
)
# The pages the dashboard links, each a route of the site (a test checks).
PAGES = (
    ("/", "dashboard"),
    ("/chat", "chat"),
    ("/mail", "mail"),
    ("/events", "your events"),
    ("/time.html", "time"),
    ("/metrics", "metrics"),
    ("/routes", "every address"),
)
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
<header><h1>{title}</h1>{status}<nav>{nav}</nav></header>
<main>
{body}
</main>
</body>
</html>
"""
LIVE_STATUS = '<p id="status" class="status">loading</p>'
# A host name or address as a Host header may carry it, port aside.
HOST_HEADER = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})))"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)
ALL_INTERFACES = frozenset({"0.0.0.0", "::", "::ffff:0.0.0.0"})


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


@dataclass(frozen=True)
class Reach:
    """
    How the viewer reached the site: the host name its browser used (from
    C{Host}, if that is a host name at all) and the local address the
    request came in on.  The try-it lines use the name where a service
    listens on that same address or on all of them.
    """

    host: str | None = None
    local: str | None = None
    netloc: str | None = None
    secure: bool = False

    def host_for(self, bound: str) -> str:
        """The host to try a service bound to C{bound} at."""
        if bound in ALL_INTERFACES or (self.local is not None and normal_host(bound) == self.local):
            return self.host or self.local or bound
        return bound

    @property
    def base(self) -> str:
        """The site's own URL as the browser used it (C{http://lab.example:8080})."""
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.netloc or 'localhost'}"


def reach_of(request: Request) -> Reach:
    """The L{Reach} of C{request}."""
    local = getattr(request.getHost(), "host", None)
    local_port = getattr(request.getHost(), "port", None)
    local = normal_host(local) if local else None
    header = request.getHeader(b"host")
    match = HOST_HEADER.match(header.decode("ascii", "replace")) if header else None
    if match is not None:
        host = match.group("v6") or match.group("name")
        netloc = match.group(0)
    else:
        host = None
        netloc = (f"[{local}]" if local and ":" in local else local or "localhost") + (
            f":{local_port}" if local_port else "")
    return Reach(host=host, local=local, netloc=netloc, secure=request.isSecure())


def split_address(address: str) -> tuple[str, str, str]:
    """C{"tcp 127.0.0.1:7007"} as C{("tcp", "127.0.0.1", "7007")}; a Unix path as its host."""
    scheme, _, where = address.partition(" ")
    if scheme == "unix":
        return scheme, where, ""
    if where.startswith("["):
        host, _, port = where[1:].partition("]:")
        return scheme, host, port
    host, _, port = where.rpartition(":")
    return scheme, host, port


def try_line(template: str, address: str, reach: Reach) -> str:
    """The command a student tries the service at C{address} with."""
    scheme, host, port = split_address(address)
    if scheme == "unix":
        return f"nc -U {host}"
    host = reach.host_for(host)
    if transport(address) == DATAGRAM:
        return f"nc -u {host} {port}"
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return template.format(host=host, port=port, netloc=netloc)


def service_names(context: HttpContext) -> list[str]:
    """
    The services with a card: the configured ones (from the registry, so a
    service shows before it has bound), the listening ones, and the site
    itself; not books that are only part of a service (the site's
    WebSockets, C{NAME-ws}) or the daemon's own (C{netlab}).
    """
    names = dict.fromkeys(name for name, _ in context.services)
    names.update(dict.fromkeys(context.events.listening))
    names.setdefault(context.settings.name)
    return list(names)


def counter_values(
    context: HttpContext, name: str, counted: Mapping[str, ServiceCounters],
) -> tuple[dict[str, int], dict[str, int]]:
    """
    Everything C{name}'s card may show, from the daemon's C{counted}
    (L{whole_daemon}), and the counts that are the service's own (beyond
    L{ServiceCounters}' fields): the site's card has its WebSockets', the
    chat's the users and rooms there are now.
    """
    counters = counted.get(name) or ServiceCounters()
    values = counters.snapshot()
    if name == context.settings.name:
        books = counted.get(context.websocket_service) or ServiceCounters()
        values.update({f"websocket_{key}": n for key, n in books.snapshot().items()})
    hub = context.hub
    if hub is not None and name == hub.name:
        # In a cluster the chat is one: its users on every node.
        values["users_online"] = sum(1 for s in hub.sessions if s.state == CHATTING) + (
            len(hub.cluster.users) if hub.cluster is not None else 0
        )
        values["rooms"] = len(hub.rooms)
    return values, counters.extra


def worker_table(context: HttpContext) -> WorkerTable | None:
    """In a worker of C{[daemon] workers}, every worker's counters; None in one process."""
    table = getattr(context.service, "worker_table", None)
    return table if isinstance(table, WorkerTable) else None


def whole_daemon(context: HttpContext) -> Mapping[str, ServiceCounters]:
    """The daemon's counters by service: in workers, every worker's summed."""
    table = worker_table(context)
    return context.events.counters if table is None else table.total()


def workers(context: HttpContext) -> list[dict[str, Any]] | None:
    """Each worker's connections, and which one answered; None in one process."""
    table = worker_table(context)
    if table is None:
        return None
    return [
        {
            "worker": index, "pid": pid,
            "connections_open": sum(c.connections_open for c in counters.values()),
            "connections_total": sum(c.connections_total for c in counters.values()),
            "answering": index == table.index,
        }
        for index, (pid, counters) in table.by_worker().items()
    ]


def shown_counters(context: HttpContext, name: str, kind: str) -> tuple[str, ...]:
    """The counters C{name}'s card shows: its kind's, or those of how it is reached."""
    addresses = context.events.listening.get(name, [])
    declared = context.kinds.get(kind)
    if declared is not None:
        return declared.shown_counters(addresses)
    return transport_counters({transport(a) for a in addresses} or {STREAM})


def describe_service(
    context: HttpContext, name: str, kind: str, counted: Mapping[str, ServiceCounters],
    reach: Reach | None = None,
) -> dict[str, Any]:
    """One service's card as JSON-safe data, from the daemon's C{counted}."""
    values, own = counter_values(context, name, counted)
    shown = shown_counters(context, name, kind)
    # Counts of the service's own that its kind does not name (a chat's
    # kicks, storage faults) once they happen.
    shown += tuple(key for key, n in own.items() if n and key not in shown)
    addresses = list(context.events.listening.get(name, []))
    declared = context.kinds.get(kind)
    template = declared.try_with if declared is not None else "nc {host} {port}"
    return {
        "name": name,
        "kind": kind,
        "listening": addresses,
        "try": [try_line(template, a, reach or Reach()) for a in addresses],
        "counters": [
            [key, COUNTER_LABELS.get(key, key.replace("_", " ")), values.get(key, 0)]
            for key in shown
        ],
        "series": [[key, label] for key, label in CHARTED if charted(key, shown)],
    }


def charted(key: str, shown: tuple[str, ...]) -> bool:
    """Whether a chart line applies to a card that shows C{shown}."""
    return "bytes_in" in shown if key == "bytes" else key in shown


def chart_totals(context: HttpContext) -> dict[str, dict[str, int]]:
    """The running total behind each chart line of each card, for L{History}."""
    kinds = dict(context.services)
    counted = whole_daemon(context)
    totals = {}
    for name in service_names(context):
        values, _ = counter_values(context, name, counted)
        values["bytes"] = values["bytes_in"] + values["bytes_out"]
        shown = shown_counters(context, name, kinds.get(name, "-"))
        totals[name] = {key: values.get(key, 0) for key, _ in CHARTED if charted(key, shown)}
    return totals


def snapshot(
    context: HttpContext, scope: Scope | None = None, reach: Reach | None = None
) -> dict[str, Any]:
    """
    Everything the dashboard shows to C{scope}, as JSON-safe data (with no
    scope, nobody's events: the counters and rooms only); the try-it lines
    name the host the viewer used (C{reach}).
    """
    events = context.events
    kinds = dict(context.services)
    public = [
        e for e in events.recent
        if scope is not None and e.get("netlab_event") not in PRIVATE_KINDS and scope.shows(e)
    ]
    counted = whole_daemon(context)
    return {
        "services": [
            describe_service(context, name, kinds.get(name, "-"), counted, reach)
            for name in service_names(context)
        ],
        "rooms": rooms(context.hub),
        "workers": workers(context),
        "cluster": (
            context.hub.cluster.status()
            if context.hub is not None and context.hub.cluster is not None else None
        ),
        "events": [describe_event(e) for e in reversed(public[-RECENT_ON_DASHBOARD:])],
        "ready": is_ready(context.service),
    }


class History:
    """
    Per-second rates of each card's chart lines over the last
    L{HISTORY_SECONDS}, kept while someone watches the dashboard: one
    sampling loop for every viewer, stopped with the last.  The counters
    are totals since the start, so a stretch nobody watched is filled in
    with its average rate: the chart loses the shape, never the amount.
    """

    def __init__(self, context: HttpContext) -> None:
        self.context = context
        self.points: deque[dict[str, Any]] = deque(
            maxlen=int(HISTORY_SECONDS / SAMPLE_INTERVAL)
        )
        self._time = context.started
        self._totals: dict[str, dict[str, int]] = {}
        self._watchers: list[Callable[[list[dict[str, Any]]], object]] = []
        self._loop: LoopingCall | None = None

    def watch(self, watcher: Callable[[list[dict[str, Any]]], object]) -> Callable[[], None]:
        """Call C{watcher} with each sample's new points; returns the unwatcher."""
        self._watchers.append(watcher)
        if self._loop is None:
            self._loop = LoopingCall(self.sample)
            self._loop.clock = self.context.reactor
            self._loop.start(SAMPLE_INTERVAL, now=True)

        def unwatch() -> None:
            if watcher in self._watchers:
                self._watchers.remove(watcher)
            if not self._watchers and self._loop is not None:
                loop, self._loop = self._loop, None
                if loop.running:
                    loop.stop()

        return unwatch

    def sample(self) -> None:
        """Add the points since the last sample and pass them to the watchers."""
        now = self.context.reactor.seconds()
        totals = chart_totals(self.context)
        elapsed = now - self._time
        if elapsed <= 0:
            self._totals = totals
            return
        rates = {
            name: {
                key: round(max(total - self._totals.get(name, {}).get(key, 0), 0) / elapsed, 2)
                for key, total in lines.items()
            }
            for name, lines in totals.items()
        }
        steps = min(max(round(elapsed / SAMPLE_INTERVAL), 1), self.points.maxlen or 1)
        new = [
            {"t": round(now - (steps - 1 - i) * SAMPLE_INTERVAL, 3), "rates": rates}
            for i in range(steps)
        ]
        self.points.extend(new)
        self._time, self._totals = now, totals
        for watcher in list(self._watchers):
            watcher(new)


def rooms(hub: ChatHub | None) -> list[dict[str, Any]] | None:
    """
    The chat's rooms with their topics and members (other nodes' too, with
    their node), or C{None} without a chat.
    """
    if hub is None:
        return None
    cluster = hub.cluster
    return [
        {
            "name": room.name,
            "topic": room.topic,
            "users": [{"nick": s.name, "oper": bool(s.oper), "node": None}
                      for s in room.members] + [
                {"nick": u.nick, "oper": u.oper, "node": u.node}
                for u in (cluster.members(room.name) if cluster is not None else [])
            ],
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


def nav_html(context: HttpContext) -> str:
    """Links to the site's pages (the chat's and the mailbox's only when they run)."""
    off = {"/chat": context.hub is None, "/mail": context.mail is None}
    return "".join(
        f'<a href="{path}">{escape(label)}</a>'
        for path, label in PAGES
        if not off.get(path, False)
    )


def html_page(
    request: Request, page: str, title: str, body: str, context: HttpContext | None = None,
    live: bool = True,
) -> bytes:
    """A whole page; C{body} is already escaped HTML."""
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    for name, value in SECURITY_HEADERS.items():
        request.setHeader(name, value)
    return PAGE.format(
        title=escape(title), page=escape(page), body=body,
        status=LIVE_STATUS if live else "",
        nav=nav_html(context) if context is not None else "",
    ).encode()


def service_html(service: dict[str, Any]) -> str:
    listening = "".join(f"<li>{escape(a)}</li>" for a in service["listening"])
    tries = " or ".join(f"<code>{escape(line)}</code>" for line in service["try"])
    counters = "".join(
        f'<div><dt>{escape(label)}</dt><dd data-counter="{escape(key)}">{value}</dd></div>'
        for key, label, value in service["counters"]
    )
    kind = service["kind"]
    subtitle = f' <small class="kind">{escape(kind)}</small>' if kind not in ("-", service[
        "name"]) else ""
    return (
        f'<section class="card" data-service="{escape(service["name"])}">'
        f'<h3>{escape(service["name"])}{subtitle}</h3>'
        f'<ul class="addresses">{listening or "<li class=muted>not listening yet</li>"}</ul>'
        + (f'<p class="try">try <span>{tries}</span></p>' if tries else "")
        + f'<dl class="counters">{counters}</dl><div class="chart"></div></section>'
    )


def room_html(room: dict[str, Any]) -> str:
    users = "".join(
        f'<li>{escape(u["nick"])}{" (oper)" if u["oper"] else ""}'
        + (f' <small>on {escape(u["node"])}</small>' if u["node"] else "")
        + "</li>"
        for u in room["users"]
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


def cluster_html(cluster: dict[str, Any] | None) -> str:
    """The chat cluster's state in words (updated live by the page), if there is one."""
    if cluster is None:
        return ""
    return (
        f'<p id="cluster" class="cluster" data-state="{escape(cluster["state"])}">'
        f'{escape(cluster["text"])}</p>'
    )


def workers_html(rows: list[dict[str, Any]] | None) -> str:
    """Each worker's row (updated live by the page), if the daemon runs workers."""
    if rows is None:
        return ""
    body = "".join(
        f'<tr{" class=answering" if row["answering"] else ""}><td>{row["worker"]}</td>'
        f'<td>{row["pid"]}</td><td>{row["connections_open"]}</td>'
        f'<td>{row["connections_total"]}</td></tr>'
        for row in rows
    )
    return (
        "<section><h2>Workers</h2><p class=muted>The cards count every worker; this page "
        "was answered by the highlighted one.</p>"
        '<table id="workers" class="workers"><thead><tr><th>worker</th><th>pid</th>'
        "<th>open connections</th><th>connections</th></tr></thead>"
        f"<tbody>{body}</tbody></table></section>\n"
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
        + "</div></section>\n"
        + workers_html(data["workers"])
        + '<section><h2>Chat rooms</h2>'
        + cluster_html(data["cluster"])
        + '<div id="rooms" class="cards">'
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
        body = dashboard_html(snapshot(self.context, scope, reach_of(request)))
        return html_page(request, "dashboard", TITLE, body, self.context)


class DashboardStream(Resource):
    """
    C{GET /dashboard/stream}: a C{history} event (the charts' last few
    minutes) and a C{snapshot} event at once; then every second a
    C{sample} event (the charts' new points) and a C{snapshot} when
    something else changed.
    """

    isLeaf = True

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.context = context
        self.history = History(context)

    def render_GET(self, request: Request) -> bytes | int:
        scope = events_scope(request, self.context)
        if scope is None:
            return FORBIDDEN.render(request)
        if request.method == b"HEAD":
            request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
            return b""
        reach = reach_of(request)
        stream = EventStream(request)
        stream.send(
            {"seconds": HISTORY_SECONDS, "points": list(self.history.points)}, event="history"
        )
        last = [""]

        def show() -> None:
            data = snapshot(self.context, scope, reach)
            text = json.dumps(data, sort_keys=True)
            if text != last[0] and stream.send(data, event="snapshot"):
                last[0] = text

        def sampled(points: list[dict[str, Any]]) -> None:
            stream.send({"points": points}, event="sample")
            show()

        show()
        stream.on_close(self.history.watch(sampled))
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
            f'<p class="scope">Events from {escape(scope.describe())}: '
            + escape(self.what_is_shown()) + "</p>"
            '<ol id="events" class="events">'
            + "".join(event_html(e) for e in reversed(seen))
            + "</ol>"
        )
        return html_page(request, "events", f"{TITLE}: what the server saw", body, self.context)

    def what_is_shown(self) -> str:
        """What the page shows at the daemon's log level: payload samples only at debug."""
        if self.context.events.debug_enabled:
            return (
                "connections, byte counts and payload samples (what each read and write "
                "carried), with CR, LF and telnet IAC bytes shown escaped."
            )
        return (
            "connections and disconnections with their byte counts, requests, refusals "
            "and chat events, as they happen; no payload samples at this log level but "
            'from services with log_payload = true (every service\'s at level = "debug", '
            "with CR, LF and telnet IAC bytes shown escaped)."
        )


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
