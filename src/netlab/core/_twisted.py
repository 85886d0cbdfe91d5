"""
Every private Twisted attribute or method netlab touches, in one place.

Twisted keeps no promise about names that start with an underscore, so
each one netlab relies on is reached only through a function here, with a
comment saying why netlab needs it, and C{tests/test_twisted_internals.py}
checks that each still exists and behaves as assumed on the installed
Twisted: an upgrade that changes one fails there, with a clear message,
instead of somewhere deep in a protocol.

Some names used here carry no underscore but are still implementation
details, not interface (the buffer attributes of C{FileDescriptor}, the
C{TLS} flag of a TCP connection, the methods of C{HTTPChannel} that its
subclasses override); they are kept here too, for the same reason.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections import deque
from collections.abc import Collection, Mapping
from typing import Any

import h2.exceptions
import priority
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import tcp, udp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.python.failure import Failure
from twisted.python.systemd import ListenFDs
from twisted.web._http2 import H2Connection as HTTP2Connection
from twisted.web._http2 import H2Stream as HTTP2Stream

# -- twisted.internet: transports and ports ----------------------------------
#
# netlab.core.fastwrite sends straight to the kernel when Twisted's write
# buffer is empty (two epoll_ctl calls fewer per echoed message).  That needs
# to know what FileDescriptor.write/doWrite keep to themselves: the two
# buffers (dataBuffer from offset on, then _tempDataBuffer of _tempDataLen
# bytes), whether the write side is already shut (_writeDisconnected), and
# whether startTLS put a TLS layer into this very transport (TLS).


def tcp_buffer_empty(transport: tcp.Connection) -> bool:
    """
    Whether C{transport} has nothing waiting in Twisted's write buffer, so
    bytes sent now cannot overtake bytes written before.
    """
    # doWrite sends dataBuffer[offset:] first, then moves _tempDataBuffer
    # (whose length is _tempDataLen) into dataBuffer: both must be empty.
    return not transport._tempDataLen and transport.offset == len(transport.dataBuffer)


def tcp_buffered_bytes(transport: tcp.Connection) -> int:
    """How many bytes wait in C{transport}'s write buffer (for tests and limits)."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def tcp_direct_socket(transport: Any) -> socket.socket | None:
    """
    The socket of C{transport} if bytes may be sent on it directly, now,
    without going through C{transport.write}; else None.

    Direct is allowed only for a plain, open L{tcp.Connection} with nothing
    buffered: under TLS the bytes must be encrypted first (startTLS keeps
    the same transport and sets C{TLS}); a closing connection, or one whose
    write side is shut, must keep Twisted's handling; and a pull producer is
    asked for more only when Twisted's own buffer drains, so its writes must
    go through that buffer.  One function, on the echo hot path.
    """
    if (
        isinstance(transport, tcp.Connection)
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        # tcp_buffer_empty, inline: this runs for every message.
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
        and (transport.producer is None or transport.streamingProducer)
    ):
        # The attribute, not getHandle(): a method call per message, and
        # startTLS replaces getHandle with the TLS connection's.
        sock: socket.socket = transport.socket
        return sock
    return None


def udp_connected_address(port: udp.Port) -> tuple[str, int] | None:
    """
    The address a UDP port was C{connect}ed to, or None.  A connected port
    may only send to that address, and Twisted's C{write} checks it; netlab's
    own C{sendto} must leave such ports to Twisted.
    """
    address: tuple[str, int] | None = port._connectedAddr
    return address


def udp_direct_socket(transport: Any) -> socket.socket | None:
    """
    The socket of C{transport} if datagrams may go to any address with
    C{sendto} on it directly: an unconnected L{udp.Port}; else None.
    """
    if isinstance(transport, udp.Port) and transport._connectedAddr is None:
        sock: socket.socket = transport.socket
        return sock
    return None


