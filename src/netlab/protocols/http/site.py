"""
The web site: one C{twisted.web} Site for every HTTP resource, with the
limits a server facing a room of students needs.

* A request body over C{max_body} is answered 413 as soon as its declared
  length (or, when chunked, what has arrived) passes the limit, without
  reading the rest.
* A connection must send its complete headers within C{header_timeout}
  seconds, however slowly it trickles bytes (slowloris).
* Connections per peer and in total are capped like every stream service.
* Every request is one access event in the EventLog.
* C{OPTIONS} works on every resource (an C{Allow} list); C{HEAD} does
  wherever C{GET} does (Twisted's own behaviour).

Resources live one module per group in this package; each module has an
C{install(root, context)} that puts its children on the root resource.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.web import http, pages, resource, server
from twisted.web.http_headers import Headers

from netlab.core.events import (
    CONNECTED,
    DISCONNECTED,
    HTTP_REQUEST,
    REFUSED,
    EventLog,
    describe_address,
)
from netlab.core.fastwrite import write_now
from netlab.core.limits import ConnectionLimits, OpenConnections, SettingsAccess
from netlab.protocols.http.settings import HttpSettings


@dataclass
class HttpContext:
    """
    What every resource may need, handed to each module's C{install}.

    @ivar reactor: for time (C{seconds}, C{callLater}) and threads; tests
        may pass a C{task.Clock} where only time is used.
    @ivar hub: the chat hub shared with the telnet users, if the chat runs.
    @ivar service: the L{netlab.app.service.NetlabService}, for what the
        dashboard shows (listeners, readiness).
    """

    settings: HttpSettings
    events: EventLog
    reactor: Any
    hub: Any = None
    service: Any = None
    started: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)


class NetlabRequest(server.Request):
    """A request that counts its body against C{max_body} as it arrives."""

    channel: NetlabChannel

    def __init__(self, channel: NetlabChannel, *args: Any, **kwargs: Any) -> None:
        # Form bodies are parsed by the resources that want them (forms.py
        # keeps filenames, answers bad bodies with one line); Twisted's own
        # parser would read every POST body again first.
        super().__init__(channel, *args, parsePOSTFormSubmission=False, **kwargs)
        self.netlab_started = channel.site.context.reactor.seconds()
        self.body_received = 0
        # Header names as the client spelled them, for the inspection pages.
        self.raw_headers: list[tuple[bytes, bytes]] = []

    def write(self, data: bytes) -> None:
        """
        The first write sends the status line, the headers and C{data} in one
        go (see L{NetlabChannel.writeHeaders}); later writes go straight on.
        """
        channel = self.channel
        if self.startedWriting or channel is None:
            super().write(data)
            return
        channel.response_head = []
        try:
            super().write(data)
        finally:
            head, channel.response_head = channel.response_head, None
            if head:
                channel.send(b"".join(head))

    def handleContentChunk(self, data: bytes) -> None:
        self.body_received += len(data)
        if self.body_received > self.channel.site.context.settings.max_body:
            self.channel.body_too_large()
            return
        super().handleContentChunk(data)

    def render(self, resrc: resource.IResource) -> None:
        if self.method == b"OPTIONS" and not hasattr(resrc, "render_OPTIONS"):
            allowed = getattr(resrc, "allowedMethods", None)
            if allowed is None:
                allowed = resource._computeAllowedMethods(resrc)
            methods = {m.decode() for m in allowed} | {"OPTIONS"}
            if "GET" in methods:
                methods.add("HEAD")
            self.setResponseCode(204)
            self.setHeader(b"Allow", ", ".join(sorted(methods)).encode())
            self.setHeader(b"Content-Length", b"0")
            self.finish()
            return
        super().render(resrc)


class NetlabChannel(http.HTTPChannel):
    """An HTTP connection with a header deadline, a body limit and accounting."""

    site: NetlabSite
    _header_deadline: IDelayedCall | None = None
    # When the wait for a request's headers began; None when none is owed.
    _headers_since: float | None = None
    peer_host = "local"
    peer = "-"
    refused = False

    # What the first Request.write of a response has produced so far, to be
    # sent as one piece (or None when no first write is under way).
    response_head: list[bytes] | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        # Twisted asks for these on every request: a getsockname() system
        # call and an interface adaptation each time, for what cannot change.
        assert self.transport is not None
        self._host = self.transport.getHost()
        self._secure = super().isSecure()
        self.started = self.site.context.reactor.seconds()
        self.bytes_in = 0
        self.bytes_out = 0
        counters = self.site.counters
        counters.connections_open += 1
        counters.connections_total += 1
        self.site.context.events.emit(
            CONNECTED, self.site.name, self.peer, LogLevel.debug,
            open=counters.connections_open,
        )
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        """The client owes us a request's headers from now on."""
        self._headers_since = self.site.context.reactor.seconds()
        if self._header_deadline is None:
            self._header_deadline = self.callLater(
                self.site.context.settings.header_timeout, self._check_header_deadline
            )

    def _headers_are_in(self) -> None:
        """
        The headers are in.  The timer is left to run (one per connection,
        not a new one for every keep-alive request): when it fires with
        nothing owed, it stops.
        """
        self._headers_since = None

    def _stop_header_deadline(self) -> None:
        self._headers_since = None
        if self._header_deadline is not None and self._header_deadline.active():
            self._header_deadline.cancel()
        self._header_deadline = None

    def _check_header_deadline(self) -> None:
        self._header_deadline = None
        since = self._headers_since
        if since is None:
            return
        timeout = self.site.context.settings.header_timeout
        left = since + timeout - self.site.context.reactor.seconds()
        if left > 0:
            self._header_deadline = self.callLater(left, self._check_header_deadline)
            return
        self._refuse(408, "Request Timeout", "headers not complete in time (header_timeout)")

    def getHost(self) -> IAddress:
        return self._host

    def isSecure(self) -> bool:
        return self._secure

    def send(self, data: bytes) -> None:
        """
        Write C{data} now, skipping Twisted's write-on-the-next-pass buffer
        when it is empty (two C{epoll_ctl} calls fewer per response).
        """
        if self.transport is not None:
            write_now(self.transport, data)

    def writeHeaders(
        self, version: bytes, code: bytes, reason: bytes, headers: Headers
    ) -> None:
        # Twisted's own, but through send(); it always passes Headers, whose
        # setters have already refused CR and LF in names and values.
        head = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        self.writeSequence(head)

    def write(self, data: bytes) -> None:
        if self.response_head is not None:
            self.response_head.append(data)
        else:
            self.send(data)

    def writeSequence(self, iovec: list[bytes]) -> None:
        if self.response_head is not None:
            self.response_head += iovec
        else:
            self.send(b"".join(iovec))

    def dataReceived(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.site.counters.bytes_in += len(data)
        super().dataReceived(data)

    def headerReceived(self, line: bytes) -> bool:
        accepted: bool = super().headerReceived(line)
        if accepted and self.requests:
            name, _, value = line.partition(b":")
            self.requests[-1].raw_headers.append((name, value.strip(b" \t")))
        return accepted

    def allHeadersReceived(self) -> None:
        self._headers_are_in()
        limit = self.site.context.settings.max_body
        if self.length is not None and self.length > limit:
            self.body_too_large()
            return
        super().allHeadersReceived()

    def body_too_large(self) -> None:
        self._refuse(
            413, "Content Too Large",
            f"request body over max_body ({self.site.context.settings.max_body} bytes)",
        )

    def _refuse(self, code: int, phrase: str, why: str) -> None:
        """Answer C{code} at once and hang up, reading nothing more."""
        if self.refused or self.transport is None:
            return
        self.refused = True
        site = self.site
        site.counters.refused += 1
        site.context.events.emit(REFUSED, site.name, self.peer, LogLevel.warn, limit=why)
        body = f"{code} {phrase}: {why}\n".encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (code, phrase.encode(), len(body), body)
        )
        self.dataReceived = lambda data: None  # type: ignore[method-assign]
        self.transport.loseConnection()

    def requestDone(self, request: http.Request) -> None:
        super().requestDone(request)
        if self.persistent and self.transport is not None and not self.refused:
            self._arm_header_deadline()

    def _protocolUpgradeForWebsockets(self, protocol: Any) -> None:
        """
        Twisted hands the connection to a WebSocket by replacing this
        channel's C{connectionLost}; keep the accounting (connection counts,
        the per-peer slot) running when the WebSocket closes.
        """
        self._stop_header_deadline()
        super()._protocolUpgradeForWebsockets(protocol)
        websocket_lost = self.connectionLost

        def lost(reason: Failure = connectionDone) -> None:
            websocket_lost(reason)
            self._account_lost()

        self.connectionLost = lost  # type: ignore[method-assign]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_header_deadline()
        super().connectionLost(reason)
        self._account_lost()

    def _account_lost(self) -> None:
        site = self.site
        site.counters.connections_open -= 1
        site.limits.release(self.peer_host)
        site.forget(self)
        site.context.events.emit(
            DISCONNECTED, site.name, self.peer, LogLevel.debug,
            reason="closed",
            duration=f"{site.context.reactor.seconds() - self.started:.3f}",
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
        )


