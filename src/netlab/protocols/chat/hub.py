"""
The chat itself, with no transport code: rooms, members, nicks, history,
operators, bans, mutes and flood control.

A front-end (the telnet/netcat protocol here, a WebSocket later) hands the
hub a L{Client} per connection and gets back a L{Session}; it then passes
each line the user typed to L{Session.line} and tells the hub when the
connection is gone.  Everything the user should see comes back through
L{Client.send_line}, already sanitised, one line at a time.

A front-end that needs to know what happened rather than how it reads (IRC
sends C{PRIVMSG}, C{JOIN}, C{NICK}...) also implements C{on_event}
(L{EventClient}): wherever the hub has an L{Event} for what it says, such a
client gets the event instead of the text lines, and text lines for the
rest (errors, warnings, command answers).  Front-ends without it get the
same text lines as ever.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import LogLevel

from netlab.core.events import CHAT, EventLog
from netlab.core.limits import FailureLimit, peer_address
from netlab.core.passwords import HashingQueue
from netlab.protocols.chat.bus import Bus
from netlab.protocols.chat.cluster import Cluster
from netlab.protocols.chat.commands import COMMANDS, OPER, PRIVATE
from netlab.protocols.chat.settings import NICK_NAME, ChatSettings, ClusterSettings
from netlab.protocols.chat.store import ChatStore, HistoryLine
from netlab.protocols.chat.text import PrivateText, clean

IP = ipaddress.IPv4Network | ipaddress.IPv6Network

# The longest topic a room keeps.
TOPIC_LENGTH = 200

# What a session is waiting for from its user.
NICK, PASSWORD, CHECKING, CHATTING, CLOSING, CLOSED = (
    "nick", "password", "checking", "chatting", "closing", "closed",
)


class Client(Protocol):
    """What the hub needs from a front-end connection."""

    peer_host: str
    peer: str

    def send_line(self, text: str) -> None:
        """Show the user one line of text."""

    def end(self, reason: str) -> None:
        """Close the connection (after what was sent so far), for C{reason}."""


class EventClient(Client, Protocol):
    """A front-end that takes L{Event}s where the hub has them (see the module)."""

    def on_event(self, event: Event) -> None:
        """Show the user what happened."""


# -- events: what happened, for front-ends that speak in structures ----------------


@dataclass(frozen=True, slots=True)
class Greeted:
    """A new connection was greeted: it is asked for a nick (the MOTD is C{settings.motd})."""


@dataclass(frozen=True, slots=True)
class NickRefused:
    """
    The nick asked for at login was refused; the user must choose another.
    C{why}: C{invalid}, C{reserved}, C{taken}, or C{locked} (too many wrong
    passwords for it); C{problem} says so in words (empty for C{locked},
    already told).
    """

    nick: str
    why: str
    problem: str


@dataclass(frozen=True, slots=True)
class PasswordNeeded:
    """The nick asked for at login is registered: its password, please (again if C{wrong})."""

    nick: str
    wrong: bool = False


@dataclass(frozen=True, slots=True)
class Entered:
    """The user is in the chat as C{nick} (their first room follows)."""

    nick: str


@dataclass(frozen=True, slots=True)
class Joined:
    """C{nick} joined C{room} (the user themselves too)."""

    room: str
    nick: str


@dataclass(frozen=True, slots=True)
class Parted:
    """C{nick} left C{room} for another, or for none (the user themselves too)."""

    room: str
    nick: str


@dataclass(frozen=True, slots=True)
class Quit:
    """C{nick}, who was in C{room}, left the chat for C{reason}."""

    room: str
    nick: str
    reason: str


@dataclass(frozen=True, slots=True)
class Kicked:
    """
    An operator, C{by}, kicked C{nick} out of the chat, from C{room}
    (C{""} if they were in none); told to the room and to C{nick}.
    """

    room: str
    nick: str
    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class Said:
    """
    C{nick} said C{text} in C{room}: an C{action} (C{/me}), a C{notice}, or
    a line of the room's history replayed on joining (C{time} is when it was
    said; C{None} for now).
    """

    room: str
    nick: str
    text: str
    action: bool = False
    notice: bool = False
    time: float | None = None


@dataclass(frozen=True, slots=True)
class Private:
    """
    A private message from C{sender} to C{target}; C{echo} is the sender's
    own copy of one they sent.
    """

    sender: str
    target: str
    text: str
    notice: bool = False
    echo: bool = False


@dataclass(frozen=True, slots=True)
class NickChanged:
    """C{old} is now known as C{new} (the user themselves too)."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TopicChanged:
    """C{nick} set the topic of C{room} (the setter too)."""

    room: str
    nick: str
    topic: str


