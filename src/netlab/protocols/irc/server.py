"""
The chat's IRC front-end: the same rooms, nicks and history as the telnet,
UDP and browser users, for irssi, WeeChat and HexChat.  In a cluster, NAMES,
WHO and LIST include the users of the other nodes too (L{Cluster.members}).

Parsing and dispatch are Twisted's (L{twisted.words.protocols.irc.IRC}:
C{parsemsg}, one C{irc_COMMAND} method per command); the connection's
output, its batching and its slow-consumer guard are the line chat's
(L{ChatLine}).  Every command is a call to a structured method of the
L{ChatHub} (join, leave, say, private message, set topic, kick); what the
hub has to say comes back as L{Event}s, turned into IRC messages here, or
as text lines for what has no event (a warning, a refusal), sent as a
server C{NOTICE}.

Each room is one C{#channel}, and, as for every chat user, one at a time:
joining another parts the first (C{CHANLIMIT=#:1}).  Chat operators
(C{OPER}) are operators in every room (C{@}).  A line longer than IRC's 512
bytes (with its CRLF) is refused with C{417} and nothing of it is acted on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import LogLevel
from twisted.words.protocols import irc

from netlab import __version__
from netlab.core.events import EventLog
from netlab.core.settings import payload_level
from netlab.protocols.base import SHUTDOWN_GRACE, RefusedProtocol, StreamFactory, StreamProtocol
from netlab.protocols.chat.cluster import RemoteUser
from netlab.protocols.chat.commands import COMMANDS, OPER, PASSWORD, PRIVATE
from netlab.protocols.chat.hub import (
    CHATTING,
    CLOSED,
    CLOSING,
    NICK,
    TOPIC_LENGTH,
    ChatHub,
    Entered,
    Event,
    Joined,
    Kicked,
    NickChanged,
    NickRefused,
    Parted,
    PasswordNeeded,
    Private,
    Quit,
    Room,
    Said,
    Session,
    TopicChanged,
)
from netlab.protocols.chat.line import ChatFactory, ChatLine
from netlab.protocols.chat.settings import ROOM_NAME
from netlab.protocols.chat.text import PrivateText, clean, decode
from netlab.protocols.irc.settings import IrcSettings
from netlab.protocols.lines import LineSplitter

# IRC's longest line is 512 bytes with its CRLF.
MAX_LINE = 510
ERR_INPUTTOOLONG = "417"
ERR_INVALIDCAPCMD = "410"
CAPABILITIES = ("server-time",)
NICK_LENGTH = 16
CHANNEL_LENGTH = 17  # "#" and 16
KICK_LENGTH = 100
AWAY_LENGTH = 200
# What every IRC user's host shows: netlab does not show users' addresses.
SERVICES = "NickServ"

# Commands that change what others see: they cost a token of the chat's
# flood control, as every line a telnet user types does.
CHAT_COMMANDS = frozenset({"PRIVMSG", "NOTICE", "JOIN", "PART", "TOPIC", "NICK", "KICK"})
# Commands a client may send before it is registered.
BEFORE_WELCOME = frozenset({"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT"})
# Commands whose arguments after the first few are secret: PASS [password],
# OPER NAME [password], NICKSERV [password]; PRIVMSG and NOTICE to a nick
# (not a #room) are private after the target.
SECRET_AFTER = {"PASS": 0, "OPER": 1, "NICKSERV": 0, "NS": 0}
MESSAGES = frozenset({"PRIVMSG", "NOTICE"})
# The real name WHO and WHOIS show for a user who gave none (not an IRC user).
CHAT_USER = "netlab chat user"


def loggable(line: str) -> str:
    """
    What a payload sample may show of C{line}, a line (or the start of one)
    from a client: the command and its public arguments, the text of a
    private message or a password replaced.
    """
    words = line.split(" ")
    start = 0
    while start < len(words) and words[start][:1] in ("@", ":"):  # tags, prefix
        start += 1
    if start + 1 >= len(words):  # the command alone, or less: no argument yet
        return line
    command = words[start].upper()
    public = SECRET_AFTER.get(command)
    hidden = PASSWORD
    if command in MESSAGES:
        if words[start + 1].startswith("#"):
            return line
        public, hidden = 1, ":" + PRIVATE
    if public is None:
        return line
    kept = words[: start + 1 + public]
    return " ".join([*kept, hidden]) if len(words) > len(kept) else line


def iso_time(when: float) -> str:
    """C{when} as IRCv3 C{server-time} writes it."""
    moment = datetime.fromtimestamp(when, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def pieces(text: str, room: int) -> Iterator[str]:
    """C{text} in pieces of at most C{room} bytes of UTF-8, cut between characters."""
    data = text.encode("utf-8")
    while len(data) > room:
        cut = room
        while cut > 0 and (data[cut] & 0xC0) == 0x80:  # not inside a character
            cut -= 1
        yield data[:cut].decode("utf-8")
        data = data[cut:]
    yield data.decode("utf-8")


def trailing(text: str) -> str:
    """C{text} as a message's last parameter."""
    return ":" + text


