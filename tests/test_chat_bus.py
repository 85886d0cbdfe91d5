"""
The chat bus in memory: two hubs on one L{MemoryBroker} are two nodes of a
cluster (what two daemons on one Redis are), on a L{Clock}.
"""

from __future__ import annotations

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
from test_chat_hub import OPER_HASH, OPER_PASSWORD, User
from test_irc_commands import Lab

HEARTBEAT = 1.0
BOUND = 3.0


def node(events: Any, broker: MemoryBroker, name: str) -> ChatHub:
    """A hub joined to C{broker} as node C{name}, started."""
    hub = make_hub(
        events, broker.clock, None, oper_password_hash=OPER_HASH, flood_lines=100,
        verify=lambda password, stored: succeed(verify_password(password, stored)),
        make_hash=lambda password: succeed(hash_password(password, n=2**10)),
    )
    hub = ChatHub(
        hub.settings, events, broker.clock, None, hub.verify, hub.make_hash,
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
    alice.say("/quit bye")
    assert ivan.ask("NAMES #lobby").splitlines() == [
        ":alice!~alice@netlab.local QUIT :quit: bye",
        ":netlab.local 353 ivan = #lobby :ivan",
        ":netlab.local 366 ivan #lobby :End of /NAMES list",
    ]
