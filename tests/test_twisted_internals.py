"""
Every private Twisted name netlab touches (see L{netlab.core._twisted})
still exists on the installed Twisted and behaves as netlab assumes.

A failure here means a Twisted upgrade changed one of them: each message
says what changed and which netlab feature depends on it, so the fix goes
into C{netlab/core/_twisted.py} and nowhere else.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import socket
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from twisted.application import app
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import reactor, tcp, udp
from twisted.internet.base import ReactorBase
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IListeningPort,
    _ISupportsExitSignalCapturing,
)
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.protocols import basic
from twisted.python.failure import Failure
from twisted.python.systemd import ListenFDs
from twisted.web import http, resource, server
from twisted.web.http_headers import Headers
from zope.interface import directlyProvides, implementer

from helpers import Collector, connect
from helpers import ReadyServer as Server
from netlab.core._twisted import (
    HTTP_CHANNEL_HOOKS,
    HTTP_CHANNEL_OVERRIDES,
    HTTP_CHANNEL_STATE,
    clear_exit_signal,
    computed_allowed_methods,
    is_port_chatter,
    raise_synchronously,
    systemd_inherited_fds,
    tcp_buffer_empty,
    tcp_buffered_bytes,
    tcp_direct_socket,
    udp_connected_address,
    udp_direct_socket,
    waiting_for_port,
)
from selfsigned import server_options

FASTWRITE = "netlab.core.fastwrite.write_now (the echo/HTTP write-now fast path)"


@implementer(IHalfCloseableProtocol)
class HalfCloseCollector(Collector):
    """A client that sees the server's half-close as readConnectionLost."""

    def __init__(self) -> None:
        super().__init__()
        self.read_lost: Deferred[None] = Deferred()

    def readConnectionLost(self) -> None:
        self.read_lost.callback(None)

    def writeConnectionLost(self) -> None:
        pass


@inlineCallbacks
def connected_pair(client: Collector | None = None) -> Any:
    """A listening port, a connected client and the server protocol, over loopback."""
    ready: Deferred[Server] = Deferred()
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: Server(ready)), interface="127.0.0.1")
    if client is None:
        client = yield connect(port)
    else:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        yield connectProtocol(endpoint, client)
    server = yield ready
    return port, client, server


@inlineCallbacks
def wait_until_closed(port: IListeningPort, client: Collector, server: Server) -> Any:
    """Close both ends and the port, waiting for each."""
    if client.transport is not None and not client.closed.called:
        client.transport.abortConnection()
    yield client.closed
    yield server.gone
    yield port.stopListening()


# -- transports: the write-now fast path ------------------------------------


@pytest_twisted.inlineCallbacks
def test_tcp_buffer_is_empty_until_a_write_is_buffered() -> Any:
    """transport.write buffers until the next reactor pass; doWrite empties the buffer again."""
    port, client, server = yield connected_pair()
    transport = server.transport
    assert isinstance(transport, tcp.Connection)
    for name in ("_tempDataLen", "_tempDataBuffer", "dataBuffer", "offset",
                 "_writeDisconnected", "TLS", "socket", "streamingProducer"):
        assert hasattr(transport, name), (
            f"twisted.internet.tcp.Connection no longer has {name!r}: {FASTWRITE} "
            "reads it to know whether Twisted's write buffer is empty"
        )
    assert tcp_buffer_empty(transport) and tcp_buffered_bytes(transport) == 0, (
        "a fresh tcp.Connection no longer shows an empty buffer "
        f"(_tempDataLen 0, offset == len(dataBuffer)); {FASTWRITE} would never write at once"
    )
    assert tcp_direct_socket(transport) is transport.socket

    transport.write(b"hello")
    assert not tcp_buffer_empty(transport) and tcp_buffered_bytes(transport) == 5, (
        "tcp.Connection.write no longer keeps the bytes in _tempDataBuffer/_tempDataLen "
        f"until the next reactor pass; {FASTWRITE} could send new bytes ahead of them"
    )
    assert tcp_direct_socket(transport) is None

    yield client.wait_bytes(5)
    assert tcp_buffer_empty(transport) and tcp_buffered_bytes(transport) == 0, (
        "after doWrite sent everything, dataBuffer/offset/_tempDataLen no longer "
        f"read as empty; {FASTWRITE} would stop writing at once"
    )
    yield wait_until_closed(port, client, server)


