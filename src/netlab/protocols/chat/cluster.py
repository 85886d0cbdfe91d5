"""
The hub's side of the chat bus (L{netlab.protocols.chat.bus}): what this
node publishes, and what the others' messages do to its users.

* Users on other nodes are L{RemoteUser}s: their nicks are refused here,
  C{/who} lists them (operators marked), C{/msg} and an operator's
  C{/kick} reach them.
* Registered nicks and bans are shared tables on the bus, each node's
  store (or ban list) a copy: changes are published as they are made, and
  a node (re)joining the bus reads the whole table, takes what it missed
  and shares what only it knew (made before it ever joined).  Registering
  waits for the bus, so two nodes never hold different passwords for a nick.
* A node restarted under its name (a worker after a crash) says so by a
  new C{boot} in its presence: its old run's users quit here at once.
* Every C{heartbeat} seconds this node publishes its members (presence)
  and refreshes its nick claims; a node not heard from for C{bound}
  seconds is gone: its users quit here, and its claims expire on the bus.
* Order: one bus channel, so each sender's lines arrive in order; each
  node numbers what it sends.  A gap in a node's numbers (a Redis hiccup,
  either side) is told to the rooms here, and the node's lines in the gap
  that the room's kept lines on the bus still hold are shown (stamped with
  when they were said); the rest is said to be missed, never silently.
* The bus unreachable: the cluster is degraded.  Users here keep chatting
  among themselves and are told so once; nick claims are decided here
  alone until the bus is back.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import LogLevel

from netlab.protocols.chat.bus import Bus, Message
from netlab.protocols.chat.store import nick_key

if TYPE_CHECKING:
    from netlab.protocols.chat.hub import ChatHub, Room, Session
    from netlab.protocols.chat.settings import ClusterSettings

DEGRADED = (
    "* The chat cluster is degraded: users on other servers cannot hear you, "
    "nor you them, until it is back."
)
RESTORED = "* The chat cluster is back: users on every server hear each other again."
NOT_SHARED = (
    "Registered nicks are shared by every server of this chat, and this one is out "
    "of touch with the others: try again when the cluster is back."
)

# The shared tables, under the chat's prefix.
REGISTERED = "registered"
BANS = "bans"


def entry(value: str) -> dict[str, Any] | None:
    """A shared table's entry, or C{None} if it is not one."""
    try:
        decoded = json.loads(value)
    except (ValueError, TypeError):
        return None
    return decoded if isinstance(decoded, dict) else None


@dataclass
class RemoteUser:
    """A user on another node, and the room they are in there."""

    nick: str
    node: str
    room: str | None
    oper: bool = False


