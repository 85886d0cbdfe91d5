"""
Endpoint strings to services.

Stream strings go through L{strports.service}, whose service raises at start
when its port cannot be bound, so the daemon stops with a clear error instead
of running half-started.  Twisted has no endpoint string for UDP, so
C{udp:PORT[:interface=ADDR]} gets a small service of its own here with the
same behaviour.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import DatagramProtocol

from netlab.core._twisted import raise_synchronously, waiting_for_port
from netlab.core.endpoints import parse_systemd_udp, parse_udp, split_endpoint
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


class StreamListener(StreamServerEndpointService):
    """A strports service that reports the address it actually bound."""

    def __init__(
        self, description: str, factory: IProtocolFactory, events: EventLog,
        service: str, reactor: Any,
    ) -> None:
        template = strports.service(with_backlog(description), factory, reactor=reactor)
        super().__init__(template.endpoint, factory)
        # A taken port stops the daemon at start, not just a logged error.
        raise_synchronously(self)
        self.description = description
        self.events = events
        self.service = service
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
        self.events.emit(LISTENING, self.service, address=address)
        return port

    def stopService(self) -> Any:
        self.port = None
        return super().stopService()


class DatagramListener(Service):
    """Listens for datagrams on C{udp:PORT[:interface=ADDR]}."""

    def __init__(
        self, description: str, protocol: DatagramProtocol, events: EventLog,
        service: str, reactor: Any, max_packet: int = 65_535,
    ) -> None:
        self.description = description
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
        if self.systemd:
            self.port = self._adopt()
        else:
            self.port = self.reactor.listenUDP(
                self.port_number, self.protocol, interface=self.interface,
                maxPacketSize=self.max_packet,
            )
        address = describe_address(self.port.getHost())
        address = f"udp {address}"
        self.events.listening.setdefault(self.service, []).append(address)
        self.events.emit(LISTENING, self.service, address=address)

    def _adopt(self) -> IListeningPort:
        """Take over the datagram socket systemd passed in under this name."""
        fd = parse_systemd_udp(self.description)
        assert fd is not None
        probe = socket.socket(fileno=os.dup(fd))
        family = probe.family
        probe.close()
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
    service: str, reactor: Any,
) -> Service:
    """The service that listens on C{description} for C{target}."""
    if isinstance(target, DatagramProtocol):
        return DatagramListener(description, target, events, service, reactor)
    return StreamListener(description, target, events, service, reactor)


def bound_port(service: Service) -> int | None:
    """The port number a started listener actually bound (for port 0)."""
    port = getattr(service, "port", None)
    if port is None:
        return None
    return getattr(port.getHost(), "port", None)


__all__ = ["DatagramListener", "StreamListener", "bound_port", "listener"]