class IrcRefused(RefusedProtocol):
    """A refused connection is told why as IRC says it: C{ERROR :reason}."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(f"ERROR :{self.reason}\r\n".encode())
        self.transport.loseConnection()


class IrcUser(ChatLine, irc.IRC):
    """
    One IRC client of the chat: the hub's L{EventClient}.

    @ivar wanted_nick: the nick asked for before the welcome.
    @ivar password: a C{PASS} not yet used, for a registered nick.
    """

    factory: IrcFactory
    # The server's name, which Twisted's helpers (names, topic...) send as their prefix.
    hostname: str = ""

    def connectionMade(self) -> None:
        StreamProtocol.connectionMade(self)
        settings = self.factory.settings
        self.hostname = settings.server_name
        self.lines = LineSplitter(MAX_LINE)
        self.start_output()
        self.wanted_nick: str | None = None
        self.username: str | None = None
        self.realname = ""
        self.password: str | None = None
        self.negotiating = False
        self.capabilities: set[str] = set()
        self.welcomed = False
        self.channel: str | None = None
        self.away = ""
        self.invisible = False
        self.ping_sent = False
        self.queries = float(settings.max_queries)
        self.queries_at = self.seconds()
        self._arm_idle()
        self.session: Session = self.factory.hub.connect(self)

    @property
    def nick(self) -> str:
        """The user's nick as IRC numerics address them: C{*} until they have one."""
        # No session yet while the hub greets (or refuses) the connection.
        session = getattr(self, "session", None)
        return session.nick or "*" if session is not None else "*"

    def host(self, nick: str) -> str:
        """The prefix of C{nick}'s messages; every user's host is the server's name."""
        return f"{nick}!~{nick}@{self.hostname}"

    # -- input --------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.ping_sent:
            self.ping_sent = False
            self._arm_idle()
        else:
            self.resetTimeout()
        sampled = payload_level(self.factory.log_payload, self.events.debug_enabled) is not None
        lines = self.lines.feed(data)
        shown: list[bytes] = []
        for line, ending in lines:
            if sampled:
                public = b"[line too long]" if line is None else loggable(decode(line)).encode()
                shown.append(public + ending)
            if self.close_reason is not None:
                continue
            if line is None:
                self.numeric(ERR_INPUTTOOLONG, "Input line was too long (IRC's limit: 512 bytes)")
                self.reject("a line", f"longer than IRC's {MAX_LINE + 2} bytes")
            else:
                self.line_received(decode(line))
        if sampled and self.lines.partial:
            shown.append(loggable(decode(self.lines.partial)).encode())
        self.received(data, b"".join(shown) if sampled else None)

    def end_of_input(self) -> None:
        line = self.lines.flush()
        if line is not None and self.close_reason is None:
            self.line_received(decode(line))

    def line_received(self, line: str) -> None:
        """One line from the client: parse it as IRC does and run its command."""
        if line.startswith("@"):  # tags: no capability this server offers asks for them
            line = line.partition(" ")[2]
        line = line.lstrip(" ")
        if not line.strip():
            return
        try:
            _, command, params = irc.parsemsg(line)
        except (ValueError, IndexError):
            self.server_notice("That line is not an IRC message; ignored.")
            self.reject("a line", "not an IRC message")
            return
        self.handleCommand(command.upper(), None, params)

    def handleCommand(self, command: str, prefix: Any, params: list[str]) -> None:
        """Run C{command}, within the registration, flood and query limits."""
        if self.session.state in (CLOSING, CLOSED) and command != "QUIT":
            return
        if command in CHAT_COMMANDS and self.welcomed and not (
            command == "TOPIC" and len(params) < 2
        ):
            if not self.factory.hub.take_token(self.session):
                return
        elif command not in ("QUIT", "PONG") and not self.query_allowed(command):
            return
        method: Callable[[Any, list[str]], None] | None = getattr(self, f"irc_{command}", None)
        if method is None:
            self.numeric(irc.ERR_UNKNOWNCOMMAND, command, "Unknown command")
            self.factory.hub.event("unknown_command", self.session, LogLevel.debug)
        elif not self.welcomed and command not in BEFORE_WELCOME:
            self.numeric(irc.ERR_NOTREGISTERED, "You have not registered")
        else:
            method(prefix, params)

    def query_allowed(self, command: str) -> bool:
        """
        Commands only the sender sees the answer of (WHO, LIST, PING...):
        C{max_queries} per C{query_seconds}, a token bucket of their own, so
        a client's automatic queries on joining never cost chat tokens.
        """
        settings = self.factory.settings
        now = self.seconds()
        rate = settings.max_queries / settings.query_seconds
        self.queries = min(
            float(settings.max_queries), self.queries + (now - self.queries_at) * rate
        )
        self.queries_at = now
        if self.queries >= 1.0:
            self.queries -= 1.0
            return True
        self.numeric(irc.RPL_TRYAGAIN, command, "Please wait a while and try again.")
        self.reject("a command", f"over max_queries ({settings.max_queries})")
        return False

    def needs(self, params: list[str], count: int, command: str) -> bool:
        """Whether C{params} has C{count} parameters; if not, C{461}."""
        if len(params) >= count and all(params[:count]):
            return True
        self.numeric(irc.ERR_NEEDMOREPARAMS, command, "Not enough parameters")
        return False

    # -- output -------------------------------------------------------------------

    def sendLine(self, line: str) -> None:
        """One raw line to the client (Twisted's IRC helpers write through here)."""
        ChatLine.send_line(self, line)

    def send_line(self, text: str) -> None:
        """A line of the hub's own (a warning, a refusal): a NOTICE from the server."""
        notice = f":{self.hostname} NOTICE {self.nick} :"
        if isinstance(text, PrivateText):
            self.sendLine(PrivateText(notice + text, notice + text.shown))
        else:
            self.sendLine(notice + text)

    def server_notice(self, text: str) -> None:
        self.send_line(text)

    def numeric(self, code: str, *params: str) -> None:
        """A numeric reply to this user; the last of C{params} is the trailing text."""
        *middle, last = params
        self.sendLine(" ".join([f":{self.hostname}", code, self.nick, *middle, ":" + last]))

    def message(
        self, sender: str, command: str, target: str, text: str,
        time: float | None = None, private: bool = False,
    ) -> None:
        """
        C{PRIVMSG} or C{NOTICE} from C{sender} to C{target}, in as many lines
        as IRC's 512 bytes need (a telnet user's line may be longer); a
        C{private} one is sampled as C{[private]}.
        """
        head = f":{self.host(sender)} {command} {target} :"
        if time is not None and "server-time" in self.capabilities:
            head = f"@time={iso_time(time)} {head}"
        room = MAX_LINE - len(head.encode("utf-8"))
        for piece in pieces(text, room):
            if private:
                self.sendLine(PrivateText(head + piece, head + PRIVATE))
            else:
                self.sendLine(head + piece)

    def end(self, reason: str) -> None:
        """The hub (or this front-end) ends the session: C{ERROR}, then close."""
        if self.close_reason is None and self.transport is not None:
            self.sendLine(f"ERROR :Closing link: {self.hostname} ({reason})")
        self.close(reason)

    # -- the hub's events -----------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """What happened in the chat, as IRC messages."""
        if isinstance(event, Said):
            self.said(event)
        elif isinstance(event, Joined):
            self.sendLine(f":{self.host(event.nick)} JOIN {event.room}")
            if event.nick == self.session.name:
                self.channel = event.room
                self.send_topic(event.room, quiet=True)
                self.send_names(event.room)
        elif isinstance(event, Parted):
            self.sendLine(f":{self.host(event.nick)} PART {event.room}")
            if event.nick == self.session.name:
                self.channel = None
        elif isinstance(event, Quit):
            self.sendLine(f":{self.host(event.nick)} QUIT :{event.reason}")
        elif isinstance(event, Kicked):
            self.kicked(event)
        elif isinstance(event, Private):
            if not event.echo:
                command = "NOTICE" if event.notice else "PRIVMSG"
                self.message(event.sender, command, event.target, event.text, private=True)
        elif isinstance(event, NickChanged):
            self.sendLine(f":{self.host(event.old)} NICK :{event.new}")
        elif isinstance(event, TopicChanged):
            self.sendLine(f":{self.host(event.nick)} TOPIC {event.room} :{event.topic}")
        elif isinstance(event, Entered):
            self.welcome()
        elif isinstance(event, NickRefused):
            self.nick_refused(event)
        elif isinstance(event, PasswordNeeded):
            self.password_needed(event)
        # Greeted: the MOTD comes with the welcome, after 001.

    def said(self, event: Said) -> None:
        text = event.text
        if event.time is not None and "server-time" not in self.capabilities:
            stamp = datetime.fromtimestamp(event.time, self.factory.hub.zone).strftime("%H:%M")
            text = f"[{stamp}] {text}"
        if event.action:
            text = f"\x01ACTION {text}\x01"
        command = "NOTICE" if event.notice else "PRIVMSG"
        self.message(event.nick, command, event.room, text, time=event.time)

    def kicked(self, event: Kicked) -> None:
        if event.room:
            self.sendLine(
                f":{self.host(event.by)} KICK {event.room} {event.nick} :{event.reason or event.by}"
            )
        if event.nick == self.session.name:
            self.channel = None
            if not event.room:
                self.server_notice(f"You were kicked by {event.by}: {event.reason}")

    # -- registration ---------------------------------------------------------------

    def irc_CAP(self, prefix: Any, params: list[str]) -> None:
        if not self.needs(params, 1, "CAP"):
            return
        sub = params[0].upper()
        if sub == "LS":
            if not self.welcomed:
                self.negotiating = True
            self.cap_reply("LS", " ".join(CAPABILITIES))
        elif sub == "LIST":
            self.cap_reply("LIST", " ".join(sorted(self.capabilities)))
        elif sub == "REQ":
            if not self.welcomed:
                self.negotiating = True
            asked = params[1].split() if len(params) > 1 else []
            if asked and all(name.lstrip("-") in CAPABILITIES for name in asked):
                for name in asked:
                    if name.startswith("-"):
                        self.capabilities.discard(name[1:])
                    else:
                        self.capabilities.add(name)
                self.cap_reply("ACK", " ".join(asked))
            else:
                self.cap_reply("NAK", " ".join(asked))
        elif sub == "END":
            if self.negotiating:
                self.negotiating = False
                self.try_to_register()
        else:
            self.numeric(ERR_INVALIDCAPCMD, sub, "Invalid CAP command")

    def cap_reply(self, sub: str, text: str) -> None:
        self.sendLine(f":{self.hostname} CAP {self.nick} {sub} :{text}")

    def irc_PASS(self, prefix: Any, params: list[str]) -> None:
        if self.welcomed:
            self.numeric(irc.ERR_ALREADYREGISTRED, "You may not reregister")
        elif self.needs(params, 1, "PASS"):
            self.password = params[0]

    def irc_USER(self, prefix: Any, params: list[str]) -> None:
        if self.welcomed or self.username is not None:
            self.numeric(irc.ERR_ALREADYREGISTRED, "You may not reregister")
        elif self.needs(params, 4, "USER"):
            self.username = clean(params[0])[:16]
            self.realname = clean(irc.stripFormatting(params[3]))[:64]
            self.try_to_register()

    def irc_NICK(self, prefix: Any, params: list[str]) -> None:
        if not params or not params[0]:
            self.numeric(irc.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = params[0]
        hub = self.factory.hub
        if self.welcomed:
            self.change_nick(nick)
            return
        refusal = hub.nick_refusal(nick, self.session)
        if refusal is not None:
            self.refuse_nick(nick, *refusal)
            return
        self.wanted_nick = nick
        self.try_to_register()

    def try_to_register(self) -> None:
        """NICK and USER given, and CAP negotiation over: ask the hub for the nick."""
        if self.negotiating or self.username is None or self.wanted_nick is None:
            return
        if self.session.state == NICK:
            self.factory.hub.choose_nick(self.session, self.wanted_nick)

    def refuse_nick(self, nick: str, why: str, problem: str) -> None:
        code = irc.ERR_NICKNAMEINUSE if why == "taken" else irc.ERR_ERRONEUSNICKNAME
        self.numeric(code, nick, problem)

    def nick_refused(self, event: NickRefused) -> None:
        if event.nick == self.wanted_nick:
            self.wanted_nick = None
        if event.why == "registered":
            self.numeric(
                irc.ERR_NICKNAMEINUSE, event.nick,
                f"The nick {event.nick} is registered: connect with its password (PASS), or "
                f"as another nick and /msg {SERVICES} IDENTIFY {event.nick} PASSWORD",
            )
        elif event.why == "locked":
            self.numeric(irc.ERR_NICKNAMEINUSE, event.nick, "Too many wrong passwords for it")
        else:
            self.refuse_nick(event.nick, event.why, event.problem)

    def password_needed(self, event: PasswordNeeded) -> None:
        """The nick is registered: use the C{PASS} given, or refuse the nick."""
        if event.wrong:
            self.numeric(irc.ERR_PASSWDMISMATCH, "Password incorrect")
        password, self.password = self.password, None
        if password is not None:
            self.factory.hub.check_nick_password(self.session, password)
        else:
            self.factory.hub.ask_nick_again(self.session, None, event.nick, "registered")

    def welcome(self) -> None:
        """In the chat: 001 to 005, the MOTD (the room's JOIN follows)."""
        self.welcomed = True
        self.password = None
        settings = self.factory.settings
        hub = self.factory.hub
        server, version = self.hostname, f"netlab-{__version__}"
        self.numeric(irc.RPL_WELCOME, f"Welcome to the {settings.network} IRC network, {self.nick}")
        self.numeric(irc.RPL_YOURHOST, f"Your host is {server}, running version {version}")
        self.numeric(irc.RPL_CREATED, f"This server was created {self.factory.created}")
        self.sendLine(f":{server} {irc.RPL_MYINFO} {self.nick} {server} {version} io n o")
        self.numeric(
            irc.RPL_ISUPPORT,
            "CASEMAPPING=ascii", "CHANTYPES=#", "PREFIX=(o)@", "CHANMODES=,,,n", "CHANLIMIT=#:1",
            f"NICKLEN={NICK_LENGTH}",
            f"CHANNELLEN={CHANNEL_LENGTH}", f"TOPICLEN={TOPIC_LENGTH}",
            f"KICKLEN={KICK_LENGTH}", f"AWAYLEN={AWAY_LENGTH}",
            f"NETWORK={settings.network}",
            "TARGMAX=PRIVMSG:1,NOTICE:1,JOIN:1,PART:1,KICK:1,NAMES:1,WHOIS:1",
            "are supported by this server",
        )
        motd = settings.motd or hub.settings.motd
        if motd:
            self.numeric(irc.RPL_MOTDSTART, f"- {server} Message of the day -")
            for line in motd.splitlines():
                self.numeric(irc.RPL_MOTD, "- " + clean(line))
            self.numeric(irc.RPL_ENDOFMOTD, "End of /MOTD command.")
        else:
            self.numeric(irc.ERR_NOMOTD, "MOTD File is missing")

    # -- rooms --------------------------------------------------------------------------

    def room_of(self, name: str) -> Room | None:
        """The room called C{name} (any case), if it exists."""
        return self.factory.hub.rooms.get(name.lower())

    def in_room(self, name: str) -> Room | None:
        """C{name}, if the user is in it; else C{403} or C{442}, and C{None}."""
        room = self.room_of(name)
        if room is None:
            self.numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel")
        elif self.session.room is not room:
            self.numeric(irc.ERR_NOTONCHANNEL, name, "You're not on that channel")
            room = None
        return room

    def irc_JOIN(self, prefix: Any, params: list[str]) -> None:
        if not self.needs(params, 1, "JOIN"):
            return
        first, *others = params[0].split(",")
        hub = self.factory.hub
        if first == "0":
            hub.leave(self.session, "left")
            return
        for other in others:
            self.numeric(irc.ERR_TOOMANYCHANNELS, other, "One channel at a time here")
        if not ROOM_NAME.match(first):
            self.numeric(
                irc.ERR_NOSUCHCHANNEL, first,
                "No such channel: a room name is # and 1 to 16 letters, digits, _, - or .",
            )
            return
        room = self.room_of(first)
        if room is self.session.room and room is not None:
            return
        if room is None and len(hub.rooms) >= hub.settings.max_rooms:
            self.numeric(
                irc.ERR_TOOMANYCHANNELS, first,
                f"There are already {hub.settings.max_rooms} rooms; join one of them",
            )
            return
        hub.join(self.session, room or hub.room(first))

    def irc_PART(self, prefix: Any, params: list[str]) -> None:
        if self.needs(params, 1, "PART") and self.in_room(params[0].split(",")[0]):
            self.factory.hub.leave(self.session, "left")

    def irc_TOPIC(self, prefix: Any, params: list[str]) -> None:
        if not self.needs(params, 1, "TOPIC"):
            return
        if len(params) == 1:
            if self.room_of(params[0]) is None:
                self.numeric(irc.ERR_NOSUCHCHANNEL, params[0], "No such channel")
            else:
                self.send_topic(params[0])
            return
        room = self.in_room(params[0])
        hub = self.factory.hub
        if room is not None and not hub.muted(self.session):
            hub.set_topic(self.session, room, clean(irc.stripFormatting(params[1])).strip())

    def send_topic(self, name: str, quiet: bool = False) -> None:
        """C{332} and C{333}, or C{331} (unless C{quiet}, as on joining)."""
        room = self.room_of(name)
        if room is None:
            return
        if room.topic:
            self.topic(self.nick, room.name, room.topic)
            self.topicAuthor(self.nick, room.name, room.topic_by, int(room.topic_at))
        elif not quiet:
            self.topic(self.nick, room.name, None)

    def others_in(self, name: str) -> list[RemoteUser]:
        """The users on the cluster's other nodes in the room C{name} (none without a cluster)."""
        cluster = self.factory.hub.cluster
        return [] if cluster is None else cluster.members(name)

    def send_names(self, name: str) -> None:
        """C{353} (the room's users here, then on other nodes) and C{366}."""
        room = self.room_of(name)
        here = [] if room is None else [
            ("@" if m.oper else "") + m.name for m in room.members if m.state == CHATTING
        ]
        names = here + [("@" if u.oper else "") + u.nick for u in self.others_in(name)]
        self.names(self.nick, name if room is None else room.name, names)

    def irc_NAMES(self, prefix: Any, params: list[str]) -> None:
        name = params[0].split(",")[0] if params and params[0] else self.channel
        if name is None:
            self.numeric(irc.RPL_ENDOFNAMES, "*", "End of /NAMES list")
        else:
            self.send_names(name)

    def irc_LIST(self, prefix: Any, params: list[str]) -> None:
        self.numeric(irc.RPL_LISTSTART, "Channel", "Users  Name")
        hub = self.factory.hub
        for room in sorted(hub.rooms.values(), key=lambda r: r.name.lower()):
            self.numeric(irc.RPL_LIST, room.name, str(hub.headcount(room)), room.topic)
        self.numeric(irc.RPL_LISTEND, "End of /LIST")

    # -- people --------------------------------------------------------------------------

    def irc_WHO(self, prefix: Any, params: list[str]) -> None:
        mask = params[0] if params and params[0] else "*"
        hub = self.factory.hub
        others: list[RemoteUser] = []
        if mask.startswith("#"):
            room = self.room_of(mask)
            members = [] if room is None else [m for m in room.members if m.state == CHATTING]
            others = self.others_in(mask)
        else:
            found = hub.find(mask)
            members = [found] if found is not None else []
            other = self.elsewhere(mask) if found is None else None
            others = [other] if other is not None else []
        for member in members:
            where = member.room.name if member.room is not None else "*"
            away = isinstance(member.client, IrcUser) and bool(member.client.away)
            flags = ("G" if away else "H") + ("@" if member.oper else "")
            self.numeric(
                irc.RPL_WHOREPLY, where, f"~{member.name}", self.hostname, self.hostname,
                member.name, flags, f"0 {real_name(member)}",
            )
        for user in others:
            # On another server: its name as their host and server, one hop away.
            self.numeric(
                irc.RPL_WHOREPLY, user.room or "*", f"~{user.nick}", user.node, user.node,
                user.nick, "H@" if user.oper else "H", f"1 {CHAT_USER}",
            )
        self.numeric(irc.RPL_ENDOFWHO, mask, "End of /WHO list")

    def irc_WHOIS(self, prefix: Any, params: list[str]) -> None:
        if not self.needs(params, 1, "WHOIS"):
            return
        nick = params[-1].split(",")[0]
        target = self.factory.hub.find(nick)
        other = self.elsewhere(nick) if target is None else None
        if other is not None:
            # On another server of the chat: its name as the user's host and server.
            self.numeric(irc.RPL_WHOISUSER, other.nick, f"~{other.nick}", other.node, "*",
                         CHAT_USER)
            if other.room is not None:
                self.numeric(irc.RPL_WHOISCHANNELS, other.nick,
                             ("@" if other.oper else "") + other.room)
            self.numeric(irc.RPL_WHOISSERVER, other.nick, other.node,
                         "another server of this chat")
            if other.oper:
                self.numeric(irc.RPL_WHOISOPERATOR, other.nick, "is a chat operator")
        elif target is None:
            self.numeric(irc.ERR_NOSUCHNICK, nick, "No such nick/channel")
        else:
            name = target.name
            self.numeric(
                irc.RPL_WHOISUSER, name, f"~{name}", self.hostname, "*", real_name(target)
            )
            if target.room is not None:
                mark = "@" if target.oper else ""
                self.numeric(irc.RPL_WHOISCHANNELS, name, mark + target.room.name)
            self.numeric(
                irc.RPL_WHOISSERVER, name, self.hostname, f"{self.factory.settings.network} chat"
            )
            if target.oper:
                self.numeric(irc.RPL_WHOISOPERATOR, name, "is a chat operator")
            if isinstance(target.client, IrcUser) and target.client.away:
                self.numeric(irc.RPL_AWAY, name, target.client.away)
        self.numeric(irc.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")

    def elsewhere(self, nick: str) -> RemoteUser | None:
        """The user called C{nick} on another node of the cluster, if any."""
        cluster = self.factory.hub.cluster
        return None if cluster is None else cluster.holder(nick)

    def irc_USERHOST(self, prefix: Any, params: list[str]) -> None:
        found = []
        for nick in params[:5]:
            target = self.factory.hub.find(nick)
            other = self.elsewhere(nick) if target is None else None
            if target is not None:
                mark = "*" if target.oper else ""
                away = isinstance(target.client, IrcUser) and bool(target.client.away)
                found.append(f"{target.name}{mark}={'-' if away else '+'}~{target.name}"
                             f"@{self.hostname}")
            elif other is not None:
                mark = "*" if other.oper else ""
                found.append(f"{other.nick}{mark}=+~{other.nick}@{other.node}")
        self.numeric(irc.RPL_USERHOST, " ".join(found))

    def irc_ISON(self, prefix: Any, params: list[str]) -> None:
        hub = self.factory.hub
        online = []
        for nick in " ".join(params).split()[:50]:
            target = hub.find(nick)
            other = self.elsewhere(nick) if target is None else None
            if target is not None:
                online.append(target.name)
            elif other is not None:
                online.append(other.nick)
        self.numeric(irc.RPL_ISON, " ".join(online))

    def irc_AWAY(self, prefix: Any, params: list[str]) -> None:
        text = clean(irc.stripFormatting(params[0])).strip()[:AWAY_LENGTH] if params else ""
        self.away = text
        if text:
            self.numeric(irc.RPL_NOWAWAY, "You have been marked as being away")
        else:
            self.numeric(irc.RPL_UNAWAY, "You are no longer marked as being away")

    # -- messages -----------------------------------------------------------------------

    def irc_PRIVMSG(self, prefix: Any, params: list[str]) -> None:
        self.relay("PRIVMSG", params)

    def irc_NOTICE(self, prefix: Any, params: list[str]) -> None:
        self.relay("NOTICE", params)

    def relay(self, command: str, params: list[str]) -> None:
        """A PRIVMSG or NOTICE from this user to a #room or a nick."""
        if not params or not params[0]:
            self.numeric(irc.ERR_NORECIPIENT, f"No recipient given ({command})")
            return
        if len(params) < 2 or not params[1]:
            self.numeric(irc.ERR_NOTEXTTOSEND, "No text to send")
            return
        target, raw = params[0], params[1]
        if "," in target:
            self.numeric(irc.ERR_TOOMANYTARGETS, target, "One recipient at a time here")
            return
        notice = command == "NOTICE"
        action = raw.startswith("\x01ACTION ") and not notice
        if raw.startswith("\x01") and not action:
            if not notice:  # never answer a NOTICE (CTCP replies included)
                word = raw.strip("\x01").split(" ", 1)[0]
                self.server_notice(f"CTCP {clean(word)[:20]} is not relayed here.")
            return
        text = clean(irc.stripFormatting(raw[8:].rstrip("\x01") if action else raw)).strip()
        if not text:
            self.numeric(irc.ERR_NOTEXTTOSEND, "No text to send")
            return
        hub = self.factory.hub
        if target.startswith("#"):
            room = self.room_of(target)
            if room is None:
                self.numeric(irc.ERR_NOSUCHCHANNEL, target, "No such channel")
            elif self.session.room is not room:
                self.numeric(irc.ERR_CANNOTSENDTOCHAN, target, "Cannot send to channel")
            elif action:
                hub.action(self.session, text)
            else:
                hub.say(self.session, text, notice=notice)
            return
        if target.lower() == SERVICES.lower():
            if not notice:
                self.services(text)
            return
        to = hub.find(target)
        if to is None:
            self.numeric(irc.ERR_NOSUCHNICK, target, "No such nick/channel")
            return
        if hub.muted(self.session):
            return
        hub.private(self.session, to, f"* {self.session.name} {text}" if action else text,
                    notice=notice)
        if not notice and isinstance(to.client, IrcUser) and to.client.away:
            self.numeric(irc.RPL_AWAY, to.name, to.client.away)

    # -- registered nicks and operators ---------------------------------------------------

    def irc_NICKSERV(self, prefix: Any, params: list[str]) -> None:
        self.services(" ".join(params))

    irc_NS = irc_NICKSERV

    def services(self, text: str) -> None:
        """
        C{NickServ}'s commands, as the chat's slash commands (their answers
        come back as notices): IDENTIFY [NICK] PASSWORD, REGISTER PASSWORD.
        """
        word, _, rest = text.strip().partition(" ")
        word, rest = word.upper(), rest.strip()
        hub = self.factory.hub
        if word == "IDENTIFY" and rest:
            nick, _, password = rest.partition(" ")
            if password:  # IDENTIFY NICK PASSWORD: become that registered nick
                COMMANDS["nick"].run(hub, self.session, f"{nick} {password.strip()}")
            else:
                COMMANDS["identify"].run(hub, self.session, rest)
        elif word == "REGISTER" and rest:
            COMMANDS["register"].run(hub, self.session, rest)
        else:
            self.server_notice(
                f"{SERVICES}: IDENTIFY [NICK] PASSWORD, or REGISTER PASSWORD for your nick."
            )

    def change_nick(self, nick: str) -> None:
        """NICK once in: as the chat's /nick (a registered nick needs NickServ IDENTIFY)."""
        hub = self.factory.hub
        session = self.session
        if nick == session.name:
            return
        refusal = hub.nick_refusal(nick, session)
        if refusal is not None:
            self.refuse_nick(nick, *refusal)
            return
        if hub.muted(session):
            return
        registered = hub.store is not None and hub.store.registered(nick) is not None
        if registered and not (nick.lower() == session.name.lower() and session.identified):
            self.numeric(
                irc.ERR_NICKNAMEINUSE, nick,
                f"The nick {nick} is registered: /msg {SERVICES} IDENTIFY {nick} PASSWORD",
            )
            return
        hub.rename(session, nick)

    def irc_OPER(self, prefix: Any, params: list[str]) -> None:
        """OPER NAME PASSWORD: the chat's operator password (any name)."""
        if not self.needs(params, 2, "OPER"):
            return
        hub, session = self.factory.hub, self.session
        if session.oper:
            self.numeric(irc.RPL_YOUREOPER, "You are already an operator")
            return
        stored = hub.settings.oper_password_hash
        if not stored:
            self.numeric(irc.ERR_NOOPERHOST, "This chat has no operator password configured")
            return

        def right() -> None:
            if session.state != CHATTING:
                return
            session.oper = True
            hub.count("opers")
            hub.event("oper", session)
            self.numeric(irc.RPL_YOUREOPER, "You are now a chat operator")
            self.sendLine(f":{self.nick} MODE {self.nick} :+o")

        def wrong(locked: bool) -> None:
            if session.state == CHATTING:
                self.numeric(irc.ERR_PASSWDMISMATCH, "Password incorrect")
                if not locked:
                    hub.wrong_password(session)

        hub.check_password(session, OPER, params[1], stored, right, wrong)

    def irc_KICK(self, prefix: Any, params: list[str]) -> None:
        """KICK #ROOM NICK [REASON]: the chat's /kick, for operators, of someone in #ROOM."""
        if not self.needs(params, 2, "KICK"):
            return
        hub, session = self.factory.hub, self.session
        name, nick = params[0], params[1].split(",")[0]
        room = self.room_of(name)
        if room is None:
            self.numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel")
            return
        if not session.oper:
            self.numeric(irc.ERR_CHANOPRIVSNEEDED, room.name, "You're not a chat operator (OPER)")
            hub.event("refused_command", session, LogLevel.warn, detail="KICK")
            return
        target = hub.find(nick)
        if target is None:
            self.numeric(irc.ERR_NOSUCHNICK, nick, "No such nick/channel")
        elif target.room is not room:
            self.numeric(irc.ERR_USERNOTINCHANNEL, nick, room.name, "They aren't on that channel")
        else:
            reason = clean(irc.stripFormatting(params[2] if len(params) > 2 else "")).strip()
            hub.kick(session, target, reason[:KICK_LENGTH])

    def irc_MODE(self, prefix: Any, params: list[str]) -> None:
        if not self.needs(params, 1, "MODE"):
            return
        target, changes = params[0], "".join(params[1:2])
        if target.startswith("#"):
            self.room_mode(target, changes)
        elif target.lower() != self.session.name.lower():
            self.numeric(irc.ERR_USERSDONTMATCH, "Can't change mode for other users")
        else:
            self.user_mode(changes)

    def room_mode(self, name: str, changes: str) -> None:
        room = self.room_of(name)
        if room is None:
            self.numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel")
        elif not changes:
            self.sendLine(f":{self.hostname} {irc.RPL_CHANNELMODEIS} {self.nick} {room.name} +n")
        elif changes.lstrip("+") == "b":  # the ban list: clients ask on joining
            self.numeric(irc.RPL_ENDOFBANLIST, room.name, "End of channel ban list")
        elif not self.session.oper:
            self.numeric(irc.ERR_CHANOPRIVSNEEDED, room.name, "You're not a chat operator (OPER)")
        else:
            letter = changes.lstrip("+-")[:1] or changes[:1]
            self.numeric(irc.ERR_UNKNOWNMODE, letter, "Room modes cannot be changed here")

    def user_mode(self, changes: str) -> None:
        session = self.session
        adding = True
        done = ""
        for letter in changes:
            if letter in "+-":
                adding = letter == "+"
            elif letter == "i" and self.invisible != adding:
                self.invisible = adding
                done += ("+" if adding else "-") + "i"
            elif letter == "o" and not adding and session.oper:
                session.oper = False  # anyone may give up being an operator
                done += "-o"
            elif letter not in "io":
                self.numeric(irc.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
                return
        if done:
            self.sendLine(f":{self.nick} MODE {self.nick} :{done}")
        elif not changes:
            modes = "+" + ("i" if self.invisible else "") + ("o" if session.oper else "")
            self.numeric(irc.RPL_UMODEIS, modes)

    # -- staying connected, leaving --------------------------------------------------------

    def irc_PING(self, prefix: Any, params: list[str]) -> None:
        token = params[0] if params else self.hostname
        self.sendLine(f":{self.hostname} PONG {self.hostname} :{token}")

    def irc_PONG(self, prefix: Any, params: list[str]) -> None:
        """Any input answers a PING: nothing more to do."""

    def irc_QUIT(self, prefix: Any, params: list[str]) -> None:
        reason = clean(irc.stripFormatting(params[0])).strip()[:100] if params else ""
        self.factory.hub.close(self.session, f"quit: {reason}" if reason else "quit")

    def _arm_idle(self) -> None:
        self.setTimeout(self.factory.settings.idle_timeout or None)

    def timeoutConnection(self) -> None:
        """Silent for C{idle_timeout}: PING; silent for C{ping_timeout} more: close."""
        settings = self.factory.settings
        if not self.ping_sent:
            self.ping_sent = True
            self.sendLine(f"PING :{self.hostname}")
            self.setTimeout(settings.ping_timeout)
            return
        self.end(f"Ping timeout: {settings.idle_timeout + settings.ping_timeout:g} seconds")
        # A client that stopped reading never lets the goodbye drain.
        self._linger = self.callLater(SHUTDOWN_GRACE, self.abort)

    def shutdown(self, reason: str) -> None:
        self.server_notice("* server shutting down")
        self.end(reason)


def real_name(session: Session) -> str:
    """What WHO and WHOIS show as C{session}'s real name."""
    client = session.client
    if isinstance(client, IrcUser) and client.realname:
        return client.realname
    return CHAT_USER


class IrcFactory(ChatFactory):
    """
    The IRC listener's factory: every connection joins the shared hub, and
    its output is gathered and sent once a reactor pass, as the line chat's.
    """

    protocol = IrcUser
    settings: IrcSettings  # type: ignore[assignment]

    def __init__(
        self, settings: IrcSettings, events: EventLog, clock: IReactorTime, hub: ChatHub
    ) -> None:
        super().__init__(settings, events, clock, hub)  # type: ignore[arg-type]
        self.created = datetime.fromtimestamp(clock.seconds(), UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        protocol = super().buildProtocol(addr)
        if isinstance(protocol, RefusedProtocol):
            return IrcRefused(protocol.reason)
        return protocol

    def shutdown(self, reason: str = "server shutdown") -> Deferred[None]:
        """Each IRC user says its own goodbye (the chat's factory shuts down the hub)."""
        return StreamFactory.shutdown(self, reason)
