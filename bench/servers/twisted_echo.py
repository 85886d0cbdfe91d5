"""
The bare-Twisted reference: the echo every Twisted tutorial writes.

netlab's ratios are taken against this server, so it is kept as small as an
honest Twisted echo can be: C{dataReceived} straight into
C{transport.write}, C{datagramReceived} straight into C{transport.write},
on the default reactor (epoll on Linux, as under twistd).

Usage: twisted_echo.py --tcp PORT --udp PORT   (0 leaves a protocol out)
"""

from __future__ import annotations

import argparse

from twisted.internet import protocol, reactor


class Echo(protocol.Protocol):
    """TCP echo: every chunk straight back."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]


class UDPEcho(protocol.DatagramProtocol):
    """UDP echo: every datagram straight back to its sender."""

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.transport.write(datagram, addr)  # type: ignore[union-attr]


def main() -> None:
    """Listen on loopback only, then run until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tcp", type=int, default=0)
    parser.add_argument("--udp", type=int, default=0)
    args = parser.parse_args()
    if args.tcp:
        factory = protocol.ServerFactory.forProtocol(Echo)
        reactor.listenTCP(args.tcp, factory, backlog=1024, interface="127.0.0.1")  # type: ignore[arg-type]
    if args.udp:
        reactor.listenUDP(args.udp, UDPEcho(), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()


if __name__ == "__main__":
    main()
