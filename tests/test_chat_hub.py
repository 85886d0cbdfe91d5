"""Tests for the transport-free ChatHub and its commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from helpers import make_hub
from netlab.core.passwords import hash_password, verify_password
from netlab.protocols.chat.hub import CHATTING, CLOSED, ChatHub, Session
from netlab.protocols.chat.store import ChatStore

OPER_PASSWORD = "sesame"
OPER_HASH = hash_password(OPER_PASSWORD, n=2**10)


class User:
    """A hub client that records what it is shown: the hub's view of a connection."""

    def __init__(self, hub: ChatHub, host: str = "192.0.2.1", port: int = 5000) -> None:
        self.peer_host = host
        self.peer = f"{host}:{port}"
        self.shown: list[str] = []
        self.ended: str | None = None
        self.hub = hub
        self.session: Session = hub.connect(self)

    def send_line(self, text: str) -> None:
        self.shown.append(text)

    def end(self, reason: str) -> None:
        # What the front-end does: close, then report the loss (the hub may
        # end a session before connect() has even returned it).
        self.ended = reason
        for session in list(self.hub.sessions):
            if session.client is self:
                session.lost(reason)

    def say(self, text: str) -> list[str]:
        """Type a line; what this user was shown because of it."""
        before = len(self.shown)
        self.session.line(text)
        return self.shown[before:]

    def last(self) -> str:
        return self.shown[-1]

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.shown)


@pytest.fixture
def stores() -> Iterator[Callable[[int], ChatStore]]:
    """Makes real in-memory stores; their writer threads are stopped after the test."""
    made: list[ChatStore] = []

    def make(history_lines: int = 20) -> ChatStore:
        s = ChatStore(":memory:", history_lines, reactor)
        s.open()
        made.append(s)
        return s

    yield make
    for s in made:
        pytest_twisted.blockon(s.close())


@pytest.fixture
def store(stores: Callable[[int], ChatStore]) -> ChatStore:
    """A real store in memory."""
    return stores(20)


def real_hub(events: Any, clock: Clock, store: ChatStore | None, **settings: Any) -> ChatHub:
    """A hub with the operator password and real (if cheap) password hashing."""
    settings.setdefault("oper_password_hash", OPER_HASH)
    return make_hub(
        events, clock, store,
        verify=lambda password, stored: succeed(verify_password(password, stored)),
        make_hash=lambda password: succeed(hash_password(password, n=2**10)),
        **settings,
    )


@pytest.fixture
def hub(events: Any, clock: Clock, store: ChatStore) -> ChatHub:
    return real_hub(events, clock, store)


def joined(hub: ChatHub, nick: str, host: str = "192.0.2.1") -> User:
    user = User(hub, host)
    user.say(nick)
    assert user.session.state == CHATTING, user.shown
    return user


# -- joining -----------------------------------------------------------------------


def test_motd_and_nick_prompt(hub: ChatHub) -> None:
    """A new connection sees the MOTD, then a prompt for a nick."""
    user = User(hub)
    assert user.shown[0] == hub.settings.motd
    assert user.last().startswith("Choose a nick")


@pytest.mark.parametrize("bad", ["", "a" * 17, "has space", "tab\tbed", "ünï", "#room", "a/b"])
def test_invalid_nick_prompts_again(hub: ChatHub, bad: str) -> None:
    """An invalid nick gets a reason and another prompt."""
    user = User(hub)
    shown = user.say(bad)
    assert shown == ["A nick is 1 to 16 letters, digits, _, - or .", "Choose a nick:"]
    assert user.session.state != CHATTING


def test_nick_unique_case_insensitively(hub: ChatHub) -> None:
    """A nick taken in any case is refused with a reason."""
    joined(hub, "Alice")
    user = User(hub)
    assert user.say("aLiCe") == ["The nick aLiCe is taken.", "Choose a nick:"]
    assert user.say("a.l-i_c3")[0].startswith("Hello a.l-i_c3")