@pytest_twisted.inlineCallbacks
def test_tcp_partly_sent_buffer_is_not_empty() -> Any:
    """What the kernel has not taken stays in dataBuffer from offset on, and counts."""
    port, client, server = yield connected_pair()
    transport = server.transport
    client.transport.pauseProducing()
    big = b"x" * (8 << 20)  # more than loopback socket buffers hold
    transport.write(big)
    assert tcp_buffered_bytes(transport) == len(big)
    while tcp_buffered_bytes(transport) == len(big):  # until doWrite has sent some
        yield deferLater(reactor, 0, lambda: None)
    left = tcp_buffered_bytes(transport)
    assert 0 < left < len(big) and not tcp_buffer_empty(transport), (
        "bytes the kernel has not taken are no longer counted by dataBuffer/offset/"
        f"_tempDataLen; {FASTWRITE} could send new bytes ahead of them"
    )
    assert tcp_direct_socket(transport) is None
    client.transport.resumeProducing()
    yield client.wait_bytes(len(big))
    assert tcp_buffer_empty(transport)
    yield wait_until_closed(port, client, server)


@pytest_twisted.inlineCallbacks
def test_direct_socket_refused_while_closing() -> Any:
    """After loseConnection (disconnecting), bytes must queue behind Twisted's close."""
    port, client, server = yield connected_pair()
    transport = server.transport
    transport.loseConnection()
    assert transport.disconnecting and transport.connected
    assert tcp_direct_socket(transport) is None, (
        f"tcp.Connection.disconnecting is no longer set by loseConnection; {FASTWRITE} "
        "could write after Twisted decided to close"
    )
    yield client.closed
    yield server.gone
    assert tcp_direct_socket(transport) is None
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_direct_socket_refused_after_half_close() -> Any:
    """Once the write side is shut (_writeDisconnected), nothing may be sent directly."""
    port, client, server = yield connected_pair(HalfCloseCollector())
    transport = server.transport
    transport.loseWriteConnection()
    yield client.read_lost  # the server's FIN arrived: its write side is shut
    assert transport.connected
    assert transport._writeDisconnected, (
        "tcp.Connection no longer sets _writeDisconnected once loseWriteConnection "
        f"has shut the write side; {FASTWRITE} would send on a shut socket"
    )
    assert tcp_direct_socket(transport) is None
    yield wait_until_closed(port, client, server)


class Producer:
    """A producer that does nothing."""

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@pytest_twisted.inlineCallbacks
def test_direct_socket_with_producers() -> Any:
    """A push producer allows direct writes; a pull producer needs Twisted's buffer to drain."""
    port, client, server = yield connected_pair()
    transport = server.transport
    transport.registerProducer(Producer(), True)
    assert transport.producer is not None and transport.streamingProducer
    assert tcp_direct_socket(transport) is transport.socket
    transport.unregisterProducer()
    transport.registerProducer(Producer(), False)
    assert transport.producer is not None and not transport.streamingProducer, (
        "tcp.Connection no longer records a pull producer as producer/streamingProducer; "
        f"{FASTWRITE} could write past it, and it would never be asked for more"
    )
    assert tcp_direct_socket(transport) is None
    transport.unregisterProducer()
    yield wait_until_closed(port, client, server)


@pytest_twisted.inlineCallbacks
def test_direct_socket_refused_after_start_tls() -> Any:
    """startTLS keeps the same tcp.Connection and marks it with TLS."""
    port, client, server = yield connected_pair()
    transport = server.transport
    assert not transport.TLS
    transport.startTLS(server_options())
    assert isinstance(transport, tcp.Connection) and transport.TLS, (
        "tcp.Connection.startTLS no longer sets the TLS flag on the connection; "
        f"{FASTWRITE} would send plaintext on a TLS connection"
    )
    assert tcp_direct_socket(transport) is None
    yield wait_until_closed(port, client, server)


class Datagrams(DatagramProtocol):
    """Ignores what arrives."""


@pytest_twisted.inlineCallbacks
def test_udp_connected_address() -> Any:
    """_connectedAddr is None until connect(), then the peer; then sendto must not be used."""
    port = reactor.listenUDP(0, Datagrams(), interface="127.0.0.1")
    assert isinstance(port, udp.Port)
    assert udp_connected_address(port) is None, (
        "udp.Port._connectedAddr is no longer None on an unconnected port; "
        "netlab.core.fastwrite.send_datagram (UDP replies) would never send directly"
    )
    assert udp_direct_socket(port) is port.socket
    port.connect("127.0.0.1", 9)
    assert udp_connected_address(port) == ("127.0.0.1", 9), (
        "udp.Port.connect no longer records the peer in _connectedAddr; "
        "netlab.core.fastwrite.send_datagram would sendto from a connected port"
    )
    assert udp_direct_socket(port) is None
    yield port.stopListening()


