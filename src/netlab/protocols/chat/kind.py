"""
The chat's two service kinds, C{[chat]} (telnet and netcat users, and the
hub every way in shares) and C{[udp_chat]} (the datagram front-end).

The chat kind builds the one L{ChatHub} and its database and shares the
hub with the kinds built after it (the UDP chat, the web site's browser
chat) through the build context.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import PurePath

from twisted.internet.defer import Deferred
from twisted.logger import LogLevel

from netlab.core.events import ERROR
from netlab.core.kinds import BuildContext, BuiltService, InWorkers, ServiceKind
from netlab.core.passwords import hash_later, verify_later
from netlab.core.settings import LOOPBACK
from netlab.protocols.chat.bus import Bus
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.chat.line import ChatFactory
from netlab.protocols.chat.settings import (
    ChatSettings,
    ClusterSettings,
    RedisAddress,
    UdpChatSettings,
    check_chat,
    check_cluster,
    check_udp_chat,
    finish_cluster,
    redis_address,
)
from netlab.protocols.chat.store import ChatStore, ChatStoreError
from netlab.protocols.chat.udp import UdpChat
from netlab.protocols.sqlwriter import Database


class ChatDatabase(Database):
    """The chat's store as a shared resource: opened before listening."""

    def __init__(self, store: ChatStore, service: str, path: str) -> None:
        super().__init__(service, path, store.open, store.close, ChatStoreError)


class ClusterLink:
    """The hub's link to the other nodes as a shared resource: joined before listening."""

    def __init__(self, hub: ChatHub, address: str) -> None:
        self.hub = hub
        self.service = hub.name
        self.description = f"chat cluster on {address}"

    def open(self) -> None:
        assert self.hub.cluster is not None
        self.hub.cluster.start()

    def close(self) -> Deferred[None]:
        assert self.hub.cluster is not None
        return self.hub.cluster.stop()


def redis_bus(
    address: RedisAddress, cluster: ClusterSettings, chat: ChatSettings, reactor: object,
) -> Bus:
    """The bus on the Redis at C{address}, for the chat called C{chat.name}."""
    from netlab.protocols.chat.redisbus import RedisBus

    return RedisBus(
        reactor, address.host, address.port, address.db, f"netlab:{chat.name}:",
        cluster.max_retry_delay, password=address.password, username=address.username,
        shown=address.shown,
    )


def worker_database(path: str, worker: int | None) -> str:
    """
    The chat database of the worker numbered C{worker}: each worker hears
    every line through the bus and keeps its own copy, the first in the
    file as named, the others beside it (C{chat.w1.sqlite3}).
    """
    if not worker or path in ("", ":memory:"):
        return path
    named = PurePath(path)
    return str(named.with_name(f"{named.stem}.w{worker}{named.suffix}"))


def build_chat(settings: ChatSettings, context: BuildContext) -> BuiltService:
    """The hub, its database, and the telnet/netcat front-end's factory."""
    events, reactor = context.events, context.reactor
    cluster: ClusterSettings | None = (
        context.config.sections.get("cluster") if context.config is not None else None
    )
    if cluster is not None and not cluster.enabled:
        cluster = None
    address = redis_address(cluster.redis) if cluster is not None else None
    assert cluster is None or address is not None, "check_cluster refuses a bad URL"
    database = worker_database(settings.database, context.worker)
    if cluster is not None and context.worker is not None:
        # Each worker is a node of its own, named after the daemon's.
        cluster = replace(cluster, node=f"{cluster.node}.w{context.worker}")
    store = ChatStore(
        database, settings.history_lines, reactor, seed=(
            settings.database if database != settings.database else None
        ),
        on_error=lambda message: events.emit(
            ERROR, settings.name, None, LogLevel.error, error=message
        ),
        # The hub's counters (made just below), which the dashboard shows.
        count=lambda what, amount: hub.count(what, amount),
    )
    hub = ChatHub(
        settings, events, reactor, store,
        verify=partial(verify_later, reactor),
        make_hash=partial(hash_later, reactor),
        bus=redis_bus(address, cluster, settings, reactor) if cluster and address else None,
        cluster=cluster,
    )
    context.add_resource(ChatDatabase(store, settings.name, database))
    if address is not None:
        context.add_resource(ClusterLink(hub, address.shown))
    context.provide(ChatStore, store)
    context.provide(ChatHub, hub)
    return BuiltService(stream=ChatFactory(settings, events, reactor, hub), parts=[hub])


def build_udp_chat(settings: UdpChatSettings, context: BuildContext) -> BuiltService:
    """The datagram front-end, one protocol per address, into the shared hub."""
    hub = context.lookup(ChatHub)
    assert hub is not None, "the config check makes [udp_chat] need [chat]"
    events, reactor = context.events, context.reactor
    return BuiltService(datagram=lambda guard: UdpChat(settings, guard, events, hub, reactor))


CHAT = ServiceKind(
    section="chat",
    settings=ChatSettings,
    default_listen=(f"tcp:7070:interface={LOOPBACK}",),
    build=build_chat,
    check=check_chat,
    restart_keys=frozenset({"database", "history_lines"}),
    counters=("users_online", "rooms", "messages", "joins"), try_with="telnet {host} {port}",
    in_workers=InWorkers.CLUSTER,
)

UDP_CHAT = ServiceKind(
    section="udp_chat",
    settings=UdpChatSettings,
    default_listen=(f"udp:7071:interface={LOOPBACK}",),
    build=build_udp_chat,
    check=check_udp_chat,
    # A datagram user's session lives in one process; the parent's one
    # socket gives every datagram to whichever worker reads it.
    in_workers=InWorkers.FIRST,
)


def build_cluster(settings: ClusterSettings, context: BuildContext) -> BuiltService:
    """Nothing of its own: the chat's hub joins the cluster (L{build_chat})."""
    return BuiltService()


CLUSTER = ServiceKind(
    section="cluster",
    settings=ClusterSettings,
    default_listen=(),
    build=build_cluster,
    check=check_cluster,
    finish=finish_cluster,
    restart_keys=frozenset({"redis", "node", "heartbeat", "bound", "max_retry_delay"}),
)
