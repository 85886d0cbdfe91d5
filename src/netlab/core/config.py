"""
The netlab configuration: TOML in, frozen dataclasses out.

Every section is a dataclass whose fields carry their own limits in
C{metadata}, so validation is one generic walk and every error names the
file, the key and the value that was refused.  Nothing here listens or
imports the reactor: tests and C{netlab check-config} call it directly.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

LOOPBACK = "127.0.0.1"

LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
ECHO_MODES = ("plain", "upper", "ok")
FRAMINGS = ("int32", "netstring")

STREAM_TYPES = ("tcp", "tcp6", "ssl", "tls", "unix", "systemd")
DATAGRAM_TYPES = ("udp", "systemd-udp")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
NICK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")
ROOM_NAME = re.compile(r"^#[A-Za-z0-9_.-]{1,16}$")


class ConfigError(Exception):
    """
    A configuration value was refused; the message names file, key and value.
    """


def setting(
    default: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: Sequence[str] | None = None,
    endpoints: str | None = None,
    cidrs: bool = False,
) -> Any:
    """
    A dataclass field with the limits that validation enforces.

    @param endpoints: C{"stream"}, C{"datagram"} or C{"any"}: the field is a
        list of listen strings of that kind.
    @param cidrs: the field is a list of CIDR network strings.
    """
    return field(
        default=default,
        metadata={
            "lo": lo,
            "hi": hi,
            "choices": choices,
            "endpoints": endpoints,
            "cidrs": cidrs,
        },
    )


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    """Where the shared event log writes, in what format and from what level."""

    level: str = setting("info", choices=LOG_LEVELS)
    format: str = setting("text", choices=("text", "json"))
    file: str = setting("")
    recent_events: int = setting(200, lo=1, hi=100_000)


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
class EchoSettings(StreamSettings):
    """One C{[[echo]]} listener."""

    mode: str = setting("plain", choices=ECHO_MODES)
    banner: str = setting("")
    quit: str = setting("")
    goodbye: str = setting("Bye.")
    max_line: int = setting(4096, lo=16, hi=1_048_576)


@dataclass(frozen=True, kw_only=True)
class FramedEchoSettings(StreamSettings):
    """One C{[[framed_echo]]} listener."""

    framing: str = setting("int32", choices=FRAMINGS)
    max_frame: int = setting(65_536, lo=1, hi=16_777_216)


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
class UdpEchoSettings(DatagramGuardSettings):
    """One C{[[udp_echo]]} listener."""

    name: str = setting("")
    enabled: bool = setting(True)
    listen: tuple[str, ...] = setting((), endpoints="datagram")


@dataclass(frozen=True, kw_only=True)
class ClassicSettings(StreamSettings, DatagramGuardSettings):
    """
    One classic inetd service; C{listen} mixes stream and C{udp:} strings.
    """

    enabled: bool = setting(False)
    listen: tuple[str, ...] = setting((), endpoints="any")
    quotes: tuple[str, ...] = setting(())


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
    idle_timeout: float = setting(1800.0, lo=0, hi=86_400)
    idle_warning: float = setting(60.0, lo=0, hi=86_400)
    flood_lines: int = setting(5, lo=1, hi=10_000)
    flood_seconds: float = setting(5.0, lo=0.1, hi=3600)
    flood_mute: float = setting(60.0, lo=1, hi=86_400)
    max_output: int = setting(262_144, lo=4096, hi=67_108_864)
    oper_password_hash: str = setting("")
    identify_attempts: int = setting(3, lo=1, hi=100)
    identify_delay: float = setting(2.0, lo=0, hi=60)


@dataclass(frozen=True, kw_only=True)
class HttpSettings(StreamSettings):
    """The web site: C{[http]}."""

    listen: tuple[str, ...] = setting((), endpoints="stream")
    idle_timeout: float = setting(60.0, lo=0, hi=86_400)
    header_timeout: float = setting(10.0, lo=1, hi=600)
    max_body: int = setting(1_048_576, lo=0, hi=1_073_741_824)
    max_delay: float = setting(10.0, lo=0, hi=300)
    max_bytes: int = setting(102_400, lo=1, hi=104_857_600)
    max_stream: int = setting(100, lo=1, hi=10_000)
    max_redirects: int = setting(20, lo=1, hi=1000)
    redirect_hosts: tuple[str, ...] = setting(())
    trusted_proxies: tuple[str, ...] = setting((), cidrs=True)
    static_dir: str = setting("")
    static_listing: bool = setting(False)
    instructor_token: str = setting("")
    allowed_origins: tuple[str, ...] = setting(("localhost", "127.0.0.1", "[::1]"))
    access_log: bool = setting(True)


@dataclass(frozen=True, kw_only=True)
class UdpChatSettings(DatagramGuardSettings):
    """The UDP front-end to the chat: C{[udp_chat]}, off by default."""

    name: str = setting("")
    enabled: bool = setting(False)
    listen: tuple[str, ...] = setting((), endpoints="datagram")
    max_members: int = setting(100, lo=1, hi=100_000)
    max_pending: int = setting(1000, lo=1, hi=1_000_000)
    cookie_timeout: float = setting(30.0, lo=1, hi=3600)
    member_timeout: float = setting(300.0, lo=10, hi=86_400)


@dataclass(frozen=True, kw_only=True)
class AccessSettings:
    """C{[access]}: address lists every service applies, besides its own."""

    allow: tuple[str, ...] = setting((), cidrs=True)
    deny: tuple[str, ...] = setting((), cidrs=True)


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole daemon's configuration."""

    source: str = "<built-in defaults>"
    log: LogSettings = LogSettings()
    access: AccessSettings = AccessSettings()
    echo: tuple[EchoSettings, ...] = ()
    udp_echo: tuple[UdpEchoSettings, ...] = ()
    framed_echo: tuple[FramedEchoSettings, ...] = ()
    discard: ClassicSettings = ClassicSettings(name="discard")
    daytime: ClassicSettings = ClassicSettings(name="daytime")
    time: ClassicSettings = ClassicSettings(name="time")
    chargen: ClassicSettings = ClassicSettings(name="chargen")
    qotd: ClassicSettings = ClassicSettings(name="qotd")
    chat: ChatSettings = ChatSettings(
        name="chat", listen=(f"tcp:7070:interface={LOOPBACK}",)
    )
    udp_chat: UdpChatSettings = UdpChatSettings(
        name="udp-chat", listen=(f"udp:7071:interface={LOOPBACK}",)
    )
    http: HttpSettings = HttpSettings(
        name="http", listen=(f"tcp:8080:interface={LOOPBACK}",)
    )

    def classic(self) -> dict[str, ClassicSettings]:
        """The classic services by name."""
        return {
            "discard": self.discard,
            "daytime": self.daytime,
            "time": self.time,
            "chargen": self.chargen,
            "qotd": self.qotd,
        }