# -- strports services --------------------------------------------------------


def taken_port() -> socket.socket:
    """A loopback socket listening on a port, so binding it again fails."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    return taken


@pytest_twisted.inlineCallbacks
def test_raise_synchronously_makes_a_taken_port_raise_at_start() -> Any:
    """With _raiseSynchronously, privilegedStartService raises CannotListenError itself."""
    taken = taken_port()
    try:
        endpoint = TCP4ServerEndpoint(reactor, taken.getsockname()[1], interface="127.0.0.1")
        service = StreamServerEndpointService(endpoint, Factory.forProtocol(Protocol))
        assert hasattr(service, "_raiseSynchronously"), (
            "StreamServerEndpointService no longer has _raiseSynchronously: netlab's "
            "StreamListener (netlab.core.listen) relies on it to stop at start on a taken port"
        )
        raise_synchronously(service)
        with pytest.raises(CannotListenError):
            service.privilegedStartService()
        yield service.stopService()
    finally:
        taken.close()


@pytest_twisted.inlineCallbacks
def test_waiting_for_port_fires_with_the_port() -> Any:
    """_waitingForPort is None before start, then a Deferred firing the listening port."""
    endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    service = StreamServerEndpointService(endpoint, Factory.forProtocol(Protocol))
    assert waiting_for_port(service) is None
    service.privilegedStartService()
    waiting = waiting_for_port(service)
    assert isinstance(waiting, Deferred), (
        "StreamServerEndpointService._waitingForPort is no longer a Deferred after "
        "privilegedStartService: netlab's StreamListener reads the bound port (listening "
        "events, port 0, the dashboard) from it"
    )
    bound: list[Any] = []
    waiting.addCallback(lambda port: bound.append(port) or port)
    assert len(bound) == 1 and IListeningPort.providedBy(bound[0]), (
        "StreamServerEndpointService._waitingForPort no longer fires with the listening port"
    )
    assert bound[0].getHost().port != 0
    yield service.stopService()


# -- systemd socket activation ------------------------------------------------


def test_systemd_inventory_is_a_listen_fds() -> None:
    """_SystemdParser._sddaemon is a ListenFDs with both lookups."""
    fds = systemd_inherited_fds()
    assert isinstance(fds, ListenFDs), (
        "twisted.internet.endpoints._SystemdParser._sddaemon is no longer a ListenFDs: "
        "netlab's systemd-udp: listen strings (netlab.core.config.parse_systemd_udp) "
        "find systemd's datagram sockets there"
    )
    assert isinstance(fds.inheritedDescriptors(), list)
    assert isinstance(fds.inheritedNamedDescriptors(), dict)


def test_systemd_inventory_is_read_from_the_environment_at_import() -> None:
    """With $LISTEN_PID/$LISTEN_FDS/$LISTEN_FDNAMES set, the inventory names the sockets."""
    script = (
        "import json, os\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='2',"
        " LISTEN_FDNAMES='alpha:beta')\n"
        "from netlab.core._twisted import systemd_inherited_fds\n"
        "fds = systemd_inherited_fds()\n"
        "print(json.dumps([fds.inheritedDescriptors(), fds.inheritedNamedDescriptors()]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
    ).stdout
    descriptors, named = json.loads(out)
    assert descriptors == [3, 4] and named == {"alpha": 3, "beta": 4}, (
        "twisted.internet.endpoints._SystemdParser._sddaemon no longer holds the sockets "
        f"named by $LISTEN_FDS/$LISTEN_FDNAMES (got {descriptors}, {named}): netlab's "
        "systemd-udp: listen strings would find no socket"
    )


# -- the reactor's exit signal -------------------------------------------------


def test_reactor_records_the_exit_signal() -> None:
    """The reactor provides _ISupportsExitSignalCapturing; sigTerm/sigInt record _exitSignal."""
    assert _ISupportsExitSignalCapturing.providedBy(reactor), (
        "the reactor no longer provides _ISupportsExitSignalCapturing: twistd no longer "
        "re-raises the stop signal, and netlab.app.service's clean-stop exit status 0 is moot"
    )
    assert ReactorBase._exitSignal is None
    for handler, number in ((ReactorBase.sigTerm, signal.SIGTERM),
                            (ReactorBase.sigInt, signal.SIGINT)):
        stopping: list[object] = []
        fake = SimpleNamespace(callFromThread=stopping.append, stop=object())
        handler(fake, number, None)  # type: ignore[arg-type]
        assert fake._exitSignal == number and stopping == [fake.stop], (
            f"ReactorBase.{handler.__name__} no longer records the signal in _exitSignal: "
            "netlab.app.service clears it there so a clean SIGTERM stop exits 0"
        )


def test_twistd_reads_the_exit_signal_after_the_reactor_stops() -> None:
    """twistd's runner copies reactor._exitSignal once run() returns, to kill itself with it."""
    fake = SimpleNamespace(_exitSignal=signal.SIGTERM, run=lambda: None)
    directlyProvides(fake, _ISupportsExitSignalCapturing)
    runner = SimpleNamespace(
        config={"profile": False, "debug": False, "nodaemon": True}, profiler=None,
    )
    app.ApplicationRunner.startReactor(runner, fake, sys.stdout, sys.stderr)  # type: ignore[arg-type]
    assert runner._exitSignal == signal.SIGTERM, (
        "twistd's ApplicationRunner.startReactor no longer takes the exit signal from "
        "reactor._exitSignal: netlab.app.service clears that to make a clean stop exit 0"
    )
    assert clear_exit_signal(fake, (signal.SIGTERM, signal.SIGINT))
    app.ApplicationRunner.startReactor(runner, fake, sys.stdout, sys.stderr)  # type: ignore[arg-type]
    assert runner._exitSignal is None


