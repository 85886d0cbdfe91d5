"""
The site's front door, C{/}, as the course's clients use it.

The course points every HTTP exercise at C{/}, where its reference servers
(Python's C{http.server} and C{SimpleXMLRPCServer}) answer whatever comes:
C{curl -i 'http://host:port/?foo=bar'} expects the classic
C{CLIENT VALUES / SERVER VALUES / HEADERS RECEIVED} report,
C{curl -F name=x -F datafile=@file http://host:port/} the classic
C{cgi.FieldStorage} form report, and C{xmlrpc.client.ServerProxy} POSTs its
calls to C{/}.  A browser, meanwhile, should still find the dashboard there.
So C{/} decides by what the request says it is:

* C{GET} and C{HEAD}: a request whose C{Accept} names C{text/html} (every
  browser's navigation does) gets the dashboard; any other (curl's and
  wget's C{*/*}, a raw socket or C{urllib} sending no C{Accept}) gets the
  report.  Both answers say C{Vary: Accept}.
* C{POST}: an XML body (C{text/xml}, as C{xmlrpc.client} sends, or
  C{application/xml}) is an XML-RPC call, served as at C{/RPC2}; a form
  (C{multipart/form-data}, C{application/x-www-form-urlencoded}, or no
  C{Content-Type}, which C{cgi} read as a urlencoded form) gets the form
  report; anything else is 415.

The reports copy the classic examples' layout line for line (their line
ends too: CRLF for the GET report, LF for the form report), so a student can
diff netlab's answer with their own server's.  Forms are parsed, and
limited, as at C{/post}.
"""

from __future__ import annotations

import ipaddress
import platform
from typing import Any

from twisted.web import server
from twisted.web.resource import Resource

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.dashboard import DashboardPage, asset
from netlab.protocols.http.forms import (
    FORM_DATA,
    FORM_URLENCODED,
    chunks,
    form_parts,
    parse_urlencoded,
)
from netlab.protocols.http.inspect import (
    InspectionResource,
    bad_request,
    header_pairs,
    header_text,
    send_text,
)
from netlab.protocols.http.multipart import ParseError
from netlab.protocols.http.xmlrpc import LabXMLRPC, endpoint

XML_TYPES = frozenset({"text/xml", "application/xml"})


def accepts_html(accept: bytes | None) -> bool:
    """
    Whether an C{Accept} header names C{text/html} (with a quality above 0).

    Browsers name it when they navigate to a page; curl, wget and requests
    send C{*/*}, C{urllib} and hand-typed requests nothing, and none of
    those want the dashboard's HTML.
    """
    if accept is None or b"html" not in accept.lower():
        return False
    for item in accept.lower().split(b","):
        media, *params = item.split(b";")
        if media.strip() != b"text/html":
            continue
        for param in params:
            key, _, value = param.partition(b"=")
            if key.strip() == b"q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def media_type(request: server.Request) -> tuple[str, str]:
    """The request's C{Content-Type} as sent, and its media type alone, lower-case."""
    raw = request.getHeader(b"content-type")
    content_type = header_text(raw) if raw is not None else ""
    return content_type, content_type.partition(";")[0].strip().lower()


def client_address(request: server.Request) -> tuple[Any, ...]:
    """
    The peer as Python's C{socketserver} gives it to a handler: C{(host,
    port)}, or C{(host, port, flowinfo, scope_id)} over IPv6.
    """
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    port = getattr(peer, "port", None)
    if host is not None and ":" in host:
        return (host, port, getattr(peer, "flowInfo", 0), getattr(peer, "scopeID", 0))
    return (host, port)


def host_name(host: object) -> str:
    """
    The peer's name in the report's C{client_address=... (name)}.

    The classic handler asked the resolver (C{socket.getfqdn}), which blocks
    and would stall every other client of the daemon; a loopback address
    is C{localhost}, any other stands for itself (as in Python 3's
    C{address_string}).
    """
    try:
        if ipaddress.ip_address(str(host)).is_loopback:
            return "localhost"
    except ValueError:
        pass
    return str(host)


