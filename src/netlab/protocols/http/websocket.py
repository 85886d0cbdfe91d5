"""
WebSocket endpoints: C{/ws/echo} echoes every message, C{/ws/chat} puts a
browser into the same L{ChatHub} as the telnet users, and C{/chat} is the
page that talks to it.

Both endpoints check the C{Origin} header against C{allowed_origins}
before upgrading, so a page on another site cannot open a socket with the
visitor's network position.  A request without C{Origin} (a command-line
client, not a browser) is let in.

Twisted's WebSocket support reassembles whole messages in memory with no
limit of its own, so every connection follows the frames as they arrive,
counts the payload of the message in progress (not frame headers, not the
control frames that may come between its fragments: see L{MessageMeter})
and is closed (code 1009) as soon as that passes a hard cap: C{max_body}
for the echo, C{max(4 * max_line, 64 KiB)} for the chat.  A chat message
that arrives whole but is longer than C{max_line} gets one error line and
is dropped, as on telnet.

netlab answers the handshake itself (L{GuardedWebSocketResource.upgrade}),
so that it can agree to permessage-deflate (C{websocket_deflate}, see
L{netlab.protocols.http.wsdeflate}): the same cap then holds a compressed
message's inflated size too.  What wsproto refuses in a client's frames
(a protocol error, invalid UTF-8, a message too big once inflated) closes
the socket with its code and is one logged event (L{ServerConnection}).

After the upgrade (the HTTP channel keeps its own connection accounting,
see L{netlab.protocols.http.site.NetlabChannel}; the WebSocket is accounted
again, as a connection of the C{NAME-ws} service), L{MeteredSocket} replaces
the HTTP idle timer with its own and registers a producer so output
backpressure is seen: the echo stops reading while its client is not
reading, the chat drops a client whose unsent backlog passes C{max_output}.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.web import pages
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from wsproto import Connection, ConnectionType
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, CloseConnection, Event
from wsproto.extensions import Extension
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError
from zope.interface import implementer

from netlab.core._twisted import serve_websocket
from netlab.core.accounting import ConnectionRecord
from netlab.core.events import DROPPED, ServiceCounters, describe_address
from netlab.protocols.base import SHUTDOWN_GRACE, idle_goodbye
from netlab.protocols.chat.hub import ChatHub, Session, idle_warning
from netlab.protocols.http.chatpage import ChatPage
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.wsdeflate import CappedDeflate

# RFC 6455 close codes.
NORMAL, GOING_AWAY, UNSUPPORTED, TOO_BIG, POLICY = 1000, 1001, 1003, 1009, 1008
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """
    Whether a browser's C{Origin} names an allowed host: each entry of
    C{allowed} is a host name, with C{[..]} for IPv6, optionally with a
    C{:port} that must then match too.  C{null} (a file or sandboxed
    page) matches nothing.
    """
    try:
        parts = urlsplit(origin.strip())
        host = parts.hostname
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return False
    if not host or parts.scheme.lower() not in DEFAULT_PORTS:
        return False
    for entry in allowed:
        try:
            wanted = urlsplit("//" + entry.strip())
            wanted_host, wanted_port = wanted.hostname, wanted.port
        except ValueError:
            continue
        if wanted_host == host and wanted_port in (None, port):
            return True
    return False


class GuardedWebSocketResource(WebSocketResource):
    """A WebSocket endpoint that refuses foreign browser pages (403) before upgrading."""

    def __init__(self, factory: EchoFactory | ChatSocketFactory, context: HttpContext,
                 service: str) -> None:
        super().__init__(factory)
        self.build_socket: Callable[[Request], MeteredSocket] = factory.buildProtocol
        self.context = context
        self.service = service

    def render_GET(self, request: Request) -> bytes | int:
        origin = request.getHeader("origin")
        allowed = self.context.settings.allowed_origins
        if origin is not None and not origin_allowed(origin, allowed):
            self.context.websockets().refused(
                describe_address(request.getClientAddress()),
                f"Origin {origin[:100]!r} not in allowed_origins",
            )
            page = pages.forbidden(
                "Forbidden origin",
                "Pages from this origin may not open WebSockets here (see allowed_origins).",
            )
            return page.render(request)
        upgrade = (request.getHeader("upgrade") or "").lower()
        if request.method != b"GET" or "websocket" not in upgrade:
            # A browser tab or curl without the handshake (HEAD never upgrades).
            request.setResponseCode(426)
            request.setHeader(b"upgrade", b"websocket")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"426 Upgrade Required: this address takes WebSocket connections only.\n"
        hosts = request.requestHeaders.getRawHeaders(b"host") or []
        if len(hosts) != 1:
            # wsproto's handshake builds an h11 request, which raises on these
            # (a 500 and a critical traceback) rather than answering.
            count = "without a Host header" if not hosts else f"with {len(hosts)} Host headers"
            return self.bad_upgrade(request, f"WebSocket upgrade {count}")
        return self.upgrade(request)

    def upgrade(self, request: Request) -> bytes | int:
        """
        The handshake, as Twisted's C{render_GET} does it but with the
        socket's extensions (permessage-deflate) offered to wsproto, and
        the socket's own wsproto connection (see L{ServerConnection}).
        """
        handshake = H11Handshake(ConnectionType.SERVER)
        headers = [(name, value) for name, values in request.requestHeaders.getAllRawHeaders()
                   for value in values]
        try:
            handshake.initiate_upgrade_connection(headers, request.path)
        except RemoteProtocolError as error:
            return self.bad_upgrade(request, f"WebSocket handshake refused: {error}")
        socket = self.build_socket(request)
        extensions = socket.extensions()
        accepted = handshake.send(AcceptConnection(extensions=extensions))
        channel = request.channel
        connection = ServerConnection(extensions, socket.broke_protocol, socket.closed_by_client)
        serve_websocket(channel, connection, socket)
        assert channel.transport is not None, "upgraded a closed connection"
        channel.transport.write(accepted)
        socket.negotiationFinished()
        # The 101 was written past the Request; still one access event.
        request.setResponseCode(101)
        log = getattr(getattr(request, "site", None), "log", None)
        if log is not None:
            log(request)
        return NOT_DONE_YET

    def bad_upgrade(self, request: Request, reason: str) -> bytes:
        """A malformed upgrade request: 400 and one refused event, no traceback."""
        self.context.websockets().refused(describe_address(request.getClientAddress()), reason)
        request.setResponseCode(400)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"400 Bad Request: {reason}.\n".encode()


class ServerConnection(Connection):
    """
    wsproto's server side of one WebSocket, which tells netlab of the
    protocol errors wsproto finds in what the client sends.

    wsproto answers one by yielding the close it wants sent (1002, 1007,
    1009 from L{CappedDeflate}) while the connection is still open, unlike
    the client's own close frame, which has already moved it on; Twisted
    sends either the same way.
    """

    def __init__(self, extensions: list[Extension],
                 broke_protocol: Callable[[int, str], None],
                 closed_by_client: Callable[[], None]) -> None:
        super().__init__(ConnectionType.SERVER, extensions)
        self.broke_protocol = broke_protocol
        self.closed_by_client = closed_by_client

    def events(self) -> Generator[Event, None, None]:
        for event in super().events():
            if isinstance(event, CloseConnection):
                if self.state is ConnectionState.OPEN:
                    if event.code == TOO_BIG:
                        # wsproto's reason would be "error in extension".
                        event = CloseConnection(TOO_BIG, "message too big")
                    self.broke_protocol(event.code, event.reason or "")
                else:
                    # Before Twisted answers it and loses the connection.
                    self.closed_by_client()
            yield event


class MessageMeter:
    """
    Follows the frames of what a client sends, byte by byte as it arrives,
    to count the payload of the message in progress before wsproto (which
    has no limit) buffers it.  Frame headers and mask keys are not payload,
    so a message of exactly the cap passes; control frames (ping, pong,
    close: at most 125 bytes each) may come between a message's fragments
    and are no part of it; only the final frame of a message ends it.

    @ivar size: payload bytes of the message in progress.
    @ivar largest: the largest C{size} reached during the last L{feed}, so
        a message that ends and another that starts in one read are each
        held to the cap.
    @ivar data_bytes: payload bytes of data frames in the last L{feed}.
    @ivar data_seen: whether the last L{feed} held any byte of a data
        frame (header or payload): the client is sending a message.
    """

    def __init__(self) -> None:
        self.size = 0
        self.largest = 0
        self.data_bytes = 0
        self.data_seen = False
        self._header = b""
        self._remaining = 0
        self._control = False
        self._final = False

    def feed(self, data: bytes) -> None:
        """Account for C{data}, the next bytes from the client."""
        self.largest = self.size
        self.data_bytes = 0
        self.data_seen = False
        position = 0
        # Each pass takes at least one byte: bounded by len(data).
        while position < len(data):
            if self._remaining == 0:
                # A header (its length known once its second byte is).
                needed = self._header_length() - len(self._header)
                self._header += data[position:position + needed]
                position += needed
                if not self._header[0] & 0x08:
                    self.data_seen = True
                if len(self._header) == self._header_length():
                    self._start_frame()
                continue
            chunk = min(self._remaining, len(data) - position)
            position += chunk
            self._remaining -= chunk
            if not self._control:
                self.data_seen = True
                self.data_bytes += chunk
                self.size += chunk
                self.largest = max(self.largest, self.size)
            if self._remaining == 0:
                self._end_frame()

    def _header_length(self) -> int:
        """The whole header's length, as far as the bytes so far tell (at least 2)."""
        if len(self._header) < 2:
            return 2
        second = self._header[1]
        length = {126: 4, 127: 10}.get(second & 0x7F, 2)
        return length + (4 if second & 0x80 else 0)

    def _start_frame(self) -> None:
        first, second = self._header[0], self._header[1]
        self._final = bool(first & 0x80)
        self._control = bool(first & 0x08)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._header[2:4], "big")
        elif length == 127:
            length = int.from_bytes(self._header[2:10], "big")
        self._remaining = length
        if length == 0:
            self._end_frame()

    def _end_frame(self) -> None:
        self._header = b""
        if self._final and not self._control:
            self.size = 0