def test_clear_exit_signal_only_clears_the_given_signals() -> None:
    """A signal not listed is kept; without the attribute nothing happens."""
    fake = SimpleNamespace(_exitSignal=signal.SIGHUP)
    assert not clear_exit_signal(fake, (signal.SIGTERM, signal.SIGINT))
    assert fake._exitSignal == signal.SIGHUP
    assert not clear_exit_signal(SimpleNamespace(), (signal.SIGTERM,))


# -- twisted.web ---------------------------------------------------------------


class Renders(resource.Resource):
    """Renders GET and POST."""

    def render_GET(self, request: server.Request) -> bytes:
        return b"got"

    def render_POST(self, request: server.Request) -> bytes:
        return b"posted " + request.content.read()


def test_computed_allowed_methods_lists_the_render_methods() -> None:
    """_computeAllowedMethods lists each render_* method, as bytes."""
    methods = computed_allowed_methods(Renders())
    assert isinstance(methods, list) and all(isinstance(m, bytes) for m in methods)
    assert {b"GET", b"POST"} <= set(methods) <= {b"GET", b"POST", b"HEAD"}, (
        "twisted.web.resource._computeAllowedMethods no longer lists a resource's render_* "
        f"methods (got {methods}): netlab's OPTIONS answers (protocols/http/site.py) use it"
    )


def test_http_channel_has_the_methods_netlab_overrides() -> None:
    """Each method netlab overrides is on HTTPChannel, taking the parameters the override takes."""
    assert set(HTTP_CHANNEL_HOOKS) == set(HTTP_CHANNEL_OVERRIDES)
    for name, params in HTTP_CHANNEL_OVERRIDES.items():
        method = getattr(http.HTTPChannel, name, None)
        assert callable(method), (
            f"twisted.web.http.HTTPChannel no longer has {name}(): netlab's NetlabChannel "
            "(protocols/http/site.py) overrides it, and the override would never be called"
        )
        actual = [p for p in inspect.signature(method).parameters if p != "self"]
        assert actual[: len(params)] == list(params) and len(actual) == len(params), (
            f"twisted.web.http.HTTPChannel.{name} now takes {actual}, not {list(params)}: "
            "netlab's NetlabChannel override (protocols/http/site.py) must follow"
        )


def test_http_channel_state_netlab_reads() -> None:
    """length, requests, persistent, setTimeout and callLater are on every channel."""
    channel = http.HTTPChannel()
    for name in HTTP_CHANNEL_STATE:
        assert hasattr(channel, name), (
            f"twisted.web.http.HTTPChannel no longer has {name!r}: netlab's NetlabChannel "
            "or MeteredSocket (protocols/http/site.py, websocket.py) reads or replaces it"
        )