# -- twisted.application: strports services ---------------------------------
#
# netlab's StreamListener is a StreamServerEndpointService that must stop the
# daemon at start when its port is taken (not log the error and run without
# it), and must learn the port it bound (port 0, systemd sockets) to report
# it.  Twisted's strports.service sets the first flag itself; neither has a
# public spelling.


def raise_synchronously(service: StreamServerEndpointService) -> None:
    """
    Make C{service.privilegedStartService} raise a failure to listen (such
    as C{CannotListenError}) instead of logging it, so twistd stops with it.
    """
    service._raiseSynchronously = True


def waiting_for_port(service: StreamServerEndpointService) -> Deferred[Any] | None:
    """
    The Deferred that fires with the listening port once C{service} has
    asked its endpoint to listen, or None before that.
    """
    waiting: Deferred[Any] | None = service._waitingForPort
    return waiting


# -- twisted.internet: ports' own log lines -----------------------------------
#
# Every port logs "<factory or protocol> starting on N" as it binds and
# "(TCP Port N Closed)" (UDP, UNIX...) as it closes, through the legacy
# twisted.python.log.msg, whatever the factory's noisy flag says (that one
# only covers "Starting factory").  netlab logs each listener itself, once,
# with its service and address, so Twisted's lines only doubled the startup
# log and added one line per listener at shutdown.  No switch turns them
# off; netlab's log formatters drop them by their text, which Twisted keeps
# no promise about: hence here, with a test on real ports.

_PORT_CHATTER = re.compile(
    r"\S+(?: \(TLS\))? starting on \S+|\((?:[A-Z]+ )?Port \S+ Closed\)"
)


def is_port_chatter(event: Mapping[str, Any]) -> bool:
    """Whether C{event} is a Twisted port's own "starting on" or "Port N Closed" line."""
    if event.get("log_namespace") != "log_legacy":
        return False
    message = event.get("message")
    return (
        isinstance(message, tuple)
        and len(message) == 1
        and isinstance(message[0], str)
        and _PORT_CHATTER.fullmatch(message[0]) is not None
    )


# -- twisted.internet: endpoint strings -----------------------------------------
#
# Twisted splits an endpoint string into positional and keyword arguments
# (honouring backslash escapes: interface=\\:\\:1) in a private function its
# parsers share.  netlab reads its own udp: strings and checks stream ones
# with the same tokenizer, so both are written exactly alike.


def endpoint_tokens(description: str) -> tuple[list[str], dict[str, str]]:
    """
    C{description}'s arguments as Twisted's endpoint parsers see them: the
    type then the positional ones, and the keyword ones.
    """
    from twisted.internet.endpoints import _parse

    args, kwargs = _parse(description)
    # A string that starts with a keyword has no type: keep its first word
    # as one, so that an error can quote it.
    positional = [str(a) for a in args] or [description.split(":", 1)[0]]
    return positional, {str(k): str(v) for k, v in kwargs.items()}


# -- twisted.internet: systemd socket activation -----------------------------
#
# Twisted reads $LISTEN_FDS (and $LISTEN_FDNAMES) once, when
# twisted.internet.endpoints is imported, into the ListenFDs of its systemd:
# endpoint parser, and removes $LISTEN_PID and $LISTEN_FDS from the
# environment (not $LISTEN_FDNAMES) so nothing reads them twice.  Datagram
# sockets systemd passes in are in that same inventory, and netlab's
# systemd-udp: endpoint can only find them there.


def systemd_inherited_fds() -> ListenFDs:
    """
    The sockets systemd passed in, as Twisted's C{systemd:} endpoints see
    them: C{inheritedDescriptors()} by index, C{inheritedNamedDescriptors()}
    by name.
    """
    from twisted.internet.endpoints import _SystemdParser

    inventory: ListenFDs = _SystemdParser._sddaemon
    return inventory


# -- twisted.internet: the reactor's exit signal ------------------------------
#
# On SIGTERM or SIGINT the reactor records the signal in _exitSignal and
# stops; after the reactor returns, twistd (and twist) re-raise that signal
# against themselves, so the process dies "killed by signal".  netlab clears
# it after a stop that closed everything cleanly, so the exit status is 0.


