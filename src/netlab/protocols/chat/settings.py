"""
The chat's settings, C{[chat]} and C{[udp_chat]}, and the checks of their
values that need more than a range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from netlab.core.kinds import Fail
from netlab.core.settings import DatagramSettings, StreamSettings, setting
from netlab.core.tomltext import toml_value

NICK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")
ROOM_NAME = re.compile(r"^#[A-Za-z0-9_.-]{1,16}$")
NODE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

DEFAULT_RESERVED_NICKS = (
    "server", "netlab", "admin", "administrator", "operator", "oper", "root",
    "system", "sysop", "nickserv", "chanserv", "anonymous", "everyone",
)


@dataclass(frozen=True, kw_only=True)
class ChatSettings(StreamSettings):
    """The line chat: C{[chat]}."""

    listen: tuple[str, ...] = setting((), endpoints="stream")
    motd: str = setting("Welcome to the netlab chat. Type /help for the commands.")
    default_room: str = setting("#lobby")
    timezone: str = setting("UTC")
    database: str = setting("netlab-chat.sqlite3")
    history_lines: int = setting(20, lo=0, hi=1000)
    max_line: int = setting(1024, lo=16, hi=65_536)
    max_rooms: int = setting(100, lo=1, hi=100_000)
    reserved_nicks: tuple[str, ...] = setting(DEFAULT_RESERVED_NICKS)
    login_timeout: float = setting(60.0, lo=1, hi=3600)
    idle_timeout: float = setting(1800.0, lo=0, hi=86_400)
    idle_warning: float = setting(60.0, lo=0, hi=86_400)
    flood_lines: int = setting(5, lo=1, hi=10_000)
    flood_seconds: float = setting(5.0, lo=0.1, hi=3600)
    flood_mute: float = setting(60.0, lo=1, hi=86_400)
    max_output: int = setting(262_144, lo=4096, hi=67_108_864)
    oper_password_hash: str = setting("")
    identify_attempts: int = setting(3, lo=1, hi=100)
    identify_delay: float = setting(2.0, lo=0, hi=60)
    address_failures: int = setting(20, lo=1, hi=100_000)
    nick_failures: int = setting(5, lo=1, hi=100_000)
    failure_window: float = setting(300.0, lo=1, hi=86_400)
    max_hashing: int = setting(2, lo=1, hi=64)
    max_hashing_waiting: int = setting(8, lo=0, hi=10_000)


@dataclass(frozen=True, kw_only=True)
class UdpChatSettings(DatagramSettings):
    """The UDP front-end to the chat: C{[udp_chat]}, off by default."""

    enabled: bool = setting(False)
    max_members: int = setting(100, lo=1, hi=100_000)
    max_members_per_host: int = setting(5, lo=1, hi=100_000)
    open_to: tuple[str, ...] = setting(("127.0.0.0/8", "::1/128"), cidrs=True)
    max_pending: int = setting(1000, lo=1, hi=1_000_000)
    max_pending_per_network: int = setting(64, lo=1, hi=1_000_000)
    cookie_timeout: float = setting(30.0, lo=1, hi=3600)
    member_timeout: float = setting(300.0, lo=10, hi=86_400)


def check_chat(chat: ChatSettings, config: Any, fail: Fail) -> None:
    """The chat's values that need more than a range: names, zone, hash."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from netlab.core.passwords import hash_problem

    if not ROOM_NAME.match(chat.default_room):
        raise fail(
            "default_room", chat.default_room,
            "must be # and 1 to 16 of letters, digits, _, - and .",
        )
    try:
        ZoneInfo(chat.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail("timezone", chat.timezone, "unknown time zone") from None
    if any((ord(c) < 32 and c != "\n") or ord(c) == 127 for c in chat.motd):
        raise fail("motd", chat.motd, "must not contain control characters (newlines are fine)")
    if chat.oper_password_hash:
        problem = hash_problem(chat.oper_password_hash)
        if problem:
            raise fail("oper_password_hash", chat.oper_password_hash, problem)
    for nick in chat.reserved_nicks:
        if not NICK_NAME.match(nick):
            raise fail(
                "reserved_nicks", list(chat.reserved_nicks), f"{toml_value(nick)} is not a nick"
            )
    if chat.idle_timeout and chat.idle_warning >= chat.idle_timeout:
        raise fail("idle_warning", chat.idle_warning, "must be less than idle_timeout")


def check_udp_chat(udp_chat: UdpChatSettings, config: Any, fail: Fail) -> None:
    """The UDP chat is a way into the chat's rooms: it needs the chat."""
    if udp_chat.enabled and not config.chat.enabled:
        raise fail("enabled", True, "the UDP chat joins the [chat] rooms: enable [chat] too")


@dataclass(frozen=True, kw_only=True)
class ClusterSettings:
    """
    C{[cluster]}: the chat's rooms shared with other netlab processes and
    hosts through Redis; off while C{redis} is empty.
    """

    name: str = setting("")
    enabled: bool = setting(False)
    listen: tuple[str, ...] = setting((), endpoints="stream")
    # What [access] merges into every service; the cluster serves no one.
    allow: tuple[str, ...] = setting((), cidrs=True)
    deny: tuple[str, ...] = setting((), cidrs=True)
    redis: str = setting("")
    # This process's name in the cluster; empty: host name and process id.
    node: str = setting("")
    heartbeat: float = setting(5.0, lo=0.1, hi=3600)
    # A node not heard from for this long is gone: its users quit, its nicks expire.
    bound: float = setting(15.0, lo=0.3, hi=86_400)
    # The longest wait between tries to reach Redis again.
    max_retry_delay: float = setting(5.0, lo=0.1, hi=3600)


REDIS_URL = re.compile(
    r"^redis://(?:(?P<user>[^:@/\[\]]*)(?::(?P<password>[^@/]*))?@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?"
    r"(?:/(?P<db>\d{1,5}))?$"
)


@dataclass(frozen=True)
class RedisAddress:
    """
    Where the cluster's Redis is, from C{redis://[[user]:password@]host[:port][/db]}
    (user and password percent-encoded).  C{shown} is the URL for logs and
    the dashboard, its password never in it.
    """

    host: str
    port: int
    db: int
    username: str | None = None
    password: str | None = None

    @property
    def shown(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        who = self.username or ""
        if self.password is not None:
            who += ":***"
        return f"redis://{who + '@' if who else ''}{host}:{self.port}/{self.db}"


def redis_address(url: str) -> RedisAddress | None:
    """The Redis a C{redis://} URL names, or C{None} if it is not one."""
    match = REDIS_URL.match(url)
    if match is None:
        return None
    port = int(match["port"] or 6379)
    if not 0 < port < 65536:
        return None
    user, password = match["user"], match["password"]
    return RedisAddress(
        match["host"].strip("[]"), port, int(match["db"] or 0),
        unquote(user) if user else None,
        unquote(password) if password is not None else None,
    )


def finish_cluster(cluster: ClusterSettings) -> ClusterSettings:
    """On when Redis is named; the node named after this host and process by default."""
    import os
    import socket

    node = cluster.node or f"{socket.gethostname()}-{os.getpid()}"
    return replace(cluster, enabled=bool(cluster.redis), node=node)


def check_cluster(cluster: ClusterSettings, config: Any, fail: Fail) -> None:
    """The Redis URL, the node's name, and a bound longer than the heartbeat."""
    if cluster.redis and redis_address(cluster.redis) is None:
        raise fail("redis", cluster.redis, "must be redis://[[user]:password@]host[:port][/db]")
    if not NODE_NAME.match(cluster.node):
        raise fail("node", cluster.node, "must be 1 to 64 letters, digits, _, - and .")
    if cluster.bound < 2 * cluster.heartbeat:
        raise fail("bound", cluster.bound, "must be at least twice the heartbeat")
