"""
The IRC front-end's settings, C{[irc]}, and the checks of their values that
need more than a range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from netlab.core.kinds import Fail
from netlab.core.settings import StreamSettings, setting

# A host name as IRC's server names are: letters, digits, - and dots, no spaces.
SERVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$")
NETWORK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


@dataclass(frozen=True, kw_only=True)
class IrcSettings(StreamSettings):
    """The IRC front-end to the chat: C{[irc]}, off by default."""

    enabled: bool = setting(False)
    listen: tuple[str, ...] = setting((), endpoints="stream")
    server_name: str = setting("netlab.local")
    network: str = setting("netlab")
    motd: str = setting("")
    # Seconds of silence before the server PINGs (StreamSettings' idle
    # timeout, as IRC does it), and how long the answer may take.
    idle_timeout: float = setting(120.0, lo=0, hi=86_400)
    ping_timeout: float = setting(60.0, lo=1, hi=3600)
    max_queries: int = setting(20, lo=1, hi=10_000)
    query_seconds: float = setting(10.0, lo=0.1, hi=3600)
    max_output: int = setting(262_144, lo=4096, hi=67_108_864)


def check_irc(irc: IrcSettings, config: Any, fail: Fail) -> None:
    """IRC users join the chat's rooms: it needs the chat; names are IRC's."""
    if irc.enabled and not config.chat.enabled:
        raise fail("enabled", True, "IRC users join the [chat] rooms: enable [chat] too")
    if not SERVER_NAME.match(irc.server_name):
        raise fail("server_name", irc.server_name, "must be a host name (letters, digits, - and .)")
    if not NETWORK_NAME.match(irc.network):
        raise fail("network", irc.network, "must be 1 to 32 letters, digits, _, - or .")
    if any((ord(c) < 32 and c != "\n") or ord(c) == 127 for c in irc.motd):
        raise fail("motd", irc.motd, "must not contain control characters (newlines are fine)")