def clear_exit_signal(reactor: Any, signals: Collection[int]) -> bool:
    """
    Forget the exit signal C{reactor} recorded, if it is one of C{signals},
    so twistd exits normally; whether one was forgotten.
    """
    if getattr(reactor, "_exitSignal", None) in signals:
        reactor._exitSignal = None
        return True
    return False


# -- twisted.web --------------------------------------------------------------
#
# OPTIONS on a resource answers with the methods it renders.  Twisted works
# that list out (from the render_* methods) for its own 405 answers, in a
# private function; netlab uses the same list so OPTIONS and 405 agree.


def computed_allowed_methods(resource: object) -> list[bytes]:
    """The methods C{resource} renders, from its C{render_*} methods, as Twisted's 405 says."""
    from twisted.web.resource import _computeAllowedMethods

    methods: list[bytes] = _computeAllowedMethods(resource)
    return methods


# netlab's NetlabChannel subclasses twisted.web.http.HTTPChannel and overrides
# these methods (calling Twisted's), which HTTPChannel and Request call on
# the channel: not an interface, so each must keep its name and the
# parameters netlab's override takes.  _protocolUpgradeForWebsockets is
# what twisted.web.websocket calls to hand the connection to a WebSocket;
# it replaces the channel's dataReceived and connectionLost on the instance,
# which netlab's override (and websocket.py, for dataReceived) wrap again.
HTTP_CHANNEL_OVERRIDES: dict[str, tuple[str, ...]] = {
    "connectionMade": (),
    "connectionLost": ("reason",),
    "dataReceived": ("data",),
    # HTTPChannel replays what it held during a response through it.
    "setLineMode": ("extra",),
    "lineReceived": ("line",),
    "lineLengthExceeded": ("line",),
    "headerReceived": ("line",),
    "writeHeaders": ("version", "code", "reason", "headers"),
    "write": ("data",),
    "writeSequence": ("iovec",),
    "getHost": (),
    "isSecure": (),
    "_protocolUpgradeForWebsockets": ("protocol",),
}

#: The names of the HTTPChannel methods netlab overrides.
HTTP_CHANNEL_HOOKS: tuple[str, ...] = tuple(HTTP_CHANNEL_OVERRIDES)

# What netlab reads or replaces on an HTTPChannel besides: the requests in
# progress (the last is the one whose headers are arriving), whether the
# connection stays open after this response, TimeoutMixin's setTimeout and
# callLater (netlab schedules through its own clock and turns the HTTP idle
# timer off after a WebSocket upgrade), dataReceived, which websocket.py
# wraps on the instance after the upgrade to cap a message's size, and
# delimiter: HTTPChannel is a LineReceiver, which splits the request line and
# headers on it (netlab splits on LF, so that bare-LF requests end, and its
# lineReceived override drops the CR of a CRLF), and the limits of a
# request's head (MAX_LENGTH a line, totalHeadersSize the line and headers,
# maxHeaders their number), which netlab answers with 414 or 431 itself,
# not Twisted's bare 400 or LineReceiver's silent close; and line_mode, 0
# while a body is read or a request is answered (LineReceiver's raw mode),
# so that only a new request's first byte starts the header deadline.
HTTP_CHANNEL_STATE: tuple[str, ...] = (
    "requests", "persistent", "setTimeout", "callLater", "dataReceived", "delimiter",
    "MAX_LENGTH", "totalHeadersSize", "maxHeaders", "line_mode",
)


def upgrade_to_websocket(channel: Any, protocol: Any) -> None:
    """
    Hand C{channel}'s connection to the WebSocket C{protocol}: Twisted's
    C{HTTPChannel._protocolUpgradeForWebsockets}, which C{twisted.web.websocket}
    calls on the channel (not public yet).  netlab's channel overrides it to
    keep its connection accounting running until the WebSocket closes, and
    calls Twisted's through here.
    """
    from twisted.web.http import HTTPChannel

    HTTPChannel._protocolUpgradeForWebsockets(channel, protocol)


