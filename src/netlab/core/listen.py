"""
Endpoint strings to services.

Stream strings go through L{strports.service}, whose service raises at start
when its port cannot be bound, so the daemon stops with a clear error instead
of running half-started.  Twisted has no endpoint string for UDP, so
C{udp:PORT[:interface=ADDR]} gets a small service of its own here with the
same behaviour.

A stream string behind C{haproxy:} (C{haproxy:tcp:7007:interface=127.0.0.1})
reads a PROXY protocol header (v1 or v2) first on every connection: see
L{ProxyHeaderFactory}.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IProtocolNegotiationFactory,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import DatagramProtocol, Protocol, connectionDone
from twisted.logger import LogLevel
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from netlab.core._twisted import raise_synchronously, read_proxy_header, waiting_for_port
from netlab.core.accounting import ServiceBooks
from netlab.core.endpoints import parse_systemd_udp, parse_udp, split_endpoint, unproxied
from netlab.core.events import LISTENING, EventLog, describe_address

# Twisted listens with a backlog of 50 unless told otherwise; a class whose
# clients all connect at once would overflow it, and each overflowing client
# waits a second for its SYN to be retried.
DEFAULT_BACKLOG = 1024


def with_backlog(description: str) -> str:
    """C{description} with a larger listen backlog, unless it names its own."""
    kind, _, kwargs = split_endpoint(description)
    if kind in ("tcp", "tcp6", "ssl", "tls", "unix") and "backlog" not in kwargs:
        return f"{description}:backlog={DEFAULT_BACKLOG}"
    return description


# A proxy sends its PROXY header as soon as it has connected: a connection
# that has not sent one in this many seconds is not from a proxy.
PROXY_HEADER_TIMEOUT = 10.0


def _checked_address(address: IAddress | None) -> IAddress | None:
    """
    C{address} from a PROXY header, its IP checked (Twisted's v1 parser
    takes any word) and an IPv6 one written as the socket transports write
    it (the v2 parser leaves out no zeros), so one client is one peer.

    @raise ValueError: the header's address is not an IP address.
    """
    if isinstance(address, IPv4Address | IPv6Address):
        try:
            ip = ipaddress.ip_address(address.host)
        except ValueError:
            raise ValueError(f"PROXY protocol header: {address.host!r} is not an IP address") \
                from None
        kind = IPv4Address if ip.version == 4 else IPv6Address
        return kind(address.type, str(ip), address.port)
    return address


def parse_proxy_header(received: bytes) -> tuple[IAddress | None, IAddress | None, bytes] | None:
    """
    The PROXY protocol header (v1 or v2) at the start of C{received}: the
    client's address and the address it connected to (None for a proxy's own
    check, which names no client) and the bytes after the header; or None
    while the header is incomplete.

    @raise ValueError: C{received} does not start with a valid header.
    """
    header = read_proxy_header(received)
    if header is None:
        return None
    source, destination, rest = header
    return _checked_address(source), _checked_address(destination), rest


@implementer(IHalfCloseableProtocol)
class ProxyHeaderReader(ProtocolWrapper):
    """
    Reads a connection's PROXY protocol header, then builds the service's
    protocol for the client the header names and stands between them, as
    its transport, with the client's address as the peer (C{getPeer}) and
    the address the client connected to as the host (C{getHost}).

    Unlike Twisted's own C{HAProxyProtocolWrapper}, which connects the
    service's protocol before the header has come (so the service would
    admit, count and greet the proxy's address), nothing of the service
    runs before the header: the connection caps, access lists, events and
    the web site's C{/ip} all see the client.  A connection whose first
    bytes are not a valid header, or that sends none in
    L{PROXY_HEADER_TIMEOUT} seconds, is told so in one line, counted as
    refused, logged once and closed.
    """

    factory: ProxyHeaderFactory
    wrappedProtocol: IProtocol | None  # type: ignore[assignment]
    transport: ITransport

    def __init__(self, factory: ProxyHeaderFactory) -> None:
        super().__init__(factory, None)  # type: ignore[arg-type]
        self.received = b""
        self.source: IAddress | None = None
        self.destination: IAddress | None = None
        self.refused = False
        self._deadline: IDelayedCall | None = None

    def makeConnection(self, transport: ITransport) -> None:
        # ProtocolWrapper's, without connecting a protocol: none exists yet.
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)

    def connectionMade(self) -> None:
        self._deadline = self.factory.clock.callLater(
            PROXY_HEADER_TIMEOUT, self.refuse,
            f"no PROXY protocol header within {PROXY_HEADER_TIMEOUT:g} seconds",
        )

    def getPeer(self) -> IAddress:
        return self.source or self.transport.getPeer()

    def getHost(self) -> IAddress:
        return self.destination or self.transport.getHost()

    def dataReceived(self, data: bytes) -> None:
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.refused:
            return
        self.received += data
        try:
            header = parse_proxy_header(self.received)
        except ValueError as e:
            self.refuse(str(e))
            return
        if header is None:
            return
        self._stop_deadline()
        # A proxy's own check (LOCAL, UNKNOWN) names no client: it is the client.
        self.source, self.destination, rest = header
        self.received = b""
        protocol = self.factory.wrappedFactory.buildProtocol(self.getPeer())
        if protocol is None:
            self.transport.loseConnection()
            return
        self.wrappedProtocol = protocol
        protocol.makeConnection(self)
        if rest and not self.disconnecting:
            protocol.dataReceived(rest)

    def refuse(self, why: str) -> None:
        """Tell the sender C{why} in one line, count and log it once, and hang up."""
        self._stop_deadline()
        if self.refused:
            return
        self.refused = True
        self.factory.books.refused(describe_address(self.transport.getPeer()), why)
        self.transport.write(f"ERROR {why}\r\n".encode())
        self.transport.loseConnection()

    def _stop_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def readConnectionLost(self) -> None:
        """The sender finished sending: the service's protocol hears it as it would."""
        protocol = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if protocol is not None:
            protocol.readConnectionLost()
        else:
            # What the transport does for a protocol that cannot half-close.
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        protocol = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if protocol is not None:
            protocol.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_deadline()
        self.factory.unregisterProtocol(self)
        protocol, self.wrappedProtocol = self.wrappedProtocol, None
        if protocol is not None:
            protocol.connectionLost(reason)


