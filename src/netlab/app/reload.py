"""
Reloading the configuration on SIGHUP, without dropping a connection.

The log file is reopened (so logrotate can move it), and the config file is
read again.  An invalid file is logged and changes nothing.  A valid one
has its safe part applied to the running services (limits, MOTD, banner,
operator hash, rate limits, log level); what needs new sockets or new
protocol objects (listen addresses, enabling a service, an echo's mode, the
chat database) is logged as needing a restart and left as it was.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from twisted.logger import LogLevel

from netlab.core.config import Config, ConfigError, load, map_services
from netlab.core.events import RELOAD
from netlab.core.limits import DatagramGuard, retune

if TYPE_CHECKING:
    from netlab.app.service import NetlabService

# Settings that only take effect with a restart.
RESTART_KEYS = frozenset({
    "name", "enabled", "listen", "mode", "framing", "database", "history_lines",
})


def _services(config: Config) -> dict[str, Any]:
    """Every service's settings in C{config}, by service name."""
    everything: list[Any] = [
        *config.echo, *config.udp_echo, *config.framed_echo, *config.classic().values(),
        config.chat, config.udp_chat, config.http,
    ]
    return {settings.name: settings for settings in everything}


def _split(old: Any, new: Any) -> tuple[Any, list[str], list[str]]:
    """
    The settings to run with, the keys applied now, and the keys that wait for
    a restart.
    """
    applied, waiting = [], []
    keep: dict[str, Any] = {}
    for f in dataclasses.fields(old):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before == after:
            continue
        if f.name in RESTART_KEYS:
            waiting.append(f.name)
            keep[f.name] = before
        else:
            applied.append(f.name)
    return dataclasses.replace(new, **keep), applied, waiting


def reload(service: NetlabService) -> None:
    """Reopen logs and apply what can be applied of the config file, now."""
    events = service.events
    events.reopen()
    source = service.config.source
    if service.config_path is None:
        events.emit(RELOAD, "netlab", outcome="logs reopened (built-in defaults, no file to read)")
        return
    try:
        new = load(service.config_path)
    except ConfigError as e:
        events.emit(
            RELOAD, "netlab", None, LogLevel.error,
            outcome=f"config refused, still running the old one: {e}",
        )
        return
    old_services, new_services = _services(service.config), _services(new)
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
        settings, now, later = _split(before, after)
        running[name] = settings
        applied += [f"{name}.{key}" for key in now]
        waiting += [f"{name}.{key}" for key in later]
        if now:
            _apply(service, name, settings)
    if new.log.level != service.config.log.level:
        events.set_level(new.log.level)
        applied.append("log.level")
    if (new.log.file, new.log.format) != (service.config.log.file, service.config.log.format):
        waiting.append("log.file/format")
    service.config = _rebuilt(service.config, running, new)
    outcome = f"{source}: applied {', '.join(applied) or 'no changes'}"
    if waiting:
        outcome += f"; needs a restart: {', '.join(waiting)}"
    events.emit(RELOAD, "netlab", None, LogLevel.warn if waiting else LogLevel.info,
                outcome=outcome)


def _apply(service: NetlabService, name: str, settings: Any) -> None:
    """Hand C{settings} to whatever runs service C{name}."""
    for factory in service.factories:
        if factory.name == name:
            factory.configure(settings)
    hub = service.chat_hub
    if hub is not None and hub.name == name:
        hub.configure(settings)
    site = service.http_site
    if site is not None and site.name == name:
        site.configure(settings)
    for guard in service.guards:
        if guard.reporter.service == name and isinstance(guard, DatagramGuard):
            retune(guard, settings)


def _rebuilt(old: Config, running: dict[str, Any], new: Config) -> Config:
    """The config as now running: new log level, and each service as applied."""
    def pick(settings: Any) -> Any:
        return running.get(settings.name, settings)

    return map_services(old, pick, log=dataclasses.replace(old.log, level=new.log.level))
