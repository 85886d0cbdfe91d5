"""
The daemon as one service: the shared L{EventLog}, then one listener
service per endpoint string of every enabled service in the config.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from signal import SIGINT, SIGTERM
from typing import Any, NoReturn

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger, LogLevel

from netlab import __version__
from netlab.app.registry import KINDS, kind_of
from netlab.app.reload import reload
from netlab.app.workers import WorkerLink, WorkerRole, placements, serves, worker_share
from netlab.core._twisted import clear_exit_signal
from netlab.core.config import Config
from netlab.core.endpoints import endpoint_kind
from netlab.core.events import (
    CANNOT_LISTEN,
    DAEMON_START,
    DAEMON_STOP,
    FILE_LIMIT,
    READY,
    WORKER,
    EventLog,
)
from netlab.core.kinds import (
    BuildContext,
    Configurable,
    GoodbyeSayer,
    InWorkers,
    ServiceKind,
    StartError,
)
from netlab.core.limits import DatagramGuard
from netlab.core.listen import DatagramListener, bound_port, listener
from netlab.core.systemd import Notifier
from netlab.core.workertable import WorkerTable


def raise_open_file_limit() -> tuple[int, int]:
    """
    Raise the soft limit on open files to the hard one: every connection is
    a file descriptor, and the usual soft default (1024) is far too low for
    a class.  The limits now in force.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # An infinite hard limit cannot be a soft one on some kernels: keep what is.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


_twistd_log = Logger(namespace="netlab")


def listening_summary(listening: Mapping[str, Sequence[str]]) -> str:
    """
    Where each service listens, in short, for the one "netlab ready" line:
    C{echo 7007, udp-echo 7007/udp, discard 7009 7009/udp, ...}; the
    "listening on" line of each listener above it has the full addresses.
    """
    parts = []
    for service, addresses in listening.items():
        ports: list[str] = []
        for address in addresses:
            kind, _, where = address.partition(" ")
            if kind in ("tcp", "udp") and ":" in where:
                port = where.rsplit(":", 1)[1]
                where = port if kind == "tcp" else f"{port}/udp"
            if where not in ports:
                ports.append(where)
        parts.append(f"{service} {' '.join(ports)}")
    return ", ".join(parts)


def announce_ready(events: EventLog, config: Config, notifier: Notifier, count: int) -> None:
    """
    The one "netlab ready" line, once every listener is bound and the
    reactor runs, and READY=1 to systemd.
    """
    summary = listening_summary(events.listening)
    events.emit(READY, "netlab", count=count, summary=summary)
    if config.log.file:
        # netlab's events go to their own file: the terminal (twistd's
        # log) still learns, in one line, where the daemon listens.
        _twistd_log.info(
            "netlab ready: {summary}; events are logged to {file}",
            summary=summary, file=config.log.file,
        )
    listening = "; ".join(
        f"{service} {', '.join(addresses)}" for service, addresses in events.listening.items()
    )
    notifier.ready(f"listening: {listening}")


def cannot_listen(
    events: EventLog, listeners: Sequence[Service], listener_service: Service, error: Exception
) -> NoReturn:
    """
    Stop the start: one critical line for the listener that could not
    bind, the ports already bound closed, exit status 1.
    """
    if isinstance(error, CannotListenError) and error.socketError is not None:
        reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
    else:
        reason = str(error) or type(error).__name__
    events.emit(
        CANNOT_LISTEN, getattr(listener_service, "service", "netlab"), None,
        LogLevel.critical,
        description=getattr(listener_service, "description", "?"),
        error=reason,
    )
    for started in listeners:
        port = getattr(started, "port", None)
        if port is not None:
            port.stopListening()
    raise SystemExit(1)


# What a listener that cannot bind raises.
LISTEN_ERRORS = (CannotListenError, OSError, KeyError, ValueError)


def handle_sighup(reactor: Any, reload_now: Any) -> Any:
    """
    SIGHUP (systemctl reload, logrotate) calls C{reload_now} in the
    reactor; twistd leaves it unhandled.  The handler it replaced.
    """

    def hup(signum: int, frame: object) -> None:
        reactor.callFromThread(reload_now)

    return signal.signal(signal.SIGHUP, hup)


