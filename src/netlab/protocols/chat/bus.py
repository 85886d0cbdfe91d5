"""
The chat bus: how hubs in several processes, or on several hosts, share
their rooms (L{netlab.protocols.chat.cluster} is the hub's side of it).

A bus carries L{Message}s, each a flat JSON-able mapping with the sending
C{node}, its per-node sequence number C{seq} and its C{kind}:

    say       room nick text action notice   a line, kept in the room's history
    join      room nick                      part  room nick
    quit      room nick reason [by]          (C{by}: kicked by that operator)
    nick      room old new                   topic room nick topic
    private   sender target text notice      to the node that holds C{target}
    kick      target by reason               to the node that holds C{target}
    ban       network until by               unban network by
    mute      target minutes by room         wall  nick text
    oper      nick                           (became an operator)
    register  nick hash                      unregister nick
    presence  members [[nick, room, oper], ...] boot
                                             the heartbeat (C{seq}: the last sent;
                                             C{boot}: this run of the node)

and keeps state beside them: nick claims (atomic, expiring unless
refreshed, keyed by the case-folded nick), each room's last lines, and
shared tables (the registered nicks, the bans), whose entries are never
deleted, only marked gone, so a node back from a hiccup learns what was
undone meanwhile.

L{MemoryBus} on a L{MemoryBroker} is the in-memory bus: several hubs on one
broker are several nodes, on a clock the tests drive.  The Redis bus
(L{netlab.protocols.chat.redisbus}) follows the same interface.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

Message = Mapping[str, Any]


def encode(message: Message) -> str:
    """A message as it travels."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def decode(data: str | bytes) -> dict[str, Any] | None:
    """A message from the wire, or C{None} if it is not one (logged by the caller)."""
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if (
        not isinstance(message, dict) or not isinstance(message.get("node"), str)
        or not isinstance(message.get("seq"), int) or not isinstance(message.get("kind"), str)
    ):
        return None
    return message


class BusListener(Protocol):
    """What a bus tells: messages, and whether it can reach the others."""

    def received(self, message: Message) -> None:
        """A message from any node (this one's own too)."""

    def bus_up(self) -> None:
        """The bus is reachable (again): messages flow."""

    def bus_down(self, why: str) -> None:
        """The bus is unreachable: nothing published reaches the others."""


class Bus(Protocol):
    """What a hub needs from a chat bus."""

    @property
    def up(self) -> bool:
        """Whether publishing reaches the others now."""

    def start(self, listener: BusListener) -> None:
        """Connect (retrying with backoff) and deliver to C{listener}."""

    def stop(self) -> Deferred[None]:
        """Disconnect for good."""

    def publish(self, message: Message, room: str | None = None, keep: int = 0) -> None:
        """Send C{message} to every node; kept in C{room}'s last C{keep} lines too."""

    def claim(self, key: str, node: str, ttl: float) -> Deferred[bool]:
        """Atomically take the nick C{key} for C{node} for C{ttl} seconds: whether it did."""

    def refresh(self, keys: Iterable[str], node: str, ttl: float) -> None:
        """Keep C{node}'s nicks C{keys} another C{ttl} seconds (taking any that expired)."""

    def release(self, key: str, node: str) -> None:
        """Give up the nick C{key}, if C{node} holds it."""

    def history(self, room: str) -> Deferred[list[Message]]:
        """C{room}'s kept lines, oldest first."""

    def put(self, table: str, key: str, value: str) -> None:
        """Set C{key} to C{value} in the shared table C{table}."""

    def table(self, table: str) -> Deferred[dict[str, str]]:
        """The whole shared table C{table} (empty while the bus is down)."""


@dataclass
class MemoryBroker:
    """What a Redis server holds, in memory: buses on one broker are nodes of one cluster."""

    clock: IReactorTime
    buses: list[MemoryBus] = field(default_factory=list)
    nicks: dict[str, tuple[str, float]] = field(default_factory=dict)
    rooms: dict[str, list[Message]] = field(default_factory=dict)
    tables: dict[str, dict[str, str]] = field(default_factory=dict)

    def holder(self, key: str) -> str | None:
        """The node holding the nick C{key} now, if any (expired claims are gone)."""
        held = self.nicks.get(key)
        if held is None or held[1] <= self.clock.seconds():
            self.nicks.pop(key, None)
            return None
        return held[0]


class MemoryBus:
    """One node's connection to a L{MemoryBroker}; C{cut()} and C{mend()} are a Redis hiccup."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.listener: BusListener | None = None
        self.connected = True

    @property
    def up(self) -> bool:
        return self.listener is not None and self.connected

    def start(self, listener: BusListener) -> None:
        self.listener = listener
        self.broker.buses.append(self)
        listener.bus_up()

    def stop(self) -> Deferred[None]:
        if self in self.broker.buses:
            self.broker.buses.remove(self)
        self.listener = None
        return succeed(None)

    def cut(self, why: str = "connection lost") -> None:
        """This node loses the broker: what is published meanwhile is lost to it."""
        self.connected = False
        if self.listener is not None:
            self.listener.bus_down(why)

    def mend(self) -> None:
        self.connected = True
        if self.listener is not None:
            self.listener.bus_up()

    def publish(self, message: Message, room: str | None = None, keep: int = 0) -> None:
        if not self.up:
            return
        if room is not None and keep:
            kept = self.broker.rooms.setdefault(room, [])
            kept.append(json.loads(encode(message)))
            del kept[:-keep]
        for bus in list(self.broker.buses):
            if bus.up and bus.listener is not None:
                # What Redis would deliver: a copy, through the wire format.
                bus.listener.received(json.loads(encode(message)))

    def claim(self, key: str, node: str, ttl: float) -> Deferred[bool]:
        holder = self.broker.holder(key)
        if holder is not None and holder != node:
            return succeed(False)
        self.broker.nicks[key] = (node, self.broker.clock.seconds() + ttl)
        return succeed(True)

    def refresh(self, keys: Iterable[str], node: str, ttl: float) -> None:
        if self.up:
            for key in keys:
                self.claim(key, node, ttl)

    def release(self, key: str, node: str) -> None:
        if self.up and self.broker.holder(key) == node:
            del self.broker.nicks[key]

    def history(self, room: str) -> Deferred[list[Message]]:
        return succeed(list(self.broker.rooms.get(room, [])))

    def put(self, table: str, key: str, value: str) -> None:
        if self.up:
            self.broker.tables.setdefault(table, {})[key] = value

    def table(self, table: str) -> Deferred[dict[str, str]]:
        return succeed(dict(self.broker.tables.get(table, {})) if self.up else {})


__all__ = ["Bus", "BusListener", "MemoryBroker", "MemoryBus", "Message", "decode", "encode"]
