"""
UDP echo: each datagram back to its sender, byte for byte.

A UDP server that answers anyone can be aimed at a victim by spoofing the
source address, so every datagram passes the L{DatagramGuard} first: no
answer to privileged source ports, broadcast or multicast sources, nor past
a per-source rate.  An echo is never larger than its request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import LogLevel

from netlab.core.events import ERROR, RECEIVED, SENT, EventLog, format_peer, sample
from netlab.core.fastwrite import send_datagram
from netlab.core.kinds import BuildContext, BuiltService, ServiceKind
from netlab.core.limits import DatagramGuard
from netlab.core.settings import LOOPBACK, DatagramSettings


@dataclass(frozen=True, kw_only=True)
class UdpEchoSettings(DatagramSettings):
    """One C{[[udp_echo]]} listener."""


class GuardedDatagramProtocol(DatagramProtocol):
    """
    Base of netlab's UDP services: guards, counts and narrates datagrams;
    subclasses say what to answer in L{answer}.  One instance listens on one
    port; the instances of one service share its guard, so its rate limit
    holds across all of its addresses.
    """

    noisy = False

    def __init__(self, name: str, guard: DatagramGuard, events: EventLog) -> None:
        self.name = name
        self.guard = guard
        self.events = events
        self.counters = guard.counters

    def answer(self, data: bytes) -> bytes | None:
        """The reply to C{data}, or C{None} for no reply."""
        raise NotImplementedError

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        host, port = addr[0], addr[1]
        if not self.guard.admit(data, host, port):
            return
        events = self.events
        if events.debug_enabled:
            events.emit(
                RECEIVED, self.name, format_peer(host, port), LogLevel.debug,
                nbytes=len(data), sample=sample(data),
            )
        reply = self.answer(data)
        if reply is None:
            return
        try:
            send_datagram(self.transport, reply, addr)
        except OSError as e:
            # An ICMP error from an earlier send can surface here; the
            # service must keep answering everyone else.
            self.counters.errors += 1
            events.emit(ERROR, self.name, format_peer(host, port), LogLevel.warn, error=str(e))
            return
        counters = self.counters
        counters.datagrams_out += 1
        counters.bytes_out += len(reply)
        if events.debug_enabled:
            events.emit(
                SENT, self.name, format_peer(host, port), LogLevel.debug,
                nbytes=len(reply), sample=sample(reply),
            )

    def connectionRefused(self) -> None:
        """An earlier reply's target had no listener: nothing to do."""


class UdpEcho(GuardedDatagramProtocol):
    """Echoes each admitted datagram to its sender unchanged."""

    def answer(self, data: bytes) -> bytes:
        return data


def build_udp_echo(settings: UdpEchoSettings, context: BuildContext) -> BuiltService:
    """One UDP echo protocol per address, sharing the service's guard."""
    events = context.events
    return BuiltService(datagram=lambda guard: UdpEcho(settings.name, guard, events))


KIND = ServiceKind(
    section="udp_echo",
    settings=UdpEchoSettings,
    many=True,
    present_by_default=True,
    default_listen=(f"udp:7007:interface={LOOPBACK}",),
    build=build_udp_echo,
)
