"""
What a service kind declares about itself, and what it is given to build.

Each kind (echo, udp_echo, the chat, the web site...) declares itself once,
beside its protocol, as a L{ServiceKind}: its config section, whether the
section is a list (C{[[echo]]}) or a table (C{[chat]}), its settings
dataclass, its default listen strings, and a C{build} that turns one
section's settings and a L{BuildContext} into a L{BuiltService}.  The
application's registry is a list of these; the config loader, reload, the
service tree, the dashboard and the metrics read it, so adding a kind
touches nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import DatagramProtocol

from netlab.core.endpoints import DATAGRAM_TYPES
from netlab.core.events import EventLog
from netlab.core.limits import DatagramGuard
from netlab.core.settings import Config

S = TypeVar("S")
T = TypeVar("T")

# What the dashboard shows of a service, by how it is reached: the
# ServiceCounters fields that mean something for a stream service (TCP,
# TLS, Unix sockets) and for a datagram one (UDP).
STREAM = "stream"
DATAGRAM = "datagram"
TRANSPORT_COUNTERS: Mapping[str, tuple[str, ...]] = {
    STREAM: (
        "connections_open", "connections_total", "bytes_in", "bytes_out",
        "refused", "dropped", "errors",
    ),
    DATAGRAM: (
        "datagrams_in", "datagrams_out", "bytes_in", "bytes_out", "refused", "dropped", "errors",
    ),
}


def transport(address: str) -> str:
    """
    L{STREAM} or L{DATAGRAM}: how a service is reached at a listen string
    (C{udp:7007}) or a bound address as the event log writes it
    (C{udp 127.0.0.1:7007}).
    """
    scheme = address.replace(" ", ":", 1).split(":", 1)[0].lower()
    return DATAGRAM if scheme in DATAGRAM_TYPES else STREAM


def transport_counters(transports: Collection[str]) -> tuple[str, ...]:
    """The counters that apply to a service reached over C{transports}, each once."""
    names = (name for t in (STREAM, DATAGRAM) if t in transports for name in TRANSPORT_COUNTERS[t])
    return tuple(dict.fromkeys(names))


class InWorkers(Enum):
    """
    How a kind runs under C{[daemon] workers = N} (N > 1): which of the
    worker processes serve it, given where its state lives.
    """

    #: Every worker: what one connection or datagram needs lives in it alone.
    EVERY = "every worker"
    #: The first worker alone: its state lives in one process (login's
    #: accounts and guess limits, the UDP chat's members, who must always
    #: reach the same process, mail's store); the kinds that read that
    #: state (L{ServiceKind.readers}) run there too.
    FIRST = "the first worker"
    #: Every worker, each a node of the C{[cluster]} bus (the chat): needs
    #: C{[cluster] redis}.
    CLUSTER = "every worker, through [cluster] redis"


# Settings that only take effect with a restart, for every kind: they
# decide which sockets and protocol objects exist.
RESTART_KEYS = frozenset({"name", "enabled", "listen"})


class StartError(Exception):
    """A shared resource (a database, say) cannot be opened: the daemon stops."""


@runtime_checkable
class Configurable(Protocol):
    """A running component that takes new settings on reload."""

    def configure(self, settings: Any) -> None:
        """Run with C{settings} from now on."""


@runtime_checkable
class GoodbyeSayer(Protocol):
    """A stream factory whose open connections are told the daemon is stopping."""

    def shutdown(self, reason: str = ...) -> Deferred[None]:
        """Say goodbye to every open connection; fires once all are closed."""


class SharedResource(Protocol):
    """
    Something several services share that must be opened before anything
    listens and closed after every connection has been told goodbye (the
    chat's database).
    """

    service: str
    description: str

    def open(self) -> None:
        """Open it now. @raise StartError: with the reason."""

    def close(self) -> Deferred[None]:
        """Close it, after the last goodbye; fires once closed."""


class Readiness(Protocol):
    """What the dashboard asks of the daemon: its listener services."""

    @property
    def listeners(self) -> Sequence[Any]:
        """Every listener service, in config order."""


@dataclass
class BuildContext:
    """
    What every kind's C{build} is given.

    @ivar reactor: time, listening and threads (a C{task.Clock} where a test
        only needs time).
    @ivar udp_ports: the daemon's own UDP ports, filled in as they bind: no
        UDP service answers another (the datagram loop guard).
    @ivar daemon: the running daemon, for the dashboard's readiness.
    @ivar kinds: the registry the daemon was built from.
    @ivar config: the whole configuration, for kinds that read another
        section (the web site shows every service).
    @ivar worker: in a worker process of C{[daemon] workers = N}, its
        number (0 to N - 1): a kind whose files or names are its own per
        process tells them apart by it.  None in a single process.
    """

    events: EventLog
    reactor: Any
    udp_ports: set[int] = field(default_factory=set)
    daemon: Readiness | None = None
    kinds: Sequence[ServiceKind[Any]] = ()
    config: Config | None = None
    worker: int | None = None
    resources: list[SharedResource] = field(default_factory=list)
    _shared: dict[type, object] = field(default_factory=dict)

    def provide(self, kind: type[T], value: T) -> None:
        """Share C{value} with the kinds built after this one (the chat hub)."""
        self._shared[kind] = value

    def lookup(self, kind: type[T]) -> T | None:
        """What an earlier kind shared as C{kind}, or None."""
        value = self._shared.get(kind)
        return value if isinstance(value, kind) else None

    def add_resource(self, resource: SharedResource) -> None:
        """Open C{resource} before listening; close it after the goodbyes."""
        self.resources.append(resource)


@dataclass
class BuiltService:
    """
    One configured service, built: what listens on its addresses, and what
    reload reconfigures.

    @ivar stream: the factory for its stream listen strings.
    @ivar datagram: makes the protocol for each datagram listen string,
        given the service's one L{DatagramGuard}.
    @ivar parts: other components that take new settings on reload (the
        chat hub); the stream factory and the guard are configured anyway.
    """

    stream: IProtocolFactory | None = None
    datagram: Callable[[DatagramGuard], DatagramProtocol] | None = None
    parts: list[Configurable] = field(default_factory=list)


Fail = Callable[[str, object, str], Exception]


@dataclass(frozen=True)
class ServiceKind(Generic[S]):
    """
    One kind of service, as the config file and the daemon know it.

    @ivar section: the config section, C{echo} for C{[[echo]]}.
    @ivar settings: its settings dataclass (fields declared with C{setting}).
    @ivar many: a list of tables (C{[[echo]]}) rather than one table.
    @ivar default_listen: where it listens when its section names nowhere.
    @ivar build: makes the running service from its settings.
    @ivar present_by_default: for a list kind, whether one instance runs
        when the file has no such section (echo does).
    @ivar default_name: its service name when the section gives none.
    @ivar check: checks of its values that need more than a range, or
        another section; calls C{fail(key, value, why)} to refuse one.
    @ivar finish: fills in defaults that depend on other values.
    @ivar restart_keys: besides L{RESTART_KEYS}, the settings that only a
        restart applies (an echo's mode).
    @ivar counters: the counts of its own that the dashboard shows first on
        its card (the chat's users, rooms and messages), before those of
        how it is reached (L{TRANSPORT_COUNTERS}).
    @ivar try_with: the command a student tries one of its stream
        addresses with, a template with C{host} and C{port} fields
        (C{"telnet {host} {port}"}); netcat by default.  Datagram
        addresses are always C{nc -u}.
    @ivar in_workers: which worker processes serve it (L{InWorkers}).
    @ivar readers: the sections whose services read its state in process
        (the web site's C{/mail} reads the mail store): when it runs in the
        first worker alone, so do they.
    @ivar levels: its own counts that are levels, not running totals (what
        the mail store holds now): C{/metrics} exports them as gauges.
    """

    section: str
    settings: type[S]
    build: Callable[[S, BuildContext], BuiltService]
    default_listen: tuple[str, ...]
    many: bool = False
    present_by_default: bool = False
    default_name: str = ""
    check: Callable[[S, Config, Fail], None] | None = None
    finish: Callable[[S], S] | None = None
    restart_keys: frozenset[str] = frozenset()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    counters: tuple[str, ...] = ()
    try_with: str = "nc {host} {port}"
    in_workers: InWorkers = InWorkers.EVERY
    readers: frozenset[str] = frozenset()
    levels: frozenset[str] = frozenset()

    @property
    def service_name(self) -> str:
        """The service name of its first (or only) instance by default."""
        return self.default_name or self.section.replace("_", "-")

    def default(self) -> S:
        """Its settings when the file says nothing of it."""
        settings = self.settings(  # type: ignore[call-arg]
            name=self.service_name, listen=self.default_listen, **self.defaults
        )
        return self.finish(settings) if self.finish else settings

    def restart_needed(self, key: str) -> bool:
        """Whether a change of C{key} waits for a restart."""
        return key in RESTART_KEYS or key in self.restart_keys

    @property
    def transports(self) -> frozenset[str]:
        """How its services may be reached, as its C{listen} setting declares."""
        accepts = next(
            (f.metadata.get("endpoints") for f in fields(self.settings)  # type: ignore[arg-type]
             if f.name == "listen"),
            None,
        )
        if accepts in (STREAM, DATAGRAM):
            return frozenset({accepts})
        return frozenset({STREAM, DATAGRAM})

    def shown_counters(self, addresses: Sequence[str] = ()) -> tuple[str, ...]:
        """
        The counters a card of this kind shows: its own, then those of the
        transports its C{addresses} use (or, before it listens, those its
        C{listen} setting accepts).
        """
        transports = {transport(a) for a in addresses} or self.transports
        return tuple(dict.fromkeys((*self.counters, *transport_counters(transports))))


__all__ = [
    "DATAGRAM",
    "RESTART_KEYS",
    "STREAM",
    "TRANSPORT_COUNTERS",
    "BuildContext",
    "BuiltService",
    "Configurable",
    "GoodbyeSayer",
    "InWorkers",
    "Readiness",
    "ServiceKind",
    "SharedResource",
    "StartError",
    "transport",
    "transport_counters",
]