def get_report(request: server.Request) -> str:
    """The classic C{BaseHTTPRequestHandler} GET example's report of C{request}."""
    address = client_address(request)
    path = request.uri.decode("utf-8", "replace")
    real_path, _, query = path.partition("?")
    version = request.clientproto.decode("ascii", "replace")
    lines = [
        "CLIENT VALUES:",
        f"client_address={address!r} ({host_name(address[0])})",
        f"command={request.method.decode('ascii', 'replace')}",
        f"path={path}",
        f"real path={real_path}",
        f"query={query}",
        f"request_version={version}",
        "",
        "SERVER VALUES:",
        f"server_version={server.version.decode()}",
        f"sys_version=Python/{platform.python_version()}",
        f"protocol_version={version or 'HTTP/1.1'}",
        "",
        "HEADERS RECEIVED:",
        *(f"{name}={value.rstrip()}" for name, value in sorted(header_pairs(request))),
        "",
    ]
    return "\r\n".join(lines)


def form_lines(request: server.Request, content_type: str, kind: str) -> list[str]:
    """
    The form's fields and files, in the order they came, as the classic
    C{cgi.FieldStorage} example prints them; raises L{ParseError}.
    """
    content = request.content
    if content is None:
        return []
    if kind == FORM_DATA:
        return [
            f'\tUploaded {part.name} as "{part.filename}" ({part.size} bytes)' if part.is_file
            else f"\t{part.name}={bytes(part.value).decode('utf-8', 'replace')}"
            for part in form_parts(content_type, content)
        ]
    body = b"".join(chunks(content))
    return [f"\t{name}={value}" for name, value in parse_urlencoded(body)]


def form_report(request: server.Request, fields: list[str]) -> str:
    """The classic C{cgi.FieldStorage} POST example's report."""
    agent = request.getHeader(b"user-agent")
    lines = [
        f"Client: {client_address(request)!r}",
        f"User-agent: {header_text(agent) if agent is not None else None}",
        f"Path: {request.uri.decode('utf-8', 'replace')}",
        "Form data:",
        *fields,
    ]
    return "".join(line + "\n" for line in lines)


class FrontPage(InspectionResource):
    """
    C{/}: the dashboard for browsers, the course's reports and XML-RPC for
    its clients.  Any other method is 405 with an C{Allow} list, as on the
    inspection pages (not Twisted's 501 for a method it does not know).
    """

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.dashboard = DashboardPage(context)
        self.rpc: LabXMLRPC = endpoint(context)

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"Vary", b"Accept")
        if accepts_html(request.getHeader(b"accept")):
            return self.dashboard.render_GET(request)
        return send_text(request, get_report(request))

    def render_POST(self, request: server.Request) -> Any:
        content_type, kind = media_type(request)
        if kind in XML_TYPES:
            return self.rpc.render(request)
        if kind not in (FORM_DATA, FORM_URLENCODED, ""):
            request.setResponseCode(415)
            return send_text(
                request,
                f"415 Unsupported Media Type: POST / takes a form ({FORM_DATA} or "
                f"{FORM_URLENCODED}) or an XML-RPC call (text/xml), not {kind}\n",
            )
        try:
            fields = form_lines(request, content_type, kind)
        except ParseError as error:
            return bad_request(request, str(error))
        return send_text(request, form_report(request, fields))


def page(context: HttpContext) -> FrontPage:
    """C{/}: the front door (the dashboard itself stays at C{/dashboard})."""
    return FrontPage(context)


class Icon(Resource):
    """
    C{/favicon.ico}: netlab's icon, which every browser asks for on its first
    page (without it each page load logged a 404).  Cached for a day.
    """

    isLeaf = True
    body = asset("favicon.ico")

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"Content-Type", b"image/x-icon")
        request.setHeader(b"Cache-Control", b"public, max-age=86400")
        return self.body


def icon(context: HttpContext) -> Icon:
    """C{/favicon.ico}."""
    return Icon()
