"""
Reloading the configuration on SIGHUP, without dropping a connection.

The log file is reopened (so logrotate can move it), and the config file is
read again.  An invalid file is logged and changes nothing.  A valid one
has its safe part applied to the running services (limits, MOTD, banner,
operator hash, rate limits, log level); what needs new sockets or new
protocol objects (listen addresses, enabling a service, an echo's mode, the
chat database: each kind says which) is logged as needing a restart and
left as it was.

What changes is worked out by L{plan}, a pure function of the old and the
new config; L{reload} then hands the result to the running service, whose
components each take their new settings through C{configure}.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.logger import LogLevel

from netlab.core import config as loader
from netlab.core.config import Config, ConfigError
from netlab.core.events import RELOAD, EventLog
from netlab.core.kinds import ServiceKind


class Reloadable(Protocol):
    """What a reload needs of the running daemon (C{NetlabService})."""

    events: EventLog
    config: Config
    config_path: str | None
    kinds: Sequence[ServiceKind[Any]]

    def configure(self, config: Config) -> None:
        """Run with C{config} from now on."""


@dataclass(frozen=True)
class ReloadPlan:
    """
    What a reload does.

    @ivar running: the config to run with from now on: the new one, less
        what waits for a restart.
    @ivar applied: the keys applied now (C{echo.banner}, C{log.level}).
    @ivar waiting: what only a restart applies.
    """

    running: Config
    applied: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


def plan(old: Config, new: Config, kinds: Sequence[ServiceKind[Any]]) -> ReloadPlan:
    """Old config against new: what is applied now, and what waits."""
    kind_by_name = _kinds_by_name(old, kinds)
    old_services, new_services = old.by_name(), new.by_name()
    applied: list[str] = []
    waiting: list[str] = []
    running: dict[str, Any] = {}
    for name in sorted(set(old_services) | set(new_services)):
        before, after = old_services.get(name), new_services.get(name)
        if before is None or after is None or type(before) is not type(after):
            waiting.append(f"service {name} added or removed")
            if before is not None:
                running[name] = before
            continue
        kind = kind_by_name[name]
        keep: dict[str, Any] = {}
        for f in dataclasses.fields(before):
            was, now = getattr(before, f.name), getattr(after, f.name)
            if was == now:
                continue
            if kind.restart_needed(f.name):
                waiting.append(f"{name}.{f.name}")
                keep[f.name] = was
            else:
                applied.append(f"{name}.{f.name}")
        running[name] = dataclasses.replace(after, **keep)
    if new.log.level != old.log.level:
        applied.append("log.level")
    if (new.log.file, new.log.format) != (old.log.file, old.log.format):
        waiting.append("log.file/format")
    config = old.map_services(
        lambda settings: running.get(settings.name, settings),
        log=dataclasses.replace(old.log, level=new.log.level),
    )
    return ReloadPlan(config, applied, waiting)


def _kinds_by_name(config: Config, kinds: Sequence[ServiceKind[Any]]) -> dict[str, Any]:
    by_section = {kind.section: kind for kind in kinds}
    return {
        settings.name: by_section[where.split("]", 1)[0]]
        for where, settings in config.services()
    }


def reload(service: Reloadable) -> None:
    """Reopen logs and apply what can be applied of the config file, now."""
    events = service.events
    events.reopen()
    source = service.config.source
    if service.config_path is None:
        events.emit(RELOAD, "netlab", outcome="logs reopened (built-in defaults, no file to read)")
        return
    try:
        new = loader.load(service.config_path, kinds=service.kinds)
    except ConfigError as e:
        events.emit(
            RELOAD, "netlab", None, LogLevel.error,
            outcome=f"config refused, still running the old one: {e}",
        )
        return
    change = plan(service.config, new, service.kinds)
    service.configure(change.running)
    outcome = f"{source}: applied {', '.join(change.applied) or 'no changes'}"
    if change.waiting:
        outcome += f"; needs a restart: {', '.join(change.waiting)}"
    events.emit(
        RELOAD, "netlab", None, LogLevel.warn if change.waiting else LogLevel.info,
        outcome=outcome,
    )