Event = (
    Greeted | NickRefused | PasswordNeeded | Entered | Joined | Parted | Quit | Kicked | Said
    | Private | NickChanged | TopicChanged
)


@dataclass
class Room:
    """A room: its members, in join order, and its topic."""

    name: str
    members: dict[Session, None] = field(default_factory=dict)
    topic: str = ""
    # Who set the topic, and when (IRC's 333).
    topic_by: str = ""
    topic_at: float = 0.0


@dataclass
class Ban:
    """A banned network, until a time."""

    network: IP
    until: float
    by: str


class Session:
    """One user's connection to the hub, and everything the hub knows of it."""

    def __init__(self, hub: ChatHub, client: Client) -> None:
        self.hub = hub
        self.client = client
        # The client's event handler, if it takes events (EventClient).
        self.on_event: Callable[[Event], None] | None = getattr(client, "on_event", None)
        self.state = NICK
        self.nick: str | None = None
        # A registered nick asked for, until its password is checked: held
        # by nobody, so a stranger at its prompt cannot lock its owner out.
        self.pending_nick: str | None = None
        # Until the user is in (nick and password), then None.
        self.login_deadline: IDelayedCall | None = None
        self.room: Room | None = None
        self.oper = False
        self.identified = False
        self.wrong_passwords = 0
        # Whether a password of this session's is being checked: one at a time.
        self.checking = False
        self.muted_until = 0.0
        self.tokens = float(hub.settings.flood_lines)
        self.tokens_at = hub.clock.seconds()
        self.flood_warned = False
        # (operator, reason) once kicked: the room hears a kick, not a quit.
        self.kicked_by: tuple[str, str] | None = None

    def __repr__(self) -> str:
        return f"<Session {self.nick or '?'} from {self.client.peer}>"

    @property
    def name(self) -> str:
        """How the user shows up in messages."""
        return self.nick or "?"

    def tell(self, text: str) -> None:
        """Send this user one line."""
        if self.state != CLOSED:
            self.client.send_line(text)

    def notify(self, event: Event, *lines: str) -> None:
        """C{event} to a client that takes events, else C{lines} (maybe none)."""
        if self.state == CLOSED:
            return
        if self.on_event is not None:
            self.on_event(event)
            return
        for text in lines:
            self.client.send_line(text)

    def line(self, text: str) -> None:
        """The user typed C{text} (decoded, without its line ending)."""
        self.hub.handle_line(self, clean(text).strip())

    def lost(self, reason: str) -> None:
        """The connection is gone, for C{reason}."""
        self.hub.remove(self, reason)


def address_key(host: str) -> str:
    """One client's address however it came (IPv4-mapped, zone id), for the failure limits."""
    address = peer_address(host)
    return host if address is None else str(address)


def idle_warning(settings: ChatSettings) -> str:
    """What a chat user is told C{idle_warning} seconds before the idle timeout."""
    return (
        f"* You have been idle a while: type something within "
        f"{settings.idle_warning:g} seconds or be disconnected."
    )


