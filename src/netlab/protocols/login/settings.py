"""
The login service's settings, C{[login]}, and the checks of their values
that need more than a range: the time zone and the C{users} list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from netlab.core.kinds import Fail
from netlab.core.settings import LOOPBACK, StreamSettings, setting
from netlab.core.tomltext import toml_value

# Login names: Unix-like, compared without regard to case.
USER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")

DEFAULT_LISTEN = (f"tcp:7025:interface={LOOPBACK}",)

# identify: how a client's address and its name are tied together.
IDENTIFY_MODES = ("login", "ask", "off")


@dataclass(frozen=True, kw_only=True)
class LoginSettings(StreamSettings):
    """The login service: C{[login]}, off by default."""

    enabled: bool = setting(False)
    listen: tuple[str, ...] = setting((), endpoints="stream")
    idle_timeout: float = setting(300.0, lo=0, hi=86_400)
    database: str = setting("netlab-login.sqlite3")
    identify: str = setting("login", choices=IDENTIFY_MODES)
    registration: str = setting("closed", choices=("closed", "open"))
    users: tuple[str, ...] = setting(())
    min_password: int = setting(4, lo=1, hi=128)
    max_users: int = setting(1000, lo=1, hi=1_000_000)
    max_attempts: int = setting(3, lo=1, hi=100)
    attempt_delay: float = setting(2.0, lo=0, hi=60)
    login_timeout: float = setting(60.0, lo=1, hi=3600)
    address_failures: int = setting(20, lo=1, hi=100_000)
    user_failures: int = setting(5, lo=1, hi=100_000)
    failure_window: float = setting(300.0, lo=1, hi=86_400)
    max_hashing: int = setting(2, lo=1, hi=64)
    token_ttl: float = setting(3600.0, lo=0, hi=2_592_000)
    hide_password: str = setting("telnet", choices=("telnet", "always", "never"))
    max_line: int = setting(256, lo=16, hi=4096)
    timezone: str = setting("UTC")


def user_key(name: str) -> str:
    """The form a user name is stored and looked up under: case does not count."""
    return name.casefold()


def parse_users(entries: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """
    The C{users} list as C{{key: (name, hash)}}.

    @raise ValueError: naming the entry that is not C{NAME:HASH}.
    """
    from netlab.core.passwords import hash_problem

    users: dict[str, tuple[str, str]] = {}
    for entry in entries:
        name, colon, encoded = entry.partition(":")
        if not colon or not USER_NAME.match(name):
            raise ValueError(
                f"{toml_value(name)} is not a user name (a letter, then up to 31 letters, "
                "digits, _, - or .); each entry is NAME:HASH"
            )
        problem = hash_problem(encoded)
        if problem:
            raise ValueError(f"the hash of {toml_value(name)} {problem}")
        if user_key(name) in users:
            raise ValueError(f"{toml_value(name)} is listed twice")
        users[user_key(name)] = (name, encoded)
    return users


def check_login(login: LoginSettings, config: Any, fail: Fail) -> None:
    """The values a range cannot check: the zone and each configured user."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(login.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail("timezone", login.timezone, "unknown time zone") from None
    try:
        parse_users(login.users)
    except ValueError as e:
        # The list holds hashes, not passwords, so naming it is safe.
        raise fail("users", list(login.users), str(e)) from None