class RecordingChannel(http.HTTPChannel):
    """Records when Twisted calls the hooks netlab overrides, and what the channel says then."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, ...]] = []

    def headerReceived(self, line: bytes) -> bool:
        accepted: bool = super().headerReceived(line)
        self.calls.append(("headerReceived", line, accepted, len(self.requests)))
        return accepted

    def allHeadersReceived(self) -> None:
        self.calls.append(("allHeadersReceived", self.length, self.requests[-1]))
        super().allHeadersReceived()

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        self.calls.append(("writeHeaders", version, code, reason, type(headers)))
        super().writeHeaders(version, code, reason, headers)

    def requestDone(self, request: http.Request) -> None:
        super().requestDone(request)
        self.calls.append(("requestDone", request, self.persistent))


def test_http_channel_calls_the_hooks_as_netlab_assumes() -> None:
    """Header lines, then all headers (length known, request last), headers written, done."""
    root = resource.Resource()
    root.putChild(b"r", Renders())
    site = server.Site(root, timeout=None)
    site.protocol = RecordingChannel  # type: ignore[assignment]
    channel = site.buildProtocol(None)
    assert isinstance(channel, RecordingChannel)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(
        b"POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    )
    kinds = [c[0] for c in channel.calls]
    assert kinds == ["headerReceived", "headerReceived", "allHeadersReceived",
                     "writeHeaders", "requestDone"], (
        f"twisted.web.http.HTTPChannel now calls {kinds}: netlab's NetlabChannel "
        "(header deadline, body limit, raw headers, one-write responses) assumes "
        "headerReceived per line, allHeadersReceived, writeHeaders, requestDone"
    )
    header, _, all_in, written, done = channel.calls
    assert header[2] is True and header[3] == 1, (
        "HTTPChannel.headerReceived no longer returns True for an accepted header while "
        "the request is requests[-1]: netlab keeps the raw header names there"
    )
    assert all_in[1] == 5 and isinstance(all_in[2], server.Request), (
        "HTTPChannel.length is no longer the declared Content-Length when "
        "allHeadersReceived is called: netlab's max_body check answers 413 from it"
    )
    assert written[1:4] == (b"HTTP/1.1", b"200", b"OK") and written[4] is Headers, (
        "Request.write no longer calls channel.writeHeaders(version, code, reason, Headers): "
        "netlab sends the head and first body bytes as one write from there"
    )
    assert done[2], "HTTPChannel.persistent is no longer true for an HTTP/1.1 request"
    assert transport.value().endswith(b"posted hello")
    channel.connectionLost(Failure(ConnectionDone()))


class LineChannel(http.HTTPChannel):
    """Splits on LF as netlab's channel does, and records each line Twisted hands it."""

    delimiter = b"\n"

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        super().lineReceived(line.removesuffix(b"\r"))


def test_http_channel_splits_lines_on_its_delimiter() -> None:
    """HTTPChannel is a LineReceiver: each request and header line, split on the channel's
    delimiter, goes through lineReceived; the body does not."""
    assert isinstance(http.HTTPChannel(), basic.LineReceiver), (
        "twisted.web.http.HTTPChannel is no longer a LineReceiver: netlab's NetlabChannel "
        "(protocols/http/site.py) sets its delimiter to accept bare-LF requests"
    )
    root = resource.Resource()
    root.putChild(b"r", Renders())
    site = server.Site(root, timeout=None)
    site.protocol = LineChannel  # type: ignore[assignment]
    channel = site.buildProtocol(None)
    assert isinstance(channel, LineChannel)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"POST /r HTTP/1.1\nHost: x\r\nContent-Length: 3\n\na\nb")
    channel.dataReceived(b"GET /r HTTP/1.0\n\n")
    assert channel.lines == [
        b"POST /r HTTP/1.1", b"Host: x\r", b"Content-Length: 3", b"",
        b"GET /r HTTP/1.0", b"",
    ], (
        f"HTTPChannel's lines are now {channel.lines}: netlab's NetlabChannel assumes "
        "LineReceiver splits the request line and headers on self.delimiter and calls "
        "lineReceived for each, without the delimiter, and leaves the body whole"
    )
    assert b"posted a\nb" in transport.value() and transport.value().endswith(b"got")
    channel.connectionLost(Failure(ConnectionDone()))


