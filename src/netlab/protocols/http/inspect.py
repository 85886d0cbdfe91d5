"""
Request inspection, httpbin style: C{/get}, C{/anything}, C{/headers},
C{/ip} and C{/user-agent} answer with what the server saw of the request,
so students can compare what their client meant to send with what went
over the wire.

Answers are JSON (httpbin's field names, plus the client port, the server
side and the HTTP version), or, for C{?format=text} or a client preferring
C{text/plain}, a plain report laid out like the classic
C{BaseHTTPRequestHandler} example. Reflected data is never served as HTML.
"""

from __future__ import annotations

import ipaddress
import json
import platform
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from twisted.web import pages, server
from twisted.web.resource import IResource, Resource
from twisted.web.server import UnsupportedMethod

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.multipart import ParseError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
JSONValue = Any
BodyDescriber = Callable[[server.Request], dict[str, Any]]

T = TypeVar("T")

JSON_TYPE = b"application/json"
TEXT_TYPE = b"text/plain; charset=utf-8"


def collapse(pairs: Iterable[tuple[str, T]]) -> dict[str, T | list[T]]:
    """Pairs as a dict, a repeated key's values as a list (httpbin's C{args}, C{form})."""
    fields: dict[str, T | list[T]] = {}
    for key, value in pairs:
        if key not in fields:
            fields[key] = value
        else:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return fields


