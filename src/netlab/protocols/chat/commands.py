"""
The chat's slash commands.  Each is a L{Command} with its usage and help
text, so C{/help} documents exactly what exists; an unknown command or a bad
argument gets one line back and is never broadcast.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.logger import LogLevel

from netlab.protocols.chat.cluster import NOT_SHARED
from netlab.protocols.chat.settings import ROOM_NAME
from netlab.protocols.chat.text import clean

# The operator password's name in the hub's failure limits: no nick looks like it.
OPER = "/oper"

if TYPE_CHECKING:
    from netlab.protocols.chat.hub import ChatHub, Session

Handler = Callable[["ChatHub", "Session", str], None]

DEFAULT_MUTE_MINUTES = 10.0
DEFAULT_BAN_MINUTES = 60.0
MAX_MINUTES = 7 * 24 * 60.0


@dataclass(frozen=True)
class Command:
    """One slash command: its usage line, its help, and who may use it."""

    name: str
    usage: str
    help: str
    handler: Handler
    oper: bool = False

    def run(self, hub: ChatHub, session: Session, args: str) -> None:
        if self.oper and not session.oper:
            session.tell(f"/{self.name} is for operators only (see /oper).")
            hub.event("refused_command", session, LogLevel.warn, detail=f"/{self.name}")
            return
        self.handler(hub, session, args)


def _usage(session: Session, name: str) -> None:
    session.tell(f"Usage: {COMMANDS[name].usage}")


def _verified(
    hub: ChatHub, session: Session, target: str, password: str, stored: str,
    then: Callable[[], None],
) -> None:
    """
    Check C{password} for C{target} off the event loop, within the hub's
    limits; run C{then} if it is right, count a wrong one (too many close
    the connection).
    """

    def wrong(locked: bool) -> None:
        if session.state == "chatting" and not locked:
            hub.wrong_password(session)

    def right() -> None:
        if session.state == "chatting":
            then()

    hub.check_password(session, target, password, stored, right, wrong)


# What a payload sample shows instead of a private message, or a password.
PRIVATE, PASSWORD = "[private]", "[password]"
# Commands whose arguments after the first few are private, and how many
# are not: /msg NICK [private], /nick NEW [password], /oper [password].
SECRET_AFTER = {"msg": 1, "query": 1, "nick": 1, "oper": 0, "register": 0, "identify": 0}


def loggable(line: str) -> str | None:
    """
    What of C{line}, typed by a user (or the start of it), a payload sample
    may show, if not all of it: the command and its public arguments, with
    the text of a private message or a password left out.  Parsed as the
    hub parses it (cleaned, stripped), so no disguise of a command passes.
    """
    text = clean(line).strip()
    if not text.startswith("/") or text.startswith("//"):
        return None
    name, _, rest = text[1:].partition(" ")
    public = SECRET_AFTER.get(name.lower())
    if public is None:
        return None
    words = rest.split(None, public)
    if len(words) <= public:
        return None
    hidden = PRIVATE if name.lower() in ("msg", "query") else PASSWORD
    return " ".join(["/" + name, *words[:public], hidden])


def _minutes(text: str, default: float) -> float | None:
    """Minutes from an argument, or C{None} if it is not a sensible number."""
    if not text:
        return default
    try:
        minutes = float(text)
    except ValueError:
        return None
    return minutes if 0 < minutes <= MAX_MINUTES else None


# -- everyone ----------------------------------------------------------------


def help_(hub: ChatHub, session: Session, args: str) -> None:
    wanted = args.lstrip("/").lower()
    if wanted:
        command = COMMANDS.get(wanted)
        if command is None:
            session.tell(f"No command /{wanted}. Type /help for the list.")
        else:
            session.tell(f"{command.usage}  {command.help}")
        return
    session.tell("Commands (lines not starting with / are said to your room; // sends a /):")
    for command in COMMANDS.values():
        if command.oper and not session.oper:
            continue
        session.tell(f"  {command.usage:<28} {command.help}")


def nick(hub: ChatHub, session: Session, args: str) -> None:
    new, _, password = args.partition(" ")
    if not new:
        _usage(session, "nick")
        return
    if new == session.name:
        session.tell(f"You are already {new}.")
        return
    if hub.muted(session):
        return
    problem = hub.nick_problem(new, session)
    if problem:
        session.tell(problem)
        return
    stored = hub.store.registered(new) if hub.store is not None else None
    if stored is None or (new.lower() == session.name.lower() and session.identified):
        hub.rename(session, new)
        return
    if not password:
        session.tell(f"The nick {new} is registered. Use /nick {new} PASSWORD.")
        return

    def take() -> None:
        # Someone may have taken the nick while the password was checked.
        problem = hub.nick_problem(new, session)
        if problem:
            session.tell(problem)
            return
        hub.rename(session, new, identified=True)

    _verified(hub, session, new, password.strip(), stored, take)


def who(hub: ChatHub, session: Session, args: str) -> None:
    room = session.room
    if room is None:
        return
    names = [m.name + (" (op)" if m.oper else "") for m in room.members]
    if hub.cluster is not None:
        names += [u.nick + (" (op)" if u.oper else "") for u in hub.cluster.members(room.name)]
    session.tell(f"In {room.name} ({len(names)}): {', '.join(names)}")


def rooms(hub: ChatHub, session: Session, args: str) -> None:
    listing = ", ".join(f"{r.name} ({len(r.members)})" for r in hub.rooms.values())
    session.tell(f"Rooms: {listing}")


def join(hub: ChatHub, session: Session, args: str) -> None:
    name = args.split(" ", 1)[0]
    if not name:
        _usage(session, "join")
        return
    if not name.startswith("#"):
        name = "#" + name
    if not ROOM_NAME.match(name):
        session.tell("A room name is # and 1 to 16 letters, digits, _, - or .")
        return
    if name.lower() not in hub.rooms and len(hub.rooms) >= hub.settings.max_rooms:
        session.tell(f"There are already {hub.settings.max_rooms} rooms; join one of them.")
        return
    hub.join(session, hub.room(name))


def part(hub: ChatHub, session: Session, args: str) -> None:
    default = hub.room(hub.settings.default_room)
    if session.room is default:
        session.tell(f"You are in {default.name}, the default room; /quit leaves the chat.")
        return
    hub.join(session, default)


def msg(hub: ChatHub, session: Session, args: str) -> None:
    target_nick, _, text = args.partition(" ")
    text = text.strip()
    if not target_nick or not text:
        _usage(session, "msg")
        return
    if hub.muted(session):
        return
    target = hub.find(target_nick)
    if target is None and hub.cluster is not None and hub.cluster.private(
        session, target_nick, text
    ):
        return
    if target is None:
        session.tell(f"No user {target_nick} here.")
        return
    hub.private(session, target, text)


def me(hub: ChatHub, session: Session, args: str) -> None:
    if not args:
        _usage(session, "me")
        return
    hub.action(session, args)


def topic(hub: ChatHub, session: Session, args: str) -> None:
    room = session.room
    if room is None:
        return
    if not args:
        session.tell(f"Topic of {room.name}: {room.topic}" if room.topic else
                     f"{room.name} has no topic.")
        return
    if hub.muted(session):
        return
    hub.set_topic(session, room, args)


def quit_(hub: ChatHub, session: Session, args: str) -> None:
    reason = f"quit: {args[:100]}" if args else "quit"
    session.tell("Bye.")
    hub.close(session, reason)


def oper(hub: ChatHub, session: Session, args: str) -> None:
    if not args:
        _usage(session, "oper")
        return
    if session.oper:
        session.tell("You are already an operator.")
        return
    stored = hub.settings.oper_password_hash
    if not stored:
        session.tell("This chat has no operator password configured.")
        return

    def promote() -> None:
        session.oper = True
        session.tell("You are now an operator. /help lists your commands.")
        hub.count("opers")
        hub.event("oper", session)
        hub.publish("oper", nick=session.name)

    _verified(hub, session, OPER, args, stored, promote)


def register(hub: ChatHub, session: Session, args: str) -> None:
    if hub.store is None:
        session.tell("Nick registration is not available here.")
        return
    if not args:
        _usage(session, "register")
        return
    if len(args) < 4:
        session.tell("Use a password of at least 4 characters.")
        return
    if hub.store.registered(session.name) is not None and not session.identified:
        session.tell(f"The nick {session.name} is already registered; /identify first.")
        return
    if not _shared_now(hub, session):
        return
    nick_now = session.name

    def hashed(encoded: str) -> None:
        if session.state != "chatting" or session.name != nick_now or hub.store is None:
            return
        if not _shared_now(hub, session):
            return
        hub.store.register(nick_now, encoded)
        if hub.cluster is not None:
            hub.cluster.registered(nick_now, encoded)
        session.identified = True
        session.tell(f"The nick {nick_now} is now registered. Keep the password safe.")
        hub.count("registrations")
        hub.event("register", session)

    hashing = hub.new_hash(session, args)
    if hashing is not None:
        hashing.addCallback(hashed)


def identify(hub: ChatHub, session: Session, args: str) -> None:
    stored = hub.store.registered(session.name) if hub.store is not None else None
    if stored is None:
        session.tell(f"The nick {session.name} is not registered.")
        return
    if session.identified:
        session.tell("You are already identified.")
        return
    if not args:
        _usage(session, "identify")
        return

    def identified() -> None:
        session.identified = True
        session.tell(f"You are identified as {session.name}.")
        hub.event("identified", session)

    _verified(hub, session, session.name, args, stored, identified)


def _shared_now(hub: ChatHub, session: Session) -> bool:
    """Whether a registration change reaches every node now (said if not)."""
    if hub.cluster is None or hub.cluster.shares_now:
        return True
    session.tell(NOT_SHARED)
    return False


def unregister(hub: ChatHub, session: Session, args: str) -> None:
    if hub.store is None or hub.store.registered(session.name) is None:
        session.tell(f"The nick {session.name} is not registered.")
        return
    if not session.identified:
        session.tell("Identify first (/identify PASSWORD).")
        return
    if not _shared_now(hub, session):
        return
    hub.store.unregister(session.name)
    if hub.cluster is not None:
        hub.cluster.unregistered(session.name)
    session.tell(f"The nick {session.name} is no longer registered.")
    hub.event("unregister", session)


# -- operators -----------------------------------------------------------------


def _target(hub: ChatHub, session: Session, nick_: str) -> Session | None:
    target = hub.find(nick_)
    if target is None:
        session.tell(f"No user {nick_} here.")
    return target


def kick(hub: ChatHub, session: Session, args: str) -> None:
    nick_, _, reason = args.partition(" ")
    if not nick_:
        _usage(session, "kick")
        return
    if hub.find(nick_) is None and hub.cluster is not None and hub.cluster.kick(
        session, nick_, reason.strip()[:100]
    ):
        return
    target = _target(hub, session, nick_)
    if target is None:
        return
    hub.kick(session, target, reason.strip()[:100])


def mute(hub: ChatHub, session: Session, args: str) -> None:
    nick_, _, when = args.partition(" ")
    minutes = _minutes(when.strip(), DEFAULT_MUTE_MINUTES)
    if not nick_ or minutes is None:
        _usage(session, "mute")
        return
    remote = hub.cluster.holder(nick_) if hub.cluster is not None else None
    if hub.find(nick_) is None and remote is not None:
        # Muted on its node, which tells its room there; this node's users hear here.
        name, room = remote.nick, hub.rooms.get((remote.room or "").lower())
        if room is not None:
            hub.to_room(room, f"* {name} was muted by {session.name} for {minutes:g} minutes")
    else:
        target = _target(hub, session, nick_)
        if target is None:
            return
        hub.muted_by(session.name, target, minutes)
        name = target.name
        room = target.room
    hub.publish(
        "mute", target=name, minutes=minutes, by=session.name,
        room=room.name if room else None,
    )
    hub.count("mutes")
    hub.event("mute", session, detail=f"{name} for {minutes:g} minutes")


def ban(hub: ChatHub, session: Session, args: str) -> None:
    what, _, when = args.partition(" ")
    minutes = _minutes(when.strip(), DEFAULT_BAN_MINUTES)
    if not what or minutes is None:
        _usage(session, "ban")
        return
    target = hub.find(what)
    try:
        host = target.client.peer_host if target is not None else what
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        session.tell(f"No user {what} here, and it is not an address or network.")
        return
    until = hub.clock.seconds() + minutes * 60
    hub.count("bans")
    hub.event("ban", session, detail=f"{network} for {minutes:g} minutes")
    session.tell(f"Banned {network} until {hub.until(until)}.")
    hub.apply_ban(network, until, session.name, but=session)
    if hub.cluster is not None:
        hub.cluster.banned(str(network), until, session.name)


def unban(hub: ChatHub, session: Session, args: str) -> None:
    try:
        network = ipaddress.ip_network(args, strict=False)
    except ValueError:
        _usage(session, "unban")
        return
    if not hub.lift_ban(network):
        session.tell(f"{network} is not banned.")
        return
    session.tell(f"Unbanned {network}.")
    hub.event("unban", session, detail=str(network))
    if hub.cluster is not None:
        hub.cluster.unbanned(str(network), session.name)


def wall(hub: ChatHub, session: Session, args: str) -> None:
    if not args:
        _usage(session, "wall")
        return
    hub.to_everyone(f"*** Notice from {session.name}: {args}")
    hub.count("walls")
    hub.event("wall", session, detail=args)
    hub.publish("wall", nick=session.name, text=args)


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", "/help [COMMAND]", "list the commands, or explain one", help_),
        Command("nick", "/nick NEW [PASSWORD]", "change your nick", nick),
        Command("who", "/who", "who is in your room", who),
        Command("rooms", "/rooms", "the rooms and how many are in each", rooms),
        Command("join", "/join #ROOM", "go to a room (made on first join)", join),
        Command("part", "/part", "leave your room for the default room", part),
        Command("msg", "/msg NICK TEXT", "a private message to one user", msg),
        Command("me", "/me ACTION", "say what you are doing: * nick ACTION", me),
        Command("topic", "/topic [TEXT]", "show or set the room's topic", topic),
        Command("quit", "/quit [REASON]", "leave the chat", quit_),
        Command("register", "/register PASSWORD", "protect your nick with a password", register),
        Command("identify", "/identify PASSWORD", "prove a registered nick is yours", identify),
        Command("unregister", "/unregister", "remove your nick's password", unregister),
        Command("oper", "/oper PASSWORD", "become an operator", oper),
        Command("kick", "/kick NICK [REASON]", "disconnect a user", kick, oper=True),
        Command("mute", "/mute NICK [MINUTES]", "silence a user (default 10)", mute, oper=True),
        Command("ban", "/ban NICK|CIDR [MINUTES]", "ban an address (default 60)", ban, oper=True),
        Command("unban", "/unban CIDR", "lift a ban", unban, oper=True),
        Command("wall", "/wall TEXT", "a notice to every user in every room", wall, oper=True),
    )
}