class WebSocketPeer:
    """A WebSocket protocol that keeps nothing."""

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        pass

    def bytesMessageReceived(self, data: bytes) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


class UpgradeRecordingChannel(http.HTTPChannel):
    """Records the protocol Twisted's WebSocket resource hands the connection to."""

    upgraded_to: Any = None

    def _protocolUpgradeForWebsockets(self, protocol: Any) -> None:
        self.upgraded_to = protocol
        super()._protocolUpgradeForWebsockets(protocol)


def test_websocket_upgrade_goes_through_the_channel_hook() -> None:
    """WebSocketResource calls channel._protocolUpgradeForWebsockets, which replaces
    dataReceived and connectionLost on the channel instance."""
    from twisted.web.websocket import WebSocketResource

    root = resource.Resource()
    root.putChild(b"ws", WebSocketResource(SimpleNamespace(
        buildProtocol=lambda request: WebSocketPeer())))  # type: ignore[arg-type]
    site = server.Site(root, timeout=None)
    site.protocol = UpgradeRecordingChannel  # type: ignore[assignment]
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    wire = channel.upgraded_to
    assert wire is not None, (
        "twisted.web.websocket no longer hands the connection over through "
        "HTTPChannel._protocolUpgradeForWebsockets: netlab's NetlabChannel override "
        "(connection accounting after an upgrade) would never run"
    )
    assert transport.value().startswith(b"HTTP/1.1 101")
    for name in ("dataReceived", "connectionLost"):
        replaced = channel.__dict__.get(name)
        assert replaced is not None and getattr(replaced, "__self__", None) is wire, (
            f"HTTPChannel._protocolUpgradeForWebsockets no longer replaces {name} on the "
            "channel with the WebSocket's: netlab wraps that replacement (site.py, "
            "websocket.py) to count bytes and keep the accounting"
        )
    channel.connectionLost(Failure(ConnectionDone()))


class RecordingPeer(WebSocketPeer):
    """A WebSocket protocol that keeps the text messages it gets."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.started_with: Any = None

    def negotiationStarted(self, transport: Any) -> None:
        super().negotiationStarted(transport)
        self.started_with = transport

    def textMessageReceived(self, message: str) -> None:
        self.texts.append(message)


def test_serve_websocket_over_a_channel() -> None:
    """
    serve_websocket wraps a wsproto connection in Twisted's byte-level
    WebSocket protocol and hands the channel's connection to it: what
    WebSocketResource.render_GET does after its handshake, and what
    netlab's own handshake (permessage-deflate) relies on.
    """
    from wsproto import Connection, ConnectionType

    from netlab.core._twisted import serve_websocket

    site = server.Site(resource.Resource(), timeout=None)
    site.protocol = http.HTTPChannel  # type: ignore[assignment]
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    peer = RecordingPeer()
    serve_websocket(channel, Connection(ConnectionType.SERVER), peer)
    explain = (
        "twisted.web._websocket_impl._WebSocketWireProtocol(connection, serverBootstrap, "
        "protocol) or HTTPChannel._protocolUpgradeForWebsockets changed: netlab's "
        "WebSocket handshake (protocols/http/websocket.py, for permessage-deflate) "
        "serves its sockets through them"
    )
    assert peer.started_with is not None, explain
    mask = b"abcd"
    channel.dataReceived(b"\x81\x82" + mask + bytes(b ^ mask[i] for i, b in enumerate(b"hi")))
    assert peer.texts == ["hi"], explain
    peer.started_with.sendTextMessage("back")
    assert transport.value() == b"\x81\x04back", explain
    channel.connectionLost(Failure(ConnectionDone()))


def test_endpoint_tokens() -> None:
    """Twisted's endpoint tokenizer splits type, positional and keyword arguments, unescaping."""
    from netlab.core._twisted import endpoint_tokens

    tokens = endpoint_tokens(r"tcp:7007:interface=\:\:1")
    assert tokens == (["tcp", "7007"], {"interface": "::1"}), (
        "twisted.internet.endpoints._parse changed; netlab.core.endpoints reads "
        "listen strings with it"
    )
    assert endpoint_tokens("systemd:domain=INET:name=echo") == (
        ["systemd"], {"domain": "INET", "name": "echo"}
    )
    assert endpoint_tokens(r"unix:/run/a\:b") == (["unix", "/run/a:b"], {})


# -- twisted.web._http2 ----------------------------------------------------------------