class Cluster:
    """One hub's membership of a cluster of hubs over a L{Bus}."""

    def __init__(self, hub: ChatHub, bus: Bus, settings: ClusterSettings) -> None:
        self.hub = hub
        self.bus = bus
        self.node = settings.node
        self.heartbeat = settings.heartbeat
        self.bound = settings.bound
        self.prefix = f"netlab:{hub.name}:"
        self.seq = 0
        self.users: dict[str, RemoteUser] = {}
        # Each other node: when it was last heard from, and its last number.
        self.seen: dict[str, float] = {}
        self.numbers: dict[str, int] = {}
        # Each other node's run, and this one's: a new one is a restart.
        self.boots: dict[str, str] = {}
        self.boot = os.urandom(6).hex()
        self.degraded = False
        # Why the bus was last unreachable, for the dashboard.
        self.why = ""
        # Whether the bus has been reached at all yet (logged once).
        self.joined = False
        self.beating = LoopingCall(self.beat)
        self.beating.clock = hub.clock

    # -- running ---------------------------------------------------------------

    def start(self) -> None:
        self.bus.start(self)
        self.beating.start(self.heartbeat, now=False)

    def stop(self) -> Deferred[None]:
        if self.beating.running:
            self.beating.stop()
        for key in list(self.hub.nicks):
            self.bus.release(self.nick_key(key), self.node)
        return self.bus.stop()

    def nick_key(self, nick: str) -> str:
        return f"{self.prefix}nick:{nick.lower()}"

    def room_key(self, room: str) -> str:
        return f"{self.prefix}room:{room.lower()}"

    def share(self, table: str, key: str, **value: Any) -> None:
        self.bus.put(self.prefix + table, key, json.dumps(value, separators=(",", ":")))

    def send(self, kind: str, *, keep: str | None = None, **fields: Any) -> None:
        """Publish one message (numbered even while the bus is down: the others see the gap)."""
        self.seq += 1
        message = {"node": self.node, "seq": self.seq, "kind": kind, **fields}
        if kind == "join":
            # A node that dies before its next presence is still known by its run.
            message["boot"] = self.boot
        if keep is None:
            self.bus.publish(message)
        else:
            self.bus.publish(message, self.room_key(keep), self.hub.settings.history_lines)

    def beat(self) -> None:
        """Presence, claims refreshed, and the silent nodes forgotten."""
        members = [
            [session.name, session.room.name if session.room else None, session.oper]
            for session in self.hub.nicks.values()
        ]
        self.bus.publish({"node": self.node, "seq": self.seq, "kind": "presence",
                          "members": members, "boot": self.boot})
        self.bus.refresh([self.nick_key(n) for n in self.hub.nicks], self.node, self.bound)
        now = self.hub.clock.seconds()
        for node, seen in list(self.seen.items()):
            if now - seen > self.bound:
                self.lost(node)

    def lost(self, node: str) -> None:
        """C{node} has not been heard from within the bound: its users quit."""
        del self.seen[node]
        self.boots.pop(node, None)
        self.hub.count("cluster_nodes_lost")
        self.hub.event("cluster_node_lost", None, LogLevel.warn, detail=node)
        self.forget(node, f"{node} is gone")

    def forget(self, node: str, reason: str) -> None:
        """C{node}'s users quit here (it is gone, or restarted), and its numbering."""
        self.numbers.pop(node, None)
        for key, user in list(self.users.items()):
            if user.node == node:
                del self.users[key]
                self.quit(user, reason)

    # -- nicks -------------------------------------------------------------------

    def holder(self, nick: str) -> RemoteUser | None:
        return self.users.get(nick.lower())

    def claim(self, nick: str) -> Deferred[bool]:
        """Take C{nick} across the cluster; decided here alone while degraded."""
        if not self.bus.up:
            return succeed(True)
        return self.bus.claim(self.nick_key(nick), self.node, self.bound)

    def release(self, nick: str) -> None:
        self.bus.release(self.nick_key(nick), self.node)

    def members(self, room: str) -> list[RemoteUser]:
        """Other nodes' users in C{room}."""
        return [u for u in self.users.values() if (u.room or "").lower() == room.lower()]

    # -- registered nicks and bans ---------------------------------------------------

    @property
    def shares_now(self) -> bool:
        """Whether a change to a shared table reaches the others now."""
        return self.bus.up

    def registered(self, nick: str, password_hash: str) -> None:
        """C{nick} was registered here (or its password changed)."""
        self.share(REGISTERED, nick_key(nick), nick=nick, hash=password_hash)
        self.send("register", nick=nick, hash=password_hash)

    def unregistered(self, nick: str) -> None:
        self.share(REGISTERED, nick_key(nick), nick=nick, hash=None)
        self.send("unregister", nick=nick)

    def banned(self, network: str, until: float, by: str) -> None:
        self.share(BANS, network, until=until, by=by)
        self.send("ban", network=network, until=until, by=by)

    def unbanned(self, network: str, by: str) -> None:
        self.share(BANS, network, until=0, by=by)
        self.send("unban", network=network, by=by)

    def sync(self) -> None:
        """Read the shared tables: take what was missed, share what only this node knew."""
        self.bus.table(self.prefix + REGISTERED).addCallback(self.synced_registrations)
        self.bus.table(self.prefix + BANS).addCallback(self.synced_bans)

    def synced_registrations(self, table: dict[str, str]) -> None:
        store = self.hub.store
        if store is None:
            return
        for value in table.values():
            found = entry(value)
            nick = found.get("nick") if found else None
            if found is None or not isinstance(nick, str):
                continue
            password_hash = found.get("hash")
            if password_hash is None:
                if store.registered(nick) is not None:
                    store.unregister(nick)
            elif isinstance(password_hash, str) and store.registered(nick) != password_hash:
                store.register(nick, password_hash)
        for key, (nick, password_hash) in store.registrations().items():
            if key not in table:
                self.registered(nick, password_hash)

    def synced_bans(self, table: dict[str, str]) -> None:
        now = self.hub.clock.seconds()
        for key, value in table.items():
            found = entry(value)
            network = parse_network(key)
            if found is None or network is None:
                continue
            until, by = found.get("until"), str(found.get("by", "?"))
            if not isinstance(until, (int, float)) or until <= now:
                self.hub.lift_ban(network)
            elif not any(ban.network == network for ban in self.hub.bans):
                self.hub.apply_ban(network, float(until), by)
        for ban in self.hub.bans:
            if str(ban.network) not in table and ban.until > now:
                self.banned(str(ban.network), ban.until, ban.by)

    # -- from this node's commands ------------------------------------------------

    def private(self, session: Session, nick: str, text: str, notice: bool = False) -> bool:
        """A private message to a user on another node; whether there is one."""
        user = self.holder(nick)
        if user is None:
            return False
        self.send("private", sender=session.name, target=user.nick, text=text, notice=notice)
        self.hub.private_echo(session, user.nick, text, notice)
        return True

    def kick(self, session: Session, nick: str, reason: str) -> bool:
        """An operator here kicks a user on another node; whether there is one."""
        user = self.holder(nick)
        if user is None:
            return False
        session.tell(f"Kicking {user.nick} on another server.")
        self.send("kick", target=user.nick, by=session.name, reason=reason)
        self.hub.count("kicks")
        self.hub.event("kick", session, detail=f"{user.nick} on {user.node}")
        return True

    def status(self) -> dict[str, Any]:
        """How this node is, for the dashboard: its name, state, the others, in words."""
        others = sorted(self.seen)
        if self.degraded:
            state = "degraded"
            text = (
                f"Cluster degraded: this node ({self.node}) is out of touch with Redis "
                f"({self.why}); its users chat among themselves until it is back."
            )
        elif not self.joined:
            state = "joining"
            text = f"Cluster: this node ({self.node}) is reaching Redis."
        else:
            state = "joined"
            text = f"Cluster: this node is {self.node}, in touch through Redis"
            if others:
                text += (f" with {len(others)} other{'s' if len(others) > 1 else ''}: "
                         f"{', '.join(others)}.")
            else:
                text += "; no other node yet."
        return {"node": self.node, "state": state, "nodes": others, "text": text}

    # -- the bus's side ------------------------------------------------------------

    def bus_up(self) -> None:
        if not self.joined:
            self.joined = True
            self.hub.event("cluster_joined", None, detail=f"as {self.node}")
        if self.degraded:
            self.degraded = False
            self.hub.event("cluster_restored", None, LogLevel.warn)
            self.hub.to_everyone(RESTORED)
        # Presence and claims at once: others may have forgotten this node.
        self.beat()
        self.sync()

    def bus_down(self, why: str) -> None:
        self.why = why
        if self.degraded:
            return
        self.degraded = True
        self.hub.count("cluster_degraded")
        self.hub.event("cluster_degraded", None, LogLevel.warn, detail=why)
        self.hub.to_everyone(DEGRADED)

    def received(self, message: Message) -> None:
        node = message["node"]
        if node == self.node:
            return
        self.seen[node] = self.hub.clock.seconds()
        kind, seq = message["kind"], message["seq"]
        boot = message.get("boot")
        if isinstance(boot, str) and self.boots.setdefault(node, boot) != boot:
            self.boots[node] = boot
            self.hub.event("cluster_node_restarted", None, LogLevel.warn, detail=node)
            self.forget(node, f"{node} restarted")
        last = self.numbers.get(node)
        # A presence carries the last number sent; anything else, the next.
        expected = seq if kind == "presence" else seq - 1
        if last is not None and expected > last:
            self.missed(node, last + 1, expected)
        if last is None or seq > last:
            self.numbers[node] = seq
        handler: Callable[[Message], None] | None = getattr(self, f"on_{kind}", None)
        if handler is None:
            self.hub.event("cluster_bad_message", None, LogLevel.warn, detail=f"{node}: {kind}")
            return
        handler(message)

    def missed(self, node: str, first: int, last: int) -> None:
        """Messages C{first}..C{last} of C{node} never came: tell, and show what was kept."""
        self.hub.count("cluster_gaps")
        self.hub.event("cluster_gap", None, LogLevel.warn, detail=f"{node}: {first}..{last}")
        for room in list(self.hub.rooms.values()):
            if room.members:
                self.bus.history(self.room_key(room.name)).addCallback(
                    self.recovered, room, node, first, last
                )

    def recovered(
        self, kept: list[Message], room: Room, node: str, first: int, last: int,
    ) -> None:
        lines = [m for m in kept if m.get("node") == node and first <= m["seq"] <= last]
        self.hub.to_room(
            room,
            f"* Some messages from server {node} were missed while the cluster was out of "
            f"touch; {len(lines)} of its lines in {room.name} recovered from the history:",
        )
        for line in lines:
            self.hub.said_in_room(
                room, line["nick"], line["text"], action=line.get("action", False),
                time=line.get("time"),
            )

    def local_room(self, message: Message) -> Room | None:
        return self.hub.rooms.get(str(message.get("room") or "").lower())

    def on_presence(self, message: Message) -> None:
        node = message["node"]
        members = {
            str(member[0]).lower(): RemoteUser(
                str(member[0]), node, member[1], bool(member[2]) if len(member) > 2 else False
            )
            for member in message["members"]
        }
        for key, user in list(self.users.items()):
            if user.node == node and key not in members:
                # Its quit never came here (a hiccup): the room hears it now.
                del self.users[key]
                self.quit(user, f"gone from {node}")
        self.users.update(members)

    def on_say(self, message: Message) -> None:
        room = self.local_room(message)
        if room is not None:
            self.hub.said_in_room(
                room, message["nick"], message["text"], action=message.get("action", False),
                notice=message.get("notice", False),
            )
            if not message.get("notice"):
                self.hub.record_line(
                    room, message["nick"], message["text"], message.get("action", False)
                )

    def on_join(self, message: Message) -> None:
        nick = message["nick"]
        user = self.users.get(nick.lower())
        if user is not None and user.node == message["node"]:
            user.room = message["room"]
        else:
            self.users[nick.lower()] = RemoteUser(nick, message["node"], message["room"])
        room = self.local_room(message)
        if room is not None:
            self.hub.joined_room(room, nick)

    def on_part(self, message: Message) -> None:
        user = self.holder(message["nick"])
        if user is not None:
            user.room = None
        room = self.local_room(message)
        if room is not None:
            self.hub.parted_room(room, message["nick"])

    def on_quit(self, message: Message) -> None:
        user = self.users.pop(message["nick"].lower(), None)
        if user is None:
            user = RemoteUser(message["nick"], message["node"], message.get("room"))
        user.room = message.get("room")
        self.quit(user, message["reason"], message.get("by"))

    def quit(self, user: RemoteUser, reason: str, by: str | None = None) -> None:
        room = self.hub.rooms.get((user.room or "").lower())
        if room is not None:
            self.hub.quit_room(room, user.nick, reason, (by, reason) if by else None)

    def on_nick(self, message: Message) -> None:
        old, new = message["old"], message["new"]
        user = self.users.pop(old.lower(), None)
        self.users[new.lower()] = RemoteUser(
            new, message["node"], user.room if user else None, user.oper if user else False
        )
        room = self.local_room(message)
        if room is not None:
            self.hub.renamed_in_room(room, old, new)

    def on_topic(self, message: Message) -> None:
        room = self.local_room(message)
        if room is not None:
            self.hub.topic_in_room(room, message["nick"], message["topic"])

    def on_private(self, message: Message) -> None:
        target = self.hub.find(message["target"])
        if target is not None:
            self.hub.private_to(message["sender"], target, message["text"], message["notice"])

    def on_kick(self, message: Message) -> None:
        target = self.hub.find(message["target"])
        if target is not None:
            self.hub.kicked(message["by"], target, message["reason"])

    def on_ban(self, message: Message) -> None:
        network = parse_network(message["network"])
        if network is None:
            self.hub.event("cluster_bad_message", None, LogLevel.warn, detail="ban")
            return
        self.hub.apply_ban(network, float(message["until"]), message["by"])

    def on_unban(self, message: Message) -> None:
        network = parse_network(message["network"])
        if network is not None:
            self.hub.lift_ban(network)

    def on_wall(self, message: Message) -> None:
        self.hub.to_everyone(f"*** Notice from {message['nick']}: {message['text']}")

    def on_oper(self, message: Message) -> None:
        user = self.holder(message["nick"])
        if user is not None:
            user.oper = True

    def on_register(self, message: Message) -> None:
        if self.hub.store is not None:
            self.hub.store.register(message["nick"], message["hash"])

    def on_unregister(self, message: Message) -> None:
        if self.hub.store is not None:
            self.hub.store.unregister(message["nick"])

    def on_mute(self, message: Message) -> None:
        # Muted where they are; the others in their room everywhere hear of it.
        nick, by, minutes = message["target"], message["by"], float(message["minutes"])
        target = self.hub.find(nick)
        room = self.local_room(message)
        if target is not None:
            self.hub.muted_by(by, target, minutes)
        elif room is not None:
            self.hub.to_room(room, f"* {nick} was muted by {by} for {minutes:g} minutes")


def parse_network(text: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


__all__ = ["DEGRADED", "NOT_SHARED", "RESTORED", "Cluster", "RemoteUser"]