# Default listen addresses: loopback only, and unprivileged ports that echo
# the classic numbers (7 -> 7007, 13 -> 7013) so they are easy to remember.
DEFAULT_LISTEN: dict[str, tuple[str, ...]] = {
    "echo": (f"tcp:7007:interface={LOOPBACK}",),
    "chat": (f"tcp:7070:interface={LOOPBACK}",),
    "udp_chat": (f"udp:7071:interface={LOOPBACK}",),
    "http": (f"tcp:8080:interface={LOOPBACK}",),
    "udp_echo": (f"udp:7007:interface={LOOPBACK}",),
    "framed_echo": (f"tcp:7008:interface={LOOPBACK}",),
    "discard": (f"tcp:7009:interface={LOOPBACK}", f"udp:7009:interface={LOOPBACK}"),
    "daytime": (f"tcp:7013:interface={LOOPBACK}", f"udp:7013:interface={LOOPBACK}"),
    "time": (f"tcp:7037:interface={LOOPBACK}", f"udp:7037:interface={LOOPBACK}"),
    "chargen": (f"tcp:7019:interface={LOOPBACK}", f"udp:7019:interface={LOOPBACK}"),
    "qotd": (f"tcp:7017:interface={LOOPBACK}", f"udp:7017:interface={LOOPBACK}"),
}

