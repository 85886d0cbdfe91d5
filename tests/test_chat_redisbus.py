"""
The Redis bus against a real C{redis-server} (Debian's, on a free loopback
port): what the in-memory bus stands for in the unit tests holds on Redis
too (the shared tables, claims, kept lines, messages).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure

from netlab.protocols.chat.bus import Message
from netlab.protocols.chat.redisbus import RedisBus
from netlab.protocols.chat.settings import redis_address
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


@inlineCallbacks
def two_nodes(redis: Redis) -> Any:
    """Two buses on C{redis}, both up: C{([one, two], [what one hears, what two hears])}."""
    buses = [bus_on(redis, "chat"), bus_on(redis, "chat")]
    heard = [Listener(), Listener()]
    for bus, listener in zip(buses, heard, strict=True):
        bus.start(listener)
    for listener in heard:
        yield listener.up
    return buses, heard


@pytest_twisted.inlineCallbacks
def test_redis_bus_tables_claims_lines_and_messages(redis: Redis) -> Any:
    (one, two), (_, heard_two) = yield two_nodes(redis)
    try:
        one.put("netlab:chat:registered", "alice", '{"nick":"Alice","hash":"h"}')
        one.put("netlab:chat:registered", "bob", '{"nick":"bob","hash":null}')
        assert (yield one.claim("netlab:chat:nick:alice", "a", 5.0)) is True
        arriving = heard_two.next()
        one.publish({"node": "a", "seq": 1, "kind": "say", "room": "#lobby", "nick": "Alice",
                     "text": "héllo"}, "netlab:chat:room:#lobby", 2)
        # Redis runs one's commands in order: once two hears the line, the rest is done.
        message = yield arriving
        assert message["text"] == "héllo"
        table = yield two.table("netlab:chat:registered")
        assert table == {
            "alice": '{"nick":"Alice","hash":"h"}', "bob": '{"nick":"bob","hash":null}',
        }
        assert (yield two.table("netlab:chat:bans")) == {}
        assert (yield two.claim("netlab:chat:nick:alice", "b", 5.0)) is False
        kept = yield two.history("netlab:chat:room:#lobby")
        assert [m["seq"] for m in kept] == [1]
    finally:
        yield one.stop()
        yield two.stop()


@pytest_twisted.inlineCallbacks
def test_stop_sends_what_was_published_first(redis: Redis) -> Any:
    """A node stopping says its users' quits before it hangs up, not 'Lost connection'."""
    (one, two), (_, heard_two) = yield two_nodes(redis)
    try:
        arriving = heard_two.next()
        one.publish({"node": "a", "seq": 1, "kind": "quit", "room": "#lobby", "nick": "alice",
                     "reason": "server shutdown"})
        one.release("netlab:chat:nick:alice", "a")
        warnings: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(warnings.append)
        try:
            yield one.stop()
        finally:
            globalLogPublisher.removeObserver(warnings.append)
        message = yield arriving
        assert message["kind"] == "quit"
        assert [e for e in warnings if e.get("log_level") == LogLevel.warn] == []
    finally:
        yield one.stop()
        yield two.stop()


