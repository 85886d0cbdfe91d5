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
or C{member_timeout} seconds without a datagram; members (in all, and
from one host) and pending cookies are capped.  Forged JOINs cost their
own kind: when the cookies pending are C{max_pending}, or those of one
/24 (IPv4) or /64 (IPv6) are C{max_pending_per_network}, the oldest is
forgotten, so a real JOIN after a flood is still answered at once.

Sources in C{open_to} (trusted networks: loopback by default) need no
cookie: their first datagram makes them members, as a student's plain
client that only C{sendto}s lines expects.  C{JOIN nick} picks the nick;
any other first datagram gets a nick made from the source port
(C{udp40123}) and is said in the room.
"""

from __future__ import annotations

import ipaddress
import os
from collections import Counter
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import LogLevel

from netlab.core.accounting import ConnectionRecord, ServiceBooks
from netlab.core.events import EventLog, format_peer
from netlab.core.limits import DatagramGuard, peer_address
from netlab.protocols.chat.hub import ChatHub, Session
from netlab.protocols.chat.settings import UdpChatSettings
from netlab.protocols.chat.text import decode
from netlab.protocols.udp import GuardedDatagramProtocol

Address = tuple[str, int]


def pending_network(host: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) whose pending cookies C{host}'s count against."""
    address = peer_address(host)
    if address is None:
        return host
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network((address, prefix), strict=False))


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
        # Members by host, kept with members: one host's cap is checked per join.
        self.per_host: Counter[str] = Counter()
        # Oldest first: a full table forgets its first entry.
        self.pending: dict[Address, tuple[str, str, float]] = {}
        self.pending_by_network: dict[str, dict[Address, None]] = {}
        self.open_to = [ipaddress.ip_network(n, strict=False) for n in settings.open_to]
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
        if word.upper() == "COOKIE":
            self.prove(address, rest.strip())
        elif self.trusted(address[0]):
            if word.upper() == "JOIN" and rest.strip():
                self.admit(address, rest.strip())
            else:
                self.admit(address, None, said=text)
        elif word.upper() == "JOIN":
            self.join(address, rest.strip())
        # Anything else from an unproven address gets no answer at all.

    def trusted(self, host: str) -> bool:
        """Whether C{host} is in C{open_to}: its address needs no proof."""
        address = peer_address(host)
        return address is not None and any(
            address.version == net.version and address in net for net in self.open_to
        )

    def join(self, address: Address, nick: str) -> None:
        """Step one: answer a cookie, and nothing else, to an unproven address."""
        if not nick:
            return
        # A JOIN again gets a new cookie and counts as the newest.
        self.forget_pending(address)
        network = pending_network(address[0])
        neighbours = self.pending_by_network.get(network)
        if neighbours is not None and len(neighbours) >= self.settings.max_pending_per_network:
            self.hub.count("udp_pending_network_full")
            self.forget_pending(next(iter(neighbours)))
        elif len(self.pending) >= self.settings.max_pending:
            self.hub.count("udp_pending_evicted")
            self.forget_pending(next(iter(self.pending)))
        cookie = os.urandom(8).hex()
        expires = self.clock.seconds() + self.settings.cookie_timeout
        self.pending[address] = (nick, cookie, expires)
        self.pending_by_network.setdefault(network, {})[address] = None
        self.send(f"COOKIE {cookie}".encode(), address)

    def forget_pending(self, address: Address) -> tuple[str, str, float] | None:
        """Drop C{address}'s pending cookie, if any, and give its network's slot back."""
        entry = self.pending.pop(address, None)
        if entry is not None:
            network = pending_network(address[0])
            neighbours = self.pending_by_network[network]
            del neighbours[address]
            if not neighbours:
                del self.pending_by_network[network]
        return entry

    def prove(self, address: Address, cookie: str) -> None:
        """Step two: the same address sent its cookie back; it becomes a member."""
        entry = self.pending.get(address)
        if entry is None or entry[1] != cookie or entry[2] < self.clock.seconds():
            return
        self.forget_pending(address)
        self.admit(address, entry[0])

    def admit(self, address: Address, nick: str | None, said: str = "") -> None:
        """
        A proven (or trusted) address becomes a member, under the caps, with
        C{nick}, or one made from its port; C{said} is its first line.
        """
        refusal = self.refusal(address[0])
        if refusal is not None:
            what, text = refusal
            self.send(f"ERROR {text}".encode(), address)
            self.hub.count(what)
            self.books.refused(format_peer(*address), text)
            return
        member = self.members[address] = UdpMember(self, address)
        self.per_host[address[0]] += 1
        self.books.opened(member)
        # It always has a nick to give: the JOIN's, or one made from its port.
        session = member.session = self.hub.connect(member, asks_nick=False)
        if member.ended is not None:
            # The hub refused it at once (a banned address).
            session.lost(member.ended)
            return
        session.line(nick if nick is not None else self.free_nick(address[1], session))
        for line in said.splitlines() if member.ended is None else ():
            session.line(line)

    def refusal(self, host: str) -> tuple[str, str] | None:
        """Why one more member from C{host} is refused (counter, text), or None."""
        if len(self.members) >= self.settings.max_members:
            return "udp_refused_full", "the UDP chat is full; try again later"
        limit = self.settings.max_members_per_host
        if self.per_host[host] >= limit:
            return (
                "udp_refused_host",
                f"too many UDP chat members from your address (limit {limit})",
            )
        return None

    def free_nick(self, port: int, session: Session) -> str:
        """A nick nobody holds or has registered, made from the source port."""
        store = self.hub.store
        for n in range(1, 100):
            nick = f"udp{port}" if n == 1 else f"udp{port}-{n}"
            registered = store is not None and store.registered(nick) is not None
            if self.hub.nick_problem(nick, session) is None and not registered:
                return nick
        return f"udp{os.urandom(4).hex()}"

    def forget(self, member: UdpMember, reason: str) -> None:
        """Drop a member (the hub ended it, it left, or it went quiet)."""
        closing = self.members.get(member.address) is member
        if closing:
            del self.members[member.address]
            self.per_host[member.address[0]] -= 1
            if not self.per_host[member.address[0]]:
                del self.per_host[member.address[0]]
        # The room hears of it first: the log's part and quit, then the disconnect.
        if member.session is not None:
            member.session.lost(reason)
        if closing:
            self.books.closed(member, reason)

    def sweep(self) -> None:
        """Expire old cookies and members that have gone quiet."""
        now = self.clock.seconds()
        for address, (_, _, expires) in list(self.pending.items()):
            if expires < now:
                self.forget_pending(address)
        for member in list(self.members.values()):
            if now - member.last_seen > self.settings.member_timeout:
                member.send_line("* Disconnected: idle timeout.")
                member.end("idle timeout")
