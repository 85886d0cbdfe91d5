"""
The web site: one C{twisted.web} Site for every HTTP resource, with the
limits a server facing a room of students needs.

* A request body over C{max_body} is answered 413 as soon as its declared
  length (or, when chunked, what has arrived) passes the limit, without
  reading the rest.
* A connection must send its complete headers within C{header_timeout}
  seconds, however slowly it trickles bytes (slowloris), and a request's
  body within C{body_timeout} seconds plus one for every C{body_min_rate}
  bytes it has sent (a body trickled a byte at a time is 408).
* A request line over the line limit is answered 414, headers over their
  limits (a line, the total, the number) 431, not closed without a word.
* Connections per peer and in total are capped like every stream service.
* Every request is one access event in the EventLog.
* On a TLS listener, HTTP/2 when ALPN chooses it (see
  L{netlab.protocols.http.http2}): the same books, access events and
  C{max_body}; HTTP/1.1's framing limits are h2's there.
* A request with two C{Host} headers is 400.
* An absolute-form target (C{GET http://host/path}, as sent to a proxy) is
  served as its path.
* C{OPTIONS} works on every resource (an C{Allow} list), a method a
  resource does not render is 405 with that list; C{HEAD} works wherever
  C{GET} does, without Twisted's warning about the body it leaves out.
* CORS headers, as httpbin's, on the routes C{[http] cors} names (see
  L{netlab.protocols.http.cors}), added here so every route, old or new,
  gets them without a line of its own.

The limits and the access log live in the Request and the Site, through
Twisted's extension points (C{requestFactory}, C{Request.gotLength} and
C{handleContentChunk}, C{Site.log}).  The channel subclass keeps what has
no such point: connection accounting, the header deadline of a request
once its first byte has come, raw header names, lines ended by a bare LF (as C{nc} and
telnetlib send them), and the response sent in one piece.  The
resources, and the tree of them, are in L{netlab.protocols.http.routes}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.web import http, resource, server
from twisted.web.http_headers import Headers
from twisted.web.server import UnsupportedMethod

from netlab.core._twisted import computed_allowed_methods, upgrade_to_websocket
from netlab.core.accounting import ConnectionRecord, ServiceBooks
from netlab.core.events import HTTP_REQUEST, describe_address
from netlab.core.fastwrite import write_now
from netlab.protocols.http import cors
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.http2 import NetlabH2Connection
from netlab.protocols.http.settings import HttpSettings


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

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """
        An absolute-form target (C{GET http://host/get}, what a client
        sends to a proxy, such as C{curl -x}) is served as its path, with
        its authority as the Host (RFC 9112 section 3.2.2); Twisted would
        look up C{http:} as the first path segment and answer 404.
        """
        if self.channel is not None:
            # All of the body is in (Twisted calls this from allContentReceived).
            self.channel.body_in()
        if path[:1] != b"/":
            path = self._origin_form(path)
        super().requestReceived(command, path, version)

    def _origin_form(self, target: bytes) -> bytes:
        """C{target}'s path and query, and its authority into Host, if it is absolute-form."""
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            return target
        end = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
        authority, rest = rest[:end], rest[end:]
        if authority:
            self.requestHeaders.setRawHeaders(b"Host", [authority])
        return rest if rest[:1] == b"/" else b"/" + rest

    def write(self, data: bytes) -> None:
        """
        The first write sends the status line, the headers and C{data} in one
        go (see L{NetlabChannel.writeHeaders}); later writes go straight on.
        The CORS headers are added then, once the resource has set its own
        (every response's head passes here: C{finish} writes C{b""} first).
        """
        channel = self.channel
        if self.startedWriting or channel is None:
            super().write(data)
            return
        if cors.applies(channel.site.context.settings.cors, self.path):
            cors.add_origin(self)
        channel.response_head = []
        try:
            super().write(data)
        finally:
            head, channel.response_head = channel.response_head, None
            if head:
                channel.send(b"".join(head))

    def gotLength(self, length: int | None) -> None:
        """
        The channel calls this once the headers are in, with the declared
        body length (C{None} when chunked): the header deadline is met, and
        a body declared over C{max_body} is refused before any of it is read.
        """
        channel = self.channel
        channel.headers_in()
        if length is not None and length > channel.site.context.settings.max_body:
            # The channel would answer "Expect: 100-continue" next: not for
            # a body that is refused.
            self.requestHeaders.removeHeader(b"Expect")
            channel.body_too_large()
            return
        super().gotLength(length)
        if length != 0:
            channel.body_owed(self)

    def handleContentChunk(self, data: bytes) -> None:
        """Count the body as it arrives; refuse it once past C{max_body}."""
        self.body_received += len(data)
        channel = self.channel
        if self.body_received > channel.site.context.settings.max_body or channel.refused:
            # (A refused request's body is read on to the end of what came
            # in with its headers, and dropped.)
            channel.body_too_large()
            return
        super().handleContentChunk(data)

    def render(self, resrc: resource.IResource) -> None:
        """
        Twisted's C{Request.render}, with three answers of its own:

        * C{OPTIONS}, where the resource has no C{render_OPTIONS}: 204 and
          the C{Allow} list;
        * a method the resource does not render: 405 and that same list,
          whatever the method (Twisted answers C{501 Huh?} to any but GET,
          HEAD and POST);
        * C{HEAD}: L{Resource}'s own C{render_HEAD} returns C{render_GET}'s
          body, "the framework will handle this correctly", and Twisted's
          render drops it, but logs "I think I'll eat it" for every HEAD.
          Here the body only gives the C{Content-Length}.
        """
        method = self.method
        if method == b"OPTIONS" and _answers_no_method(resrc):
            # A page that is the same whatever the method (a 404): it answers
            # OPTIONS too, not an Allow list for a page that is not there.
            super().render(resrc)
            return
        if method == b"OPTIONS" and not hasattr(resrc, "render_OPTIONS"):
            self.setResponseCode(204)
            allowed = allow_list(resrc)
            self.setHeader(b"Allow", allowed)
            if cors.applies(self.channel.site.context.settings.cors, self.path):
                cors.add_preflight(self, allowed)
            self.setHeader(b"Content-Length", b"0")
            self.finish()
            return
        if method == b"HEAD" and _head_lacks_get(resrc):
            self._not_allowed(resrc, None)
            return
        try:
            body = resrc.render(self)
        except UnsupportedMethod as error:
            if method == b"HEAD" and b"GET" in error.allowedMethods:
                # A resource of its own kind without render_HEAD: Twisted fakes
                # it with a GET whose body it leaves out, and logs nothing odd.
                super().render(resrc)
                return
            self._not_allowed(resrc, error.allowedMethods)
            return
        if body is server.NOT_DONE_YET:
            return
        if not isinstance(body, bytes):
            # Request.process answers 500 (and logs it) for what render raises.
            raise TypeError(f"{resrc!r} rendered {type(body).__name__}, not bytes")
        if method == b"HEAD":
            # As Twisted's: an empty body leaves alone the Content-Length
            # a resource that knows HEAD (static.File) has set.
            if body:
                self.setHeader(b"Content-Length", b"%d" % (len(body),))
            self.write(b"")
        else:
            self.setHeader(b"Content-Length", b"%d" % (len(body),))
            self.write(body)
        self.finish()

    def _not_allowed(self, resrc: resource.IResource, allowed: Sequence[bytes] | None) -> None:
        """405, the methods C{resrc} answers in C{Allow}, and one line saying so."""
        methods = allow_list(resrc, allowed)
        body = b"405 Method Not Allowed: %s is not answered here (allowed: %s)\n" % (
            self.method, methods)
        self.setResponseCode(405)
        self.setHeader(b"Allow", methods)
        self.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        self.setHeader(b"Content-Length", b"%d" % (len(body),))
        self.write(b"" if self.method == b"HEAD" else body)
        self.finish()


def _answers_no_method(resrc: resource.IResource) -> bool:
    """
    Whether C{resrc} renders itself, not by method, and has no C{render_*}
    of its own: Twisted's error pages (a 404 for an unknown path).
    """
    return (
        getattr(type(resrc), "render", None) is not resource.Resource.render
        and getattr(resrc, "allowedMethods", None) is None
        and set(computed_allowed_methods(resrc)) <= {b"HEAD"}
    )


def _head_lacks_get(resrc: resource.IResource) -> bool:
    """
    Whether C{resrc} dispatches on the method as L{Resource} does and has
    L{Resource}'s own C{render_HEAD} but no C{render_GET}, which that
    C{render_HEAD} would call (a 500 where a 405 is owed).
    """
    kind = type(resrc)
    return (
        getattr(kind, "render", None) is resource.Resource.render
        and getattr(kind, "render_HEAD", None) is resource.Resource.render_HEAD
        and not hasattr(resrc, "render_GET")
    )


def allow_list(resrc: resource.IResource, allowed: Sequence[bytes] | None = None) -> bytes:
    """
    The C{Allow} value of C{resrc}: the methods it renders (its
    C{allowedMethods}, else its C{render_*} methods, as Twisted works them
    out), with C{OPTIONS}, and C{HEAD} wherever C{GET} is; the same for an
    OPTIONS and a 405.
    """
    if allowed is None:
        allowed = getattr(resrc, "allowedMethods", None)
    if allowed is None:
        allowed = computed_allowed_methods(resrc)
    methods = {m.decode("ascii", "replace") for m in allowed} | {"OPTIONS"}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)).encode()


