"""
The chat bus in memory: two hubs on one L{MemoryBroker} are two nodes of a
cluster (what two daemons on one Redis are), on a L{Clock}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from helpers import make_hub
from netlab.core.passwords import hash_password, verify_password
from netlab.protocols.chat.bus import MemoryBroker, MemoryBus, decode, encode
from netlab.protocols.chat.cluster import DEGRADED, RESTORED
from netlab.protocols.chat.hub import CHATTING, ChatHub
from netlab.protocols.chat.settings import ClusterSettings
from netlab.protocols.chat.store import ChatStore
from test_chat_hub import OPER_HASH, OPER_PASSWORD, User, stores
from test_irc_commands import Lab

__all__ = ["stores"]  # the fixture, used here

HEARTBEAT = 1.0
BOUND = 3.0


def node(
    events: Any, broker: MemoryBroker, name: str, store: ChatStore | None = None,
) -> ChatHub:
    """A hub joined to C{broker} as node C{name}, started; with C{store}, nicks can register."""
    hub = make_hub(
        events, broker.clock, None, oper_password_hash=OPER_HASH, flood_lines=100,
        verify=lambda password, stored: succeed(verify_password(password, stored)),
        make_hash=lambda password: succeed(hash_password(password, n=2**10)),
    )
    hub = ChatHub(
        hub.settings, events, broker.clock, store, hub.verify, hub.make_hash,
        bus=MemoryBus(broker),
        cluster=ClusterSettings(node=name, heartbeat=HEARTBEAT, bound=BOUND),
    )
    assert hub.cluster is not None
    hub.cluster.start()
    return hub


@pytest.fixture
def broker(clock: Clock) -> MemoryBroker:
    return MemoryBroker(clock)


@pytest.fixture
def a(events: Any, broker: MemoryBroker) -> ChatHub:
    return node(events, broker, "a")


@pytest.fixture
def b(events: Any, broker: MemoryBroker) -> ChatHub:
    return node(events, broker, "b")


def joined(hub: ChatHub, nick: str, host: str = "192.0.2.1") -> User:
    user = User(hub, host)
    user.say(nick)
    assert user.session.state == CHATTING, user.shown
    return user


def bus_of(hub: ChatHub) -> MemoryBus:
    assert hub.cluster is not None
    bus = hub.cluster.bus
    assert isinstance(bus, MemoryBus)
    return bus


def test_messages_round_trip_and_junk_is_refused() -> None:
    message = {"node": "a", "seq": 3, "kind": "say", "text": "héllo"}
    assert decode(encode(message)) == message
    assert decode(b"\xff") is None
    assert decode("[1, 2]") is None
    assert decode('{"node": "a", "seq": "3", "kind": "say"}') is None


def test_lines_joins_and_quits_cross_nodes_in_order(a: ChatHub, b: ChatHub) -> None:
    alice = joined(a, "alice")
    bob = joined(b, "bob")
    assert alice.saw("* bob has joined #lobby")
    assert bob.last() == "* You are now in #lobby (2 here)."
    for n in range(5):
        alice.say(f"line {n}")
    heard = [line for line in bob.shown if "<alice>" in line]
    assert [line.split("> ")[1] for line in heard] == [f"line {n}" for n in range(5)]
    bob.say("/me waves")
    assert alice.last().endswith("* bob waves")
    bob.say("/who")
    assert bob.last() == "In #lobby (2): bob, alice"
    bob.say("/join #side")
    assert alice.saw("* bob has left #lobby")
    alice.say("not for bob")
    assert not bob.saw("not for bob")
    bob.say("/part")
    assert alice.last() == "* bob has joined #lobby"
    bob.say("/quit bye")
    assert alice.last() == "* bob has quit (quit: bye)"


def test_topic_and_private_messages_cross_nodes(a: ChatHub, b: ChatHub) -> None:
    alice = joined(a, "alice")
    bob = joined(b, "bob")
    alice.say("/topic ships")
    assert bob.last() == "* alice set the topic of #lobby: ships"
    assert b.rooms["#lobby"].topic == "ships"
    alice.say("/msg BOB psst")
    assert bob.last().endswith("*alice* psst")
    assert alice.last() == "-> *bob* psst"


def test_nick_clash_refused_across_nodes(a: ChatHub, b: ChatHub) -> None:
    joined(a, "alice")
    bob = joined(b, "bob")
    twin = User(b)
    assert "The nick ALICE is taken." in twin.say("ALICE")
    assert twin.session.state != CHATTING
    assert "The nick Alice is taken." in bob.say("/nick Alice")
    bob.say("/nick robert")
    assert a.cluster is not None and a.cluster.holder("robert") is not None
    # Bob's old nick is free again everywhere.
    assert joined(a, "bob").session.nick == "bob"


def test_claim_is_atomic_on_the_bus(a: ChatHub, b: ChatHub, broker: MemoryBroker) -> None:
    # Two nodes that have not yet heard of each other's users: the bus decides.
    assert bus_of(a).claim("k", "a", BOUND).result is True
    assert bus_of(b).claim("k", "b", BOUND).result is False
    assert broker.holder("k") == "a"


def test_ban_on_one_node_applies_on_the_other(a: ChatHub, b: ChatHub) -> None:
    op = joined(a, "op", host="192.0.2.1")
    target = joined(b, "target", host="198.51.100.7")
    op.say(f"/oper {OPER_PASSWORD}")
    op.say("/ban 198.51.100.0/24 10")
    assert target.ended == "banned by op"
    assert "* You were banned by op." in target.shown
    again = User(b, host="198.51.100.9")
    assert again.ended == "banned"


def test_kick_and_mute_reach_the_other_node(a: ChatHub, b: ChatHub) -> None:
    op = joined(a, "op")
    bob = joined(b, "bob")
    carol = joined(b, "carol")
    op.say(f"/oper {OPER_PASSWORD}")
    op.say("/mute carol 5")
    assert "* You were muted by op for 5 minutes." in carol.shown
    assert "* carol was muted by op for 5 minutes" in bob.shown
    assert "* carol was muted by op for 5 minutes" in op.shown
    assert carol.say("hush") == ["You are muted for 300 more seconds."]
    assert op.say("/kick bob enough")[0] == "Kicking bob on another server."
    assert bob.ended == "kicked by op: enough"
    assert op.last() == "* bob has quit (kicked by op: enough)"


def test_dead_node_users_quit_within_the_bound(
    a: ChatHub, b: ChatHub, broker: MemoryBroker, clock: Clock,
) -> None:
    alice = joined(a, "alice")
    joined(b, "bob")
    clock.advance(HEARTBEAT)
    # b dies without a word (SIGKILL): nothing more from it.
    broker.buses.remove(bus_of(b))
    assert b.cluster is not None
    b.cluster.beating.stop()
    clock.pump([HEARTBEAT] * int(BOUND / HEARTBEAT + 1))
    assert alice.saw("* bob has quit (b is gone)")
    assert a.cluster is not None and a.cluster.holder("bob") is None
    # Its claim expired on the bus too: the nick is free.
    assert broker.holder("netlab:chat:nick:bob") is None
    assert joined(a, "bob").session.nick == "bob"


def test_live_nodes_stay_and_keep_their_nicks(
    a: ChatHub, b: ChatHub, broker: MemoryBroker, clock: Clock,
) -> None:
    alice = joined(a, "alice")
    joined(b, "bob")
    clock.pump([HEARTBEAT] * 10)
    assert not alice.saw("has quit")
    assert broker.holder("netlab:chat:nick:bob") == "b"


def test_hiccup_degrades_then_catches_up_or_says_so(a: ChatHub, b: ChatHub, events: Any) -> None:
    alice = joined(a, "alice")
    bob = joined(b, "bob")
    carol = joined(b, "carol")
    bus_of(b).cut()
    assert DEGRADED in bob.shown and DEGRADED in carol.shown
    assert b.counters.extra["cluster_degraded"] == 1
    bus_of(b).cut()
    assert bob.shown.count(DEGRADED) == 1
    # Local chat goes on meanwhile.
    bob.say("still here")
    assert carol.last().endswith("<bob> still here")
    assert not alice.saw("still here")
    alice.say("you missed this")
    bus_of(b).mend()
    assert RESTORED in bob.shown
    alice.say("and this")
    gap = [line for line in bob.shown if "were missed" in line]
    assert gap == [
        "* Some messages from server a were missed while the cluster was out of touch; "
        "1 of its lines in #lobby recovered from the history:"
    ]
    after = bob.shown[bob.shown.index(gap[0]):]
    assert after[1].endswith("<alice> you missed this")
    assert after[2].endswith("<alice> and this")
    # a hears of b's own lost line too: a gap in b's numbers.
    assert alice.saw("Some messages from server b were missed")


# -- registered nicks, operators, bans and walls on every node ------------------------


@pytest.fixture
def stored(
    events: Any, broker: MemoryBroker, stores: Callable[[int], ChatStore],
) -> Callable[[str], ChatHub]:
    """Makes nodes on C{broker}, each with a real store of its own."""
    return lambda name: node(events, broker, name, stores(20))


def test_registered_nick_works_on_every_node(stored: Callable[[str], ChatHub]) -> None:
    a, b = stored("a"), stored("b")
    alice = joined(a, "alice")
    assert alice.say("/register hunter22")[0].startswith("The nick alice is now registered.")
    assert b.store is not None and b.store.registered("ALICE") is not None
    alice.say("/quit")
    again = User(b)
    assert again.say("alice") == ["The nick alice is registered. Password:"]
    again.say("hunter22")
    assert again.session.state == CHATTING and again.session.identified
    assert again.say("/unregister") == ["The nick alice is no longer registered."]
    assert a.store is not None and a.store.registered("alice") is None
    # Held by the new alice on b, no longer asking for a password.
    assert joined(a, "bob").say("/nick alice") == ["The nick alice is taken."]


def test_a_node_joining_later_learns_the_registrations(
    stored: Callable[[str], ChatHub], stores: Callable[[int], ChatStore],
    events: Any, broker: MemoryBroker,
) -> None:
    a = stored("a")
    joined(a, "alice").say("/register hunter22")
    # c registered a nick alone, before it ever reached the cluster.
    store = stores(20)
    store.register("old", "hash-of-old")
    c = node(events, broker, "c", store)
    assert store.registered("alice") == (a.store and a.store.registered("alice"))
    assert a.store is not None and a.store.registered("old") == "hash-of-old"
    assert c.store is store


def test_unregistered_while_a_node_was_away_stays_unregistered(
    stored: Callable[[str], ChatHub],
) -> None:
    a, b = stored("a"), stored("b")
    alice = joined(a, "alice")
    alice.say("/register hunter22")
    bus_of(b).cut()
    alice.say("/unregister")
    assert b.store is not None and b.store.registered("alice") is not None
    bus_of(b).mend()
    assert b.store.registered("alice") is None


def test_registering_waits_for_the_cluster(stored: Callable[[str], ChatHub]) -> None:
    a, b = stored("a"), stored("b")
    alice = joined(a, "alice")
    bus_of(a).cut()
    assert alice.say("/register hunter22") == [
        "Registered nicks are shared by every server of this chat, and this one is out "
        "of touch with the others: try again when the cluster is back."
    ]
    assert a.store is not None and a.store.registered("alice") is None
    bus_of(a).mend()
    alice.say("/register hunter22")
    assert b.store is not None and b.store.registered("alice") is not None


def test_operators_are_shown_as_such_on_every_node(a: ChatHub, b: ChatHub, clock: Clock) -> None:
    op = joined(a, "op")
    bob = joined(b, "bob")
    op.say(f"/oper {OPER_PASSWORD}")
    bob.say("/who")
    assert bob.last() == "In #lobby (2): bob, op (op)"
    # Presence keeps saying so; a join elsewhere does not forget it.
    clock.advance(HEARTBEAT)
    op.say("/join #side")
    op.say("/part")
    bob.say("/who")
    assert bob.last() == "In #lobby (2): bob, op (op)"
    late = joined(b, "late")
    late.say("/who")
    assert "op (op)" in late.last()


def test_unban_and_wall_reach_every_node(a: ChatHub, b: ChatHub) -> None:
    op = joined(a, "op", host="192.0.2.1")
    bob = joined(b, "bob", host="192.0.2.9")
    op.say(f"/oper {OPER_PASSWORD}")
    op.say("/ban 198.51.100.0/24 10")
    assert User(b, host="198.51.100.9").ended == "banned"
    op.say("/unban 198.51.100.0/24")
    assert User(b, host="198.51.100.9").ended is None
    op.say("/wall back in five")
    assert bob.last() == "*** Notice from op: back in five"


def test_bans_made_while_a_node_was_away_or_before_it_came(
    a: ChatHub, b: ChatHub, events: Any, broker: MemoryBroker,
) -> None:
    op = joined(a, "op")
    op.say(f"/oper {OPER_PASSWORD}")
    op.say("/ban 198.51.100.0/24 10")
    op.say("/ban 203.0.113.0/24 10")
    bus_of(b).cut()
    op.say("/unban 203.0.113.0/24")
    bus_of(b).mend()
    assert User(b, host="203.0.113.5").ended is None
    assert User(b, host="198.51.100.9").ended == "banned"
    # A node that joins later applies the bans in force.
    c = node(events, broker, "c")
    assert User(c, host="198.51.100.9").ended == "banned"
    assert User(c, host="203.0.113.5").ended is None


def test_a_node_restarted_under_its_name_drops_its_old_users(
    a: ChatHub, events: Any, broker: MemoryBroker, clock: Clock,
) -> None:
    """A worker restarted after a crash keeps its node name: its old users quit at once."""
    alice = joined(a, "alice")
    b = node(events, broker, "b")
    joined(b, "bob")
    clock.advance(HEARTBEAT)
    # b dies without a word and comes back as a new process.
    broker.buses.remove(bus_of(b))
    assert b.cluster is not None
    b.cluster.beating.stop()
    again = node(events, broker, "b")
    assert alice.saw("* bob has quit (b restarted)")
    # Its numbers start again without a false gap.
    joined(again, "carol").say("hello")
    assert alice.last().endswith("<carol> hello")
    assert not alice.saw("were missed")


def test_a_node_killed_before_its_first_presence_still_drops_its_users(
    a: ChatHub, events: Any, broker: MemoryBroker,
) -> None:
    """Known by the run its join carried: a restart under its name quits its users."""
    alice = joined(a, "alice")
    b = node(events, broker, "b")
    # a never heard b's presence: b joined the bus first, then a user came.
    assert a.cluster is not None
    a.cluster.boots.clear()
    joined(b, "bob")
    broker.buses.remove(bus_of(b))
    assert b.cluster is not None
    b.cluster.beating.stop()
    node(events, broker, "b")
    assert alice.saw("* bob has quit (b restarted)")


def test_a_user_missing_from_presence_quits(a: ChatHub, b: ChatHub, clock: Clock) -> None:
    """A quit lost in a hiccup: the next presence shows it, and the room hears it."""
    alice = joined(a, "alice")
    bob = joined(b, "bob")
    bus_of(a).cut()
    bob.say("/quit")
    bus_of(a).mend()
    clock.advance(HEARTBEAT)
    assert alice.saw("* bob has quit (gone from b)")
    alice.say("/who")
    assert alice.last() == "In #lobby (1): alice"


def test_irc_lists_the_other_nodes_users(a: ChatHub, b: ChatHub, clock: Clock) -> None:
    """NAMES, WHO, LIST and the join's 353 on one node include the users of the others."""
    alice = joined(a, "alice")
    joined(a, "carol").say("/join #side")
    lab = Lab(a.events, on=(b, clock))
    ivan = lab.connect()
    burst = ivan.ask("NICK ivan", "USER ivan 0 * :Ivan").splitlines()
    assert ":netlab.local 353 ivan = #lobby :ivan alice" in burst
    assert alice.saw("* ivan has joined #lobby")
    assert ivan.ask("NAMES #lobby").splitlines() == [
        ":netlab.local 353 ivan = #lobby :ivan alice",
        ":netlab.local 366 ivan #lobby :End of /NAMES list",
    ]
    # A room with users on other nodes only.
    assert ivan.ask("NAMES #side").splitlines() == [
        ":netlab.local 353 ivan = #side :carol",
        ":netlab.local 366 ivan #side :End of /NAMES list",
    ]
    # Another node's users are on that node: their host and server are its name.
    assert ivan.ask("WHO #lobby").splitlines() == [
        ":netlab.local 352 ivan #lobby ~ivan netlab.local netlab.local ivan H :0 Ivan",
        ":netlab.local 352 ivan #lobby ~alice a a alice H :1 netlab chat user",
        ":netlab.local 315 ivan #lobby :End of /WHO list",
    ]
    assert ivan.ask("WHO CAROL").splitlines() == [
        ":netlab.local 352 ivan #side ~carol a a carol H :1 netlab chat user",
        ":netlab.local 315 ivan CAROL :End of /WHO list",
    ]
    assert ":netlab.local 322 ivan #lobby 2 :" in ivan.ask("LIST").splitlines()
    # Another node's operator is one here too: @ in NAMES and WHO.
    alice.say(f"/oper {OPER_PASSWORD}")
    names = ivan.ask("NAMES #lobby").splitlines()
    assert names[0] == ":netlab.local 353 ivan = #lobby :ivan @alice"
    assert ":netlab.local 352 ivan #lobby ~alice a a alice H@ :1 netlab chat user" in (
        ivan.ask("WHO alice").splitlines()
    )
    alice.say("/quit bye")
    assert ivan.ask("NAMES #lobby").splitlines() == [
        ":alice!~alice@netlab.local QUIT :quit: bye",
        ":netlab.local 353 ivan = #lobby :ivan",
        ":netlab.local 366 ivan #lobby :End of /NAMES list",
    ]


def test_irc_whois_userhost_and_ison_know_the_other_nodes_users(
    a: ChatHub, b: ChatHub, clock: Clock,
) -> None:
    """WHOIS, USERHOST and ISON on one node find the users of the others."""
    alice = joined(a, "alice")
    alice.say(f"/oper {OPER_PASSWORD}")
    lab = Lab(a.events, on=(b, clock))
    ivan = lab.connect()
    ivan.ask("NICK ivan", "USER ivan 0 * :Ivan")
    assert ivan.ask("WHOIS alice").splitlines() == [
        ":netlab.local 311 ivan alice ~alice a * :netlab chat user",
        ":netlab.local 319 ivan alice :@#lobby",
        ":netlab.local 312 ivan alice a :another server of this chat",
        ":netlab.local 313 ivan alice :is a chat operator",
        ":netlab.local 318 ivan alice :End of /WHOIS list",
    ]
    assert ivan.ask("USERHOST ALICE nobody").splitlines() == [
        ":netlab.local 302 ivan :alice*=+~alice@a",
    ]
    assert ivan.ask("ISON nobody Alice ivan").splitlines() == [
        ":netlab.local 303 ivan :alice ivan",
    ]