@implementer(IPushProducer)
class MeteredSocket(ConnectionRecord):
    """
    What both endpoints share: accounting, lifecycle events, the incoming
    size cap, the idle timer, output backpressure and an orderly close.

    @cvar pause_input: stop reading while the client is not reading (echo);
        otherwise count the unsent backlog and drop past C{max_backlog}.
    """

    pause_input = True
    max_backlog = 0

    def __init__(self, request: Request, context: HttpContext, service: str,
                 max_pending: int, idle_timeout: float) -> None:
        self.request = request
        self.context = context
        self.service = service
        self.events = context.events
        self.books = context.websockets()
        self.counters: ServiceCounters = self.books.counters
        self.max_pending = max_pending
        self.idle_timeout = idle_timeout
        self.locate(request.getClientAddress())
        self.transport: WebSocketTransport | None = None
        # The TCP connection under it, for flow control and aborting.
        self.tcp: Any = request.channel.transport
        self.meter = MessageMeter()
        self.output_paused = False
        self.unsent_over_buffer = 0
        self.close_reason: str | None = None
        self.open = False
        self.lost = False
        self._idle: IDelayedCall | None = None
        self._linger: IDelayedCall | None = None

    # -- WebSocketProtocol ---------------------------------------------------

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        channel: Any = self.request.channel
        # The HTTP idle timer would never be reset again: ours replaces it.
        channel.setTimeout(None)
        wire_received = channel.dataReceived

        def received(data: bytes) -> None:
            if self.close_reason is not None:
                return
            meter = self.meter
            meter.feed(data)
            # Counted as it arrives, so a client that leaves halfway through
            # a message is still credited with what it sent.
            self.bytes_in += meter.data_bytes
            self.counters.bytes_in += meter.data_bytes
            if meter.largest > self.max_pending:
                self.too_big()
                return
            if meter.data_seen:
                # A message still arriving (a fragment, part of a frame) is
                # activity: a slow upload is not idle.  Control frames are not.
                self.arm_idle()
            wire_received(data)

        channel.dataReceived = received
        assert self.transport is not None
        self.transport.detachProducer()
        self.transport.attachProducer(self)
        self.open = True
        self.books.opened(self)
        self.arm_idle()
        self.opened()

    def textMessageReceived(self, message: str) -> None:
        self.arrived()
        if self.close_reason is None:
            self.text(message)

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        self.arrived()
        if self.close_reason is None:
            self.binary(bytes(data))

    def pongReceived(self, payload: bytes) -> None:
        """A pong is no part of a message: the size count goes on (see L{MessageMeter})."""

    def extensions(self) -> list[Extension]:
        """What this socket offers to agree on: permessage-deflate, when configured."""
        if not self.context.settings.websocket_deflate:
            return []
        # The inflated size of a message has the same cap as its bytes on the wire.
        return [CappedDeflate(self.max_pending)]

    def broke_protocol(self, code: int, reason: str) -> None:
        """
        wsproto refuses what the client sent, and Twisted is closing with
        C{code}: a message too big once inflated (1009), invalid UTF-8
        (1007) or any other protocol error (1002).
        """
        if code == TOO_BIG:
            self.dropped("a message", f"longer than {self.max_pending} bytes inflated")
            self.closing("message too big")
        else:
            self.dropped("a frame", reason)
            self.closing(f"protocol error, close code {code}")

    def closed_by_client(self) -> None:
        """
        The client's close frame arrived; Twisted is about to answer it and
        lose the connection.  The producer goes first: if this echo has just
        paused reading (its reply overfilled the write buffer in the same
        read), the TCP transport, once drained, would resume that producer
        instead of closing, and the socket would wait for the idle timer.
        """
        if self.close_reason is None and not self.lost:
            # No reason yet: the chat still tells the room "connection lost".
            self.let_close()

    def connectionLost(self, reason: Failure) -> None:
        self.lost = True
        for call in (self._idle, self._linger):
            if call is not None and call.active():
                call.cancel()
        if not self.open:
            return
        # What it was for ends first (the chat's part and quit), then the connection.
        self.closed()
        self.books.closed(self, self.close_reason or "closed by client")

    # -- for subclasses ------------------------------------------------------

    def opened(self) -> None:
        """The socket is open."""

    def text(self, message: str) -> None:
        """A complete text message arrived."""

    def binary(self, data: bytes) -> None:
        """A complete binary message arrived."""

    def closed(self) -> None:
        """The socket is gone."""

    # -- input -----------------------------------------------------------------

    def arrived(self) -> None:
        """A whole message arrived (its bytes, and activity, were counted as they came)."""
        extra = self.counters.extra
        extra["messages_in"] = extra.get("messages_in", 0) + 1

    def too_big(self) -> None:
        """A message is still arriving past the hard cap: close (1009)."""
        self.dropped("a message", f"longer than {self.max_pending} bytes")
        self.end("message too big", TOO_BIG)

    def dropped(self, what: str, reason: str) -> None:
        self.counters.dropped += 1
        self.events.emit(
            DROPPED, self.service, self.peer, LogLevel.warn,
            what=what, reason=reason, suppressed="",
        )

    # -- output ----------------------------------------------------------------

    def send_text(self, text: str) -> None:
        self._send(text, len(text.encode("utf-8")))

    def send_bytes(self, data: bytes) -> None:
        self._send(data, len(data))

    def _send(self, message: str | bytes, size: int) -> None:
        transport = self.transport
        if transport is None or self.close_reason is not None or self.lost:
            return
        try:
            if isinstance(message, str):
                transport.sendTextMessage(message)
            else:
                transport.sendBytesMessage(message)
        except LocalProtocolError:
            # The client's close frame came in and was answered; the TCP
            # close is on its way.
            self.close_reason = self.close_reason or "closed by client"
            return
        self.bytes_out += size
        self.counters.bytes_out += size
        extra = self.counters.extra
        extra["messages_out"] = extra.get("messages_out", 0) + 1
        if self.output_paused and self.max_backlog:
            self.unsent_over_buffer += size
            if self.unsent_over_buffer > self.max_backlog:
                self.slow_consumer()

    def slow_consumer(self) -> None:
        """Too much unsent output: drop now, without waiting for it to drain."""
        self.close_reason = "too slow: output backlog over max_output"
        self.dropped("a slow reader", self.close_reason)
        self.abort()

    # -- IPushProducer: the TCP transport says when its buffer is full ------

    def pauseProducing(self) -> None:
        self.output_paused = True
        if self.pause_input:
            self.tcp.pauseProducing()

    def resumeProducing(self) -> None:
        self.output_paused = False
        self.unsent_over_buffer = 0
        if self.pause_input and not self.lost:
            self.tcp.resumeProducing()

    def stopProducing(self) -> None:
        self.output_paused = False

    # -- idle and closing --------------------------------------------------------

    def arm_idle(self, seconds: float | None = None) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        delay = self.idle_timeout if seconds is None else seconds
        if delay and not self.lost:
            self._idle = self.context.reactor.callLater(delay, self.idle)

    def idle(self) -> None:
        self._idle = None
        self.end("idle timeout", NORMAL)

    def end(self, reason: str, code: int = NORMAL) -> None:
        """Close with C{code} after what was sent; abort if it does not drain."""
        transport = self.transport
        if transport is None or self.close_reason is not None or self.lost:
            return
        self.closing(reason)
        with suppress(LocalProtocolError):  # the close handshake is under way
            transport.loseConnection(code)

    def closing(self, reason: str) -> None:
        """
        The socket is being closed for C{reason}: read no more, let the TCP
        close once the close frame is out (no producer holds it open), and
        abort if that does not happen in time.
        """
        self.close_reason = reason
        self.let_close()

    def let_close(self) -> None:
        """Let the TCP close once what is queued is out; abort if it is not in time."""
        assert self.transport is not None
        if self._linger is not None:
            return
        self.transport.detachProducer()
        self._linger = self.context.reactor.callLater(SHUTDOWN_GRACE, self.abort)

    def abort(self) -> None:
        """Drop the connection now, unsent data and all."""
        self._linger = None
        if not self.lost:
            self.tcp.abortConnection()