class NetlabChannel(http.HTTPChannel, ConnectionRecord):
    """
    An HTTP connection, accounted in the site's books, with a deadline for
    each request's headers, and each response's head and first body bytes
    sent in one piece.
    """

    site: NetlabSite
    # RFC 9112 section 2.2: a recipient MAY take a bare LF as a line's end
    # and ignore a CR before it.  Twisted's LineReceiver splits on CRLF only,
    # so a request typed into nc, or telnetlib's "GET / HTTP/1.0\n\n", would
    # never end its headers (and meet the 408 of header_timeout).  Split on
    # LF; lineReceived drops the CR.  A body is raw data, never split.
    delimiter = b"\n"
    _header_deadline: IDelayedCall | None = None
    # When the wait for a request's headers began; None when none is owed.
    _headers_since: float | None = None
    refused = False
    # Whether dataReceived is being fed bytes already counted (setLineMode).
    _replaying = False
    # The request whose body is arriving, and the timer that checks it keeps coming.
    _body_request: NetlabRequest | None = None
    _body_since = 0.0
    _body_deadline: IDelayedCall | None = None
    # Whether a request's line has come in and its headers are arriving, and
    # how many bytes of line and headers it has sent (the limits are
    # Twisted's MAX_LENGTH, totalHeadersSize and maxHeaders).
    _reading_head = False
    _head_size = 0

    # What the first Request.write of a response has produced so far, to be
    # sent as one piece (or None when no first write is under way).
    response_head: list[bytes] | None = None
    # The HTTP/2 connection this channel hands its bytes to, once TLS ALPN
    # has chosen h2 (see _start_http2), and whether that has been looked at.
    http2: NetlabH2Connection | None = None
    _alpn_checked = False

    def connectionMade(self) -> None:
        super().connectionMade()
        # Twisted asks for these on every request: a getsockname() system
        # call and an interface adaptation each time, for what cannot change.
        assert self.transport is not None
        self._host = self.transport.getHost()
        self._secure = super().isSecure()
        self.site.books.opened(self, LogLevel.debug)

    def _arm_header_deadline(self) -> None:
        """
        The client owes us a request's headers from now on: a request has
        begun to arrive.  Not before: a connection between requests (or a
        browser's spare one, before its first) owes nothing, and is closed
        quietly at C{idle_timeout} (Twisted's C{TimeoutMixin}), not sent a
        408 it never asked for and counted as refused.
        """
        self._headers_since = self.site.context.reactor.seconds()
        if self._header_deadline is None:
            self._header_deadline = self.callLater(
                self.site.context.settings.header_timeout, self._check_header_deadline
            )

    def headers_in(self) -> None:
        """
        A request's headers are in (see L{NetlabRequest.gotLength}).  The
        timer is left to run (one per connection, not a new one for every
        keep-alive request): when it fires with nothing owed, it stops.
        """
        self._headers_since = None
        self._reading_head = False
        self._head_size = 0

    def _stop_deadlines(self) -> None:
        """Nothing is owed any more: the connection is gone or is a WebSocket now."""
        self._headers_since = None
        self._body_request = None
        for deadline in (self._header_deadline, self._body_deadline):
            if deadline is not None and deadline.active():
                deadline.cancel()
        self._header_deadline = self._body_deadline = None

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

    def body_owed(self, request: NetlabRequest) -> None:
        """C{request}'s headers are in and its body is to come: start its deadline."""
        self._body_request = request
        self._body_since = self.site.context.reactor.seconds()
        if self._body_deadline is None:
            self._body_deadline = self.callLater(
                self.site.context.settings.body_timeout, self._check_body_deadline
            )

    def body_in(self) -> None:
        """The body is complete: nothing is owed (the timer, if running, finds so and stops)."""
        self._body_request = None

    def _check_body_deadline(self) -> None:
        """
        The body's deadline moves on by one second for every C{body_min_rate}
        bytes that have come; past it, the request is answered 408.  Worked
        out now, from the settings now in force (a reload may change them).
        """
        self._body_deadline = None
        request = self._body_request
        if request is None:
            return
        settings = self.site.context.settings
        allowance = settings.body_timeout
        if settings.body_min_rate:
            allowance += request.body_received / settings.body_min_rate
        left = self._body_since + allowance - self.site.context.reactor.seconds()
        if left > 0:
            self._body_deadline = self.callLater(left, self._check_body_deadline)
            return
        self._refuse(
            408, "Request Timeout",
            f"request body too slow: under body_min_rate ({settings.body_min_rate} bytes/s) "
            f"after body_timeout ({settings.body_timeout:g} s)",
        )

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

    def setLineMode(self, extra: bytes = b"") -> Any:
        """
        Twisted holds what arrives while a request is answered (pipelined
        requests) and feeds it through C{dataReceived} again here: those
        bytes were counted when they came.
        """
        self._replaying = True
        try:
            return super().setLineMode(extra)
        finally:
            self._replaying = False

    def dataReceived(self, data: bytes) -> None:
        if not self._replaying:
            self.bytes_in += len(data)
            self.site.counters.bytes_in += len(data)
        if self.http2 is not None or self._start_http2():
            assert self.http2 is not None
            self.http2.dataReceived(data)
            return
        if self._headers_since is None and self.line_mode and data and not self.refused:
            # The first byte of a request (in raw mode, a body or a request
            # read ahead while one is answered: not yet).
            self._arm_header_deadline()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        """
        A request or header line, without its CR if it ended in CRLF.  The
        request line and headers are counted here against Twisted's own
        C{totalHeadersSize}, which Twisted answers with a bare 400: a
        client (and a student) should learn which limit it met.
        """
        if line[-1:] == b"\r":
            line = line[:-1]
        if not self._reading_head:
            if not line:
                # An empty line before a request line (Twisted eats one):
                # no request has begun.
                self._headers_since = None
                super().lineReceived(line)
                return
            self._reading_head = True
            if self._headers_since is None:
                self._arm_header_deadline()
        self._head_size += len(line)
        if self._head_size > self.totalHeadersSize:
            self._head_too_large(f"request headers over {self.totalHeadersSize} bytes")
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        A line over C{MAX_LENGTH} with no end in sight: LineReceiver would
        just hang up (curl's "Empty reply from server"); answer 414 for a
        request line, 431 for a header line.
        """
        self._head_too_large(f"line over {self.MAX_LENGTH} bytes")

    def _head_too_large(self, why: str) -> None:
        """Refuse the request whose line or headers went over a limit."""
        if not self._reading_head:
            # No line of this request has come in whole: its request line is too long.
            self._refuse(414, "URI Too Long", f"request line: {why}")
        else:
            self._refuse(431, "Request Header Fields Too Large", why)

    def headerReceived(self, line: bytes) -> bool:
        if self.requests and len(self.requests[-1].raw_headers) >= self.maxHeaders:
            self._refuse(
                431, "Request Header Fields Too Large", f"more than {self.maxHeaders} headers"
            )
            return False
        if line[:5].lower() == b"host:" and self.requests and (
            self.requests[-1].requestHeaders.hasHeader(b"Host")
        ):
            # RFC 9112 section 3.2: which of two Hosts would be the one?
            self._refuse(400, "Bad Request", "more than one Host header")
            return False
        accepted: bool = super().headerReceived(line)
        if accepted and self.requests:
            name, _, value = line.partition(b":")
            self.requests[-1].raw_headers.append((name, value.strip(b" \t")))
        return accepted

    def body_too_large(self) -> None:
        """Answer 413 and hang up (once)."""
        self._refuse(
            413, "Content Too Large",
            f"request body over max_body ({self.site.context.settings.max_body} bytes)",
        )

    def _refuse(self, code: int, phrase: str, why: str) -> None:
        """Answer C{code} at once and hang up, reading nothing more."""
        if self.refused or self.transport is None:
            return
        self.refused = True
        self.site.books.refused(self.peer, why)
        body = f"{code} {phrase}: {why}\n".encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (code, phrase.encode(), len(body), body)
        )
        # Twisted's own way to ignore what a client sends after the end.
        self.dataReceived = lambda data: None  # type: ignore[method-assign]
        self.transport.loseConnection()

    def _protocolUpgradeForWebsockets(self, protocol: Any) -> None:
        """
        Twisted hands the connection to a WebSocket by replacing this
        channel's C{connectionLost}; keep the accounting (connection counts,
        the per-peer slot) running when the WebSocket closes.
        """
        self._stop_deadlines()
        upgrade_to_websocket(self, protocol)
        websocket_lost = self.connectionLost

        def lost(reason: Failure = connectionDone) -> None:
            websocket_lost(reason)
            self._account_lost()

        self.connectionLost = lost  # type: ignore[method-assign]

    def _start_http2(self) -> bool:
        """
        On the first bytes, whether TLS ALPN chose HTTP/2; if it did, hand
        the connection to a L{NetlabH2Connection}, as Twisted's own Site
        does (C{http._GenericHTTPChannelProtocol}), but keep this channel as
        the transport's protocol, so the connection stays in the books.
        """
        if self._alpn_checked:
            return False
        self._alpn_checked = True
        if getattr(self.transport, "negotiatedProtocol", None) != b"h2":
            return False
        self.setTimeout(None)
        self._stop_deadlines()
        # HTTPChannel registered itself as the transport's producer; the
        # HTTP/2 connection takes its place, to be paused when the client
        # does not read.
        producer = IPushProducer(self.transport, None)
        if producer is not None:
            producer.unregisterProducer()  # type: ignore[attr-defined]
        self.http2 = NetlabH2Connection(self)
        self.http2.makeConnection(self.transport)
        if producer is not None:
            producer.registerProducer(self.http2, True)  # type: ignore[attr-defined]
        return True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.http2 is not None:
            self.http2.connectionLost(reason)
        self._stop_deadlines()
        super().connectionLost(reason)
        self._account_lost()

    def _account_lost(self) -> None:
        self.site.books.closed(self, "closed", LogLevel.debug)


class RefusedHTTP(Protocol):
    """Tells a refused client why, as an HTTP 503 (403 if denied), then hangs up."""

    def __init__(self, why: str, forbidden: bool = False) -> None:
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


class NetlabSite(server.Site):
    """The Site: netlab's request and channel classes, books, limits and access log."""

    requestFactory = NetlabRequest
    protocol = NetlabChannel  # type: ignore[assignment]
    displayTracebacks = False
    noisy = False

    def __init__(self, root: resource.IResource, context: HttpContext) -> None:
        settings = context.settings
        super().__init__(root, timeout=settings.idle_timeout or None, reactor=context.reactor)
        self.context = context
        self.name = settings.name
        self.books: ServiceBooks[NetlabChannel] = ServiceBooks(
            self.name, context.events, context.reactor, settings
        )
        # The books' own objects, under the names the channels and tests use.
        self.counters = self.books.counters
        self.limits = self.books.limits
        self.channels = self.books.open

    def configure(self, settings: HttpSettings) -> None:
        """New settings (a reload): limits, timeouts and resources read them from now on."""
        self.context.settings = settings
        self.books.configure(settings)
        self.timeOut = settings.idle_timeout or None

    def when_idle(self) -> Deferred[None]:
        """Fires once no connection to this site is open."""
        return self.books.when_idle()

    def buildProtocol(self, addr: IAddress | None) -> Any:
        refusal = self.books.admit(addr)
        if refusal is not None:
            refused = RefusedHTTP(refusal.reason, forbidden=refusal.denied)
            refused.factory = self
            return refused
        channel = super().buildProtocol(addr)
        channel.locate(addr)
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
        # The connection's entry in the books: the channel, or under HTTP/2
        # the channel that handed the connection to the stream's.
        channel = request.channel
        record = channel if isinstance(channel, NetlabChannel) else getattr(
            channel, "record", None)
        if isinstance(record, NetlabChannel):
            record.bytes_out += sent
            peer = record.peer
        else:
            peer = describe_address(request.getClientAddress())
        self.context.events.emit(
            HTTP_REQUEST, self.name,
            peer,
            method=request.method.decode("ascii", "replace"),
            path=request.uri.decode("utf-8", "replace")[:300],
            status=request.code,
            version=request.clientproto.decode("ascii", "replace"),
            nbytes=sent,
            duration=f"{self.context.reactor.seconds() - request.netlab_started:.3f}",
        )