DEFAULT_QUOTES = (
    "The network is reliable. -- the first fallacy of distributed computing",
    "Be conservative in what you send, liberal in what you accept. -- RFC 760",
    "There is no place like 127.0.0.1.",
    "It's always DNS.",
)

_LIST_SECTIONS: dict[str, type[StreamSettings] | type[UdpEchoSettings]] = {
    "echo": EchoSettings,
    "udp_echo": UdpEchoSettings,
    "framed_echo": FramedEchoSettings,
}
_TABLE_SECTIONS = (
    "log", "access", "chat", "udp_chat", "http", "discard", "daytime", "time", "chargen", "qotd",
)


# -- endpoint strings --------------------------------------------------------

_UNESCAPED_COLON = re.compile(r"(?<!\\):")


def split_endpoint(description: str) -> tuple[str, list[str], dict[str, str]]:
    """
    Split an endpoint string into its type, positional and keyword arguments,
    honouring Twisted's backslash escapes (C{interface=\\:\\:1}).
    """
    parts = [p.replace("\\:", ":") for p in _UNESCAPED_COLON.split(description)]
    kind, rest = parts[0], parts[1:]
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for part in rest:
        key, sep, value = part.partition("=")
        if sep:
            kwargs[key] = value
        else:
            args.append(part)
    return kind, args, kwargs


def endpoint_kind(description: str) -> str:
    """C{"datagram"} for C{udp:} strings, C{"stream"} for everything else."""
    return "datagram" if description.split(":", 1)[0] in DATAGRAM_TYPES else "stream"


_COLON_HINT = (
    "too many ':'-separated parts; write each colon of an IPv6 interface "
    "as \\: (interface=\\:\\:1)"
)


def _check_port(value: str) -> str | None:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        return f"port {value!r} is not a number from 0 to 65535"
    return None


def _check_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"interface {value!r} is not an IP address"
    return None


def parse_systemd_udp(description: str, environment: bool = True) -> int | None:
    """
    Parse C{systemd-udp:name=NAME} (or C{index=N}): a datagram socket systemd
    passed in.  With C{environment}, the file descriptor it names; else None.

    @raise ValueError: with the reason.
    """
    kind, args, kwargs = split_endpoint(description)
    if kind != "systemd-udp" or args or set(kwargs) - {"name", "index"} or len(kwargs) != 1:
        raise ValueError("systemd-udp needs exactly one of name=NAME or index=N")
    if "index" in kwargs and not kwargs["index"].isdigit():
        raise ValueError(f"index {kwargs['index']!r} is not a number")
    if not environment:
        return None
    # Twisted reads (and then clears) $LISTEN_FDS once, for its systemd:
    # endpoint parser; the datagram sockets are in that same inventory.
    from twisted.internet.endpoints import _SystemdParser

    fds = _SystemdParser._sddaemon
    if "name" in kwargs:
        named = fds.inheritedNamedDescriptors()
        if kwargs["name"] not in named:
            raise ValueError(f"no inherited socket named {kwargs['name']!r}")
        return named[kwargs["name"]]
    inherited = fds.inheritedDescriptors()
    if int(kwargs["index"]) >= len(inherited):
        raise ValueError("no inherited socket at that index")
    return inherited[int(kwargs["index"])]