class EchoSocket(MeteredSocket):
    """Sends every message back as it came, text as text, binary as binary."""

    def text(self, message: str) -> None:
        self.send_text(message)

    def binary(self, data: bytes) -> None:
        self.send_bytes(data)


class ChatSocket(MeteredSocket):
    """One browser user of the chat: the hub's L{Client} for a WebSocket."""

    pause_input = False

    def __init__(self, request: Request, context: HttpContext, service: str,
                 hub: ChatHub) -> None:
        settings = hub.settings
        super().__init__(
            request, context, service,
            max_pending=max(4 * settings.max_line, 65_536),
            idle_timeout=settings.idle_timeout,
        )
        self.hub = hub
        self.max_backlog = settings.max_output
        self.idle_warned = False
        self.session: Session | None = None

    def opened(self) -> None:
        self.session = self.hub.connect(self)

    # -- Client ------------------------------------------------------------------

    def send_line(self, text: str) -> None:
        """One hub line to the browser, as one text message."""
        self.send_text(text)

    def end(self, reason: str, code: int | None = None) -> None:
        """The hub ends this session for C{reason}; a shutdown is "going away" (1001)."""
        if code is None:
            code = GOING_AWAY if reason == "server shutdown" else NORMAL
        super().end(reason, code)

    # -- input -------------------------------------------------------------------

    def text(self, message: str) -> None:
        limit = self.hub.settings.max_line
        if len(message.encode("utf-8")) > limit:
            self.send_line(f"ERROR line longer than {limit} bytes, dropped")
            self.dropped("a line", f"longer than max_line ({limit})")
            return
        if self.session is not None:
            self.session.line(message)

    def binary(self, data: bytes) -> None:
        self.send_line("ERROR the chat takes text messages, not binary; dropped")
        self.dropped("a binary message", "the chat takes text")

    def slow_consumer(self) -> None:
        self.hub.count("slow_consumers")
        super().slow_consumer()
        # The room hears of it now, not a reactor pass later (see ChatLine).
        if self.session is not None:
            self.session.lost(self.close_reason or "connection lost")

    def too_big(self) -> None:
        self.send_line(self.too_long_line())
        super().too_big()

    def broke_protocol(self, code: int, reason: str) -> None:
        if code == TOO_BIG:
            self.send_line(self.too_long_line())
        super().broke_protocol(code, reason)

    def too_long_line(self) -> str:
        return f"ERROR line longer than {self.hub.settings.max_line} bytes, closing"

    # -- idle: a warning first, like the telnet front-end --------------------------

    def arm_idle(self, seconds: float | None = None) -> None:
        if seconds is None:
            self.idle_warned = False
            settings = self.hub.settings
            if settings.idle_timeout and settings.idle_warning < settings.idle_timeout:
                seconds = settings.idle_timeout - settings.idle_warning
        super().arm_idle(seconds)

    def idle(self) -> None:
        self._idle = None
        settings = self.hub.settings
        if settings.idle_warning and not self.idle_warned:
            self.idle_warned = True
            self.send_line(idle_warning(settings))
            super().arm_idle(settings.idle_warning)
            return
        self.send_line(idle_goodbye(settings.idle_timeout))
        self.end("idle timeout")

    def closed(self) -> None:
        if self.session is not None:
            self.session.lost(self.close_reason or "connection lost")