def test_a_chunk_of_messages_is_read_in_one_pass() -> None:
    """
    Every message that arrived in one read is handed on in that read, so a
    burst of lines reaches each member in one write.  txredisapi's own
    parser hands on one reply per reactor pass after a bulk string (it
    parses the rest of the chunk in a callLater(0)), and a busy node fell
    ever further behind: its parser must be hiredis, as Synapse's is.
    """
    from twisted.internet.testing import StringTransport

    from netlab.protocols.chat.redisbus import BusSubscriber

    bus = RedisBus(reactor, "127.0.0.1", 1, 0, "netlab:chat:", 0.5)
    heard = Listener()
    bus.listener = heard
    protocol = type("Subscriber", (BusSubscriber,), {"bus": bus})()
    protocol.makeConnection(StringTransport())
    messages = [
        json.dumps({"node": "a", "seq": n, "kind": "say", "text": f"line {n}"}).encode()
        for n in range(1, 6)
    ]
    chunk = b"".join(
        b"*3\r\n$7\r\nmessage\r\n$15\r\nnetlab:chat:bus\r\n$%d\r\n%s\r\n" % (len(m), m)
        for m in messages
    )
    protocol.dataReceived(chunk)
    assert [m["seq"] for m in heard.heard] == [1, 2, 3, 4, 5]
    protocol.connectionLost(Failure(ConnectionDone()))


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1", ("127.0.0.1", 6379, 0, None, None, "redis://127.0.0.1:6379/0")),
    ("redis://[::1]:6380/2", ("::1", 6380, 2, None, None, "redis://[::1]:6380/2")),
    ("redis://:s3cret@10.0.0.9:6379/0",
     ("10.0.0.9", 6379, 0, None, "s3cret", "redis://:***@10.0.0.9:6379/0")),
    ("redis://lab:p%40ss%3Aword@redis.lab/1",
     ("redis.lab", 6379, 1, "lab", "p@ss:word", "redis://lab:***@redis.lab:6379/1")),
])
def test_redis_urls_with_and_without_a_password(url: str, expected: tuple[Any, ...]) -> None:
    """A password may come in the URL (percent-encoded); it is never shown."""
    address = redis_address(url)
    assert address is not None
    found = (address.host, address.port, address.db, address.username, address.password,
             address.shown)
    assert found == expected


@pytest.mark.parametrize("url", ["redis://", "http://127.0.0.1", "redis://h:0", "redis://a@b@c"])
def test_bad_redis_urls(url: str) -> None:
    assert redis_address(url) is None


@pytest_twisted.inlineCallbacks
def test_a_redis_with_a_password(tmp_path: Any) -> Any:
    """
    A Redis that requires a password (requirepass) is joined with the URL's;
    a wrong one leaves the bus down, saying why without the password.
    """
    server = Redis(free_port(), "--requirepass", "s3cret")
    try:
        address = redis_address(f"redis://:s3cret@127.0.0.1:{server.port}/0")
        assert address is not None
        bus = RedisBus(reactor, address.host, address.port, 0, "netlab:chat:", 0.5,
                       password=address.password, shown=address.shown)
        heard = Listener()
        bus.start(heard)
        try:
            yield heard.up
            assert (yield bus.claim("netlab:chat:nick:alice", "a", 5.0)) is True
        finally:
            yield bus.stop()
        wrong = RedisBus(reactor, "127.0.0.1", server.port, 0, "netlab:chat:", 0.5,
                         password="wrong", shown="redis://:***@127.0.0.1")
        refused = Refused()
        wrong.start(refused)
        try:
            why = yield refused.down
            assert "wrong" not in why and "s3cret" not in why
            assert not wrong.up
        finally:
            yield wrong.stop()
    finally:
        server.stop()


class Refused(Listener):
    """Fires C{down} with the bus's first "down" reason."""

    def __init__(self) -> None:
        super().__init__()
        self.down: Deferred[str] = Deferred()

    def bus_down(self, why: str) -> None:
        if not self.down.called:
            self.down.callback(why)


def test_a_bad_redis_url_is_one_config_line(tmp_path: Any) -> None:
    """The file, the key, the value and the form it must have, before anything listens."""
    from netlab.app import registry
    from netlab.core.config import ConfigError

    path = tmp_path / "netlab.toml"
    path.write_text('[cluster]\nredis = "redis://a@b@c:6379"\n')
    with pytest.raises(ConfigError) as refused:
        registry.load(path, environment=False)
    assert str(refused.value) == (
        f'{path}: [cluster].redis = "redis://a@b@c:6379": '
        "must be redis://[[user]:password@]host[:port][/db]"
    )
