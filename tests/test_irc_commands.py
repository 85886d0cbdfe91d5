"""
The IRC front-end in memory, command by command: registration (CAP, PASS,
NICK, USER), the welcome, rooms, messages to rooms and nicks, topics,
listings, modes, operators, the numeric errors, and every chat rule
(flood control, mutes, bans, sanitising, the login deadline, PING
timeouts, slow readers, payload samples) on a hub shared with a telnet
user.  No sockets, no wall-clock time: L{memory.MemoryTCP} on a
L{task.Clock}, one C{advance(0)} per reactor pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.error import ConnectionAborted
from twisted.internet.task import Clock

from helpers import make_hub
from memory import MemoryTCP, serve
from netlab.core.events import DROPPED, RECEIVED, SENT
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.chat.line import ChatFactory
from netlab.protocols.chat.store import ChatStore, HistoryLine
from netlab.protocols.irc.server import IrcFactory, iso_time, loggable, pieces
from netlab.protocols.irc.settings import IrcSettings

RIGHT = "right password"


def verify(password: str, stored: str) -> Any:
    return succeed(password == RIGHT)


class Lab:
    """A hub with an IRC front-end and a telnet front-end on it, on one clock."""

    def __init__(self, events: Any, store: Any = None, irc: dict[str, Any] | None = None,
                 on: tuple[ChatHub, Clock] | None = None, **chat: Any) -> None:
        """C{on}: an IRC front-end on this hub and its clock (a cluster's node), not a new hub."""
        self.events = events
        if on is None:
            self.clock = Clock()
            self.hub = make_hub(events, self.clock, store, verify=verify, **chat)
        else:
            self.hub, self.clock = on
        self.irc = IrcFactory(IrcSettings(name="irc", **(irc or {})), events, self.clock, self.hub)
        self.line = ChatFactory(self.hub.settings, events, self.clock, self.hub)
        self.ports = iter(range(40000, 41000))

    def connect(self, host: str = "127.0.0.1") -> IrcClient:
        protocol, transport = serve(self.irc, self.clock, host=host, port=next(self.ports))
        return IrcClient(self, protocol, transport)

    def user(self, nick: str, *first: str) -> IrcClient:
        """An IRC user registered as C{nick} (after C{first} lines), in #lobby, all read."""
        client = self.connect()
        client.send(*first, f"NICK {nick}", f"USER {nick} 0 * :{nick} the tester")
        assert f"001 {nick} " in client.text(), client.seen
        return client

    def telnet(self, nick: str) -> MemoryTCP:
        _, transport = serve(self.line, self.clock, port=next(self.ports))
        transport.peer_write(nick.encode() + b"\r\n")
        self.clock.advance(0)
        assert b"You are now in #lobby" in transport.peer_read()
        return transport

    def said(self, transport: MemoryTCP, text: str) -> str:
        """A telnet user types C{text}; what every IRC reader sees comes next."""
        transport.peer_write(text.encode() + b"\r\n")
        self.clock.advance(0)
        return transport.peer_read().decode()


class IrcClient:
    """One IRC client's end: send lines, read what came back."""

    def __init__(self, lab: Lab, protocol: Any, transport: MemoryTCP) -> None:
        self.lab = lab
        self.protocol = protocol
        self.transport = transport
        self.seen: list[str] = []

    def send(self, *lines: str) -> None:
        self.transport.peer_write("".join(line + "\r\n" for line in lines).encode())
        self.lab.clock.advance(0)

    def lines(self) -> list[str]:
        """The lines that came since the last read."""
        self.lab.clock.advance(0)
        data = self.transport.peer_read().decode("utf-8")
        lines = data.split("\r\n")
        assert lines[-1] == "", data
        self.seen.extend(lines[:-1])
        return lines[:-1]

    def text(self) -> str:
        return "\n".join(self.lines())

    def ask(self, *lines: str) -> str:
        """Send C{lines}; everything that came back."""
        self.send(*lines)
        return self.text()


@pytest.fixture
def chat_store() -> Iterator[ChatStore]:
    """A real store in memory; its writer thread is stopped after the test."""
    store = ChatStore(":memory:", 20, reactor)
    store.open()
    yield store
    pytest_twisted.blockon(store.close())


@pytest.fixture
def lab(events: Any) -> Lab:
    """A lab whose flood control (tested on its own) lets a test's commands through."""
    return Lab(events, flood_lines=1000)


def test_registration_with_cap_negotiation(lab: Lab) -> None:
    """CAP LS 302 holds the welcome until CAP END; then 001-005, the MOTD and the lobby."""
    alice = lab.connect()
    assert alice.ask("CAP LS 302", "NICK alice", "USER al 0 * :Alice A") == (
        ":netlab.local CAP * LS :server-time"
    )
    assert alice.ask("CAP REQ :server-time") == ":netlab.local CAP * ACK :server-time"
    assert alice.ask("CAP REQ :sasl") == ":netlab.local CAP * NAK :sasl"
    lines = alice.ask("CAP END").splitlines()
    codes = [line.split()[1] for line in lines]
    assert codes == [
        "001", "002", "003", "004", "005", "375", "372", "376", "JOIN", "353", "366",
    ]
    assert lines[0] == ":netlab.local 001 alice :Welcome to the netlab IRC network, alice"
    for token in ("CASEMAPPING=ascii", "CHANTYPES=#", "PREFIX=(o)@", "NICKLEN=16",
                  "CHANNELLEN=17", "TOPICLEN=200", "CHANLIMIT=#:1"):
        assert f" {token} " in lines[4]
    assert lines[6] == (
        ":netlab.local 372 alice :- Welcome to the netlab chat. Type /help for the commands."
    )
    assert lines[8] == ":alice!~alice@netlab.local JOIN #lobby"
    assert lines[9] == ":netlab.local 353 alice = #lobby :alice"
    assert alice.ask("CAP LIST") == ":netlab.local CAP alice LIST :server-time"
    assert alice.ask("CAP FOO") == ":netlab.local 410 alice FOO :Invalid CAP command"


def test_without_cap_and_with_an_empty_motd(events: Any) -> None:
    """A client that never says CAP is welcomed on NICK and USER; no MOTD is 422."""
    lab = Lab(events, irc={"motd": ""}, motd="")
    bob = lab.connect()
    lines = bob.ask("USER b 0 * :B", "NICK bob").splitlines()
    assert [line.split()[1] for line in lines][:6] == ["001", "002", "003", "004", "005", "422"]


def test_irc_motd_setting_wins(events: Any) -> None:
    lab = Lab(events, irc={"motd": "IRC line one\nline two"})
    alice = lab.connect()
    text = alice.ask("NICK alice", "USER a 0 * :A")
    assert ":netlab.local 372 alice :- IRC line one\n:netlab.local 372 alice :- line two" in text


def test_commands_before_registration(lab: Lab) -> None:
    """Only registration commands before the welcome: 451; PING is answered."""
    client = lab.connect()
    assert client.ask("JOIN #x") == ":netlab.local 451 * :You have not registered"
    assert client.ask("PING :abc") == ":netlab.local PONG netlab.local :abc"
    assert client.ask("USER x") == ":netlab.local 461 * USER :Not enough parameters"
    assert client.ask("NICK") == ":netlab.local 431 * :No nickname given"


def test_nick_errors(lab: Lab) -> None:
    """432 for a nick the chat refuses, 433 for one in use, before and after the welcome."""
    lab.telnet("bob")
    client = lab.connect()
    assert client.ask("NICK b@d") == (
        ":netlab.local 432 * b@d :A nick is 1 to 16 letters, digits, _, - or ."
    )
    assert client.ask("NICK NickServ") == (
        ":netlab.local 432 * NickServ :The nick NickServ is reserved."
    )
    assert client.ask("NICK BOB") == ":netlab.local 433 * BOB :The nick BOB is taken."
    assert "001 carol" in client.ask("NICK carol", "USER c 0 * :C")
    assert client.ask("NICK Bob") == ":netlab.local 433 carol Bob :The nick Bob is taken."
    assert client.ask("NICK carol") == ""


def test_nick_change_seen_by_everyone(lab: Lab) -> None:
    alice = lab.user("alice")
    bob = lab.telnet("bob")
    alice.lines()
    assert alice.ask("NICK alicia") == ":alice!~alice@netlab.local NICK :alicia"
    bob.peer_read()
    assert lab.said(bob, "/nick robert") == "You are now known as robert.\r\n"
    assert alice.text() == ":bob!~bob@netlab.local NICK :robert"


def test_room_messages_both_ways(lab: Lab) -> None:
    """PRIVMSG and CTCP ACTION to #lobby reach telnet users; their lines come as PRIVMSG."""
    alice = lab.user("alice")
    bob = lab.telnet("bob")
    assert alice.text() == ":bob!~bob@netlab.local JOIN #lobby"
    alice.send("PRIVMSG #lobby :hello bob", "PRIVMSG #LOBBY :\x01ACTION waves\x01")
    lab.clock.advance(0)
    assert bob.peer_read().decode() == "[00:00] <alice> hello bob\r\n[00:00] * alice waves\r\n"
    lab.said(bob, "hi alice")
    lab.said(bob, "/me smiles")
    assert alice.lines() == [
        ":bob!~bob@netlab.local PRIVMSG #lobby :hi alice",
        ":bob!~bob@netlab.local PRIVMSG #lobby :\x01ACTION smiles\x01",
    ]
    alice.send("NOTICE #lobby :a notice")
    lab.clock.advance(0)
    assert bob.peer_read() == b"[00:00] -alice- a notice\r\n"


def test_message_errors(lab: Lab) -> None:
    alice = lab.user("alice")
    assert alice.ask("PRIVMSG") == ":netlab.local 411 alice :No recipient given (PRIVMSG)"
    assert alice.ask("PRIVMSG #lobby") == ":netlab.local 412 alice :No text to send"
    assert alice.ask("PRIVMSG #nowhere :x") == ":netlab.local 403 alice #nowhere :No such channel"
    assert alice.ask("PRIVMSG nobody :x") == ":netlab.local 401 alice nobody :No such nick/channel"
    assert alice.ask("PRIVMSG a,b :x") == (
        ":netlab.local 407 alice a,b :One recipient at a time here"
    )
    lab.user("bob").send("JOIN #side")
    alice.lines()
    assert alice.ask("PRIVMSG #side :x") == ":netlab.local 404 alice #side :Cannot send to channel"
    assert alice.ask("PRIVMSG #lobby :\x01VERSION\x01") == (
        ":netlab.local NOTICE alice :CTCP VERSION is not relayed here."
    )
    assert alice.ask("FROB x") == ":netlab.local 421 alice FROB :Unknown command"
    assert alice.ask("PRIVMSG #lobby :\x02\x03\x0f") == ":netlab.local 412 alice :No text to send"


def test_sanitising(lab: Lab) -> None:
    """Escapes and invisible characters never reach anyone; IRC colours are removed first."""
    alice = lab.user("alice")
    bob = lab.telnet("bob")
    alice.lines()
    alice.send("PRIVMSG #lobby :\x0304,05red\x0f \x1b[2Jclear\u202eevil")
    lab.clock.advance(0)
    assert bob.peer_read().decode() == "[00:00] <alice> red clearevil\r\n"
    lab.said(bob, "\x1b]0;title\x07x\u200by")
    assert alice.lines() == [":bob!~bob@netlab.local PRIVMSG #lobby :xy"]


def test_private_messages(lab: Lab) -> None:
    alice = lab.user("alice")
    carol = lab.user("carol")
    bob = lab.telnet("bob")
    alice.lines()
    carol.lines()
    alice.send("PRIVMSG bob :psst", "PRIVMSG carol :hi carol", "NOTICE carol :fyi")
    lab.clock.advance(0)
    assert bob.peer_read() == b"[00:00] *alice* psst\r\n"
    assert carol.lines() == [
        ":alice!~alice@netlab.local PRIVMSG carol :hi carol",
        ":alice!~alice@netlab.local NOTICE carol :fyi",
    ]
    assert alice.lines() == []  # no echo
    assert lab.said(bob, "/msg alice back") == "-> *alice* back\r\n"
    assert alice.lines() == [":bob!~bob@netlab.local PRIVMSG alice :back"]


def test_away(lab: Lab) -> None:
    alice = lab.user("alice")
    bob = lab.user("bob")
    alice.lines()
    assert bob.ask("AWAY :lunch") == ":netlab.local 306 bob :You have been marked as being away"
    assert alice.ask("PRIVMSG bob :there?") == ":netlab.local 301 alice bob :lunch"
    assert ":netlab.local 352 alice #lobby ~bob netlab.local netlab.local bob G :0" in (
        alice.ask("WHO #lobby")
    )
    assert bob.ask("AWAY").endswith(" 305 bob :You are no longer marked as being away")


def test_join_part_and_one_room_at_a_time(lab: Lab) -> None:
    """JOIN moves to the room (parting the other); PART leaves for no room; 403, 442, 405."""
    alice = lab.user("alice")
    bob = lab.telnet("bob")
    alice.lines()
    assert alice.ask("JOIN #lab") .splitlines() == [
        ":alice!~alice@netlab.local PART #lobby",
        ":alice!~alice@netlab.local JOIN #lab",
        ":netlab.local 353 alice = #lab :alice",
        ":netlab.local 366 alice #lab :End of /NAMES list",
    ]
    assert bob.peer_read() == b"* alice has left #lobby\r\n"
    assert alice.ask("JOIN #lab") == ""
    assert alice.ask("JOIN bad") .startswith(":netlab.local 403 alice bad :No such channel")
    assert alice.ask("PART #lobby") == ":netlab.local 442 alice #lobby :You're not on that channel"
    assert alice.ask("PART #gone") == ":netlab.local 403 alice #gone :No such channel"
    assert alice.ask("JOIN #lobby,#x").splitlines()[0] == (
        ":netlab.local 405 alice #x :One channel at a time here"
    )
    assert lab.said(bob, "/who") == "* alice has joined #lobby\r\nIn #lobby (2): bob, alice\r\n"
    assert alice.ask("PART #lobby :bye").splitlines() == [":alice!~alice@netlab.local PART #lobby"]
    assert lab.hub.find("alice").room is None  # type: ignore[union-attr]
    lab.clock.advance(0)
    assert bob.peer_read() == b"* alice has left #lobby\r\n"
    assert alice.ask("PRIVMSG #lobby :x") == (
        ":netlab.local 404 alice #lobby :Cannot send to channel"
    )


def test_too_many_rooms(events: Any) -> None:
    lab = Lab(events, max_rooms=1)
    alice = lab.user("alice")
    assert alice.ask("JOIN #new") == (
        ":netlab.local 405 alice #new :There are already 1 rooms; join one of them"
    )


def test_topic(lab: Lab) -> None:
    """TOPIC sets (everyone hears it, the setter too) and shows 332/333 or 331."""
    alice = lab.user("alice")
    bob = lab.telnet("bob")
    alice.lines()
    assert alice.ask("TOPIC #lobby") == ":netlab.local 331 alice #lobby :No topic is set."
    lab.clock.advance(60)
    assert alice.ask("TOPIC #lobby :Lab \x02day\x02") == (
        ":alice!~alice@netlab.local TOPIC #lobby :Lab day"
    )
    assert bob.peer_read() == b"* alice set the topic of #lobby: Lab day\r\n"
    assert alice.ask("TOPIC #lobby").splitlines() == [
        ":netlab.local 332 alice #lobby :Lab day",
        ":netlab.local 333 alice #lobby alice 60",
    ]
    lab.said(bob, "/topic " + "t" * 300)
    assert alice.lines() == [":bob!~bob@netlab.local TOPIC #lobby :" + "t" * 200]
    assert alice.ask("TOPIC #nope :x") == ":netlab.local 403 alice #nope :No such channel"
    carol = lab.user("carol")
    assert ":netlab.local 332 carol #lobby :" + "t" * 200 in carol.seen


def test_names_who_whois_list_userhost_ison(lab: Lab) -> None:
    alice = lab.user("alice")
    lab.telnet("bob")
    alice.lines()
    assert alice.ask("NAMES #lobby").splitlines() == [
        ":netlab.local 353 alice = #lobby :alice bob",
        ":netlab.local 366 alice #lobby :End of /NAMES list",
    ]
    assert alice.ask("NAMES") .startswith(":netlab.local 353 alice = #lobby :alice bob")
    assert alice.ask("NAMES #none") == ":netlab.local 366 alice #none :End of /NAMES list"
    assert alice.ask("WHO #lobby").splitlines() == [
        ":netlab.local 352 alice #lobby ~alice netlab.local netlab.local alice H "
        ":0 alice the tester",
        ":netlab.local 352 alice #lobby ~bob netlab.local netlab.local bob H :0 netlab chat user",
        ":netlab.local 315 alice #lobby :End of /WHO list",
    ]
    assert alice.ask("WHO nobody") == ":netlab.local 315 alice nobody :End of /WHO list"
    assert alice.ask("WHOIS bob").splitlines() == [
        ":netlab.local 311 alice bob ~bob netlab.local * :netlab chat user",
        ":netlab.local 319 alice bob :#lobby",
        ":netlab.local 312 alice bob netlab.local :netlab chat",
        ":netlab.local 318 alice bob :End of /WHOIS list",
    ]
    assert alice.ask("WHOIS zed").splitlines() == [
        ":netlab.local 401 alice zed :No such nick/channel",
        ":netlab.local 318 alice zed :End of /WHOIS list",
    ]
    assert alice.ask("LIST").splitlines() == [
        ":netlab.local 321 alice Channel :Users  Name",
        ":netlab.local 322 alice #lobby 2 :",
        ":netlab.local 323 alice :End of /LIST",
    ]
    assert alice.ask("USERHOST bob zed") == ":netlab.local 302 alice :bob=+~bob@netlab.local"
    assert alice.ask("ISON bob zed alice") == ":netlab.local 303 alice :bob alice"


def test_modes(lab: Lab) -> None:
    alice = lab.user("alice")
    assert alice.ask("MODE #lobby") == ":netlab.local 324 alice #lobby +n"
    assert alice.ask("MODE #lobby b") == ":netlab.local 368 alice #lobby :End of channel ban list"
    assert alice.ask("MODE #lobby +m") == (
        ":netlab.local 482 alice #lobby :You're not a chat operator (OPER)"
    )
    assert alice.ask("MODE #nope") == ":netlab.local 403 alice #nope :No such channel"
    assert alice.ask("MODE alice") == ":netlab.local 221 alice :+"
    assert alice.ask("MODE alice +i") == ":alice MODE alice :+i"
    assert alice.ask("MODE alice") == ":netlab.local 221 alice :+i"
    assert alice.ask("MODE alice +x") == ":netlab.local 501 alice :Unknown MODE flag"
    assert alice.ask("MODE bob +i") == ":netlab.local 502 alice :Can't change mode for other users"
    assert alice.ask("MODE") == ":netlab.local 461 alice MODE :Not enough parameters"


@pytest.fixture
def oper_lab(events: Any) -> Lab:
    from netlab.core.passwords import hash_password

    return Lab(events, flood_lines=1000, oper_password_hash=hash_password("x"))


def test_oper_and_kick(oper_lab: Lab) -> None:
    """OPER with the chat's operator password; KICK disconnects, as /kick does."""
    lab = oper_lab
    alice = lab.user("alice")
    carol = lab.user("carol")
    bob = lab.telnet("bob")
    alice.lines()
    carol.lines()
    assert alice.ask("KICK #lobby bob") == (
        ":netlab.local 482 alice #lobby :You're not a chat operator (OPER)"
    )
    assert alice.ask("OPER admin wrong").splitlines() == [
        ":netlab.local 464 alice :Password incorrect",
        ":netlab.local NOTICE alice :Wrong password. 2 tries left.",
    ]
    assert alice.ask(f"OPER admin :{RIGHT}").splitlines() == [
        ":netlab.local 381 alice :You are now a chat operator",
        ":alice MODE alice :+o",
    ]
    assert lab.hub.find("alice").oper  # type: ignore[union-attr]
    names = alice.ask("NAMES #lobby")
    assert names.startswith(":netlab.local 353 alice = #lobby :@alice carol bob")
    assert alice.ask("KICK #lobby zed") == ":netlab.local 401 alice zed :No such nick/channel"
    assert alice.ask("KICK #nope bob") == ":netlab.local 403 alice #nope :No such channel"
    carol.send("JOIN #side")
    alice.lines()
    assert alice.ask("KICK #lobby carol") == (
        ":netlab.local 441 alice carol #lobby :They aren't on that channel"
    )
    # The room hears of a kick once the connection is gone, as of a quit.
    assert alice.ask("KICK #lobby bob :be nice") == ""
    assert bob.peer_read().endswith(b"* You were kicked by alice: be nice\r\n")
    assert alice.text() == ":alice!~alice@netlab.local KICK #lobby bob :be nice"
    assert not bob.connected
    carol.lines()
    assert carol.ask("JOIN #lobby").splitlines()[0].endswith("PART #side")
    alice.lines()
    assert alice.ask("KICK #lobby carol") == ""
    assert carol.lines()[-2:] == [
        ":alice!~alice@netlab.local KICK #lobby carol :alice",
        "ERROR :Closing link: netlab.local (kicked by alice)",
    ]
    assert alice.text() == ":alice!~alice@netlab.local KICK #lobby carol :alice"
    assert alice.ask("MODE alice -o") == ":alice MODE alice :-o"
    assert not lab.hub.find("alice").oper  # type: ignore[union-attr]


def test_no_oper_password(lab: Lab) -> None:
    alice = lab.user("alice")
    assert alice.ask("OPER a b") == (
        ":netlab.local 491 alice :This chat has no operator password configured"
    )


def test_quit_is_seen_as_quit(lab: Lab) -> None:
    alice = lab.user("alice")
    bob = lab.user("bob")
    carl = lab.telnet("carl")
    alice.lines()
    bob.lines()
    assert bob.ask("QUIT :gone home") == "ERROR :Closing link: netlab.local (quit: gone home)"
    lab.clock.advance(0)
    lab.clock.advance(0)
    assert alice.lines()[-1] == ":bob!~bob@netlab.local QUIT :quit: gone home"
    assert carl.peer_read().endswith(b"* bob has quit (quit: gone home)\r\n")


def test_history_replayed_with_and_without_server_time(chat_store: ChatStore, events: Any) -> None:
    chat_store.append(HistoryLine("#lobby", 3600.0, "zed", "earlier", False))
    chat_store.append(HistoryLine("#lobby", 3660.0, "zed", "stretches", True))
    lab = Lab(events, chat_store)
    plain = lab.user("plain")
    assert plain.seen[-2:] == [
        ":zed!~zed@netlab.local PRIVMSG #lobby :[01:00] earlier",
        ":zed!~zed@netlab.local PRIVMSG #lobby :\x01ACTION [01:01] stretches\x01",
    ]
    tagged = lab.user("tagged", "CAP LS 302", "CAP REQ server-time", "CAP END")
    assert tagged.seen[-2:] == [
        "@time=1970-01-01T01:00:00.000Z :zed!~zed@netlab.local PRIVMSG #lobby :earlier",
        "@time=1970-01-01T01:01:00.000Z :zed!~zed@netlab.local PRIVMSG #lobby "
        ":\x01ACTION stretches\x01",
    ]


def test_registered_nick_with_pass(chat_store: ChatStore, events: Any) -> None:
    """PASS before NICK identifies a registered nick; a wrong one is 464, then 433."""
    chat_store.register("alice", "stored-hash")
    lab = Lab(events, chat_store)
    right = lab.connect()
    assert "001 alice" in right.ask(f"PASS :{RIGHT}", "NICK alice", "USER a 0 * :A")
    assert lab.hub.find("alice").identified  # type: ignore[union-attr]
    right.send("QUIT")
    right.lines()
    lab.clock.advance(0)

    wrong = lab.connect()
    lines = wrong.ask("PASS nope", "NICK alice", "USER a 0 * :A").splitlines()
    assert lines == [
        ":netlab.local NOTICE * :Wrong password. 2 tries left.",
        ":netlab.local 464 * :Password incorrect",
        ":netlab.local 433 * alice :The nick alice is registered: connect with its "
        "password (PASS), or as another nick and /msg NickServ IDENTIFY alice PASSWORD",
    ]
    none = lab.connect()
    assert none.ask("NICK alice", "USER a 0 * :A").startswith(":netlab.local 433 * alice ")
    assert "001 alice_" in none.ask("NICK alice_")
    none.send(f"PRIVMSG NickServ :IDENTIFY alice {RIGHT}")
    assert ":alice_!~alice_@netlab.local NICK :alice" in none.text()
    assert lab.hub.find("alice").identified  # type: ignore[union-attr]
    assert none.ask("NICK bob", "NICK alice").splitlines()[-1] == (
        ":netlab.local 433 bob alice :The nick alice is registered: "
        "/msg NickServ IDENTIFY alice PASSWORD"
    )


def test_nickserv_register_and_identify(chat_store: ChatStore, events: Any) -> None:
    lab = Lab(events, chat_store)
    alice = lab.user("alice")
    assert alice.ask("PRIVMSG NickServ :REGISTER hunter22") == (
        ":netlab.local NOTICE alice :The nick alice is now registered. Keep the password safe."
    )
    assert chat_store.registered("alice") == "x"
    assert alice.ask("NICKSERV HELP") == (
        ":netlab.local NOTICE alice :NickServ: IDENTIFY [NICK] PASSWORD, or REGISTER "
        "PASSWORD for your nick."
    )


def test_flood_control_and_mutes(events: Any) -> None:
    """Messages cost the chat's tokens: over the limit, a warning, then a mute."""
    lab = Lab(events, flood_lines=3, flood_seconds=10, flood_mute=60)
    alice = lab.user("alice")
    bob = lab.telnet("bob")
    alice.lines()
    alice.send(*(f"PRIVMSG #lobby :line {i}" for i in range(5)))
    lines = alice.lines()
    assert lines == [
        ":netlab.local NOTICE alice :Slow down: at most 3 lines per 10 seconds. "
        "That line was dropped.",
        ":netlab.local NOTICE alice :You are muted for 60 seconds for flooding.",
    ]
    assert bob.peer_read().count(b"<alice>") == 3
    lab.clock.advance(10)
    assert alice.ask("PRIVMSG #lobby :still?") == (
        ":netlab.local NOTICE alice :You are muted for 50 more seconds."
    )
    # Queries cost no chat tokens: a client's automatic WHO and MODE on joining.
    assert "315 alice" in alice.ask("WHO #lobby")


def test_query_limit(events: Any) -> None:
    lab = Lab(events, irc={"max_queries": 3, "query_seconds": 3})
    alice = lab.user("alice")
    lines = alice.ask(*["PING :x"] * 5).splitlines()
    assert lines[-1] == ":netlab.local 263 alice PING :Please wait a while and try again."
    lab.clock.advance(1)
    assert alice.ask("PING :y") == ":netlab.local PONG netlab.local :y"
    assert lab.events.kinds(DROPPED)


def test_long_lines_refused_and_long_messages_split(lab: Lab) -> None:
    """A line over 512 bytes is 417 and nothing of it acted on; long relays are cut in pieces."""
    alice = lab.user("alice")
    bob = lab.telnet("bob")
    alice.lines()
    assert alice.ask("PRIVMSG #lobby :" + "x" * 600, "PRIVMSG #lobby :ok") == (
        ":netlab.local 417 alice :Input line was too long (IRC's limit: 512 bytes)"
    )
    assert bob.peer_read() == b"[00:00] <alice> ok\r\n"
    lab.said(bob, "é" * 400)
    lines = alice.lines()
    assert len(lines) == 2
    assert all(len(line.encode()) <= 510 for line in lines)
    assert "".join(line.split(" :", 1)[1] for line in lines) == "é" * 400


def test_pieces_cut_between_characters() -> None:
    assert list(pieces("aé" * 3, 3)) == ["aé", "aé", "aé"]
    assert list(pieces("aé" * 3, 4)) == ["aéa", "éa", "é"]
    assert list(pieces("", 10)) == [""]


def test_iso_time() -> None:
    assert iso_time(86400.25) == "1970-01-02T00:00:00.250Z"


def test_banned_address_refused(events: Any) -> None:
    import ipaddress

    from netlab.protocols.chat.hub import Ban

    lab = Lab(events)
    lab.hub.bans.append(Ban(ipaddress.ip_network("10.0.0.0/8"), 1e9, "op"))
    client = lab.connect(host="10.1.2.3")
    lines = client.lines()
    assert lines[0].startswith(":netlab.local NOTICE * :ERROR You are banned from this chat")
    assert lines[1] == "ERROR :Closing link: netlab.local (banned)"


def test_login_deadline(events: Any) -> None:
    lab = Lab(events, login_timeout=30)
    client = lab.connect()
    client.send("NICK slow")
    lab.clock.advance(30)
    assert client.lines() == [
        ":netlab.local NOTICE * :Login timed out after 30 seconds.",
        "ERROR :Closing link: netlab.local (login timeout)",
    ]
    lab.clock.advance(0)
    assert not client.transport.connected


def test_ping_timeout(events: Any) -> None:
    """Silent for idle_timeout: PING; an answer keeps the user; silence then closes."""
    lab = Lab(events, irc={"idle_timeout": 100, "ping_timeout": 20})
    alice = lab.user("alice")
    lab.clock.advance(100)
    assert alice.lines() == ["PING :netlab.local"]
    alice.send("PONG :netlab.local")
    lab.clock.advance(110)
    assert alice.lines() == ["PING :netlab.local"]
    lab.clock.advance(20)
    assert alice.lines() == ["ERROR :Closing link: netlab.local (Ping timeout: 120 seconds)"]
    lab.clock.advance(0)
    assert not alice.transport.connected


def test_slow_reader_dropped(events: Any) -> None:
    """An IRC user who stops reading is dropped past max_output, as a telnet user is."""
    lab = Lab(events, flood_lines=10_000, irc={"max_output": 65536})
    stuck = lab.user("stuck")
    talker = lab.telnet("talker")
    for _ in range(200):
        talker.peer_write(b"y" * 900 + b"\r\n")
        lab.clock.advance(0)
        if not stuck.transport.connected:
            break
        talker.peer_read()
    lab.clock.advance(0)
    assert isinstance(stuck.transport.lost_reason.value, ConnectionAborted)  # type: ignore[union-attr]
    assert b"* stuck has quit (too slow: output backlog over max_output)" in (
        talker.read_by_peer + talker.peer_read()
    )


def test_shutdown_says_goodbye(lab: Lab) -> None:
    alice = lab.user("alice")
    lab.irc.shutdown()
    assert alice.lines() == [
        ":netlab.local NOTICE alice :* server shutting down",
        "ERROR :Closing link: netlab.local (server shutdown)",
    ]
    lab.clock.advance(0)


def test_refused_connection_is_an_irc_error(events: Any) -> None:
    lab = Lab(events, irc={"max_connections_per_peer": 1})
    lab.user("alice")
    _, transport = serve(lab.irc, lab.clock, port=45000)
    assert transport.peer_read().startswith(b"ERROR :")


def test_payload_samples_hide_secrets(oper_lab: Lab) -> None:
    """PASS, OPER, NickServ and private messages never appear in a sample; room lines do."""
    lab = oper_lab
    alice = lab.user("alice")
    lab.user("bob")
    alice.send(
        "PRIVMSG bob :my secret", "PRIVMSG #lobby :public words", "OPER admin hunter2",
        "PRIVMSG NickServ :IDENTIFY alice hunter3", "NS IDENTIFY hunter4",
    )
    alice.transport.peer_write(b"PASS hunt")
    alice.transport.peer_write(b"er5\r\n")
    samples = " ".join(e["sample"] for e in lab.events.kinds(RECEIVED) + lab.events.kinds(SENT))
    for secret in ("my secret", "hunter2", "hunter3", "hunter4", "hunter5", "er5"):
        assert secret not in samples
    assert "public words" in samples
    assert "PRIVMSG bob :[private]" in samples


def test_loggable() -> None:
    assert loggable("PRIVMSG #room :hello") == "PRIVMSG #room :hello"
    assert loggable("PRIVMSG bob :hello there") == "PRIVMSG bob :[private]"
    assert loggable("privmsg b") == "privmsg b"
    assert loggable("PASS secret") == "PASS [password]"
    assert loggable("PASS") == "PASS"
    assert loggable(":me OPER name pw") == ":me OPER name [password]"
    assert loggable("NICK alice") == "NICK alice"