class EchoFactory:
    """Builds an L{EchoSocket} per upgrade request."""

    def __init__(self, context: HttpContext, service: str) -> None:
        self.context = context
        self.service = service

    def buildProtocol(self, request: Request) -> EchoSocket:
        settings = self.context.settings
        return EchoSocket(
            request, self.context, self.service,
            max_pending=settings.max_body, idle_timeout=settings.idle_timeout,
        )


class ChatSocketFactory:
    """Builds a L{ChatSocket} on the shared hub per upgrade request."""

    def __init__(self, context: HttpContext, service: str, hub: ChatHub) -> None:
        self.context = context
        self.service = service
        self.hub = hub

    def buildProtocol(self, request: Request) -> ChatSocket:
        return ChatSocket(request, self.context, self.service, self.hub)


def echo_endpoint(context: HttpContext) -> GuardedWebSocketResource:
    """C{/ws/echo}."""
    service = context.websocket_service
    return GuardedWebSocketResource(EchoFactory(context, service), context, service)


def chat_endpoint(context: HttpContext) -> GuardedWebSocketResource | None:
    """C{/ws/chat}, when the chat runs."""
    if context.hub is None:
        return None
    service = context.websocket_service
    factory = ChatSocketFactory(context, service, context.hub)
    return GuardedWebSocketResource(factory, context, service)


def chat_page(context: HttpContext) -> ChatPage | None:
    """C{/chat}, the page that talks to C{/ws/chat}, when the chat runs."""
    return ChatPage() if context.hub is not None else None