def header_text(value: bytes) -> str:
    """A header value as text: UTF-8 when it is, else ISO-8859-1 (HTTP's historical charset)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def header_pairs(request: server.Request) -> list[tuple[str, str]]:
    """
    The request's headers in arrival order.

    Twisted canonicalises header names (C{user-agent} becomes
    C{User-Agent}); when the channel kept the lines as sent, in a
    C{raw_headers} list of C{(name, value)} bytes on the request, those
    win, so the names are exactly what the client wrote.
    """
    raw: Sequence[tuple[bytes, bytes]] | None = getattr(request, "raw_headers", None)
    if raw is None:
        raw = [
            (name, value)
            for name, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        ]
    return [(name.decode("latin-1"), header_text(value)) for name, value in raw]


def headers_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as httpbin shows them: one entry per name, repeats joined by commas."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def parse_address(text: str) -> IPAddress | None:
    """An address from an X-Forwarded-For entry (C{[v6]:port} and C{v4:port} allowed)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_origin(
    peer: str, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> str:
    """
    The client's address, believing X-Forwarded-For only from trusted proxies.

    The usual right-to-left walk: starting from the direct peer, each
    trusted hop vouches for the address to its left; the first untrusted
    address is the client. A hop that is not an address ends the walk at
    the last one that was; if every hop is trusted, the left-most wins.
    """
    def is_trusted(address: IPAddress) -> bool:
        return any(address in network for network in trusted)

    peer_address = parse_address(peer)
    if peer_address is None or not is_trusted(peer_address):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    origin = str(peer_address)
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        origin = str(address)
        if not is_trusted(address):
            break
    return origin


def prefers_text(accept: str) -> bool:
    """
    Whether an Accept header prefers C{text/plain} to C{application/json}:
    a higher quality, or the same one with text/plain named and JSON not.
    """
    ranges: list[tuple[str, str, float]] = []
    for item in accept.split(","):
        media, *params = item.split(";")
        kind, _, subtype = media.strip().lower().partition("/")
        quality = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if kind and subtype:
            ranges.append((kind, subtype, quality))

    def grade(kind: str, subtype: str) -> tuple[float, bool]:
        best: tuple[int, float] = (-1, 0.0)
        for range_kind, range_subtype, quality in ranges:
            if (range_kind, range_subtype) == (kind, subtype):
                rank = 2
            elif range_kind == kind and range_subtype == "*":
                rank = 1
            elif (range_kind, range_subtype) == ("*", "*"):
                rank = 0
            else:
                continue
            if rank > best[0]:
                best = (rank, quality)
        return best[1], best[0] == 2

    text, text_named = grade("text", "plain")
    data, data_named = grade("application", "json")
    return text > data or (text == data > 0 and text_named and not data_named)


class Inspector:
    """Describes requests for the inspection resources, with the site's proxy trust."""

    def __init__(self, context: HttpContext) -> None:
        self.context = context
        self.trusted: list[IPNetwork] = [
            ipaddress.ip_network(cidr, strict=False) for cidr in context.settings.trusted_proxies
        ]

    def origin(self, request: server.Request) -> str:
        """The client's address: the peer, or whom a trusted proxy forwarded for."""
        peer = getattr(request.getClientAddress(), "host", None)
        if peer is None:
            return "local"
        if not self.trusted:
            return peer  # nobody's X-Forwarded-For counts: no address to parse
        forwarded = [
            header_text(value)
            for value in request.requestHeaders.getRawHeaders(b"x-forwarded-for", [])
        ]
        return forwarded_origin(peer, forwarded, self.trusted)

    def describe(self, request: server.Request) -> dict[str, JSONValue]:
        """What the server saw of the request line, the headers and the connection."""
        uri = request.uri.decode("utf-8", "replace")
        path, _, query = uri.partition("?")
        client = request.getClientAddress()
        host = request.getHost()
        server_host = getattr(host, "host", None)
        scheme = "https" if request.isSecure() else "http"
        host_header = request.getHeader(b"host")
        authority = (
            header_text(host_header) if host_header
            else f"{server_host}:{getattr(host, 'port', '')}"
        )
        return {
            "method": request.method.decode("ascii", "replace"),
            "url": f"{scheme}://{authority}{uri}",
            "path": path,
            "query": query,
            "args": collapse(parse_qsl(query, keep_blank_values=True)),
            "headers": headers_dict(header_pairs(request)),
            "origin": self.origin(request),
            "client_host": getattr(client, "host", None),
            "client_port": getattr(client, "port", None),
            "server_host": server_host,
            "server_port": getattr(host, "port", None),
            "http_version": request.clientproto.decode("ascii", "replace"),
        }

    def wants_text(self, request: server.Request) -> bool:
        """C{?format=text}/C{json} decides; otherwise the Accept header does."""
        query = request.uri.partition(b"?")[2].decode("utf-8", "replace")
        chosen = [value.lower() for key, value in parse_qsl(query) if key == "format"]
        if chosen and chosen[-1] in ("text", "json"):
            return chosen[-1] == "text"
        accept = request.getHeader(b"accept")
        return accept is not None and prefers_text(header_text(accept))

    def text_report(self, request: server.Request, description: dict[str, JSONValue]) -> str:
        """The plain-text report, sections as in the classic BaseHTTPRequestHandler example."""
        client = (description["client_host"], description["client_port"])
        server_address = (description["server_host"], description["server_port"])
        lines = [
            "CLIENT VALUES:",
            f"client_address={client!r}",
            f"origin={description['origin']}",
            f"command={description['method']}",
            f"path={request.uri.decode('utf-8', 'replace')}",
            f"real path={description['path']}",
            f"query={description['query']}",
            f"request_version={description['http_version']}",
            "",
            "SERVER VALUES:",
            f"server_version={server.version.decode()}",
            f"sys_version=Python/{platform.python_version()}",
            f"protocol_version={description['http_version'] or 'HTTP/1.1'}",
            f"server_address={server_address!r}",
            "",
            "HEADERS RECEIVED:",
            *(f"{name}={value}" for name, value in header_pairs(request)),
        ]
        if "data" in description:
            lines += ["", "BODY RECEIVED:", *body_lines(description)]
        return "\n".join(lines) + "\n"

    def answer(self, request: server.Request, description: dict[str, JSONValue]) -> bytes:
        """The description as JSON, or as the text report when the client prefers text."""
        if self.wants_text(request):
            return send_text(request, self.text_report(request, description))
        return send_json(request, description)


def body_lines(description: dict[str, JSONValue]) -> list[str]:
    """The body part of the text report: form fields, files, then the data."""
    lines: list[str] = []
    for name, value in description.get("form", {}).items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"form {name}={item}")
    for name, value in description.get("files", {}).items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(
                f"file {name}: filename={item['filename']} content_type={item['content_type']}"
                f" size={item['size']} sha256={item['sha256']}"
            )
    if description.get("data"):
        lines.append(f"data={description['data']}")
    return lines


def _common_headers(request: server.Request, content_type: bytes) -> None:
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Vary", b"Accept")


def pretty_json(value: JSONValue) -> str:
    """
    C{json.dumps(value, indent=2, ensure_ascii=False)}, the same text, built
    faster: with an indent, C{json} falls back to its pure-Python encoder,
    which took a tenth of the time of every C{/get}.
    """
    out: list[str] = []
    _pretty(value, "\n", out)
    return "".join(out)


