"""
The Redis bus against a real C{redis-server} (Debian's, on a free loopback
port): what the in-memory bus stands for in the unit tests holds on Redis
too (the shared tables, claims, kept lines, messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from netlab.protocols.chat.bus import Message
from netlab.protocols.chat.redisbus import RedisBus
from test_cluster_e2e import Redis, free_port


class Listener:
    """Fires C{up} once the bus is reachable; keeps what it hears."""

    def __init__(self) -> None:
        self.up: Deferred[None] = Deferred()
        self.heard: list[Message] = []
        self.waiting: Deferred[Message] | None = None

    def received(self, message: Message) -> None:
        self.heard.append(message)
        if self.waiting is not None:
            waiting, self.waiting = self.waiting, None
            waiting.callback(message)

    def bus_up(self) -> None:
        if not self.up.called:
            self.up.callback(None)

    def bus_down(self, why: str) -> None:
        pass

    def next(self) -> Deferred[Message]:
        self.waiting = Deferred()
        return self.waiting


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis(free_port())
    yield server
    server.stop()


def bus_on(redis: Redis, name: str) -> RedisBus:
    return RedisBus(reactor, "127.0.0.1", redis.port, 0, f"netlab:{name}:", 0.5)


@pytest_twisted.inlineCallbacks
def test_redis_bus_tables_claims_lines_and_messages(redis: Redis) -> Any:
    one, two = bus_on(redis, "chat"), bus_on(redis, "chat")
    heard_one, heard_two = Listener(), Listener()
    one.start(heard_one)
    two.start(heard_two)
    try:
        yield heard_one.up
        yield heard_two.up
        one.put("netlab:chat:registered", "alice", '{"nick":"Alice","hash":"h"}')
        one.put("netlab:chat:registered", "bob", '{"nick":"bob","hash":null}')
        table = yield two.table("netlab:chat:registered")
        assert table == {
            "alice": '{"nick":"Alice","hash":"h"}', "bob": '{"nick":"bob","hash":null}',
        }
        assert (yield two.table("netlab:chat:bans")) == {}
        assert (yield one.claim("netlab:chat:nick:alice", "a", 5.0)) is True
        assert (yield two.claim("netlab:chat:nick:alice", "b", 5.0)) is False
        arriving = heard_two.next()
        one.publish({"node": "a", "seq": 1, "kind": "say", "room": "#lobby", "nick": "Alice",
                     "text": "héllo"}, "netlab:chat:room:#lobby", 2)
        message = yield arriving
        assert message["text"] == "héllo"
        kept = yield two.history("netlab:chat:room:#lobby")
        assert [m["seq"] for m in kept] == [1]
    finally:
        yield one.stop()
        yield two.stop()
