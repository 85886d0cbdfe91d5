"""
The chat bus (L{netlab.protocols.chat.bus}) over Redis, with C{txredisapi}'s
Twisted protocols (the client Synapse uses).

Two connections, each kept up by a Twisted L{ClientService} that retries
with exponential backoff up to C{max_retry_delay}: one subscribed to the
chat's channel, one for commands.  The bus is up while both are.

In Redis, under C{netlab:<chat name>:}:

    bus           the channel every node publishes to and hears from
    nick:<nick>   the node holding the case-folded nick, expiring unless refreshed
    room:<room>   a list of the room's last lines (JSON messages)
    registered    a hash: each registered nick's JSON entry
    bans          a hash: each banned network's JSON entry

A claim, refresh and release is one Lua script each, so "take it if free
or mine" is atomic across nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from netlab.protocols.chat.bus import BusListener, Message, decode, encode

# Take the nick KEYS[1] for node ARGV[1] for ARGV[2] milliseconds if it is
# free or already the node's: 1 if taken, else 0.
CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Drop the nick KEYS[1] if node ARGV[1] holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class BusSubscriber(txredisapi.SubscriberProtocol):
    """The subscribed connection: messages to the bus, and whether it is there."""

    bus: RedisBus

    def connectionMade(self) -> Any:
        made = super().connectionMade()
        self.whenConnected().addCallback(
            lambda _: self.subscribe(self.bus.channel)
        ).addCallbacks(lambda _: self.bus.subscribed(self), self.bus.failed)
        return made

    def messageReceived(self, pattern: object, channel: object, message: str) -> None:
        self.bus.message(message)

    def connectionLost(self, why: Failure) -> None:
        super().connectionLost(why)
        self.bus.lost(self, why)


class BusCommands(txredisapi.RedisProtocol):
    """The command connection: usable once its database is selected."""

    bus: RedisBus

    def connectionMade(self) -> Any:
        made = super().connectionMade()
        self.whenConnected().addCallback(self.bus.commands_made)
        return made

    def connectionLost(self, why: Failure) -> None:
        super().connectionLost(why)
        self.bus.commands_lost(self, why)


class TellsRefusal(txredisapi.RedisFactory):
    """A connection's factory that tells the bus when Redis refuses it (AUTH, SELECT)."""

    bus: RedisBus

    def connectionError(self, why: str) -> None:
        super().connectionError(why)
        self.bus.refused(why)


class BusSubscribing(TellsRefusal, txredisapi.SubscriberFactory):
    """The subscribed connection's factory."""


class BusCommanding(TellsRefusal):
    """The command connection's factory."""