# netlab answers the WebSocket handshake itself, to agree on extensions
# (permessage-deflate) that Twisted's WebSocketResource.render_GET cannot
# pass to wsproto, and to use a wsproto connection of its own.  After the
# handshake it does what render_GET does: wraps the wsproto connection in
# Twisted's byte-level WebSocket protocol (the class that turns wsproto's
# events into WebSocketProtocol calls and is the WebSocketTransport) and
# hands the HTTP channel's connection to it.


def serve_websocket(channel: Any, connection: Any, protocol: Any) -> None:
    """
    Serve the WebSocket C{protocol} over C{channel}'s connection through the
    wsproto C{connection} (open: the 101 answer is the caller's to write),
    as C{twisted.web.websocket.WebSocketResource.render_GET} does after its
    own handshake: C{protocol.negotiationStarted} is called with the
    transport at once; C{negotiationFinished} is the caller's to call.
    """
    from twisted.web._websocket_impl import _WebSocketWireProtocol, serverBootstrap

    wire = _WebSocketWireProtocol(connection, serverBootstrap, protocol)
    channel._protocolUpgradeForWebsockets(wire)


# -- twisted.web: HTTP/2 -----------------------------------------------------
#
# Twisted speaks HTTP/2 (with the h2 package) in twisted.web._http2, a
# private module: H2Connection is the connection, one H2Stream per request
# is that request's channel.  Twisted's own Site switches an HTTPChannel to
# an H2Connection when TLS ALPN chose "h2" (http._GenericHTTPChannelProtocol);
# netlab's channel does the same switch itself, so that the connection stays
# in its books, and builds netlab's own stream class (the request's channel
# must answer what NetlabRequest asks of a channel: headers_in,
# body_too_large, refused).  Twisted builds its H2Stream by name in
# H2Connection._requestReceived, so netlab overrides that method and files
# the stream in the connection's tables as Twisted does (http2_add_stream);
# a request refused before its body is read (over max_body) is answered and
# dropped from those tables here too.

# The H2Connection and H2Stream methods netlab's subclasses override, with
# the parameters Twisted calls them with.
HTTP2_OVERRIDES: dict[str, tuple[str, ...]] = {
    "H2Connection.__init__": ("reactor",),
    "H2Connection.dataReceived": ("data",),
    "H2Connection._requestReceived": ("event",),
    "H2Stream.__init__": (
        "streamID", "connection", "headers", "requestFactory", "site", "factory",
    ),
    "H2Stream.receiveDataChunk": ("data", "flowControlledLength"),
    "H2Stream.requestComplete": (),
}

# What netlab sets on an H2Connection before it is connected, as Twisted's
# _GenericHTTPChannelProtocol does when it switches to one, and the public
# methods of the connection and stream it calls.
HTTP2_STATE: tuple[str, ...] = (
    "requestFactory", "site", "factory", "timeOut", "callLater", "conn",
    "openStreamWindow", "writeHeaders", "streamID",
)


def http2_add_stream(connection: HTTP2Connection, stream: HTTP2Stream) -> None:
    """
    File C{stream} (just built for a request) in C{connection}'s tables, as
    Twisted's C{H2Connection._requestReceived} does after it builds one: its
    cleanup Deferred, its queue of data to send, its place in the priority
    tree (blocked until it has data to send).
    """
    stream_id = stream.streamID
    connection.streams[stream_id] = stream
    connection._streamCleanupCallbacks[stream_id] = Deferred()
    connection._outboundStreamQueues[stream_id] = deque()
    try:
        connection.priority.insert_stream(stream_id)
    except priority.DuplicateStreamError:
        # A PRIORITY frame came before the HEADERS: the stream is in the tree.
        pass
    else:
        connection.priority.block(stream_id)