class H2Server:
    """Twisted's own H2Connection (or a subclass) on a StringTransport, with an h2 client."""

    def __init__(self, connection: Any) -> None:
        import h2.config
        import h2.connection

        self.server = connection
        self.server.requestFactory = server.Request
        self.server.site = server.Site(resource.Resource())
        self.server.factory = self.server.site
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.client.initiate_connection()
        self.events: list[Any] = []
        self.exchange()

    def exchange(self) -> None:
        self.server.dataReceived(self.client.data_to_send())
        self.events += self.client.receive_data(self.transport.value())
        self.transport.clear()

    def post(self, stream_id: int) -> None:
        self.client.send_headers(stream_id, [
            (":method", "POST"), (":path", "/"), (":scheme", "https"),
            (":authority", "localhost"), ("content-length", "10"),
        ])
        self.exchange()


def test_http2_classes_have_the_methods_netlab_overrides() -> None:
    """Each H2Connection/H2Stream method netlab's subclasses override takes the same
    parameters, and what netlab sets and calls on them is there."""
    from twisted.web import _http2

    from netlab.core._twisted import HTTP2_OVERRIDES, HTTP2_STATE

    for qualified, params in HTTP2_OVERRIDES.items():
        owner, name = qualified.split(".")
        method = getattr(getattr(_http2, owner), name, None)
        assert callable(method), (
            f"twisted.web._http2.{qualified} is gone: netlab's HTTP/2 subclasses "
            "(protocols/http/http2.py) override it"
        )
        actual = [p for p in inspect.signature(method).parameters if p != "self"]
        assert actual == list(params), (
            f"twisted.web._http2.{qualified} now takes {actual}, not {list(params)}: "
            "netlab's override (protocols/http/http2.py) must follow"
        )
    h2s = H2Server(_http2.H2Connection(reactor=Clock()))
    h2s.post(1)
    stream = h2s.server.streams[1]
    for name in HTTP2_STATE:
        assert hasattr(h2s.server, name) or hasattr(stream, name), (
            f"twisted.web._http2 no longer has {name!r}: netlab's HTTP/2 connection "
            "(protocols/http/http2.py, core/_twisted.py) sets or calls it"
        )


def test_http2_add_stream_files_a_stream_as_twisted_does() -> None:
    """http2_add_stream leaves the connection's tables as Twisted's _requestReceived does."""
    from twisted.web import _http2

    from netlab.core._twisted import http2_add_stream

    def tables(connection: Any) -> tuple[Any, ...]:
        return (
            dict(connection.streams), set(connection._streamCleanupCallbacks),
            {k: list(v) for k, v in connection._outboundStreamQueues.items()},
            [stream_id for stream_id in (1,) if stream_id in connection.priority._streams],
        )

    class Filing(_http2.H2Connection):  # type: ignore[misc]
        def _requestReceived(self, event: Any) -> None:
            stream = _http2.H2Stream(event.stream_id, self, event.headers,
                                     self.requestFactory, self.site, self.factory)
            http2_add_stream(self, stream)

    twisted_own = H2Server(_http2.H2Connection(reactor=Clock()))
    netlab_own = H2Server(Filing(reactor=Clock()))
    for h2s in (twisted_own, netlab_own):
        h2s.post(1)
    own, filed = tables(twisted_own.server), tables(netlab_own.server)
    assert set(own[0]) == set(filed[0]) == {1} and own[1:] == filed[1:], (
        "twisted.web._http2.H2Connection._requestReceived files a new stream differently "
        f"({own} vs netlab's {filed}): netlab.core._twisted.http2_add_stream must follow"
    )
    # Filed alike, the stream then works alike: its body ends the request, answered.
    import h2.events

    for h2s in (twisted_own, netlab_own):
        h2s.client.send_data(1, b"0123456789", end_stream=True)
        h2s.exchange()
        statuses = [dict(e.headers)[b":status"] for e in h2s.events
                    if isinstance(e, h2.events.ResponseReceived)]
        assert statuses == [b"404"]