def _pretty(value: JSONValue, newline: str, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(_encode_string(value))
    elif kind is dict and value:
        inner = newline + "  "
        separator = "{" + inner
        for key, item in value.items():
            out.append(separator)
            out.append(_encode_string(key) if type(key) is str else _key_text(key))
            out.append(": ")
            _pretty(item, inner, out)
            separator = "," + inner
        out.append(newline + "}")
    elif (kind is list or kind is tuple) and value:
        inner = newline + "  "
        separator = "[" + inner
        for item in value:
            out.append(separator)
            _pretty(item, inner, out)
            separator = "," + inner
        out.append(newline + "]")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is dict:
        out.append("{}")
    elif kind is list or kind is tuple:
        out.append("[]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, dict):
        _pretty(dict(value), newline, out)
    elif isinstance(value, (list, tuple)):
        _pretty(list(value), newline, out)
    else:
        out.append(_encode_other(value))


_encode_string = json.encoder.encode_basestring  # C, as json.dumps(ensure_ascii=False) uses
_encode_other = json.JSONEncoder(ensure_ascii=False).encode


def _key_text(key: object) -> str:
    """A non-string key as C{json} writes it (C{"true"}, C{"1.5"}, C{"null"})."""
    text = _encode_other({key: None})
    return text[1:text.rindex(":")]


def send_json(request: server.Request, value: JSONValue) -> bytes:
    """Set JSON headers and return C{value} pretty-printed, as httpbin does."""
    _common_headers(request, JSON_TYPE)
    return (pretty_json(value) + "\n").encode("utf-8")


def send_text(request: server.Request, text: str) -> bytes:
    """Set plain-text headers and return C{text}."""
    _common_headers(request, TEXT_TYPE)
    return text.encode("utf-8")


def bad_request(request: server.Request, why: str) -> bytes:
    """A 400 answer of one plain line, like the Site's own refusals, for curl users."""
    request.setResponseCode(400)
    return send_text(request, f"400 Bad Request: {why}\n")


class InspectionResource(Resource):
    """
    A page with nothing below it (C{/get/x} is 404, as httpbin's); a wrong
    method gets the site's 405 and C{Allow} list (NetlabRequest.render).
    """

    def getChild(self, path: bytes, request: server.Request) -> IResource:
        return pages.notFound("No Such Resource", "There is nothing at this address.")

    def render_HEAD(self, request: server.Request) -> bytes:
        """HEAD where GET is allowed; Twisted's default would fail on a POST-only resource."""
        render_get = getattr(self, "render_GET", None)
        if render_get is None:
            raise UnsupportedMethod(getattr(self, "allowedMethods", ()))
        body: bytes = render_get(request)
        return body


class GetResource(InspectionResource):
    """C{/get}: the request line, arguments and headers of a GET."""

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.inspector = Inspector(context)

    def render_GET(self, request: server.Request) -> bytes:
        return self.inspector.answer(request, self.inspector.describe(request))


class HeadersResource(GetResource):
    """C{/headers}: only the headers."""

    def render_GET(self, request: server.Request) -> bytes:
        pairs = header_pairs(request)
        if self.inspector.wants_text(request):
            lines = ["HEADERS RECEIVED:", *(f"{name}={value}" for name, value in pairs)]
            return send_text(request, "\n".join(lines) + "\n")
        return send_json(request, {"headers": headers_dict(pairs)})


class IpResource(GetResource):
    """C{/ip}: the client's address, as the server (and its trusted proxies) see it."""

    def render_GET(self, request: server.Request) -> bytes:
        origin = self.inspector.origin(request)
        if self.inspector.wants_text(request):
            return send_text(request, origin + "\n")
        return send_json(request, {"origin": origin})


class UserAgentResource(GetResource):
    """C{/user-agent}: the User-Agent header alone."""

    def render_GET(self, request: server.Request) -> bytes:
        agent = request.getHeader(b"user-agent")
        text = header_text(agent) if agent is not None else None
        if self.inspector.wants_text(request):
            return send_text(request, (text or "") + "\n")
        return send_json(request, {"user-agent": text})


class AnythingResource(Resource):
    """
    C{/anything} and everything below it, for any method: the request and
    its body (parsed forms, uploads, JSON), whatever the method.
    """

    isLeaf = True
    allowedMethods = (b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS")

    def __init__(self, inspector: Inspector, describe_body: BodyDescriber) -> None:
        super().__init__()
        self.inspector = inspector
        self.describe_body = describe_body

    def render(self, request: server.Request) -> bytes:
        description = self.inspector.describe(request)
        try:
            description.update(self.describe_body(request))
        except ParseError as error:
            return bad_request(request, str(error))
        return self.inspector.answer(request, description)