class RedisBus:
    """A L{netlab.protocols.chat.bus.Bus} on a Redis server."""

    log = Logger()

    def __init__(
        self, reactor: Any, host: str, port: int, db: int, prefix: str,
        max_retry_delay: float, timeout: float = 5.0, *,
        password: str | None = None, username: str | None = None, shown: str | None = None,
    ) -> None:
        """
        @param password: Redis's C{requirepass} (or the ACL user C{username}'s).
        @param shown: how the server is named in what the bus says (never
            with the password).
        """
        self.reactor = reactor
        self.address = shown or f"redis://{host}:{port}/{db}"
        self.channel = f"{prefix}bus"
        self.listener: BusListener | None = None
        self.subscriber: BusSubscriber | None = None
        self.commands: txredisapi.RedisProtocol | None = None
        self.timeout = timeout
        # Commands sent and not yet answered: a stop waits for them.
        self.pending: set[Deferred[Any]] = set()
        endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
        retry = backoffPolicy(maxDelay=max_retry_delay)
        subscribing = BusSubscribing()
        subscribing.bus = self
        subscribing.protocol = type("Subscriber", (BusSubscriber,), {"bus": self})
        # Each connection says AUTH first (the subscriber's factory takes no password).
        subscribing.password, subscribing.username = password, username
        commanding = BusCommanding(
            None, db, 1, isLazy=True, replyTimeout=timeout, password=password, username=username,
        )
        commanding.bus = self
        commanding.protocol = type("Commands", (BusCommands,), {"bus": self})
        self.services = [
            ClientService(endpoint, subscribing, retryPolicy=retry),
            ClientService(endpoint, commanding, retryPolicy=retry),
        ]

    # -- connections --------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.subscriber is not None and self.commands is not None

    def start(self, listener: BusListener) -> None:
        self.listener = listener
        for service in self.services:
            service.startService()
        # Redis down at the start: said once; the services keep trying.
        self.services[0].whenConnected(failAfterFailures=1).addErrback(self.unreachable)

    def unreachable(self, failure: Failure) -> None:
        if self.listener is not None and not self.up:
            self.listener.bus_down(f"cannot reach {self.address}: {failure.getErrorMessage()}")

    def refused(self, why: str) -> None:
        """Redis would not have this connection (AUTH or SELECT failed); it is tried again."""
        if self.listener is not None and not self.up:
            self.listener.bus_down(f"{self.address}: {why}")

    def stop(self) -> Deferred[None]:
        """
        Hang up once the commands already sent are answered (a stopping
        node's quits and releases), or after C{timeout} seconds.
        """
        self.listener = None
        answered: Deferred[Any] = DeferredList(list(self.pending), consumeErrors=True)
        answered.addTimeout(self.timeout, self.reactor)
        answered.addErrback(lambda _: None)

        def hang_up() -> Deferred[None]:
            stopped = DeferredList([s.stopService() for s in self.services], consumeErrors=True)
            return stopped.addCallback(lambda _: None)

        # On a pass of its own: the last answer is read inside the
        # connection's own callbacks, where its ClientService cannot stop.
        return answered.addCallback(lambda _: deferLater(self.reactor, 0, hang_up))

    def commands_made(self, connection: BusCommands) -> None:
        self.commands = connection
        self.changed()

    def commands_lost(self, connection: BusCommands, why: Failure) -> None:
        if self.commands is connection:
            self.commands = None
            self.went_down(why)

    def subscribed(self, subscriber: BusSubscriber) -> None:
        self.subscriber = subscriber
        self.changed()

    def failed(self, failure: Failure) -> None:
        self.log.failure("subscribing to the chat bus", failure)

    def lost(self, subscriber: BusSubscriber, why: Failure) -> None:
        if self.subscriber is subscriber:
            self.subscriber = None
            self.went_down(why)

    def changed(self) -> None:
        if self.up and self.listener is not None:
            self.listener.bus_up()

    def went_down(self, why: Failure) -> None:
        if self.listener is not None:
            self.listener.bus_down(f"lost {self.address}: {why.getErrorMessage()}")

    def message(self, data: str) -> None:
        message = decode(data)
        if message is None:
            self.log.warn("not a chat bus message on {channel}", channel=self.channel)
        elif self.listener is not None:
            self.listener.received(message)

    # -- the bus -------------------------------------------------------------------

    def command(self, name: str, *args: Any) -> Deferred[Any]:
        """Run one command now; failures are logged and give C{None}."""
        assert self.commands is not None
        # txredisapi raises at once on a connection it knows is gone (its
        # loss not yet reported here): a failure like any other, so the
        # heartbeat that sent it keeps beating.
        running: Deferred[Any] = maybeDeferred(getattr(self.commands, name), *args)
        running.addErrback(self.command_failed, name)
        if not running.called:
            self.pending.add(running)
            running.addBoth(self.answered, running)
        return running

    def answered(self, result: object, command: Deferred[Any]) -> object:
        self.pending.discard(command)
        return result

    def command_failed(self, failure: Failure, name: str) -> None:
        self.log.warn("Redis {name} failed: {why}", name=name, why=failure.getErrorMessage())

    def publish(self, message: Message, room: str | None = None, keep: int = 0) -> None:
        if not self.up:
            return
        data = encode(message)
        if room is not None and keep:
            self.command("rpush", room, data)
            self.command("ltrim", room, -keep, -1)
        self.command("publish", self.channel, data)

    def claim(self, key: str, node: str, ttl: float) -> Deferred[bool]:
        if not self.up:
            return succeed(True)
        claimed = self.command("eval", CLAIM, [key], [node, math.ceil(ttl * 1000)])
        return claimed.addCallback(lambda taken: taken == 1)

    def refresh(self, keys: Iterable[str], node: str, ttl: float) -> None:
        if self.up:
            for key in keys:
                self.claim(key, node, ttl)

    def release(self, key: str, node: str) -> None:
        if self.up:
            self.command("eval", RELEASE, [key], [node])

    def history(self, room: str) -> Deferred[list[Message]]:
        if not self.up:
            return succeed([])
        kept = self.command("lrange", room, 0, -1)
        return kept.addCallback(
            lambda lines: [m for m in (decode(line) for line in lines or []) if m is not None]
        )

    def put(self, table: str, key: str, value: str) -> None:
        if self.up:
            self.command("hset", table, key, value)

    def table(self, table: str) -> Deferred[dict[str, str]]:
        if not self.up:
            return succeed({})
        return self.command("hgetall", table).addCallback(lambda entries: dict(entries or {}))


__all__ = ["RedisBus"]