class RefusedHTTP(http.HTTPChannel):
    """Tells a refused client why, as an HTTP 503, then hangs up."""

    def __init__(self, why: str, forbidden: bool = False) -> None:
        super().__init__()
        self.why = why
        self.status = "403 Forbidden" if forbidden else "503 Service Unavailable"

    def connectionMade(self) -> None:
        assert self.transport is not None
        body = f"{self.status}: {self.why}\n".encode()
        self.transport.write(
            b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (self.status.encode(), len(body), body)
        )
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        pass


class NetlabSite(server.Site):
    """The Site: netlab's request and channel classes, limits and access log."""

    requestFactory = NetlabRequest
    protocol = NetlabChannel  # type: ignore[assignment]
    displayTracebacks = False
    noisy = False

    def __init__(self, root: resource.IResource, context: HttpContext) -> None:
        settings = context.settings
        super().__init__(root, timeout=settings.idle_timeout or None, reactor=context.reactor)
        self.context = context
        self.name = settings.name
        self.counters = context.events.counters_for(self.name)
        self.limits = ConnectionLimits.for_settings(settings)
        self.channels: OpenConnections[NetlabChannel] = OpenConnections()
        self.access = SettingsAccess()

    def configure(self, settings: HttpSettings) -> None:
        """Run with C{settings} from now on (a reload); open connections stay."""
        self.context.settings = settings
        self.limits.configure(settings)
        self.timeOut = settings.idle_timeout or None

    def forget(self, channel: NetlabChannel) -> None:
        """A channel has closed; fire L{when_idle} waiters once none are left."""
        self.channels.discard(channel)

    def when_idle(self) -> Deferred[None]:
        """Fires once no connection to this site is open."""
        return self.channels.when_empty()

    def buildProtocol(self, addr: IAddress | None) -> Any:
        host = getattr(addr, "host", None) or "local"
        peer = describe_address(addr)
        denied = self.access.refusal(self.context.settings, host)
        refusal = denied or self.limits.acquire(host)
        if refusal is not None:
            self.counters.refused += 1
            self.context.events.emit(REFUSED, self.name, peer, LogLevel.warn, limit=refusal)
            refused = RefusedHTTP(refusal, forbidden=denied is not None)
            refused.factory = self
            return refused
        channel = super().buildProtocol(addr)
        channel.peer_host = host
        channel.peer = peer
        self.channels.add(channel)
        # TimeoutMixin and our deadline schedule through the site's clock.
        channel.callLater = self.context.reactor.callLater
        return channel

    def log(self, request: http.Request) -> None:
        """One access event per request, instead of Twisted's access log file."""
        if not self.context.settings.access_log:
            return
        assert isinstance(request, NetlabRequest)
        sent = request.sentLength
        self.counters.bytes_out += sent
        channel = request.channel
        if isinstance(channel, NetlabChannel) and hasattr(channel, "bytes_out"):
            channel.bytes_out += sent
        peer = channel.peer if isinstance(channel, NetlabChannel) else describe_address(
            request.getClientAddress())
        self.context.events.emit(
            HTTP_REQUEST, self.name,
            peer,
            method=request.method.decode("ascii", "replace"),
            path=request.uri.decode("utf-8", "replace")[:300],
            status=request.code,
            nbytes=sent,
            duration=f"{self.context.reactor.seconds() - request.netlab_started:.3f}",
        )


Installer = Callable[[resource.Resource, HttpContext], None]


class Root(resource.Resource):
    """The site's root: unknown paths get Twisted's escaped 404 page."""

    def getChild(self, path: bytes, request: server.Request) -> resource.IResource:
        return pages.notFound("No Such Resource", "There is nothing at this address.")


def build_root(context: HttpContext) -> resource.Resource:
    """The resource tree: every module's C{install} puts its children on it."""
    from netlab.protocols.http import (
        dashboard,
        forms,
        inspect,
        metrics,
        static,
        status,
        timepage,
        websocket,
        xmlrpc,
    )

    root = Root()
    for module in (inspect, forms, timepage, status, xmlrpc, static, dashboard, metrics,
                   websocket):
        module.install(root, context)
    return root


def make_site(context: HttpContext) -> NetlabSite:
    """The Site for C{context}, with every resource installed."""
    return NetlabSite(build_root(context), context)
