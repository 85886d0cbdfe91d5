"""
The netlab configuration: TOML in, frozen dataclasses out.

The loader knows no service: each kind brings its settings dataclass,
whose fields carry their own limits in C{metadata} (see
L{netlab.core.settings.setting}), so validation is one generic walk over
the sections the registry's kinds name, and every error names the file,
the key and the value that was refused.  Nothing here listens or imports
the reactor: tests and C{netlab check-config} call it directly.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from netlab.core.endpoints import (
    beside,
    check_stream,
    endpoint_kind,
    parse_systemd_udp,
    parse_udp,
)
from netlab.core.kinds import ServiceKind
from netlab.core.settings import (
    MAX_WORKERS,
    SERVICE_NAME,
    AccessSettings,
    Config,
    DaemonSettings,
    LogSettings,
)
from netlab.core.tomltext import toml_key, toml_value


class ConfigError(Exception):
    """
    A configuration value was refused; the message names file, key and value.
    """


T = TypeVar("T")


# A field of this type is a TOML table of strings ({ qwe = "hello" }), kept
# as (key, value) pairs in file order so that settings stay frozen,
# hashable and comparable by reload.
STRING_TABLE = tuple[tuple[str, str], ...]


def _number(value: float) -> str:
    """A limit as written in the config: C{1000000}, not C{1e+06}."""
    if float(value).is_integer():
        return str(int(value))
    return repr(value)


def _limits(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"must be from {_number(lo)} to {_number(hi)}"
    if lo is not None:
        return f"must be at least {_number(lo)}"
    return f"must be at most {_number(hi)}"  # type: ignore[arg-type]


class _Loader:
    def __init__(self, source: str, environment: bool) -> None:
        self.source = source
        self.environment = environment
        # The config file's folder, for paths given relative to it.
        self.folder: Path | None = None

    def fail(self, key: str, value: object, why: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key} = {toml_value(value)}: {why}")

    def section(self, cls: type[T], table: object, where: str, **defaults: Any) -> T:
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{self.source}: [{where}] must be a table, not {toml_value(table)}"
            )
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values: dict[str, Any] = dict(defaults)
        for key, value in table.items():
            f = fields.get(key)
            if f is None:
                raise self.fail(
                    f"[{where}].{key}", value,
                    f"unknown key (known: {', '.join(sorted(fields))})",
                )
            values[key] = self.value(f"[{where}].{key}", value, hints[key], f.metadata)
        return cls(**values)

    def value(self, key: str, value: object, hint: Any, meta: Mapping[str, Any]) -> Any:
        if hint is bool:
            if not isinstance(value, bool):
                raise self.fail(key, value, "must be true or false")
            return value
        if hint is int or hint is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(key, value, "must be a number")
            if hint is int and not isinstance(value, int):
                raise self.fail(key, value, "must be a whole number")
            lo, hi = meta.get("lo"), meta.get("hi")
            # Written as "not inside" so that nan, which compares false with
            # everything, is refused too.
            if not ((lo is None or value >= lo) and (hi is None or value <= hi)):
                raise self.fail(key, value, _limits(lo, hi))
            return hint(value)
        if hint is str:
            if not isinstance(value, str):
                raise self.fail(key, value, "must be a string")
            choices = meta.get("choices")
            if choices and value not in choices:
                raise self.fail(key, value, f"must be one of {', '.join(choices)}")
            if meta.get("beside_config") and value and self.folder is not None:
                return str(self.folder / value)  # an absolute value stays as it is
            return value
        if hint == STRING_TABLE:
            return self.string_table(key, value)
        if typing.get_origin(hint) is tuple:
            if not isinstance(value, list) or not all(
                isinstance(v, str) for v in value
            ):
                raise self.fail(key, value, "must be a list of strings")
            if meta.get("endpoints") and self.folder is not None:
                # An ssl: string's files, like every path, are the config's.
                value = [beside(item, self.folder) for item in value]
            for i, item in enumerate(value):
                # A bad entry is named by its own index: key[1] = "lab".
                self.item(f"{key}[{i}]", item, meta)
            return tuple(value)
        raise AssertionError(f"no validation for {hint!r}")  # pragma: no cover

    def string_table(self, key: str, value: object) -> STRING_TABLE:
        """A table of strings; a bad entry is named by its own key."""
        if not isinstance(value, Mapping):
            raise self.fail(key, value, 'must be a table of strings, e.g. { key = "value" }')
        for name, text in value.items():
            if not isinstance(text, str):
                raise self.fail(f"{key}.{toml_key(name)}", text, "must be a string")
        return tuple(value.items())

    def item(self, key: str, item: str, meta: Mapping[str, Any]) -> None:
        wanted = meta.get("endpoints")
        if wanted:
            kind = endpoint_kind(item)
            if wanted != "any" and kind != wanted:
                raise self.fail(
                    key, item,
                    f"is a {kind} endpoint; this service needs "
                    + ("udp:PORT[:interface=ADDR] or systemd-udp:name=NAME"
                       if wanted == "datagram"
                       else "a stream endpoint such as tcp:PORT"),
                )
            try:
                if item.startswith("systemd-udp:"):
                    parse_systemd_udp(item, self.environment)
                elif kind == "datagram":
                    parse_udp(item)
                else:
                    check_stream(item, self.environment)
            except ValueError as e:
                raise self.fail(key, item, str(e)) from None
        if meta.get("cidrs"):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise self.fail(key, item, "not a CIDR network") from None

    def named(self, settings: T, where: str, fallback: str, default_listen: tuple[str, ...]) -> T:
        name: str = getattr(settings, "name") or fallback  # noqa: B009
        if not SERVICE_NAME.match(name):
            raise self.fail(
                f"[{where}].name", name,
                "must be 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit",
            )
        listen = getattr(settings, "listen") or default_listen  # noqa: B009
        return dataclasses.replace(settings, name=name, listen=listen)  # type: ignore[type-var]


def parse(
    data: Mapping[str, Any],
    source: str = "<config>",
    environment: bool = True,
    *,
    kinds: Sequence[ServiceKind[Any]],
    folder: Path | None = None,
) -> Config:
    """
    Validate a parsed TOML document into a L{Config} of C{kinds}; relative
    paths of fields declared C{beside_config} are taken from C{folder}.

    Sections left out keep their kind's defaults (an echo and a UDP echo on
    loopback port 7007, the chat, the web site).  C{echo = []} turns a list
    section off.

    @raise ConfigError: naming C{source}, the key and the value.
    """
    loader = _Loader(source, environment)
    loader.folder = folder
    by_section = {kind.section: kind for kind in kinds}
    sections: dict[str, Any] = {
        kind.section: (
            ((kind.default(),) if kind.present_by_default else ()) if kind.many
            else kind.default()
        )
        for kind in kinds
    }
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section == "log":
            values["log"] = loader.section(LogSettings, table, "log")
        elif section == "access":
            values["access"] = loader.section(AccessSettings, table, "access")
        elif section == "daemon":
            values["daemon"] = _daemon_section(loader, table)
        elif section in by_section:
            sections[section] = _kind_section(loader, by_section[section], table)
        else:
            known = ", ".join(["log", "daemon", "access", *by_section])
            raise ConfigError(f"{source}: [{section}]: unknown section (known: {known})")
    config = Config(source=source, sections=sections, **values)
    _check_whole(config, loader, by_section)
    return _merge_access(config)


def _daemon_section(loader: _Loader, table: object) -> DaemonSettings:
    """C{[daemon]}, with C{workers = "auto"} as the number of cores."""
    if isinstance(table, Mapping) and "workers" in table:
        workers = table["workers"]
        if workers == "auto":
            table = {**table, "workers": min(os.cpu_count() or 1, MAX_WORKERS)}
        elif isinstance(workers, bool) or not isinstance(workers, int):
            raise loader.fail(
                "[daemon].workers", workers,
                f'must be a whole number from 1 to {MAX_WORKERS}, or "auto" (one per core)',
            )
    return loader.section(DaemonSettings, table, "daemon")


def _kind_section(loader: _Loader, kind: ServiceKind[Any], table: object) -> Any:
    """One kind's section: a tuple of settings for a list, else the settings."""
    section = kind.section
    if not kind.many:
        settings = loader.section(kind.settings, table, section, **kind.defaults)
        settings = loader.named(settings, section, kind.service_name, kind.default_listen)
        return kind.finish(settings) if kind.finish else settings
    if isinstance(table, Mapping):
        table = [table]
    if not isinstance(table, list):
        raise loader.fail(section, table, f"must be a list of tables: [[{section}]]")
    items = []
    for i, entry in enumerate(table):
        where = f"{section}][{i}"
        fallback = kind.service_name if i == 0 else f"{kind.service_name}-{i + 1}"
        settings = loader.section(kind.settings, entry, where, **kind.defaults)
        settings = loader.named(settings, where, fallback, kind.default_listen)
        items.append(kind.finish(settings) if kind.finish else settings)
    return tuple(items)