def test_reserved_nick_refused(hub: ChatHub) -> None:
    """Reserved words are refused as nicks."""
    user = User(hub)
    assert user.say("Admin")[0] == "The nick Admin is reserved."


def test_join_announced_to_room(hub: ChatHub) -> None:
    """After choosing a nick the user is in the default room, and others see the join."""
    alice = joined(hub, "alice")
    bob = joined(hub, "bob")
    assert alice.last() == "* bob has joined #lobby"
    assert bob.saw("* You are now in #lobby (2 here).")


# -- talking -------------------------------------------------------------------------


def test_message_to_others_with_timestamp(hub: ChatHub, clock: Clock) -> None:
    """A line goes to everyone else in the room as [HH:MM] <nick> text, not back to the sender."""
    clock.advance(13 * 3600 + 7 * 60)
    alice, bob, carol = (joined(hub, n) for n in ("alice", "bob", "carol"))
    assert alice.say("hello all") == []
    assert bob.last() == "[13:07] <alice> hello all"
    assert carol.last() == "[13:07] <alice> hello all"


def test_timezone_configurable(events: Any, clock: Clock, store: ChatStore) -> None:
    """Timestamps follow the configured zone."""
    hub = real_hub(events, clock, store, timezone="Asia/Kolkata")
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    alice.say("hi")
    assert bob.last() == "[05:30] <alice> hi"


def test_timestamp_follows_the_clock_minute_by_minute(hub: ChatHub, clock: Clock) -> None:
    """The stamp changes when the minute does, and only then, across hours and days."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    for when, stamp in ((59.9, "00:00"), (60.0, "00:01"), (3599.99, "00:59"),
                        (3600.0, "01:00"), (86399.5, "23:59"), (86400.0, "00:00")):
        clock.advance(when - clock.seconds())
        alice.say(f"at {when}")
        assert bob.last() == f"[{stamp}] <alice> at {when}"


def test_rooms_are_separate(hub: ChatHub) -> None:
    """Messages stay in their room."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    bob.say("/join #python")
    alice.say("lobby only")
    assert not bob.saw("lobby only")