@implementer(IProtocolNegotiationFactory)
class ProxyHeaderFactory(WrappingFactory):
    """
    Wraps a service's factory for a C{haproxy:} listen string: each
    connection is a L{ProxyHeaderReader} until its header is in.

    @ivar books: the service's books, for counting and narrating refusals.
    """

    protocol = ProxyHeaderReader
    noisy = False

    def __init__(
        self, wrappedFactory: IProtocolFactory, events: EventLog, service: str,
        clock: IReactorTime,
    ) -> None:
        super().__init__(wrappedFactory)
        self.clock = clock
        self.books: ServiceBooks[Any] = ServiceBooks(service, events, clock)

    def buildProtocol(self, addr: IAddress | None) -> ProxyHeaderReader:
        return ProxyHeaderReader(self)

    def acceptableProtocols(self) -> list[bytes]:
        """
        What the service offers by TLS ALPN (behind C{haproxy:ssl:}, TLS
        asks this factory): the web site's h2 and http/1.1.
        """
        negotiation = IProtocolNegotiationFactory(self.wrappedFactory, None)
        return list(negotiation.acceptableProtocols()) if negotiation is not None else []


def socket_family(fd: int) -> int:
    """The address family of the socket open on C{fd}."""
    probe = socket.socket(fileno=os.dup(fd))
    family = probe.family
    probe.close()
    return int(family)


class InheritedSocketReactor:
    """
    The reactor as an endpoint sees it, except that listening adopts the
    listening socket already open on C{fd} (a worker's, which its parent
    bound) instead of binding a new one.  The endpoint still parses its
    string (a TLS endpoint its certificate), so every stream string a
    single process serves, a worker serves the same way.
    """

    def __init__(self, reactor: Any, fd: int) -> None:
        self.reactor = reactor
        self.fd = fd

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reactor, name)

    def adoptStreamPort(self, fd: int, family: int, factory: IProtocolFactory) -> IListeningPort:
        port: IListeningPort = self.reactor.adoptStreamPort(
            self.fd, socket_family(self.fd), factory
        )
        return port

    def listenTCP(self, port: int, factory: IProtocolFactory, *args: Any, **kw: Any) -> Any:
        return self.adoptStreamPort(self.fd, 0, factory)

    def listenUNIX(self, address: str, factory: IProtocolFactory, *args: Any, **kw: Any) -> Any:
        return self.adoptStreamPort(self.fd, 0, factory)

    def listenSSL(
        self, port: int, factory: IProtocolFactory, contextFactory: Any, *args: Any, **kw: Any
    ) -> Any:
        # What the reactor's own listenSSL does over TCP.
        return self.adoptStreamPort(self.fd, 0, TLSMemoryBIOFactory(contextFactory, False, factory))