def _merge_access(config: Config) -> Config:
    """
    Fold C{[access]} into every service: a service's own C{allow} list, if it
    has one, replaces the global one; C{deny} lists add up.
    """
    access = config.access
    if not access.allow and not access.deny:
        return config

    def merged(settings: Any) -> Any:
        return dataclasses.replace(
            settings,
            allow=settings.allow or access.allow,
            deny=(*access.deny, *settings.deny),
        )

    return config.map_services(merged)


def _check_whole(
    config: Config, loader: _Loader, kinds: Mapping[str, ServiceKind[Any]]
) -> None:
    """Checks that span sections: unique names, then each kind's own checks."""
    seen: dict[str, str] = {}
    for where, settings in config.services():
        # A disabled service runs nothing, so its name cannot clash; a classic
        # service is disabled unless the file enables it.
        if not settings.enabled:
            continue
        if settings.name in seen:
            raise loader.fail(
                f"[{where}].name", settings.name,
                f"already used by [{seen[settings.name]}]; "
                "service names must be unique",
            )
        seen[settings.name] = where
    for where, settings in config.services():
        kind = kinds[where.split("]", 1)[0]]
        if kind.check is not None:
            kind.check(settings, config, _failing_at(loader, where))
    _check_log_file(config.log, loader)


def _failing_at(loader: _Loader, where: str) -> Callable[[str, object, str], ConfigError]:
    """C{loader.fail} for keys of the section at C{where}."""

    def fail(key: str, value: object, why: str) -> ConfigError:
        return loader.fail(f"[{where}].{key}", value, why)

    return fail


