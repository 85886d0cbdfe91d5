"""
The settings every service shares, and C{setting()}, which declares a
field together with the limits the config loader enforces.

A service kind's own settings dataclass lives beside its protocol and
subclasses L{StreamSettings} or L{DatagramGuardSettings} (or both); its
fields are declared with L{setting}, so validation, error messages and the
example-config test come for free.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import LogLevel

LOOPBACK = "127.0.0.1"

LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def setting(
    default: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: Sequence[str] | None = None,
    endpoints: str | None = None,
    cidrs: bool = False,
    beside_config: bool = False,
) -> Any:
    """
    A dataclass field with the limits that validation enforces.

    @param endpoints: C{"stream"}, C{"datagram"} or C{"any"}: the field is a
        list of listen strings of that kind.
    @param cidrs: the field is a list of CIDR network strings.
    @param beside_config: the field is a path which, when relative, is
        taken from the config file's folder, not from wherever the daemon
        was started (a folder shipped beside the config).
    """
    return field(
        default=default,
        metadata={
            "lo": lo,
            "hi": hi,
            "choices": choices,
            "endpoints": endpoints,
            "cidrs": cidrs,
            "beside_config": beside_config,
        },
    )


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    """Where the shared event log writes, in what format and from what level."""

    level: str = setting("info", choices=LOG_LEVELS)
    format: str = setting("text", choices=("text", "json"))
    file: str = setting("")
    recent_events: int = setting(200, lo=1, hi=100_000)


# The most worker processes C{[daemon] workers} may ask for.
MAX_WORKERS = 256


@dataclass(frozen=True, kw_only=True)
class DaemonSettings:
    """
    C{[daemon]}: how the daemon runs.  C{workers} processes serve every
    service on the same sockets (1: one process, no supervisor); the file
    may say C{"auto"}, one per core, which the loader turns into a number.
    """

    workers: int = setting(1, lo=1, hi=MAX_WORKERS)


@dataclass(frozen=True, kw_only=True)
class AccessSettings:
    """C{[access]}: address lists every service applies, besides its own."""

    allow: tuple[str, ...] = setting((), cidrs=True)
    deny: tuple[str, ...] = setting((), cidrs=True)


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    """What every stream service has: where it listens and its limits."""

    name: str = setting("")
    enabled: bool = setting(True)
    listen: tuple[str, ...] = setting((), endpoints="stream")
    idle_timeout: float = setting(300.0, lo=0, hi=86_400)
    max_connections: int = setting(1000, lo=1, hi=1_000_000)
    max_connections_per_peer: int = setting(50, lo=1, hi=1_000_000)
    allow: tuple[str, ...] = setting((), cidrs=True)
    deny: tuple[str, ...] = setting((), cidrs=True)


@dataclass(frozen=True, kw_only=True)
class DatagramGuardSettings:
    """The reflection guards every UDP service applies to every datagram."""

    max_datagram: int = setting(8192, lo=1, hi=65_507)
    min_source_port: int = setting(1024, lo=0, hi=65_535)
    rate: float = setting(100.0, lo=0.001, hi=10_000_000)
    burst: int = setting(200, lo=1, hi=10_000_000)
    rate_exempt: tuple[str, ...] = setting((), cidrs=True)
    max_sources: int = setting(65_536, lo=16, hi=10_000_000)
    allow: tuple[str, ...] = setting((), cidrs=True)
    deny: tuple[str, ...] = setting((), cidrs=True)


@dataclass(frozen=True, kw_only=True)
class PayloadLogging:
    """
    C{log_payload}: this service's payload samples at C{info}, so one
    service's data can be shown (the course's "service messages" exercise)
    without the whole daemon at debug level, which would show everyone's.
    Services that carry private text (the chat, logins) do not offer it.
    """

    log_payload: bool = setting(False)


def payload_level(log_payload: bool, debug_enabled: bool) -> LogLevel | None:
    """
    The level a service logs its payload samples at (None: not at all): its
    own C{log_payload}, else the daemon's level, which a reload may change.
    """
    if log_payload:
        return LogLevel.info
    return LogLevel.debug if debug_enabled else None


@dataclass(frozen=True, kw_only=True)
class DatagramSettings(DatagramGuardSettings):
    """What every datagram-only service has: its name, switch and addresses."""

    name: str = setting("")
    enabled: bool = setting(True)
    listen: tuple[str, ...] = setting((), endpoints="datagram")


@dataclass(frozen=True, kw_only=True)
class Config:
    """
    The whole daemon's configuration: the log, the global access lists, and
    each kind's settings by section name (a tuple for a list section such
    as C{[[echo]]}, the settings themselves for a table such as C{[chat]}),
    also readable as attributes: C{config.chat}, C{config.echo}.
    """

    source: str = "<built-in defaults>"
    log: LogSettings = field(default_factory=LogSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    sections: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections", {})
        if name.startswith("_") or name not in sections:
            raise AttributeError(name)
        return sections[name]

    def services(self) -> Iterator[tuple[str, Any]]:
        """
        Every service's settings, with where it is in the file
        (C{echo][1} for the second C{[[echo]]}, C{chat} for C{[chat]}).
        """
        for section, value in self.sections.items():
            if isinstance(value, tuple):
                for i, settings in enumerate(value):
                    yield f"{section}][{i}", settings
            else:
                yield section, value

    def by_name(self) -> dict[str, Any]:
        """Every service's settings by service name."""
        return {settings.name: settings for _, settings in self.services()}

    def map_services(self, change: Callable[[Any], Any], **other: Any) -> Config:
        """A copy with C{change} applied to every service's settings."""
        sections = {
            section: tuple(change(s) for s in value) if isinstance(value, tuple)
            else change(value)
            for section, value in self.sections.items()
        }
        return dataclasses.replace(self, sections=sections, **other)


__all__ = [
    "LOG_LEVELS",
    "LOOPBACK",
    "MAX_WORKERS",
    "AccessSettings",
    "Config",
    "DaemonSettings",
    "DatagramGuardSettings",
    "DatagramSettings",
    "LogSettings",
    "PayloadLogging",
    "StreamSettings",
    "payload_level",
    "setting",
]
