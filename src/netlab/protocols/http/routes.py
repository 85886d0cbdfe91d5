"""
Every address of the web site, in one table: the path, what builds its
resource from the L{HttpContext}, and the methods it answers (besides
C{HEAD} wherever C{GET} is, and C{OPTIONS} everywhere).

The table builds the resource tree; the resource modules only define
resources.  A builder that returns C{None} leaves its path out (C{/static}
without a C{static_dir}, the chat without a hub); a builder named on two
paths serves both with one resource; a path whose parent is not in the
table gets a plain L{Root} parent (C{/ws}).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

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
    """One address: C{path}, its resource's C{make}, and the C{methods} it answers."""

    path: str
    make: Builder
    methods: str


ROUTES: tuple[Route, ...] = (
    # path                    resource                       methods
    Route("/",                front.page,                    "GET POST"),  # see front.py
    Route("/favicon.ico",     front.icon,                    "GET"),
    Route("/dashboard",       dashboard.DashboardPage,       "GET"),
    Route("/dashboard/stream", dashboard.DashboardStream,    "GET"),
    Route("/dashboard/netlab.js", dashboard.script,          "GET"),
    Route("/dashboard/netlab.css", dashboard.stylesheet,     "GET"),
    Route("/events",          dashboard.EventsPage,          "GET"),
    Route("/events/stream",   dashboard.EventsStream,        "GET"),
    Route("/healthz",         dashboard.Healthz,             "GET"),
    Route("/get",             inspect.GetResource,           "GET"),
    Route("/headers",         inspect.HeadersResource,       "GET"),
    Route("/ip",              inspect.IpResource,            "GET"),
    Route("/user-agent",      inspect.UserAgentResource,     "GET"),
    Route("/anything",        forms.anything,                "GET POST PUT PATCH DELETE"),
    Route("/post",            forms.PostResource,            "POST"),
    Route("/time",            timepage.page,                 "GET"),
    Route("/time.html",       timepage.page,                 "GET"),
    Route("/status",          status.status_codes,           "GET"),
    Route("/delay",           status.delay,                  "GET"),
    Route("/bytes",           status.random_bytes,           "GET"),
    Route("/stream",          status.stream,                 "GET"),
    Route("/redirect",        status.redirect,               "GET"),
    Route("/relative-redirect", status.relative_redirect,    "GET"),
    Route("/redirect-to",     status.redirect_to,            "GET POST PUT PATCH DELETE"),
    Route("/cookies",         status.cookies,                "GET"),
    Route("/basic-auth",      status.basic_auth,             "GET"),
    Route("/gzip",            status.gzipped,                "GET"),
    Route("/cache",           status.cache,                  "GET"),
    Route("/RPC2",            xmlrpc.endpoint,               "GET POST"),
    Route("/static",          static.folder,                 "GET"),  # with a static_dir
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
    Route("/response-headers", formats.response_headers,     "GET POST"),
    Route("/json",            formats.slideshow_json,        "GET"),
    Route("/html",            formats.html,                  "GET"),
    Route("/xml",             formats.xml,                   "GET"),
    Route("/robots.txt",      formats.robots,                "GET"),
    Route("/deny",            formats.deny,                  "GET"),
    Route("/encoding/utf8",   formats.utf8,                  "GET"),
    Route("/uuid",            formats.make_uuid,             "GET"),
    Route("/base64",          formats.base64_decoder,        "GET"),
    Route("/bearer",          formats.bearer,                "GET"),
    Route("/hostname",        formats.hostname,              "GET"),
    Route("/websocket/echo",  websocket.echo_endpoint,       "GET"),  # /ws/echo's resource
    # httpbin: transfers, conditionals and redirects
    Route("/range",           transfer.range_bytes,          "GET"),
    Route("/stream-bytes",    transfer.stream_bytes,         "GET"),
    Route("/deflate",         transfer.deflate,              "GET"),
    Route("/links",           transfer.links,                "GET"),
    Route("/etag",            transfer.etag,                 "GET"),
    Route("/absolute-redirect", transfer.absolute_redirect,  "GET"),
    # httpbin: the rest
    Route("/digest-auth",     digest.digest_auth,            "GET"),
    Route("/hidden-basic-auth", status.hidden_basic_auth,    "GET"),
    Route("/brotli",          transfer.brotli_json,          "GET"),
    Route("/drip",            paced.drip,                    "GET"),
    Route("/sse",             paced.pings,                   "GET"),
    Route("/image",           media.images,                  "GET"),
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