def test_http2_answer_and_drop_a_stream() -> None:
    """http2_answer_at_once sends a whole answer at once; http2_drop_stream resets the
    stream with NO_ERROR and forgets it, leaving the connection serving."""
    import h2.events
    from twisted.web import _http2

    from netlab.core._twisted import http2_answer_at_once, http2_drop_stream

    h2s = H2Server(_http2.H2Connection(reactor=Clock()))
    h2s.post(1)
    http2_answer_at_once(h2s.server, 1, 413, [(b"content-length", b"4")], b"no!\n")
    h2s.exchange()
    [response] = [e for e in h2s.events if isinstance(e, h2.events.ResponseReceived)]
    assert dict(response.headers)[b":status"] == b"413"
    assert b"".join(e.data for e in h2s.events if isinstance(e, h2.events.DataReceived)) \
        == b"no!\n"
    assert any(isinstance(e, h2.events.StreamEnded) for e in h2s.events)
    http2_drop_stream(h2s.server, 1, Failure(ConnectionDone()), reset=True)
    h2s.exchange()
    [reset] = [e for e in h2s.events if isinstance(e, h2.events.StreamReset)]
    assert reset.error_code == 0
    assert not h2s.server.streams and not h2s.server._outboundStreamQueues, (
        "twisted.web._http2.H2Connection._requestDone no longer forgets a stream: "
        "netlab.core._twisted.http2_drop_stream must follow"
    )
    http2_drop_stream(h2s.server, 1, Failure(ConnectionDone()), reset=True)  # gone: nothing
    h2s.post(3)
    assert 3 in h2s.server.streams


# -- twisted.protocols.haproxy -------------------------------------------------------------


def test_read_proxy_header_with_twisteds_parsers() -> None:
    """Twisted's v1 and v2 parsers give the addresses and leave what follows."""
    from twisted.internet.address import IPv4Address

    from netlab.core._twisted import read_proxy_header

    v1 = read_proxy_header(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 7007\r\nrest")
    assert v1 == (IPv4Address("TCP", "203.0.113.7", 5555),
                  IPv4Address("TCP", "127.0.0.1", 7007), b"rest"), (
        "twisted.protocols.haproxy._v1parser.V1Parser changed: netlab's haproxy: "
        f"listeners (core/listen.py) read PROXY v1 headers with it (got {v1})"
    )
    v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([203, 0, 113, 7, 127, 0, 0, 1])
          + b"\x15\xb3\x1b\x5f" + b"rest")
    assert read_proxy_header(v2) == (IPv4Address("TCP", "203.0.113.7", 5555),
                                     IPv4Address("TCP", "127.0.0.1", 7007), b"rest"), (
        "twisted.protocols.haproxy._v2parser.V2Parser changed: netlab's haproxy: "
        "listeners (core/listen.py) read PROXY v2 headers with it"
    )
    assert read_proxy_header(v2[:20]) is None
    assert read_proxy_header(b"PROXY TCP4 203.0.113.7") is None
    with pytest.raises(ValueError, match="invalid PROXY protocol header"):
        read_proxy_header(b"PROXY TCP9 203.0.113.7 127.0.0.1 5555 7007\r\n")


@pytest_twisted.inlineCallbacks
def test_port_chatter_is_recognized_on_real_ports(tmp_path: Any) -> Any:
    """
    The lines Twisted's TCP, UDP, UNIX and TLS ports log as they start and stop
    are exactly the ones is_port_chatter drops (netlab logs each listener
    itself); an ordinary legacy line is not.
    """
    from twisted.logger import globalLogPublisher
    from twisted.python import log

    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        ports = [
            reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1"),
            reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1"),
            reactor.listenUNIX(str(tmp_path / "chatter.sock"), Factory.forProtocol(Protocol)),
            reactor.listenSSL(0, Factory.forProtocol(Protocol), server_options(),
                              interface="127.0.0.1"),
        ]
        for port in ports:
            yield port.stopListening()
        log.msg("an ordinary line starting on a Monday")
        log.msg("Factory starting on 7007", "and more")
    finally:
        globalLogPublisher.removeObserver(seen.append)
    legacy = [e for e in seen if e.get("log_namespace") == "log_legacy"]
    chatter = [e["message"][0] for e in legacy if is_port_chatter(e)]
    assert len(chatter) == 8, [e.get("message") for e in legacy]
    assert sum(" starting on " in line for line in chatter) == 4, chatter
    assert sum(line.endswith(" Closed)") for line in chatter) == 4, chatter
    ordinary = [e for e in legacy if "a Monday" in e["message"][0] or "and more" in e["message"]]
    assert len(ordinary) == 2 and not any(is_port_chatter(e) for e in ordinary)
    assert not is_port_chatter({"log_namespace": "netlab", "message": ("X starting on 1",)})
