"""
The chat over UDP (the course's hint for a chat exercise): a datagram
front-end to the same L{ChatHub} rooms as the telnet users.

A UDP source address can be forged, and a chat sends every room line to
every member, so nobody becomes a member until their address is proven:

    client -> server   JOIN nick
    server -> client   COOKIE 3f9c0a6e5b21d4c7
    client -> server   COOKIE 3f9c0a6e5b21d4c7      (from the same address)

Before that the server sends an address nothing but that one cookie, no
bigger than a few dozen bytes and under the per-source rate limit.  Then
each datagram is one line (a message or a /command) and each line for the
member comes back as one datagram.  Membership ends with /quit, C{LEAVE},
or C{member_timeout} seconds without a datagram; members and pending
cookies are capped.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import LogLevel

from netlab.core.accounting import ConnectionRecord, ServiceBooks
from netlab.core.events import EventLog, format_peer
from netlab.core.limits import DatagramGuard
from netlab.protocols.chat.hub import ChatHub, Session
from netlab.protocols.chat.settings import UdpChatSettings
from netlab.protocols.chat.text import decode
from netlab.protocols.udp import GuardedDatagramProtocol

Address = tuple[str, int]


class UdpMember(ConnectionRecord):
    """A proven UDP address in the chat: the hub's L{Client} for it."""

    def __init__(self, chat: UdpChat, address: Address) -> None:
        self.chat = chat
        self.address = address
        self.peer_host = address[0]
        self.peer = format_peer(*address)
        self.last_seen = chat.clock.seconds()
        self.session: Session | None = None
        self.ended: str | None = None

    def send_line(self, text: str) -> None:
        if self.ended is None:
            data = text.encode("utf-8")
            self.bytes_out += len(data)
            self.chat.send(data, self.address)

    def end(self, reason: str) -> None:
        """The hub ends the membership: forget the address, report the loss."""
        if self.ended is None:
            self.ended = reason
            self.chat.forget(self, reason)


class UdpChat(GuardedDatagramProtocol):
    """Datagrams to and from the chat hub, for proven addresses only."""

    def __init__(
        self,
        settings: UdpChatSettings,
        guard: DatagramGuard,
        events: EventLog,
        hub: ChatHub,
        clock: IReactorTime,
    ) -> None:
        super().__init__(settings.name, guard, events)
        self.settings = settings
        self.hub = hub
        self.clock = clock
        # Members are accounted like connections; no caps but max_members.
        self.books: ServiceBooks[UdpMember] = ServiceBooks(settings.name, events, clock)
        self.members: dict[Address, UdpMember] = {}
        self.pending: dict[Address, tuple[str, str, float]] = {}
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = clock

    def startProtocol(self) -> None:
        interval = min(self.settings.cookie_timeout, self.settings.member_timeout) / 2
        self._sweeper.start(interval, now=False)

    def stopProtocol(self) -> None:
        if self._sweeper.running:
            self._sweeper.stop()
        for member in list(self.members.values()):
            member.send_line("* server shutting down")
            member.end("server shutdown")

    def send(self, data: bytes, address: Address) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, address)
        except OSError as e:
            self.counters.errors += 1
            self.events.emit("error", self.name, format_peer(*address), LogLevel.warn,
                             error=str(e))
            return
        self.counters.datagrams_out += 1
        self.counters.bytes_out += len(data)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        address: Address = (addr[0], addr[1])
        if not self.guard.admit(data, *address):
            return
        text = decode(data).rstrip("\r\n")
        member = self.members.get(address)
        if member is not None:
            member.last_seen = self.clock.seconds()
            member.bytes_in += len(data)
            if member.session is None:
                return
            if text.strip().upper() == "LEAVE":
                member.send_line("Bye.")
                self.hub.close(member.session, "quit")
                return
            for line in text.splitlines() or [""]:
                member.session.line(line)
            return
        word, _, rest = text.strip().partition(" ")
        if word.upper() == "JOIN":
            self.join(address, rest.strip())
        elif word.upper() == "COOKIE":
            self.prove(address, rest.strip())
        # Anything else from an unproven address gets no answer at all.

    def join(self, address: Address, nick: str) -> None:
        """Step one: answer a cookie, and nothing else, to an unproven address."""
        if not nick:
            return
        if address not in self.pending and len(self.pending) >= self.settings.max_pending:
            self.hub.count("udp_pending_full")
            return
        cookie = os.urandom(8).hex()
        expires = self.clock.seconds() + self.settings.cookie_timeout
        self.pending[address] = (nick, cookie, expires)
        self.send(f"COOKIE {cookie}".encode(), address)

    def prove(self, address: Address, cookie: str) -> None:
        """Step two: the same address sent its cookie back; it becomes a member."""
        entry = self.pending.get(address)
        if entry is None or entry[1] != cookie or entry[2] < self.clock.seconds():
            return
        del self.pending[address]
        if len(self.members) >= self.settings.max_members:
            self.send(b"ERROR the UDP chat is full; try again later", address)
            self.hub.count("udp_refused_full")
            self.counters.refused += 1
            return
        member = self.members[address] = UdpMember(self, address)
        self.books.opened(member)
        member.session = self.hub.connect(member)
        if member.ended is not None:
            # The hub refused it at once (a banned address).
            member.session.lost(member.ended)
        else:
            member.session.line(entry[0])

    def forget(self, member: UdpMember, reason: str) -> None:
        """Drop a member (the hub ended it, it left, or it went quiet)."""
        if self.members.get(member.address) is member:
            del self.members[member.address]
            self.books.closed(member, reason)
        if member.session is not None:
            member.session.lost(reason)

    def sweep(self) -> None:
        """Expire old cookies and members that have gone quiet."""
        now = self.clock.seconds()
        for address, (_, _, expires) in list(self.pending.items()):
            if expires < now:
                del self.pending[address]
        for member in list(self.members.values()):
            if now - member.last_seen > self.settings.member_timeout:
                member.send_line("* Disconnected: idle timeout.")
                member.end("idle timeout")