class StreamListener(StreamServerEndpointService):
    """
    A strports service that reports the address it actually bound.

    @ivar announce: the level of its "listening on" event (a worker's,
        whose parent announced the socket, is debug).
    """

    def __init__(
        self, description: str, factory: IProtocolFactory, events: EventLog,
        service: str, reactor: Any, inherited: int | None = None,
        announce: LogLevel = LogLevel.info,
    ) -> None:
        endpoint, proxied = unproxied(description)
        if proxied:
            factory = ProxyHeaderFactory(factory, events, service, reactor)
        if inherited is not None:
            reactor = InheritedSocketReactor(reactor, inherited)
        template = strports.service(with_backlog(endpoint), factory, reactor=reactor)
        super().__init__(template.endpoint, factory)
        # A taken port stops the daemon at start, not just a logged error.
        raise_synchronously(self)
        self.description = description
        self.events = events
        self.service = service
        self.announce = announce
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        waiting = waiting_for_port(self)
        if waiting is not None:
            waiting.addCallback(self._bound)

    def _bound(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        host = port.getHost()
        kind = getattr(host, "type", "unix").lower()
        address = f"{kind} {describe_address(host)}"
        self.events.listening.setdefault(self.service, []).append(address)
        self.events.emit(LISTENING, self.service, None, self.announce, address=address)
        return port

    def stopService(self) -> Any:
        self.port = None
        return super().stopService()


class DatagramListener(Service):
    """
    Listens for datagrams on C{udp:PORT[:interface=ADDR]}, or on the socket
    open on C{inherited} (a worker's, which its parent bound).
    """

    def __init__(
        self, description: str, protocol: DatagramProtocol, events: EventLog,
        service: str, reactor: Any, max_packet: int = 65_535,
        inherited: int | None = None, announce: LogLevel = LogLevel.info,
    ) -> None:
        self.description = description
        self.inherited = inherited
        self.announce = announce
        self.systemd = description.startswith("systemd-udp:")
        if self.systemd:
            self.port_number, self.interface = 0, ""
        else:
            self.port_number, self.interface = parse_udp(description)
        self.protocol = protocol
        self.events = events
        self.service = service
        self.reactor = reactor
        self.max_packet = max_packet
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        # Bind here, like strports does, so a taken port stops the daemon
        # before it runs and privileged ports bind before twistd drops root.
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        if self.port is None:
            self._listen()

    def _listen(self) -> None:
        if self.inherited is not None:
            self.port = self._adopt(self.inherited)
        elif self.systemd:
            fd = parse_systemd_udp(self.description)
            assert fd is not None
            self.port = self._adopt(fd)
        else:
            self.port = self.reactor.listenUDP(
                self.port_number, self.protocol, interface=self.interface,
                maxPacketSize=self.max_packet,
            )
        address = describe_address(self.port.getHost())
        address = f"udp {address}"
        self.events.listening.setdefault(self.service, []).append(address)
        self.events.emit(LISTENING, self.service, None, self.announce, address=address)

    def _adopt(self, fd: int) -> IListeningPort:
        """Take over the datagram socket open on C{fd} (systemd's, or a parent's)."""
        family = socket_family(fd)
        # systemd may pass a blocking socket, and Twisted's UDP adoption keeps
        # it so: one read would then block the whole reactor.
        os.set_blocking(fd, False)
        port: IListeningPort = self.reactor.adoptDatagramPort(
            fd, family, self.protocol, maxPacketSize=self.max_packet
        )
        return port

    def stopService(self) -> Any:
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None


def listener(
    description: str, target: IProtocolFactory | DatagramProtocol, events: EventLog,
    service: str, reactor: Any, inherited: int | None = None,
    announce: LogLevel = LogLevel.info,
) -> Service:
    """
    The service that listens on C{description} for C{target}: on a socket
    of its own, or on the one open on C{inherited}.
    """
    if isinstance(target, DatagramProtocol):
        return DatagramListener(
            description, target, events, service, reactor,
            inherited=inherited, announce=announce,
        )
    return StreamListener(
        description, target, events, service, reactor, inherited=inherited, announce=announce
    )


def bound_port(service: Service) -> int | None:
    """The port number a started listener actually bound (for port 0)."""
    port = getattr(service, "port", None)
    if port is None:
        return None
    return getattr(port.getHost(), "port", None)


__all__ = [
    "DatagramListener",
    "InheritedSocketReactor",
    "ProxyHeaderFactory",
    "ProxyHeaderReader",
    "StreamListener",
    "bound_port",
    "listener",
    "parse_proxy_header",
    "socket_family",
]