def http2_answer_at_once(
    connection: HTTP2Connection, stream_id: int, code: int,
    headers: list[tuple[bytes, bytes]], body: bytes,
) -> None:
    """
    Send C{code}, C{headers} and C{body} on C{stream_id} and end it from
    this side, now, ahead of Twisted's queue of response data (the stream
    has none: its request was never rendered).
    """
    connection.writeHeaders(b"HTTP/2", b"%d" % (code,), b"", list(headers), stream_id)
    try:
        connection.conn.send_data(stream_id, body, end_stream=True)
    except h2.exceptions.FlowControlError:
        # The client's window cannot take even this much: the status must do.
        connection.conn.end_stream(stream_id)
    connection._tryToWriteControlData()


def http2_drop_stream(
    connection: HTTP2Connection, stream_id: int, reason: Failure, reset: bool,
) -> None:
    """
    Forget C{stream_id}, answered already; with C{reset}, reset it with
    C{NO_ERROR} (RFC 9113 section 8.1: the client may stop sending a body
    the server will not read).  Nothing if the client has reset it meanwhile.
    """
    stream = connection.streams.get(stream_id)
    if stream is None:
        return
    if reset:
        # (Closed already if the client had ended its side too.)
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            connection.conn.reset_stream(stream_id)
    stream.connectionLost(reason)
    connection._requestDone(stream_id)
    connection._tryToWriteControlData()


# -- twisted.protocols.haproxy: the PROXY protocol -----------------------------
#
# Twisted reads PROXY protocol headers (v1 text, v2 binary) in
# HAProxyProtocolWrapper, which connects the wrapped protocol before the
# header arrives (so the service would see, admit and count the proxy's
# address) and closes a connection without a header silently.  netlab's
# listener reads the header with Twisted's parsers, from private modules,
# before it builds the service's protocol with the client's address.


def read_proxy_header(received: bytes) -> tuple[IAddress | None, IAddress | None, bytes] | None:
    """
    The PROXY protocol header at the start of C{received}: its source and
    destination addresses (None for a proxy's own health check, C{LOCAL} or
    C{UNKNOWN}) and the bytes after it; or None while it is incomplete.

    @raise ValueError: C{received} does not start with a valid header.
    """
    from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
    from twisted.protocols.haproxy._v1parser import V1Parser
    from twisted.protocols.haproxy._v2parser import V2Parser

    signature = V2Parser.PREFIX
    parser: V1Parser | V2Parser
    if received[: len(signature)] == signature[: len(received)]:
        if len(received) < 16:  # the signature, version, family and length
            return None
        parser = V2Parser()
    elif received[:6] == b"PROXY "[: len(received)]:
        parser = V1Parser()
    else:
        raise ValueError("no PROXY protocol header")
    try:
        info, rest = parser.feed(received)
    except InvalidProxyHeader as e:
        raise ValueError(f"invalid PROXY protocol header ({type(e).__name__})") from None
    if info is None or rest is None:
        return None
    return info.source, info.destination, rest


__all__ = [
    "HTTP2_OVERRIDES",
    "HTTP2_STATE",
    "HTTP_CHANNEL_HOOKS",
    "HTTP_CHANNEL_OVERRIDES",
    "HTTP_CHANNEL_STATE",
    "HTTP2Connection",
    "HTTP2Stream",
    "clear_exit_signal",
    "computed_allowed_methods",
    "endpoint_tokens",
    "http2_add_stream",
    "http2_answer_at_once",
    "http2_drop_stream",
    "is_port_chatter",
    "raise_synchronously",
    "read_proxy_header",
    "serve_websocket",
    "systemd_inherited_fds",
    "tcp_buffer_empty",
    "tcp_buffered_bytes",
    "tcp_direct_socket",
    "udp_connected_address",
    "udp_direct_socket",
    "upgrade_to_websocket",
    "waiting_for_port",
]