def test_double_slash_sends_a_slash(hub: ChatHub) -> None:
    """A line starting with // is said with one slash, not run as a command."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    alice.say("//etc/passwd is a path")
    assert bob.last().endswith("<alice> /etc/passwd is a path")


def test_sanitised_relay(hub: ChatHub) -> None:
    """Escape sequences and control characters never reach other users."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    alice.say("\x1b[2J\x1b[31mred\x07 \x00text\u202e")
    assert bob.last().endswith("<alice> red text")


# -- commands ----------------------------------------------------------------------------


def test_help_lists_every_command(hub: ChatHub) -> None:
    """/help documents every command a user may run."""
    alice = joined(hub, "alice")
    shown = "\n".join(alice.say("/help"))
    for name in ("nick", "who", "rooms", "join", "part", "msg", "me", "topic", "quit",
                 "register", "identify", "unregister", "oper"):
        assert f"/{name}" in shown
    assert alice.say("/help msg") == [
        "/msg NICK TEXT  a private message to one user"
    ]


def test_unknown_command_not_broadcast(hub: ChatHub) -> None:
    """An unknown command gets one line and nobody else sees anything."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    before = list(bob.shown)
    assert alice.say("/frobnicate now") == ["Unknown command /frobnicate. Type /help for the list."]
    assert bob.shown == before


def test_nick_change(hub: ChatHub) -> None:
    """/nick renames and the room sees it; a taken nick is refused."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    assert alice.say("/nick Bob") == ["The nick Bob is taken."]
    assert alice.say("/nick ally") == ["You are now known as ally."]
    assert bob.last() == "* alice is now known as ally"
    assert hub.find("ally") is alice.session
    assert hub.find("alice") is None
    assert alice.say("/nick") == ["Usage: /nick NEW [PASSWORD]"]


def test_who_and_rooms(hub: ChatHub) -> None:
    """/who lists the room, /rooms lists rooms with their sizes."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    bob.say("/join #python")
    carol = joined(hub, "carol")
    assert alice.say("/who") == ["In #lobby (2): alice, carol"]
    assert carol.say("/rooms") == ["Rooms: #lobby (2), #python (1)"]


def test_join_rules(hub: ChatHub) -> None:
    """/join checks names, creates rooms, and announces leaving and arriving."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    assert alice.say("/join #bad!name")[0].startswith("A room name is")
    assert alice.say("/join") == ["Usage: /join #ROOM"]
    alice.say("/join python")
    assert bob.last() == "* alice has left #lobby"
    assert alice.session.room is not None and alice.session.room.name == "#python"
    assert alice.say("/join #PYTHON") == ["You are already in #python."]


def test_max_rooms(events: Any, clock: Clock, store: ChatStore) -> None:
    """No more rooms than max_rooms can exist."""
    hub = real_hub(events, clock, store, max_rooms=2)
    alice = joined(hub, "alice")
    alice.say("/join #one")
    bob = joined(hub, "bob")
    assert bob.say("/join #two") == ["There are already 2 rooms; join one of them."]


def test_part_returns_to_default_room(hub: ChatHub) -> None:
    """/part leaves a room for the default room; an empty room disappears."""
    alice = joined(hub, "alice")
    assert alice.say("/part")[0].startswith("You are in #lobby, the default room")
    alice.say("/join #tmp")
    alice.say("/part")
    assert alice.session.room is hub.rooms["#lobby"]
    assert "#tmp" not in hub.rooms


def test_private_message(hub: ChatHub, events: Any) -> None:
    """/msg reaches only its target, and its text is never logged or stored."""
    alice, bob, carol = (joined(hub, n) for n in ("alice", "bob", "carol"))
    assert alice.say("/msg BOB the secret") == ["-> *bob* the secret"]
    assert bob.last().endswith("*alice* the secret")
    assert not carol.saw("the secret")
    assert alice.say("/msg nobody hi") == ["No user nobody here."]
    assert alice.say("/msg bob") == ["Usage: /msg NICK TEXT"]
    assert all("the secret" not in repr(e) for e in events.seen)
    assert hub.store is not None
    assert all("the secret" not in line.text for line in hub.store.recent("#lobby"))


def test_me_action(hub: ChatHub) -> None:
    """/me shows an action line to the others."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    alice.say("/me waves")
    assert bob.last().endswith("* alice waves")


def test_topic(hub: ChatHub) -> None:
    """/topic sets and shows the room topic; joiners see it."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    assert alice.say("/topic") == ["#lobby has no topic."]
    alice.say("/topic sockets 101")
    assert bob.last() == "* alice set the topic of #lobby: sockets 101"
    carol = joined(hub, "carol")
    assert carol.saw("* Topic: sockets 101")


def test_quit_with_reason(hub: ChatHub) -> None:
    """/quit closes the connection, and the room sees the reason."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    alice.say("/quit gotta go")
    assert alice.ended == "quit: gotta go"
    assert bob.last() == "* alice has quit (quit: gotta go)"
    assert alice.session.state == CLOSED
    assert hub.find("alice") is None


def test_connection_lost_announced(hub: ChatHub) -> None:
    """A dropped connection is announced with its reason and frees the nick."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    alice.session.lost("connection lost")
    assert bob.last() == "* alice has quit (connection lost)"
    assert joined(hub, "alice")


# -- operators -----------------------------------------------------------------------


def test_oper_commands_refused_to_users(hub: ChatHub) -> None:
    """Operator commands get a clear refusal for everyone else."""
    alice, _ = joined(hub, "alice"), joined(hub, "bob")
    for command in ("/kick bob", "/mute bob", "/ban bob", "/wall hi", "/unban 10.0.0.0/8"):
        assert alice.say(command)[0].endswith("is for operators only (see /oper).")


def test_oper_password(hub: ChatHub) -> None:
    """/oper with the configured password makes an operator; a wrong one does not."""
    alice = joined(hub, "alice")
    assert alice.say("/oper wrong")[0] == "Wrong password. 2 tries left."
    assert not alice.session.oper
    assert alice.say(f"/oper {OPER_PASSWORD}")[0].startswith("You are now an operator.")
    assert alice.say("/who") == ["In #lobby (1): alice (op)"]


def test_no_oper_password_configured(events: Any, clock: Clock, store: ChatStore) -> None:
    """Without a configured hash nobody can become an operator."""
    hub = real_hub(events, clock, store, oper_password_hash="")
    alice = joined(hub, "alice")
    assert alice.say("/oper anything") == ["This chat has no operator password configured."]


def oper(hub: ChatHub, nick: str = "root_", host: str = "198.51.100.1") -> User:
    user = joined(hub, nick, host)
    user.say(f"/oper {OPER_PASSWORD}")
    assert user.session.oper
    return user


def test_kick(hub: ChatHub) -> None:
    """/kick disconnects a user with a reason everyone sees."""
    op, bob, carol = oper(hub), joined(hub, "bob"), joined(hub, "carol")
    op.say("/kick bob spamming")
    assert bob.saw("* You were kicked by root_: spamming")
    assert bob.ended == "kicked by root_: spamming"
    assert carol.last() == "* bob has quit (kicked by root_: spamming)"
    assert op.say("/kick nobody") == ["No user nobody here."]


def test_mute(hub: ChatHub, clock: Clock) -> None:
    """/mute silences a user for some minutes; then they may talk again."""
    op, bob, carol = oper(hub), joined(hub, "bob"), joined(hub, "carol")
    op.say("/mute bob 2")
    assert carol.last() == "* bob was muted by root_ for 2 minutes"
    assert bob.say("can I talk?") == ["You are muted for 120 more seconds."]
    assert not carol.saw("can I talk?")
    assert bob.say("/msg carol psst") == ["You are muted for 120 more seconds."]
    assert op.say("/mute bob forever") == ["Usage: /mute NICK [MINUTES]"]
    clock.advance(121)
    bob.say("back")
    assert carol.last().endswith("<bob> back")


def test_ban_by_nick_and_cidr(hub: ChatHub, clock: Clock) -> None:
    """/ban kicks the user's address and refuses it at connect until the ban ends."""
    op = oper(hub)
    bob = joined(hub, "bob", host="203.0.113.5")
    op.say("/ban bob 1")
    assert bob.ended == "banned by root_"
    again = User(hub, host="203.0.113.5")
    assert again.shown[0].startswith("ERROR You are banned from this chat until")
    assert again.session.state == CLOSED
    other = User(hub, host="203.0.113.6")
    assert other.session.state != CLOSED
    op.say("/ban 203.0.113.0/24 5")
    assert other.ended == "banned by root_"
    assert op.say("/ban nothing-here") == [
        "No user nothing-here here, and it is not an address or network."
    ]
    clock.advance(5 * 60 + 1)
    assert User(hub, host="203.0.113.5").session.state != CLOSED


def test_unban(hub: ChatHub) -> None:
    """/unban lifts a ban at once."""
    op = oper(hub)
    op.say("/ban 203.0.113.0/24")
    assert op.say("/unban 203.0.113.0/24") == ["Unbanned 203.0.113.0/24."]
    assert User(hub, host="203.0.113.9").session.state != CLOSED
    assert op.say("/unban 10.0.0.0/8") == ["10.0.0.0/8 is not banned."]


def test_wall(hub: ChatHub) -> None:
    """/wall reaches every user in every room."""
    op, bob = oper(hub), joined(hub, "bob")
    bob.say("/join #python")
    op.say("/wall server restarts at noon")
    assert bob.last() == "*** Notice from root_: server restarts at noon"


# -- registered nicks ------------------------------------------------------------------


def test_register_and_identify_on_connect(hub: ChatHub) -> None:
    """A registered nick asks for its password; the right one gets in."""
    alice = joined(hub, "alice")
    assert alice.say("/register hunter22")[0].startswith("The nick alice is now registered.")
    alice.say("/quit")
    again = User(hub)
    assert again.say("alice") == ["The nick alice is registered. Password:"]
    assert again.session.state != CHATTING
    again.say("hunter22")
    assert again.session.state == CHATTING
    assert again.session.identified


def test_three_wrong_passwords_close_after_delay(hub: ChatHub, clock: Clock) -> None:
    """Three wrong answers close the connection, after a short delay."""
    alice = joined(hub, "alice")
    alice.say("/register hunter22")
    alice.say("/quit")
    thief = User(hub)
    thief.say("alice")
    assert thief.say("guess1") == ["Wrong password. 2 tries left.", "Password:"]
    assert thief.say("guess2") == ["Wrong password. 1 try left.", "Password:"]
    assert thief.say("guess3") == ["Wrong password. Too many wrong passwords: goodbye."]
    assert thief.ended is None
    assert thief.say("hunter22") == []
    clock.advance(hub.settings.identify_delay)
    assert thief.ended == "wrong passwords"


def test_password_prompt_does_not_hold_a_registered_nick(hub: ChatHub) -> None:
    """
    Someone sitting at the Password: prompt of a registered nick holds
    nothing: its owner still gets the prompt, and in; the squatter, even
    with the right password, finds the nick taken and is asked for another.
    """
    owner = joined(hub, "victim")
    owner.say("/register hunter22")
    owner.say("/quit")
    squatter = User(hub, host="203.0.113.66")
    assert squatter.say("victim") == ["The nick victim is registered. Password:"]
    assert hub.find("victim") is None
    again = User(hub)
    assert again.say("victim") == ["The nick victim is registered. Password:"]
    again.say("hunter22")
    assert again.session.state == CHATTING
    assert hub.find("victim") is again.session
    assert squatter.say("hunter22") == ["The nick victim is taken.", "Choose a nick:"]
    assert squatter.session.state != CHATTING


def test_login_deadline_at_the_nick_and_password_prompts(
    events: Any, clock: Clock, store: ChatStore
) -> None:
    """Nick and password must be given within login_timeout; after login it no longer applies."""
    hub = real_hub(events, clock, store, login_timeout=60)
    owner = joined(hub, "alice")
    owner.say("/register hunter22")
    silent = User(hub)
    at_prompt = User(hub)
    at_prompt.say("alice")
    clock.advance(59.9)
    assert silent.ended is None and at_prompt.ended is None
    clock.advance(0.1)
    for user in (silent, at_prompt):
        assert user.last() == "Login timed out after 60 seconds."
        assert user.ended == "login timeout"
    assert owner.ended is None
    assert hub.counters.extra["login_timeouts"] == 2
    assert not clock.getDelayedCalls()


def test_registered_nick_by_nick_command(hub: ChatHub) -> None:
    """/nick to a registered nick needs its password."""
    alice = joined(hub, "alice")
    alice.say("/register hunter22")
    alice.say("/nick other")
    bob = joined(hub, "bob")
    assert bob.say("/nick alice") == ["The nick alice is registered. Use /nick alice PASSWORD."]
    assert bob.say("/nick alice wrong") == ["Wrong password. 2 tries left."]
    bob.say("/nick alice hunter22")
    assert hub.find("alice") is bob.session


def test_identify_and_unregister(hub: ChatHub) -> None:
    """/identify proves ownership; /unregister then removes the password."""
    alice = joined(hub, "alice")
    assert alice.say("/identify x") == ["The nick alice is not registered."]
    alice.say("/register hunter22")
    assert alice.say("/identify hunter22") == ["You are already identified."]
    assert alice.say("/unregister") == ["The nick alice is no longer registered."]
    assert hub.store is not None and hub.store.registered("alice") is None


def test_passwords_stored_hashed(hub: ChatHub) -> None:
    """The store holds a salted hash, never the password."""
    alice = joined(hub, "alice")
    alice.say("/register hunter22")
    assert hub.store is not None
    stored = hub.store.registered("ALICE")
    assert stored is not None and stored.startswith("scrypt$")
    assert "hunter22" not in stored


# -- history and limits -------------------------------------------------------------------


def test_history_replayed_on_join(hub: ChatHub, clock: Clock) -> None:
    """Whoever joins a room sees its last lines, actions included."""
    alice = joined(hub, "alice")
    alice.say("first")
    alice.say("/me waves")
    bob = joined(hub, "bob")
    assert "[00:00] <alice> first" in bob.shown
    assert "[00:00] * alice waves" in bob.shown


def test_history_limited(events: Any, clock: Clock, stores: Callable[[int], ChatStore]) -> None:
    """Only the last history_lines lines are replayed."""
    hub = real_hub(events, clock, stores(3), flood_lines=100)
    alice = joined(hub, "alice")
    for i in range(10):
        alice.say(f"line {i}")
    bob = joined(hub, "bob")
    replay = [line for line in bob.shown if "<alice>" in line]
    assert replay == [f"[00:00] <alice> line {i}" for i in (7, 8, 9)]


def test_flood_warning_then_mute(hub: ChatHub, clock: Clock) -> None:
    """Over the flood limit: first a warning, then a mute; others keep talking."""
    flooder, bob, carol = (joined(hub, n) for n in ("flooder", "bob", "carol"))
    for i in range(5):
        flooder.say(f"spam {i}")
    assert flooder.say("spam 5")[0].startswith("Slow down: at most 5 lines per 5 seconds.")
    assert flooder.say("spam 6") == ["You are muted for 60 seconds for flooding."]
    carol.say("still here")
    assert bob.last().endswith("<carol> still here")
    assert not bob.saw("spam 5")
    clock.advance(5)
    assert flooder.say("sorry") == ["You are muted for 55 more seconds."]
    assert hub.counters.extra["flood_mutes"] == 1
    clock.advance(56)
    flooder.say("really sorry")
    assert bob.last().endswith("<flooder> really sorry")


def test_shutdown_notice(hub: ChatHub) -> None:
    """Shutdown tells every user, then closes every connection."""
    alice = joined(hub, "alice")
    waiting = User(hub)
    hub.shutdown()
    assert alice.saw("* server shutting down")
    assert waiting.saw("* server shutting down")
    assert alice.ended == waiting.ended == "server shutdown"


def test_events_and_counters(hub: ChatHub, events: Any) -> None:
    """Joins, messages and commands are counted and logged."""
    alice, bob = joined(hub, "alice"), joined(hub, "bob")
    alice.say("hello")
    bob.say("/who")
    extra = hub.counters.extra
    assert extra["joins"] == 2
    assert extra["messages"] == 1
    assert extra["commands"] == 1
    actions = [e["action"] for e in events.kinds("chat")]
    assert "join" in actions and "message" in actions and "command" in actions


# -- password guessing ----------------------------------------------------------------------


class SlowVerifier:
    """A verify() whose answers the test gives, one check at a time: counts the hashing."""

    def __init__(self, right: str = OPER_PASSWORD) -> None:
        self.right = right
        self.running: list[tuple[str, Deferred[bool]]] = []
        self.started = 0

    def __call__(self, password: str, stored: str) -> Deferred[bool]:
        self.started += 1
        d: Deferred[bool] = Deferred()
        self.running.append((password, d))
        return d

    def finish_one(self) -> None:
        password, d = self.running.pop(0)
        d.callback(password == self.right)


def test_oper_guesses_limited_per_address(events: Any, clock: Clock, store: ChatStore) -> None:
    """
    Wrong /oper passwords from one address, over any number of connections,
    lock the address: later guesses are refused without hashing, logged and
    counted; other addresses may still try, and the lock ends.
    """
    checks = []

    def verify(password: str, stored: str) -> Deferred[bool]:
        checks.append(password)
        return succeed(verify_password(password, stored))

    hub = make_hub(events, clock, store, verify=verify, oper_password_hash=OPER_HASH,
                   address_failures=4, nick_failures=1000, failure_window=60)
    guessers = [joined(hub, f"guesser{i}", host="203.0.113.7") for i in range(3)]
    for i in range(4):
        assert guessers[i // 2].say(f"/oper guess{i}")[0].startswith("Wrong password.")
    refused = guessers[2].say("/oper guess4")
    assert refused == ["Too many wrong passwords: try again in 15 seconds."]
    assert guessers[2].say("/oper guess5") == refused
    assert len(checks) == 5
    assert hub.counters.extra["password_locks"] == 1
    assert hub.counters.extra["password_refusals"] == 1
    assert [e["what"] for e in events.kinds("chat") if e["action"] == "password_lock"] == [
        "password_lock: 203.0.113.7 for 15 seconds"
    ]
    elsewhere = joined(hub, "elsewhere", host="198.51.100.1")
    assert elsewhere.say(f"/oper {OPER_PASSWORD}")[0].startswith("You are now an operator.")
    clock.advance(15)
    assert guessers[2].say(f"/oper {OPER_PASSWORD}")[0].startswith("You are now an operator.")


def test_guesses_at_a_registered_nick_limited_across_addresses(
    events: Any, clock: Clock, store: ChatStore
) -> None:
    """
    Wrong passwords for one registered nick, from many addresses, lock the
    nick; a guesser at its Password: prompt is refused without a check and
    asked for another nick.
    """
    hub = real_hub(events, clock, store, nick_failures=3, failure_window=300)
    owner = joined(hub, "alice")
    owner.say("/register hunter22")
    owner.say("/quit")
    for i in range(3):
        guesser = User(hub, host=f"203.0.113.{i + 1}")
        guesser.say("alice")
        assert guesser.say(f"guess{i}")[0].startswith("Wrong password.")
    late = User(hub, host="203.0.113.50")
    late.say("alice")
    locked = ["Too many wrong passwords: try again in 100 seconds.", "Choose a nick:"]
    assert late.say("guess3") == locked
    assert late.say("alice") == locked
    assert hub.find("alice") is None
    by_nick = joined(hub, "bob", host="198.51.100.2")
    assert by_nick.say("/nick alice hunter22") == [
        "Too many wrong passwords: try again in 100 seconds."
    ]


def test_concurrent_hashing_bounded(events: Any, clock: Clock, store: ChatStore) -> None:
    """
    At most max_hashing checks hash at once and max_hashing_waiting wait
    their turn; one more is refused with a clear line, and each session has
    one check under way at most.
    """
    verifier = SlowVerifier()
    hub = make_hub(events, clock, store, verify=verifier, oper_password_hash=OPER_HASH,
                   max_hashing=2, max_hashing_waiting=2)
    users = [joined(hub, f"user{i}", host=f"192.0.2.{i + 1}") for i in range(5)]
    for user in users[:4]:
        assert user.say("/oper guess") == []
    assert verifier.started == 2
    assert users[0].say("/oper again") == ["Wait for your last password check."]
    assert users[4].say("/oper guess") == [
        "The server is busy checking passwords: try again in a moment."
    ]
    assert hub.counters.extra["hashing_busy"] == 1
    verifier.finish_one()
    assert users[0].last().startswith("Wrong password.")
    assert verifier.started == 3
    while verifier.running:
        verifier.finish_one()
    assert verifier.started == 4
    assert users[4].say(f"/oper {OPER_PASSWORD}") == []
    verifier.finish_one()
    assert users[4].session.oper
