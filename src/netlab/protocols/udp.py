"""
UDP echo: each datagram back to its sender, byte for byte.

A UDP server that answers anyone can be aimed at a victim by spoofing the
source address, so every datagram passes the L{DatagramGuard} first: no
answer to privileged source ports, broadcast or multicast sources, nor past
a per-source rate.  An echo is never larger than its request, unless the
source is one the service trusts with more (C{amplify_to}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import LogLevel

from netlab.core.events import ERROR, RECEIVED, SENT, EventLog, format_peer, sample
from netlab.core.fastwrite import send_datagram
from netlab.core.kinds import BuildContext, BuiltService, ServiceKind
from netlab.core.limits import AccessList, DatagramGuard
from netlab.core.settings import LOOPBACK, DatagramSettings, PayloadLogging, payload_level, setting

# Who may get a reply larger than its request, by default: this machine.
AMPLIFY_TO = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, kw_only=True)
class UdpEchoSettings(DatagramSettings, PayloadLogging):
    """
    One C{[[udp_echo]]} listener: byte-exact by default, or a C{prefix}
    before the data, or a fixed C{reply} instead of it (the course's
    C{Thank you for the data}).  A reply longer than its request goes only
    to sources in C{amplify_to}.
    """

    prefix: str = setting("")
    reply: str = setting("")
    amplify_to: tuple[str, ...] = setting(AMPLIFY_TO, cidrs=True)


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
        level = payload_level(
            getattr(self.guard.settings, "log_payload", False), events.debug_enabled
        )
        if level is not None:
            events.emit(
                RECEIVED, self.name, format_peer(host, port), level,
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
        if level is not None:
            events.emit(
                SENT, self.name, format_peer(host, port), level,
                nbytes=len(reply), sample=sample(reply),
            )

    def connectionRefused(self) -> None:
        """An earlier reply's target had no listener: nothing to do."""


class UdpEcho(GuardedDatagramProtocol):
    """
    Echoes each admitted datagram to its sender: unchanged, or shaped by
    the service's C{prefix} and C{reply}.  The settings are the guard's, so
    a reload's new shape applies to the next datagram.
    """

    _source: tuple[str, int] = ("", 0)
    _shaped_for: object = None
    _prefix = b""
    _reply: bytes | None = None
    _amplify = AccessList((), ())

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        # answer() is given only the data; the amplification check needs
        # the source too.
        self._source = (addr[0], addr[1])
        super().datagramReceived(data, addr)

    def answer(self, data: bytes) -> bytes | None:
        settings = self.guard.settings
        if not isinstance(settings, UdpEchoSettings) or not (settings.prefix or settings.reply):
            return data
        if settings is not self._shaped_for:
            self._prefix = settings.prefix.encode("utf-8")
            self._reply = settings.reply.encode("utf-8") if settings.reply else None
            self._amplify = AccessList(settings.amplify_to, ())
            self._shaped_for = settings
        reply = self._prefix + (data if self._reply is None else self._reply)
        if len(reply) > len(data):
            host, port = self._source
            if self._amplify.refusal(host) is not None:
                # A spoofed source would turn a small request into a bigger
                # answer aimed at someone else: reflection with a gain.
                self.counters.dropped += 1
                self.guard.reporter.report(
                    "reply larger than the request, to a source not in amplify_to",
                    host, port, len(data),
                )
                return None
        return reply


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