def _check_log_file(log: LogSettings, loader: _Loader) -> None:
    """Open the log file for appending now, so a bad path stops the start."""
    if log.file:
        try:
            with Path(log.file).open("a"):
                pass
        except OSError as e:
            raise loader.fail("[log].file", log.file, e.strerror or str(e)) from None


def load(
    path: str | Path | None,
    environment: bool = True,
    *,
    kinds: Sequence[ServiceKind[Any]],
) -> Config:
    """
    Read and validate a TOML config file; C{None} gives the built-in defaults.

    @raise ConfigError: naming the file, the key and the value.
    """
    if path is None:
        return parse({}, Config.source, kinds=kinds)
    source = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{source}: cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        bad = e.object[e.start]
        raise ConfigError(
            f"{source}: not valid TOML: not UTF-8 (byte {e.start} is {bad:#04x})"
        ) from None
    return parse(data, source, environment, kinds=kinds, folder=Path(path).resolve().parent)


def overrides(config: Config, **log: Any) -> Config:
    """A copy of C{config} with command-line log settings applied on top."""
    changes = {k: v for k, v in log.items() if v is not None}
    if not changes:
        return config
    loader = _Loader(f"{config.source} (command line)", True)
    merged = {**dataclasses.asdict(config.log), **changes}
    settings = loader.section(LogSettings, merged, "log")
    if "file" in changes:
        _check_log_file(settings, loader)
    return dataclasses.replace(config, log=settings)


__all__ = ["STRING_TABLE", "Config", "ConfigError", "load", "overrides", "parse"]
