"""
The asyncio references: the same minimal echo on asyncio's default event
loop, or on uvloop (libuv) with C{--loop uvloop}.

Protocol callbacks rather than streams, because that is the fastest honest
asyncio echo and the closest to Twisted's model.

Usage: asyncio_echo.py [--loop asyncio|uvloop] --tcp PORT --udp PORT
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


class Echo(asyncio.Protocol):
    """TCP echo: every chunk straight back."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class UDPEcho(asyncio.DatagramProtocol):
    """UDP echo: every datagram straight back to its sender."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


async def serve(tcp: int, udp: int) -> None:
    """Listen on loopback only and run until the process is killed."""
    loop = asyncio.get_running_loop()
    if tcp:
        await loop.create_server(Echo, "127.0.0.1", tcp, backlog=1024)
    if udp:
        await loop.create_datagram_endpoint(UDPEcho, local_addr=("127.0.0.1", udp))
    await asyncio.Event().wait()


def main() -> None:
    """Pick the event loop, then serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--tcp", type=int, default=0)
    parser.add_argument("--udp", type=int, default=0)
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.tcp, args.udp))
    else:
        asyncio.run(serve(args.tcp, args.udp))


if __name__ == "__main__":
    main()