class NetlabService(MultiService):
    """
    Everything one netlab daemon runs, built from the config and the
    registry of service kinds.

    @ivar events: the shared event log, handed to every factory.
    @ivar factories: the stream factories, which shutdown asks to say goodbye.
    @ivar listeners: the listener services, in config order.
    @ivar components: by service name, what reload hands new settings to.
    @ivar worker: in a worker process (C{[daemon] workers} > 1), what its
        parent told it: the sockets to adopt, its share of the limits.
    @ivar worker_table: in a worker, every worker's counters (for
        C{/metrics} and the dashboard); None in a single process.
    """

    def __init__(
        self,
        config: Config,
        reactor: Any,
        events: EventLog | None = None,
        environ: Mapping[str, str] | None = None,
        config_path: str | None = None,
        kinds: Sequence[ServiceKind[Any]] = KINDS,
        worker: WorkerRole | None = None,
    ) -> None:
        super().__init__()
        self.worker = worker
        self.notifier = Notifier(reactor, os.environ if environ is None else environ)
        self.config = config
        self.reactor = reactor
        self.kinds = kinds
        self.events = events if events is not None else EventLog(config.log)
        if worker is not None:
            self.events.namespace = f"netlab.w{worker.index}"
        self.events.setServiceParent(self)
        self.context = BuildContext(
            events=self.events, reactor=reactor, daemon=self, kinds=kinds, config=config,
            worker=worker.index if worker is not None else None,
        )
        self.udp_ports = self.context.udp_ports
        self.factories: list[GoodbyeSayer] = []
        self.components: dict[str, list[Configurable]] = {}
        self.config_path: str | None = config_path
        self._previous_hup: Any = None
        self.listeners: list[Service] = []
        self._placed_by_name: dict[str, InWorkers] = {}
        self.worker_table: WorkerTable | None = None
        self._link: WorkerLink | None = None
        if worker is not None:
            self.worker_table = WorkerTable(worker.index, os.getpid(), self.events)
        self._build()

    def _share(self, settings: Any) -> Any:
        """
        C{settings} as this process runs them: a worker's share of the
        limits, unless one worker alone serves the service.
        """
        if self.worker is None or self._placed_by_name.get(settings.name) is InWorkers.FIRST:
            return settings
        return worker_share(settings, self.worker.count)

    def _listener(self, description: str, target: Any, name: str) -> Service:
        if self.worker is None:
            return listener(description, target, self.events, name, self.reactor)
        # The parent said "listening on" for this socket already.
        return listener(
            description, target, self.events, name, self.reactor,
            inherited=self.worker.sockets.get((name, description)), announce=LogLevel.debug,
        )

    def _add(self, service: Service) -> None:
        self.listeners.append(service)
        service.setServiceParent(self)

    def _build(self) -> None:
        """One built service per enabled section, listening on its strings."""
        events, reactor = self.events, self.reactor
        placed = placements(self.config, self.kinds)
        for where, configured in self.config.services():
            kind = kind_of(self.kinds, where)
            placement = placed[kind.section]
            if not configured.enabled or not serves(placement, self.context.worker):
                # Another worker serves it; this one leaves its sockets alone.
                continue
            self._placed_by_name[configured.name] = placement
            settings = self._share(configured)
            name = settings.name
            built = kind.build(settings, self.context)
            parts = self.components.setdefault(name, [])
            parts += built.parts
            stream = [d for d in settings.listen if endpoint_kind(d) == "stream"]
            datagram = [d for d in settings.listen if endpoint_kind(d) == "datagram"]
            if stream and built.stream is not None:
                if isinstance(built.stream, Configurable):
                    parts.append(built.stream)
                if isinstance(built.stream, GoodbyeSayer):
                    self.factories.append(built.stream)
                for description in stream:
                    self._add(self._listener(description, built.stream, name))
            if datagram and built.datagram is not None:
                # One guard per service: its rate limit holds across its addresses.
                guard = DatagramGuard(settings, events, name, reactor.seconds, self.udp_ports)
                parts.append(guard)
                for description in datagram:
                    protocol = built.datagram(guard)
                    self._add(self._listener(description, protocol, name))

    def configure(self, config: Config) -> None:
        """Run with C{config} (a reload): each service's components take theirs."""
        before = self.config.by_name()
        for name, settings in config.by_name().items():
            if before.get(name) != settings:
                for part in self.components.get(name, ()):
                    part.configure(self._share(settings))
        if config.log.level != self.config.log.level:
            self.events.set_level(config.log.level)
        self.config = config

    def privilegedStartService(self) -> None:
        """
        Bind every listener now, before twistd drops privileges; a listener
        that cannot bind stops the daemon with one clear line and status 1.
        """
        self.events.privilegedStartService()
        self.events.emit(DAEMON_START, "netlab", version=__version__, config=self.config.source)
        soft, hard = raise_open_file_limit()
        self.events.emit(FILE_LIMIT, "netlab", soft=soft, hard=hard)
        Service.privilegedStartService(self)
        for resource in self.context.resources:
            try:
                resource.open()
            except StartError as e:
                self.events.emit(
                    CANNOT_LISTEN, resource.service, None, LogLevel.critical,
                    description=resource.description, error=str(e),
                )
                raise SystemExit(1) from None
        for listener_service in self.listeners:
            try:
                listener_service.privilegedStartService()
            except LISTEN_ERRORS as e:
                cannot_listen(self.events, self.listeners, listener_service, e)
            if isinstance(listener_service, DatagramListener):
                port = bound_port(listener_service)
                if port is not None:
                    self.udp_ports.add(port)

    def startService(self) -> None:
        super().startService()
        # Ready once the reactor runs: every listener is bound by now, and
        # twistd's signal handlers are installed, so a stop request is clean.
        self.reactor.callWhenRunning(self._ready)

    def _ready(self) -> None:
        if not self.running:
            return
        self._previous_hup = handle_sighup(self.reactor, self._reload)
        if self.worker is None or self.worker_table is None:
            announce_ready(self.events, self.config, self.notifier, len(self.listeners))
            return
        # A worker: its parent says "netlab ready" once every worker is.
        from twisted.internet import stdio

        self._link = WorkerLink(self.worker_table, self.reactor, self._parent_gone)
        # mypy reads the Windows StandardIO, which takes no descriptors.
        standard_io: Any = stdio.StandardIO
        standard_io(self._link, stdin=0, stdout=self.worker.report_fd, reactor=self.reactor)
        self._link.ready()
        self.events.emit(
            WORKER, "netlab", worker=self.worker.index, pid=os.getpid(),
            what=f"serving {len(self.listeners)} listeners",
        )

    def _reload(self) -> None:
        reload(self)
        if self.worker is not None:
            self.events.emit(
                WORKER, "netlab", worker=self.worker.index, pid=os.getpid(), what="reloaded",
            )

    def _parent_gone(self) -> None:
        """A worker whose parent has gone stops (with its goodbyes)."""
        if self.running:
            self.reactor.stop()

    def stopService(self) -> Deferred[None]:
        """
        Stop listening, say goodbye to every open connection, then log the
        stop and close the log.
        """
        Service.stopService(self)
        self.notifier.stopping()
        if self._link is not None:
            self._link.close()
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
        stopping = [maybeDeferred(s.stopService) for s in reversed(self.listeners)]
        d = DeferredList(stopping, consumeErrors=True)
        d.addCallback(lambda _: DeferredList(
            [f.shutdown("server shutdown") for f in self.factories], consumeErrors=True
        ))

        def closed(_: object) -> object:
            # History is flushed once every user has been told and closed.
            return DeferredList(
                [r.close() for r in self.context.resources], consumeErrors=True
            )

        d.addCallback(closed)

        def stopped(_: object) -> None:
            self.events.emit(DAEMON_STOP, "netlab")
            self.events.stopService()
            # twistd re-raises SIGTERM/SIGINT after the reactor stops, so the
            # process would die "killed by signal".  A requested stop that
            # closed everything cleanly is a success: exit status 0.
            clear_exit_signal(self.reactor, (SIGTERM, SIGINT))

        d.addCallback(stopped)
        return d  # type: ignore[return-value]