class ChatHub:
    """
    All rooms and sessions of one chat, shared by every front-end.

    @param verify: checks a password against a stored hash, off the event
        loop (L{netlab.core.passwords.verify_later}).
    @param make_hash: hashes a new password, off the event loop.
    @param bus: with C{cluster}, the bus that joins this hub to the others
        (L{netlab.protocols.chat.cluster}); without, the hub is alone.

    Every password check goes through L{check_password}: wrong passwords
    are limited per address and per nick (the operator password counts as
    the nick C{/oper}) by L{FailureLimit}s, and hashing, checks and new
    hashes alike, by a L{HashingQueue}.
    """

    def __init__(
        self,
        settings: ChatSettings,
        events: EventLog,
        clock: IReactorTime,
        store: ChatStore | None,
        verify: Callable[[str, str], Deferred[bool]],
        make_hash: Callable[[str], Deferred[str]],
        bus: Bus | None = None,
        cluster: ClusterSettings | None = None,
    ) -> None:
        self.events = events
        self.clock = clock
        self.store = store
        self.verify = verify
        self.make_hash = make_hash
        self.name = settings.name
        self.counters = events.counters_for(self.name)
        self.by_address = FailureLimit(
            settings.address_failures, settings.failure_window, clock.seconds
        )
        self.by_nick = FailureLimit(settings.nick_failures, settings.failure_window, clock.seconds)
        self.hashing = HashingQueue(settings.max_hashing, settings.max_hashing_waiting)
        self.configure(settings)
        self.sessions: dict[Session, None] = {}
        self.nicks: dict[str, Session] = {}
        self.rooms: dict[str, Room] = {}
        self.bans: list[Ban] = []
        self.commands = COMMANDS
        self.shutting_down = False
        self.room(settings.default_room)
        self.cluster = Cluster(self, bus, cluster) if bus is not None and cluster else None

    def configure(self, settings: ChatSettings) -> None:
        """Take C{settings}, at start or from a reload, with what derives from them."""
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        # The last HH:MM made, and the minute since the epoch it is for.
        self._stamp = ""
        self._stamp_minute: int | None = None
        self.reserved = {n.lower() for n in settings.reserved_nicks}
        self.by_address.configure(settings.address_failures, settings.failure_window)
        self.by_nick.configure(settings.nick_failures, settings.failure_window)
        self.hashing.configure(settings.max_hashing, settings.max_hashing_waiting)

    # -- bookkeeping ---------------------------------------------------------

    def count(self, what: str, amount: int = 1) -> None:
        """Bump one of the chat's own counters (joins, messages, kicks...)."""
        extra = self.counters.extra
        extra[what] = extra.get(what, 0) + amount

    def event(
        self, action: str, session: Session | None, level: LogLevel = LogLevel.info,
        *, what: str | None = None, **fields: Any,
    ) -> None:
        """
        Log a chat event; never pass the text of a private message.  The log
        line says C{what} happened, by default the action, its room and detail.
        """
        if not self.events.enabled(level):
            return
        if what is None:
            what = action
            if fields.get("room"):
                what += f" {fields['room']}"
            if fields.get("detail"):
                what += f": {fields['detail']}"
        nick = "-" if session is None else session.nick or "(no nick)"
        self.events.emit(
            CHAT, self.name, session.client.peer if session else None, level,
            action=action, nick=nick, what=what, **fields,
        )

    def stamp_of(self, when: float) -> str:
        """C{HH:MM} at C{when}, in the configured zone."""
        return datetime.fromtimestamp(when, self.zone).strftime("%H:%M")

    def stamp(self) -> str:
        """C{HH:MM} now, in the configured zone."""
        now = self.clock.seconds()
        # Every zone's offset is whole minutes, so HH:MM changes only when
        # the minute since the epoch does: format it once a minute, not once
        # a message.
        minute = int(now // 60)
        if minute != self._stamp_minute:
            self._stamp = datetime.fromtimestamp(now, self.zone).strftime("%H:%M")
            self._stamp_minute = minute
        return self._stamp

    def room(self, name: str) -> Room:
        """The room called C{name}, created if new."""
        key = name.lower()
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(name)
        return room

    def find(self, nick: str) -> Session | None:
        """The chatting session with this nick (any case), if any."""
        session = self.nicks.get(nick.lower())
        return session if session is not None and session.state == CHATTING else None

    def to_room(
        self, room: Room, text: str, *, but: Session | None = None, event: Event | None = None,
    ) -> None:
        """One line (or C{event}, to clients that take events) to everyone in C{room} but C{but}."""
        for member in list(room.members):
            if member is not but:
                if event is not None and member.on_event is not None:
                    member.notify(event)
                else:
                    member.tell(text)

    def to_everyone(self, text: str) -> None:
        for session in list(self.sessions):
            if session.state == CHATTING:
                session.tell(text)

    # -- connecting ----------------------------------------------------------

    def connect(self, client: Client, *, asks_nick: bool = True) -> Session:
        """
        A new connection: check bans, greet it, ask for a nick (unless the
        front-end already has one to give, as the UDP chat's C{JOIN nick}).
        """
        session = Session(self, client)
        self.sessions[session] = None
        ban = self.banned(client.peer_host)
        if ban is not None:
            self.count("refused_banned")
            self.event("refused", session, LogLevel.warn, detail="banned address")
            session.tell(f"ERROR You are banned from this chat until {self.until(ban.until)}.")
            self.close(session, "banned")
            return session
        session.notify(
            Greeted(),
            *(clean(line) for line in self.settings.motd.splitlines() or [""]),
            *(["Choose a nick (1-16 letters, digits, _ - .):"] if asks_nick else []),
        )
        # Absolute, not reset by activity: a client trickling bytes of a
        # nick, or sitting at a password prompt, holds a connection only
        # this long.
        session.login_deadline = self.clock.callLater(
            self.settings.login_timeout, self.login_timed_out, session
        )
        return session

    def login_timed_out(self, session: Session) -> None:
        """C{session} chose no nick, or gave no password, in time."""
        session.login_deadline = None
        self.count("login_timeouts")
        self.event("login_timeout", session, LogLevel.debug)
        session.tell(f"Login timed out after {self.settings.login_timeout:g} seconds.")
        self.close(session, "login timeout")

    def end_login_deadline(self, session: Session) -> None:
        deadline, session.login_deadline = session.login_deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def until(self, when: float) -> str:
        moment = datetime.fromtimestamp(when, self.zone)
        return moment.strftime("%Y-%m-%d %H:%M ") + (moment.tzname() or "")

    def banned(self, host: str) -> Ban | None:
        """The ban that covers C{host} now, if any (expired bans are forgotten)."""
        now = self.clock.seconds()
        self.bans = [b for b in self.bans if b.until > now]
        address = peer_address(host)
        if address is None:
            return None
        for ban in self.bans:
            if address.version == ban.network.version and address in ban.network:
                return ban
        return None

    def nick_problem(self, nick: str, session: Session) -> str | None:
        """Why C{session} may not take C{nick}, or C{None}."""
        refusal = self.nick_refusal(nick, session)
        return None if refusal is None else refusal[1]

    def nick_refusal(self, nick: str, session: Session) -> tuple[str, str] | None:
        """
        Why C{session} may not take C{nick}, as a word (C{invalid},
        C{reserved}, C{taken}) and in words, or C{None}.
        """
        if not NICK_NAME.match(nick):
            return "invalid", "A nick is 1 to 16 letters, digits, _, - or ."
        if nick.lower() in self.reserved:
            return "reserved", f"The nick {nick} is reserved."
        holder = self.nicks.get(nick.lower())
        if holder is not None and holder is not session:
            return "taken", f"The nick {nick} is taken."
        if self.cluster is not None and self.cluster.holder(nick) is not None:
            return "taken", f"The nick {nick} is taken."
        return None

    # -- lines -----------------------------------------------------------------

    def handle_line(self, session: Session, text: str) -> None:
        if session.state == NICK:
            self.choose_nick(session, text)
        elif session.state == PASSWORD:
            self.check_nick_password(session, text)
        elif session.state != CHATTING or not text or not self.take_token(session):
            return
        elif text.startswith("/") and not text.startswith("//"):
            self.command(session, text[1:])
        else:
            self.say(session, text[1:] if text.startswith("//") else text)

    def take_token(self, session: Session) -> bool:
        """
        Flood control: a token bucket of C{flood_lines} per C{flood_seconds}.
        The first line over it is dropped with a warning; flooding on after
        the warning mutes the user.
        """
        settings = self.settings
        now = self.clock.seconds()
        rate = settings.flood_lines / settings.flood_seconds
        session.tokens = min(
            float(settings.flood_lines), session.tokens + (now - session.tokens_at) * rate
        )
        session.tokens_at = now
        if session.tokens >= 1.0:
            session.tokens -= 1.0
            if session.tokens >= settings.flood_lines - 1:
                session.flood_warned = False
            return True
        self.count("flood_drops")
        self.counters.dropped += 1
        if not session.flood_warned:
            session.flood_warned = True
            session.tell(
                f"Slow down: at most {settings.flood_lines} lines per "
                f"{settings.flood_seconds:g} seconds. That line was dropped."
            )
            self.event("flood_warning", session, LogLevel.warn)
        elif session.muted_until <= now:
            session.muted_until = now + settings.flood_mute
            session.tell(f"You are muted for {settings.flood_mute:g} seconds for flooding.")
            self.count("flood_mutes")
            self.event("flood_mute", session, LogLevel.warn)
        return False

    def muted(self, session: Session) -> bool:
        """Tell a muted user so, and whether they are."""
        left = session.muted_until - self.clock.seconds()
        if left > 0:
            session.tell(f"You are muted for {left:.0f} more seconds.")
            return True
        return False

    def say(self, session: Session, text: str, *, notice: bool = False) -> None:
        """
        A message from C{session} to its room; a C{notice} (IRC's: no
        automatic reply) shows as C{-nick-} and is not kept in the history.
        """
        room = session.room
        if self.muted(session) or room is None:
            return
        self.said_in_room(room, session.name, text, notice=notice, but=session)
        if not notice:
            self.record(session, text)
        self.publish("say", keep=None if notice else room.name, room=room.name,
                     nick=session.name, text=text, notice=notice)
        self.count("messages")
        self.event("message", session, LogLevel.debug, room=room.name, detail=text)

    def action(self, session: Session, text: str) -> None:
        """C{session} does C{text} in its room (C{/me}, IRC's CTCP ACTION)."""
        room = session.room
        if self.muted(session) or room is None:
            return
        self.said_in_room(room, session.name, text, action=True, but=session)
        self.record(session, text, action=True)
        self.publish("say", keep=room.name, room=room.name, nick=session.name, text=text,
                     action=True)
        self.count("messages")
        self.event("action", session, LogLevel.debug, room=room.name, detail=text)

    def private(
        self, session: Session, target: Session, text: str, *, notice: bool = False,
    ) -> None:
        """
        A private message from C{session} to C{target}, and its copy for
        the sender; never in the log or a payload sample (L{PrivateText}).
        """
        self.private_to(session.name, target, text, notice)
        self.private_echo(session, target.name, text, notice)

    def private_to(self, sender: str, target: Session, text: str, notice: bool) -> None:
        """Show C{target} a private message from C{sender} (here or on another node)."""
        mark = f"-{sender}-" if notice else f"*{sender}*"
        heard = f"[{self.stamp()}] {mark} "
        target.notify(
            Private(sender, target.name, text, notice=notice),
            PrivateText(heard + text, heard + PRIVATE),
        )

    def private_echo(self, session: Session, target: str, text: str, notice: bool) -> None:
        """The sender's copy of a private message to C{target}, and its books."""
        said = f"-> *{target}* "
        session.notify(
            Private(session.name, target, text, notice=notice, echo=True),
            PrivateText(said + text, said + PRIVATE),
        )
        self.count("private_messages")
        # Never the text: private messages stay private, in the log too.
        self.event("private_message", session, LogLevel.debug, detail=f"to {target}")

    def set_topic(self, session: Session, room: Room, topic: str) -> None:
        """C{session} sets C{room}'s topic (cut to L{TOPIC_LENGTH}); everyone there hears it."""
        self.topic_in_room(room, session.name, topic)
        self.event("topic", session, room=room.name, detail=room.topic)
        self.publish("topic", room=room.name, nick=session.name, topic=room.topic)

    def topic_in_room(self, room: Room, nick: str, topic: str) -> None:
        """C{nick} (here or on another node) set C{room}'s topic: everyone here in it hears."""
        room.topic = topic[:TOPIC_LENGTH]
        room.topic_by = nick
        room.topic_at = self.clock.seconds()
        self.to_room(
            room, f"* {nick} set the topic of {room.name}: {room.topic}",
            event=TopicChanged(room.name, nick, room.topic),
        )

    def kick(self, session: Session, target: Session, reason: str) -> None:
        """The operator C{session} disconnects C{target}, for C{reason} (may be empty)."""
        self.count("kicks")
        self.event("kick", session, detail=f"{target.name}")
        self.kicked(session.name, target, reason)

    def kicked(self, by: str, target: Session, reason: str) -> None:
        """The operator C{by} (here or on another node) disconnects C{target}."""
        why = f"kicked by {by}" + (f": {reason}" if reason else "")
        target.kicked_by = (by, reason)
        room = target.room.name if target.room is not None else ""
        target.notify(Kicked(room, target.name, by, reason), f"* You were {why}")
        self.close(target, why)

    def apply_ban(self, network: IP, until: float, by: str, but: Session | None = None) -> None:
        """A ban (made here or on another node): every session here it covers is closed."""
        self.bans.append(Ban(network, until, by))
        for other in list(self.sessions):
            if other is not but and self.banned(other.client.peer_host) is not None:
                other.tell(f"* You were banned by {by}.")
                self.close(other, f"banned by {by}")

    def lift_ban(self, network: IP) -> bool:
        """Lift the bans of C{network} (here or on another node): whether there was one."""
        before = len(self.bans)
        self.bans = [ban for ban in self.bans if ban.network != network]
        return len(self.bans) != before

    def muted_by(self, by: str, target: Session, minutes: float) -> None:
        """The operator C{by} (here or on another node) mutes C{target} for C{minutes}."""
        target.muted_until = self.clock.seconds() + minutes * 60
        target.tell(f"* You were muted by {by} for {minutes:g} minutes.")
        if target.room is not None:
            self.to_room(
                target.room, f"* {target.name} was muted by {by} for {minutes:g} minutes",
                but=target,
            )

    def record(self, session: Session, text: str, action: bool = False) -> None:
        if session.room is not None:
            self.record_line(session.room, session.name, text, action)

    def record_line(self, room: Room, nick: str, text: str, action: bool = False) -> None:
        """Keep a line of C{room}'s (said here or on another node) in the history."""
        if self.store is not None:
            self.store.append(HistoryLine(room.name, self.clock.seconds(), nick, text, action))

    def said_in_room(
        self, room: Room, nick: str, text: str, *, action: bool = False, notice: bool = False,
        time: float | None = None, but: Session | None = None,
    ) -> None:
        """
        C{nick} (here or on another node) said C{text} in C{room}: everyone
        here in it but C{but} hears; C{time}: said then, from the history.
        """
        said = Said(room.name, nick, text, action=action, notice=notice, time=time)
        stamp = self.stamp() if time is None else self.stamp_of(time)
        if action:
            shown = f"[{stamp}] * {nick} {text}"
        else:
            shown = f"[{stamp}] {f'-{nick}-' if notice else f'<{nick}>'} {text}"
        self.to_room(room, shown, but=but, event=said)

    def publish(self, kind: str, keep: str | None = None, **fields: Any) -> None:
        """Tell the other nodes, if this hub is in a cluster (C{keep}: in that room's lines)."""
        if self.cluster is not None:
            if kind == "say":
                fields["time"] = self.clock.seconds()
            self.cluster.send(kind, keep=keep, **fields)

    def command(self, session: Session, text: str) -> None:
        name, _, rest = text.partition(" ")
        handler = self.commands.get(name.lower())
        self.count("commands")
        if handler is None:
            session.tell(f"Unknown command /{name}. Type /help for the list.")
            self.event("unknown_command", session, LogLevel.debug)
            return
        self.event("command", session, LogLevel.debug, detail=f"/{name.lower()}")
        handler.run(self, session, rest.strip())

    # -- nicks -----------------------------------------------------------------

    def choose_nick(self, session: Session, nick: str) -> None:
        refusal = self.nick_refusal(nick, session)
        if refusal:
            self.ask_nick_again(session, refusal[1], nick, refusal[0])
            return
        if self.store is not None and self.store.registered(nick) is not None:
            wait = self.password_wait(session, nick)
            if wait:
                self.refuse_locked(session, wait)
                self.ask_nick_again(session, None, nick)
                return
            # Not claimed until the password is right (see pending_nick).
            session.pending_nick = nick
            session.state = PASSWORD
            session.notify(PasswordNeeded(nick), f"The nick {nick} is registered. Password:")
            return
        session.state = CHECKING

        def enter() -> None:
            self.claim(session, nick)
            self.enter(session)

        self.take_nick(session, nick, enter, lambda: self.ask_nick_again(
            session, f"The nick {nick} is taken.", nick, "taken"))

    def take_nick(
        self, session: Session, nick: str, then: Callable[[], None],
        taken: Callable[[], None],
    ) -> None:
        """
        C{then()} once C{nick} is C{session}'s across the cluster (at once
        without one), else C{taken()}; nothing if C{session} closed meanwhile.
        """
        if self.cluster is None:
            then()
            return

        def decided(ok: bool) -> None:
            assert self.cluster is not None
            if session.state == CLOSED:
                if ok:
                    self.cluster.release(nick)
            elif ok and self.nick_refusal(nick, session) is None:
                then()
            else:
                taken()

        self.cluster.claim(nick).addCallback(decided)

    def ask_nick_again(
        self, session: Session, problem: str | None, nick: str = "", why: str = "locked",
    ) -> None:
        """C{session} must choose another nick than C{nick}, refused C{why} (see L{NickRefused})."""
        session.pending_nick = None
        session.state = NICK
        lines = [problem, "Choose a nick:"] if problem else ["Choose a nick:"]
        session.notify(NickRefused(nick, why, problem or ""), *lines)

    def claim(self, session: Session, nick: str) -> None:
        """Reserve C{nick} for C{session} (dropping its old one)."""
        if session.nick is not None and self.nicks.get(session.nick.lower()) is session:
            del self.nicks[session.nick.lower()]
            if self.cluster is not None and session.nick.lower() != nick.lower():
                self.cluster.release(session.nick)
        session.nick = nick
        self.nicks[nick.lower()] = session

    def check_nick_password(self, session: Session, password: str) -> None:
        """The answer to "Password:" for a registered nick."""
        nick = session.pending_nick
        assert nick is not None
        stored = self.store.registered(nick) if self.store else None
        if stored is None:
            # Unregistered meanwhile: an ordinary nick now.
            self.choose_nick(session, nick)
            return
        session.state = CHECKING

        def right() -> None:
            if session.state != CHECKING:
                return
            # Its owner may have come in first, on another connection.
            refusal = self.nick_refusal(nick, session)
            if refusal:
                self.ask_nick_again(session, refusal[1], nick, refusal[0])
                return
            session.pending_nick = None

            def enter() -> None:
                self.claim(session, nick)
                session.identified = True
                self.event("identified", session)
                self.enter(session)

            self.take_nick(session, nick, enter, lambda: self.ask_nick_again(
                session, f"The nick {nick} is taken.", nick, "taken"))

        def wrong(locked: bool) -> None:
            if session.state != CHECKING:
                return
            if locked:
                self.ask_nick_again(session, None, nick)
            elif self.wrong_password(session):
                session.state = PASSWORD
                session.notify(PasswordNeeded(nick, wrong=True), "Password:")

        refusal = self.check_password(session, nick, password, stored, right, wrong)
        if refusal == "locked":
            self.ask_nick_again(session, None, nick)
        elif refusal is not None:
            session.state = PASSWORD
            session.notify(PasswordNeeded(nick), "Password:")

    # -- password checks -------------------------------------------------------------

    def password_wait(self, session: Session, target: str) -> int:
        """Whole seconds before C{session}'s address may try C{target}'s password again."""
        left = max(
            self.by_address.wait(address_key(session.client.peer_host)),
            self.by_nick.wait(target.lower()),
        )
        return math.ceil(left)

    def refuse_locked(self, session: Session, wait: int) -> None:
        self.count("password_refusals")
        session.tell(f"Too many wrong passwords: try again in {wait} seconds.")

    def check_password(
        self, session: Session, target: str, password: str, stored: str,
        right: Callable[[], None], wrong: Callable[[bool], None],
    ) -> str | None:
        """
        Check C{password} against C{stored}, the hash of C{target} (a nick,
        or C{/oper}), within the limits; then call C{right()}, or
        C{wrong(locked)}, C{locked} saying the failure locked the address or
        the target (the user has been told so).  Returns C{None} once the
        check has started, or why it was refused, the user told:
        C{"checking"} (one check at a time), C{"locked"} or C{"busy"}.
        """
        if session.checking:
            session.tell("Wait for your last password check.")
            return "checking"
        wait = self.password_wait(session, target)
        if wait:
            self.refuse_locked(session, wait)
            return "locked"
        checked = self.hashing.run(self.verify, password, stored)
        if checked is None:
            self.refuse_busy(session)
            return "busy"
        session.checking = True

        def done(ok: bool) -> None:
            session.checking = False
            if ok:
                right()
                return
            locked = self.password_failed(session, target)
            if locked and session.state != CLOSED:
                session.tell(
                    f"Too many wrong passwords: try again in "
                    f"{self.password_wait(session, target)} seconds."
                )
            wrong(locked)

        checked.addCallback(done)
        return None

    def new_hash(self, session: Session, password: str) -> Deferred[str] | None:
        """Hash a new password under the same bound; C{None} (the user told) when busy."""
        hashed = self.hashing.run(self.make_hash, password)
        if hashed is None:
            self.refuse_busy(session)
        return hashed

    def refuse_busy(self, session: Session) -> None:
        self.count("hashing_busy")
        self.event("hashing_busy", session, LogLevel.warn)
        session.tell("The server is busy checking passwords: try again in a moment.")

    def password_failed(self, session: Session, target: str) -> bool:
        """Count a wrong password of C{target} from C{session}'s address; whether that locked."""
        host = address_key(session.client.peer_host)
        locked = False
        for limit, key, shown in (
            (self.by_address, host, host),
            (self.by_nick, target.lower(), target if target == OPER else f"nick {target}"),
        ):
            if limit.failed(key):
                locked = True
                self.count("password_locks")
                self.event(
                    "password_lock", session, LogLevel.warn,
                    detail=f"{shown} for {limit.pause:g} seconds",
                )
        return locked

    def wrong_password(self, session: Session) -> bool:
        """
        Count a wrong password; after C{identify_attempts} of them, close the
        connection after a short delay.  Whether the user may try again.
        """
        session.wrong_passwords += 1
        self.count("wrong_passwords")
        self.event("wrong_password", session, LogLevel.warn)
        left = self.settings.identify_attempts - session.wrong_passwords
        if left > 0:
            session.tell(f"Wrong password. {left} {'try' if left == 1 else 'tries'} left.")
            return True
        session.tell("Wrong password. Too many wrong passwords: goodbye.")
        session.state = CLOSING
        self.clock.callLater(self.settings.identify_delay, self.close, session, "wrong passwords")
        return False

    def enter(self, session: Session) -> None:
        """A session with a nick starts chatting in the default room."""
        self.end_login_deadline(session)
        session.state = CHATTING
        session.notify(Entered(session.name), f"Hello {session.name}! Type /help for the commands.")
        self.count("users")
        self.event("nick", session, what="logged in")
        self.join(session, self.room(self.settings.default_room))

    def rename(self, session: Session, nick: str, identified: bool = False) -> None:
        """C{session} takes C{nick} (C{identified}: its password was given), once it may."""
        self.take_nick(
            session, nick, lambda: self.renamed(session, nick, identified),
            lambda: session.tell(f"The nick {nick} is taken."),
        )

    def renamed(self, session: Session, nick: str, identified: bool) -> None:
        old = session.name
        self.claim(session, nick)
        session.identified = identified
        session.notify(NickChanged(old, nick), f"You are now known as {nick}.")
        if session.room is not None:
            self.renamed_in_room(session.room, old, nick, but=session)
        self.event("nick_change", session, detail=f"{old} -> {nick}")
        self.publish("nick", room=session.room.name if session.room else None, old=old, new=nick)

    def renamed_in_room(self, room: Room, old: str, new: str, but: Session | None = None) -> None:
        """C{old} (here or on another node) is now C{new}: C{room} here hears."""
        self.to_room(room, f"* {old} is now known as {new}", but=but, event=NickChanged(old, new))

    # -- rooms -----------------------------------------------------------------

    def join(self, session: Session, room: Room) -> None:
        if session.room is room:
            session.tell(f"You are already in {room.name}.")
            return
        if session.room is not None:
            self.leave(session, "left")
        room.members[session] = None
        session.room = room
        self.count("joins")
        self.event("join", session, room=room.name)
        self.joined_room(room, session.name, but=session)
        self.publish("join", room=room.name, nick=session.name)
        here = f"* You are now in {room.name} ({self.headcount(room)} here)."
        session.notify(
            Joined(room.name, session.name),
            *([here, f"* Topic: {room.topic}"] if room.topic else [here]),
        )
        if self.store is not None:
            for line in self.store.recent(room.name):
                stamp = self.stamp_of(line.time)
                said = Said(room.name, line.nick, line.text, action=line.action, time=line.time)
                if line.action:
                    session.notify(said, f"[{stamp}] * {line.nick} {line.text}")
                else:
                    session.notify(said, f"[{stamp}] <{line.nick}> {line.text}")

    def headcount(self, room: Room) -> int:
        """How many are in C{room}, on every node."""
        remote = len(self.cluster.members(room.name)) if self.cluster is not None else 0
        return len(room.members) + remote

    def joined_room(self, room: Room, nick: str, but: Session | None = None) -> None:
        """C{nick} (here or on another node) joined C{room}: everyone here in it hears."""
        self.to_room(room, f"* {nick} has joined {room.name}", but=but,
                     event=Joined(room.name, nick))

    def parted_room(self, room: Room, nick: str) -> None:
        """C{nick} (here or on another node) left C{room} for another, or none."""
        self.to_room(room, f"* {nick} has left {room.name}", event=Parted(room.name, nick))

    def quit_room(
        self, room: Room, nick: str, reason: str, kicked: tuple[str, str] | None,
    ) -> None:
        """C{nick} (here or on another node), in C{room}, left the chat, or was kicked."""
        gone: Event = (
            Quit(room.name, nick, reason) if kicked is None
            else Kicked(room.name, nick, *kicked)
        )
        self.to_room(room, f"* {nick} has quit ({reason})", event=gone)

    def leave(self, session: Session, how: str) -> None:
        """Take C{session} out of its room, telling the others C{how} it went."""
        room = session.room
        if room is None:
            return
        session.room = None
        room.members.pop(session, None)
        self.count("parts")
        self.event("part", session, room=room.name, detail=how)
        if how == "left":
            self.parted_room(room, session.name)
            self.publish("part", room=room.name, nick=session.name)
            session.notify(Parted(room.name, session.name))
        if not room.members and room.name.lower() != self.settings.default_room.lower():
            del self.rooms[room.name.lower()]

    # -- leaving -----------------------------------------------------------------

    def close(self, session: Session, reason: str) -> None:
        """End C{session}'s connection for C{reason} (the quit is announced on loss)."""
        if session.state == CLOSED:
            return
        session.client.end(reason)

    def remove(self, session: Session, reason: str) -> None:
        """C{session}'s connection is gone: announce the quit, forget it."""
        if session.state == CLOSED:
            return
        chatting = session.state == CHATTING
        session.state = CLOSED
        self.end_login_deadline(session)
        self.sessions.pop(session, None)
        room = session.room
        if room is not None:
            self.leave(session, reason)
            if chatting:
                self.quit_room(room, session.name, reason, session.kicked_by)
                by = session.kicked_by[0] if session.kicked_by else None
                self.publish("quit", room=room.name, nick=session.name, reason=reason, by=by)
        if session.nick is not None and self.nicks.get(session.nick.lower()) is session:
            del self.nicks[session.nick.lower()]
            if self.cluster is not None:
                self.cluster.release(session.nick)
        # A /quit's reason already says "quit: ..."; a lost connection's does not.
        self.event("quit", session, detail=reason,
                   what=reason if reason.startswith("quit") else f"quit: {reason}")

    def shutdown(self) -> None:
        """The daemon is stopping: tell everyone, then close every connection."""
        self.shutting_down = True
        for session in list(self.sessions):
            session.tell("* server shutting down")
            self.close(session, "server shutdown")


__all__ = [
    "CHATTING",
    "ChatHub",
    "Client",
    "Entered",
    "Event",
    "EventClient",
    "Greeted",
    "Joined",
    "Kicked",
    "NickChanged",
    "NickRefused",
    "Parted",
    "PasswordNeeded",
    "Private",
    "Quit",
    "Room",
    "Said",
    "Session",
    "TopicChanged",
]