def parse_udp(description: str) -> tuple[int, str]:
    """
    Parse C{udp:PORT[:interface=ADDR]} into a port and an interface.

    @raise ValueError: with the reason, if the string is not of that form.
    """
    kind, args, kwargs = split_endpoint(description)
    if kind != "udp":
        raise ValueError(f"{kind!r} is not a datagram endpoint type (use udp:PORT)")
    unknown = set(kwargs) - {"port", "interface"}
    if unknown:
        raise ValueError(f"unknown udp option {sorted(unknown)[0]!r}")
    ports = args + ([kwargs["port"]] if "port" in kwargs else [])
    if len(ports) > 1 and "interface" in kwargs:
        raise ValueError(_COLON_HINT)
    if len(ports) != 1:
        raise ValueError("udp needs exactly one port: udp:PORT[:interface=ADDR]")
    problem = _check_port(ports[0])
    interface = kwargs.get("interface", "")
    if problem is None and interface:
        problem = _check_address(interface)
    if problem:
        raise ValueError(problem)
    return int(ports[0]), interface


def check_stream(description: str, environment: bool = True) -> None:
    """
    Check a stream endpoint string the way Twisted will parse it.

    @param environment: also resolve what depends on the environment
        (C{systemd:} names in C{$LISTEN_FDNAMES}, certificate files).
    @raise ValueError: with the reason.
    """
    kind, args, kwargs = split_endpoint(description)
    if kind not in STREAM_TYPES:
        raise ValueError(
            f"unknown endpoint type {kind!r} (stream services take "
            f"{', '.join(STREAM_TYPES)})"
        )
    if kind in ("tcp", "tcp6", "ssl", "tls"):
        # tls: takes a certificate directory first and its port as port=.
        if kind == "tls":
            port = kwargs.get("port", "443")
        else:
            port = args[0] if args else kwargs.get("port", "")
        if len(args) > 1 and "interface" in kwargs:
            raise ValueError(_COLON_HINT)
        problem = _check_port(port)
        if problem is None and kwargs.get("interface"):
            problem = _check_address(kwargs["interface"])
        if problem:
            raise ValueError(problem)
    if kind == "systemd":
        domain = kwargs.get("domain", args[0] if args else "")
        if domain not in ("INET", "INET6", "UNIX"):
            raise ValueError("systemd needs domain=INET, INET6 or UNIX")
        if ("name" in kwargs) == ("index" in kwargs):
            raise ValueError("systemd needs exactly one of name=NAME or index=N")
        if not environment:
            return
    if kind in ("ssl", "tls") and not environment:
        return
    from twisted.internet import endpoints

    try:
        endpoints.serverFromString(None, description)
    except KeyError as e:
        raise ValueError(f"no inherited socket named {e.args[0]!r}") from None
    except IndexError:
        raise ValueError("no inherited socket at that index") from None
    except Exception as e:  # Twisted's parsers raise a variety of types.
        raise ValueError(str(e) or type(e).__name__) from None


# -- loading -----------------------------------------------------------------

