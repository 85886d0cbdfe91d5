"""
Every address of the web site, in one table: the path, what builds its
resource from the L{HttpContext}, and the methods it answers (besides
C{HEAD} wherever C{GET} is, and C{OPTIONS} everywhere).

The table builds the resource tree; the resource modules only define
resources.  Each route has an example address too, which C{/routes} (the
table as a page: HTML for browsers, text for curl) shows and links.  A
builder that returns C{None} leaves its path out (C{/static} without a
C{static_dir}, the chat without a hub); a builder named on two
paths serves both with one resource; a path whose parent is not in the
table gets a plain L{Root} parent (C{/ws}).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape
from types import ModuleType
from typing import Any

from twisted.web import pages, server
from twisted.web.resource import IResource, Resource

from netlab.protocols.http import (
    dashboard,
    digest,
    formats,
    forms,
    front,
    inspect,
    mailbox,
    media,
    metrics,
    paced,
    static,
    status,
    timepage,
    transfer,
    websocket,
    xmlrpc,
)
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.site import NetlabSite

Builder = Callable[[HttpContext], IResource | None]


@dataclass(frozen=True)
class Route:
    """
    One address: C{path}, its resource's C{make}, the C{methods} it answers,
    and an C{example} address to try it at (the path itself if none).
    """

    path: str
    make: Builder
    methods: str
    example: str = ""

    @property
    def tried_at(self) -> str:
        """The address to try it at."""
        return self.example or self.path


class RoutesPage(Resource):
    """
    C{GET /routes}: every route of L{ROUTES} with its methods and an
    example, as a table for a browser (each example a link where a browser
    can follow it) and as plain text for curl; a route this site left out
    (no chat, no C{static_dir}) is listed as off.
    """

    isLeaf = True

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.context = context

    def render_GET(self, request: server.Request) -> bytes:
        base = dashboard.reach_of(request).base
        root = getattr(request.site, "resource", None)
        served = [(route, present(root, route.path)) for route in ROUTES]
        if front.accepts_html(request.getHeader(b"accept")):
            rows = "".join(route_row(route, on, base) for route, on in served)
            body = (
                '<p class="muted">Every address of this site, with the methods it answers '
                "(and HEAD wherever GET, OPTIONS everywhere) and an example.</p>"
                '<div class="scroll"><table id="routes"><thead><tr><th>path</th>'
                "<th>methods</th><th>example</th></tr></thead><tbody>"
                + rows + "</tbody></table></div>"
            )
            return dashboard.html_page(
                request, "routes", f"{dashboard.TITLE}: every address", body, self.context,
                live=False,
            )
        width = max(len(route.path) for route in ROUTES)
        lines = [
            f"{route.path:<{width}}  {route.methods:<26}  "
            + (example_command(route, base) if on else "(off on this server)")
            for route, on in served
        ]
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return "\n".join([f"{dashboard.TITLE}: every address of this site", "", *lines, ""]
                         ).encode()


def example_command(route: Route, base: str) -> str:
    """How to try C{route}: its example URL, as a curl command unless it answers GET."""
    url = base + route.tried_at
    if "GET" in route.methods.split():
        return url
    return f"curl -X {route.methods.split()[0]} {url}"


def route_row(route: Route, on: bool, base: str) -> str:
    """One route as a row of the HTML table; the example a link where a browser can go."""
    if not on:
        example = '<span class="muted">off on this server</span>'
    elif "GET" in route.methods.split():
        example = f'<a href="{escape(route.tried_at)}">{escape(base + route.tried_at)}</a>'
    else:
        example = f"<code>{escape(example_command(route, base))}</code>"
    return (
        f'<tr data-route="{escape(route.path)}"><td><code>{escape(route.path)}</code></td>'
        f"<td>{escape(route.methods)}</td><td>{example}</td></tr>"
    )


def present(root: Any, path: str) -> bool:
    """Whether the site's tree has a resource at C{path} (the table's, not a 404)."""
    node = root
    for name in path.encode().split(b"/")[1:]:
        node = getattr(node, "children", {}).get(name)
        if node is None:
            return False
    return True


def route_list(context: HttpContext) -> RoutesPage:
    """C{/routes}."""
    return RoutesPage(context)


ROUTES: tuple[Route, ...] = (
    # path                    resource                       methods     example
    Route("/", front.page, "GET POST", "/?foo=bar"), # see front.py
    Route("/favicon.ico",     front.icon,                    "GET"),
    Route("/dashboard",       dashboard.DashboardPage,       "GET"),
    Route("/dashboard/stream", dashboard.DashboardStream,    "GET"),
    Route("/dashboard/netlab.js", dashboard.script,          "GET"),
    Route("/dashboard/netlab.css", dashboard.stylesheet,     "GET"),
    Route("/events",          dashboard.EventsPage,          "GET"),
    Route("/events/stream",   dashboard.EventsStream,        "GET"),
    Route("/healthz",         dashboard.Healthz,             "GET"),
    Route("/routes",          route_list,                    "GET"),
    Route("/get",             inspect.GetResource,           "GET", "/get?foo=bar"),
    Route("/headers",         inspect.HeadersResource,       "GET"),
    Route("/ip",              inspect.IpResource,            "GET"),
    Route("/user-agent",      inspect.UserAgentResource,     "GET"),
    Route("/anything", forms.anything, "GET POST PUT PATCH DELETE", "/anything/x?y=z"),
    Route("/post",            forms.PostResource,            "POST"),
    Route("/time",            timepage.page,                 "GET", "/time?format=json"),
    Route("/time.html",       timepage.page,                 "GET"),
    Route("/status",          status.status_codes,           "GET", "/status/418"),
    Route("/delay",           status.delay,                  "GET", "/delay/1"),
    Route("/bytes",           status.random_bytes,           "GET", "/bytes/16"),
    Route("/stream",          status.stream,                 "GET", "/stream/3"),
    Route("/redirect",        status.redirect,               "GET", "/redirect/2"),
    Route("/relative-redirect", status.relative_redirect,    "GET", "/relative-redirect/2"),
    Route("/redirect-to", status.redirect_to, "GET POST PUT PATCH DELETE", "/redirect-to?url=/get"),
    Route("/cookies",         status.cookies,                "GET", "/cookies/set?flavour=oat"),
    Route("/basic-auth",      status.basic_auth,             "GET", "/basic-auth/user/passwd"),
    Route("/gzip",            status.gzipped,                "GET"),
    Route("/cache",           status.cache,                  "GET", "/cache/60"),
    Route("/RPC2",            xmlrpc.endpoint,               "GET POST"),
    Route("/static", static.folder, "GET", "/static/"), # with a static_dir
    Route("/metrics",         metrics.scrape,                "GET"),
    Route("/ws/echo",         websocket.echo_endpoint,       "GET"),
    Route("/ws/chat",         websocket.chat_endpoint,       "GET"),  # with the chat
    Route("/chat",            websocket.chat_page,           "GET"),  # with the chat
    Route("/mail",            mailbox.page,                  "GET"),  # with [smtp]
    Route("/mail/login",      mailbox.login,                 "POST"),
    Route("/mail/logout",     mailbox.logout,                "POST"),
    Route("/mail/stream",     mailbox.stream,                "GET"),
    Route("/mail/message",    mailbox.message,               "GET"),
    Route("/mail/mail.js",    mailbox.script,                "GET"),
    Route("/mail/mail.css",   mailbox.stylesheet,            "GET"),
    # httpbin: fixed formats and methods
    Route("/put",             formats.put,                   "PUT"),
    Route("/patch",           formats.patch,                 "PATCH"),
    Route("/delete",          formats.delete,                "DELETE"),
    Route("/response-headers", formats.response_headers, "GET POST", "/response-headers?x=hi"),
    Route("/json",            formats.slideshow_json,        "GET"),
    Route("/html",            formats.html,                  "GET"),
    Route("/xml",             formats.xml,                   "GET"),
    Route("/robots.txt",      formats.robots,                "GET"),
    Route("/deny",            formats.deny,                  "GET"),
    Route("/encoding/utf8",   formats.utf8,                  "GET"),
    Route("/uuid",            formats.make_uuid,             "GET"),
    Route("/base64", formats.base64_decoder, "GET", "/base64/SFRUUEJJTiBpcyBhd2Vzb21l"),
    Route("/bearer",          formats.bearer,                "GET"),
    Route("/hostname",        formats.hostname,              "GET"),
    Route("/websocket/echo",  websocket.echo_endpoint,       "GET"),  # /ws/echo's resource
    # httpbin: transfers, conditionals and redirects
    Route("/range",           transfer.range_bytes,          "GET", "/range/26"),
    Route("/stream-bytes",    transfer.stream_bytes,         "GET", "/stream-bytes/64"),
    Route("/deflate",         transfer.deflate,              "GET"),
    Route("/links",           transfer.links,                "GET", "/links/5/0"),
    Route("/etag",            transfer.etag,                 "GET", "/etag/abc"),
    Route("/absolute-redirect", transfer.absolute_redirect,  "GET", "/absolute-redirect/2"),
    # httpbin: the rest
    Route("/digest-auth", digest.digest_auth, "GET", "/digest-auth/auth/user/passwd"),
    Route("/hidden-basic-auth", status.hidden_basic_auth, "GET", "/hidden-basic-auth/user/passwd"),
    Route("/brotli",          transfer.brotli_json,          "GET"),
    Route("/drip",            paced.drip,                    "GET", "/drip?duration=2&numbytes=10"),
    Route("/sse",             paced.pings,                   "GET", "/sse?count=3&duration=3"),
    Route("/image",           media.images,                  "GET", "/image/png"),
    Route("/forms/post",      media.forms_post,              "GET"),
)


class Root(Resource):
    """A node of the tree (the site's root, C{/ws}): unknown children get Twisted's 404 page."""

    def getChild(self, path: bytes, request: server.Request) -> IResource:
        return pages.notFound("No Such Resource", "There is nothing at this address.")


def of(*modules: ModuleType) -> list[Route]:
    """The routes whose resources C{modules} define (a test serves one module's)."""
    names = {module.__name__ for module in modules}
    return [route for route in ROUTES if route.make.__module__ in names]


def install(
    root: Resource, context: HttpContext, routes: Iterable[Route] = ROUTES
) -> Resource:
    """Build each route's resource and put it at its path under C{root}; C{root}."""
    built: dict[Builder, IResource | None] = {}
    nodes: dict[tuple[bytes, ...], IResource] = {(): root}
    # Parents first, whatever the order of the table.
    for route in sorted(routes, key=lambda r: r.path.count("/")):
        if route.make not in built:
            built[route.make] = route.make(context)
        made = built[route.make]
        if made is None:
            continue
        *parents, name = route.path.encode().split(b"/")[1:]
        parent = _node(nodes, tuple(parents))
        parent.putChild(name, made)
        nodes[(*parents, name)] = made
    return root


def _node(nodes: dict[tuple[bytes, ...], IResource], path: tuple[bytes, ...]) -> IResource:
    """The resource at C{path}, made a plain L{Root} if the table has none there."""
    node = nodes.get(path)
    if node is None:
        node = nodes[path] = Root()
        _node(nodes, path[:-1]).putChild(path[-1], node)
    return node


def build_root(context: HttpContext) -> Resource:
    """The whole resource tree of the site."""
    return install(Root(), context)


def make_site(context: HttpContext) -> NetlabSite:
    """The Site for C{context}, with every route installed."""
    return NetlabSite(build_root(context), context)