T = TypeVar("T")


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _control(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 else c


def _show(value: object) -> str:
    """C{value} as TOML would write it, on one line."""
    if isinstance(value, str):
        return '"' + "".join(_ESCAPES.get(c) or _control(c) for c in value) + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


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

    def fail(self, key: str, value: object, why: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key} = {_show(value)}: {why}")

    def section(self, cls: type[T], table: object, where: str, **defaults: Any) -> T:
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{self.source}: [{where}] must be a table, not {_show(table)}"
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
            return value
        if typing.get_origin(hint) is tuple:
            if not isinstance(value, list) or not all(
                isinstance(v, str) for v in value
            ):
                raise self.fail(key, value, "must be a list of strings")
            for item in value:
                self.item(key, value, item, meta)
            return tuple(value)
        raise AssertionError(f"no validation for {hint!r}")  # pragma: no cover

    def item(self, key: str, value: object, item: str, meta: Mapping[str, Any]) -> None:
        wanted = meta.get("endpoints")
        if wanted:
            kind = endpoint_kind(item)
            if wanted != "any" and kind != wanted:
                raise self.fail(
                    key, value,
                    f"{item!r} is a {kind} endpoint; this service needs "
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
                raise self.fail(key, value, f"{item!r}: {e}") from None
        if meta.get("cidrs"):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise self.fail(key, value, f"{item!r} is not a CIDR network") from None

    def named(self, settings: T, where: str, fallback: str, listen_key: str) -> T:
        name: str = getattr(settings, "name") or fallback  # noqa: B009
        if not _NAME.match(name):
            raise self.fail(
                f"[{where}].name", name,
                "must be 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit",
            )
        listen = getattr(settings, "listen") or DEFAULT_LISTEN[listen_key]  # noqa: B009
        return dataclasses.replace(settings, name=name, listen=listen)  # type: ignore[type-var]


def _defaults() -> dict[str, Any]:
    return {
        "echo": (EchoSettings(name="echo", listen=DEFAULT_LISTEN["echo"]),),
        "udp_echo": (
            UdpEchoSettings(name="udp-echo", listen=DEFAULT_LISTEN["udp_echo"]),
        ),
    }


def parse(
    data: Mapping[str, Any], source: str = "<config>", environment: bool = True
) -> Config:
    """
    Validate a parsed TOML document into a L{Config}.

    Sections left out keep their built-in defaults: an echo and a UDP echo
    on loopback port 7007.  C{echo = []} turns a list section off.

    @raise ConfigError: naming C{source}, the key and the value.
    """
    loader = _Loader(source, environment)
    values: dict[str, Any] = {"source": source, **_defaults()}
    known = [*_TABLE_SECTIONS, *_LIST_SECTIONS]
    for section, table in data.items():
        if section in _LIST_SECTIONS:
            cls = _LIST_SECTIONS[section]
            if isinstance(table, Mapping):
                table = [table]
            if not isinstance(table, list):
                raise loader.fail(
                    section, table, f"must be a list of tables: [[{section}]]"
                )
            default_name = section.replace("_", "-")
            items = []
            for i, entry in enumerate(table):
                where = f"{section}][{i}"
                fallback = default_name if i == 0 else f"{default_name}-{i + 1}"
                item = loader.section(cls, entry, where)
                items.append(loader.named(item, where, fallback, section))
            values[section] = tuple(items)
        elif section == "log":
            values["log"] = loader.section(LogSettings, table, "log")
        elif section == "access":
            values["access"] = loader.section(AccessSettings, table, "access")
        elif section == "chat":
            chat = loader.section(ChatSettings, table, "chat")
            values["chat"] = loader.named(chat, "chat", "chat", "chat")
        elif section == "http":
            http = loader.section(HttpSettings, table, "http")
            values["http"] = loader.named(http, "http", "http", "http")
        elif section == "udp_chat":
            udp_chat = loader.section(UdpChatSettings, table, "udp_chat")
            values["udp_chat"] = loader.named(udp_chat, "udp_chat", "udp-chat", "udp_chat")
        elif section in _TABLE_SECTIONS:
            item = loader.section(ClassicSettings, table, section)
            item = loader.named(item, section, section, section)
            if section == "qotd" and not item.quotes:
                item = dataclasses.replace(item, quotes=DEFAULT_QUOTES)
            values[section] = item
        else:
            raise ConfigError(
                f"{source}: [{section}]: unknown section (known: {', '.join(known)})"
            )
    config = Config(**values)
    _check_whole(config, loader)
    return _merge_access(config)


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

    return map_services(config, merged)


def map_services(config: Config, change: Callable[[Any], Any], **other: Any) -> Config:
    """A copy of C{config} with C{change} applied to every service's settings."""
    return dataclasses.replace(
        config,
        echo=tuple(change(s) for s in config.echo),
        udp_echo=tuple(change(s) for s in config.udp_echo),
        framed_echo=tuple(change(s) for s in config.framed_echo),
        discard=change(config.discard),
        daytime=change(config.daytime),
        time=change(config.time),
        chargen=change(config.chargen),
        qotd=change(config.qotd),
        chat=change(config.chat),
        udp_chat=change(config.udp_chat),
        http=change(config.http),
        **other,
    )


def _check_whole(config: Config, loader: _Loader) -> None:
    """Checks that span sections: unique names, settings that need each other."""
    seen: dict[str, str] = {}
    services: list[tuple[str, Any]] = [
        *((f"echo][{i}", s) for i, s in enumerate(config.echo)),
        *((f"udp_echo][{i}", s) for i, s in enumerate(config.udp_echo)),
        *((f"framed_echo][{i}", s) for i, s in enumerate(config.framed_echo)),
        *config.classic().items(),
        ("chat", config.chat),
        ("udp_chat", config.udp_chat),
        ("http", config.http),
    ]
    for where, settings in services:
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
    for i, echo in enumerate(config.echo):
        for key in ("banner", "quit", "goodbye"):
            text = getattr(echo, key)
            if "\n" in text or "\r" in text:
                raise loader.fail(f"[echo][{i}].{key}", text, "must be a single line")
    _check_chat(config.chat, loader)
    if config.http.static_dir and not Path(config.http.static_dir).is_dir():
        raise loader.fail("[http].static_dir", config.http.static_dir, "is not a directory")
    if config.udp_chat.enabled and not config.chat.enabled:
        raise loader.fail(
            "[udp_chat].enabled", True, "the UDP chat joins the [chat] rooms: enable [chat] too"
        )
    _check_log_file(config.log, loader)


def _check_chat(chat: ChatSettings, loader: _Loader) -> None:
    """The chat's values that need more than a range: names, zone, hash."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not ROOM_NAME.match(chat.default_room):
        raise loader.fail(
            "[chat].default_room", chat.default_room,
            "must be # and 1 to 16 of letters, digits, _, - and .",
        )
    try:
        ZoneInfo(chat.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise loader.fail("[chat].timezone", chat.timezone, "unknown time zone") from None
    if any((ord(c) < 32 and c != "\n") or ord(c) == 127 for c in chat.motd):
        raise loader.fail(
            "[chat].motd", chat.motd, "must not contain control characters (newlines are fine)"
        )
    if chat.oper_password_hash:
        from netlab.core.passwords import hash_problem

        problem = hash_problem(chat.oper_password_hash)
        if problem:
            raise loader.fail("[chat].oper_password_hash", chat.oper_password_hash, problem)
    for nick in chat.reserved_nicks:
        if not NICK_NAME.match(nick):
            raise loader.fail(
                "[chat].reserved_nicks", list(chat.reserved_nicks), f"{nick!r} is not a nick"
            )
    if chat.idle_timeout and chat.idle_warning >= chat.idle_timeout:
        raise loader.fail(
            "[chat].idle_warning", chat.idle_warning, "must be less than idle_timeout"
        )


def _check_log_file(log: LogSettings, loader: _Loader) -> None:
    """Open the log file for appending now, so a bad path stops the start."""
    if log.file:
        try:
            with Path(log.file).open("a"):
                pass
        except OSError as e:
            raise loader.fail("[log].file", log.file, e.strerror or str(e)) from None


def load(path: str | Path | None, environment: bool = True) -> Config:
    """
    Read and validate a TOML config file; C{None} gives the built-in defaults.

    @raise ConfigError: naming the file, the key and the value.
    """
    if path is None:
        return parse({}, Config.source)
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
    return parse(data, source, environment)


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


__all__ = [
    "ClassicSettings",
    "Config",
    "ConfigError",
    "DatagramGuardSettings",
    "EchoSettings",
    "FramedEchoSettings",
    "LogSettings",
    "StreamSettings",
    "UdpEchoSettings",
    "load",
    "parse",
]
