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
from netlab.core._twisted import clear_exit_signal
from netlab.core.config import Config
from netlab.core.endpoints import endpoint_kind
from netlab.core.events import (
    CANNOT_LISTEN,
    DAEMON_START,
    DAEMON_STOP,
    FILE_LIMIT,
    READY,
    EventLog,
)
from netlab.core.kinds import (
    BuildContext,
    Configurable,
    GoodbyeSayer,
    ServiceKind,
    StartError,
)
from netlab.core.limits import DatagramGuard
from netlab.core.listen import DatagramListener, bound_port, listener
from netlab.core.systemd import Notifier


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


class NetlabService(MultiService):
    """
    Everything one netlab daemon runs, built from the config and the
    registry of service kinds.

    @ivar events: the shared event log, handed to every factory.
    @ivar factories: the stream factories, which shutdown asks to say goodbye.
    @ivar listeners: the listener services, in config order.
    @ivar components: by service name, what reload hands new settings to.
    """

    def __init__(
        self,
        config: Config,
        reactor: Any,
        events: EventLog | None = None,
        environ: Mapping[str, str] | None = None,
        config_path: str | None = None,
        kinds: Sequence[ServiceKind[Any]] = KINDS,
    ) -> None:
        super().__init__()
        self.notifier = Notifier(reactor, os.environ if environ is None else environ)
        self.config = config
        self.reactor = reactor
        self.kinds = kinds
        self.events = events if events is not None else EventLog(config.log)
        self.events.setServiceParent(self)
        self.context = BuildContext(
            events=self.events, reactor=reactor, daemon=self, kinds=kinds, config=config
        )
        self.udp_ports = self.context.udp_ports
        self.factories: list[GoodbyeSayer] = []
        self.components: dict[str, list[Configurable]] = {}
        self.config_path: str | None = config_path
        self._previous_hup: Any = None
        self.listeners: list[Service] = []
        self._build()

    def _add(self, service: Service) -> None:
        self.listeners.append(service)
        service.setServiceParent(self)

    def _build(self) -> None:
        """One built service per enabled section, listening on its strings."""
        events, reactor = self.events, self.reactor
        for where, settings in self.config.services():
            if not settings.enabled:
                continue
            name = settings.name
            built = kind_of(self.kinds, where).build(settings, self.context)
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
                    self._add(listener(description, built.stream, events, name, reactor))
            if datagram and built.datagram is not None:
                # One guard per service: its rate limit holds across its addresses.
                guard = DatagramGuard(settings, events, name, reactor.seconds, self.udp_ports)
                parts.append(guard)
                for description in datagram:
                    protocol = built.datagram(guard)
                    self._add(listener(description, protocol, events, name, reactor))

    def configure(self, config: Config) -> None:
        """Run with C{config} (a reload): each service's components take theirs."""
        before = self.config.by_name()
        for name, settings in config.by_name().items():
            if before.get(name) != settings:
                for part in self.components.get(name, ()):
                    part.configure(settings)
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
            except (CannotListenError, OSError, KeyError, ValueError) as e:
                self._cannot_listen(listener_service, e)
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
        if self.running:
            self._handle_sighup()
            summary = listening_summary(self.events.listening)
            self.events.emit(READY, "netlab", count=len(self.listeners), summary=summary)
            if self.config.log.file:
                # netlab's events go to their own file: the terminal (twistd's
                # log) still learns, in one line, where the daemon listens.
                _twistd_log.info(
                    "netlab ready: {summary}; events are logged to {file}",
                    summary=summary, file=self.config.log.file,
                )
            listening = "; ".join(
                f"{service} {', '.join(addresses)}"
                for service, addresses in self.events.listening.items()
            )
            self.notifier.ready(f"listening: {listening}")

    def _handle_sighup(self) -> None:
        """SIGHUP (systemctl reload, logrotate) reloads; twistd leaves it unhandled."""

        def hup(signum: int, frame: object) -> None:
            self.reactor.callFromThread(reload, self)

        self._previous_hup = signal.signal(signal.SIGHUP, hup)

    def _cannot_listen(self, listener_service: Service, error: Exception) -> NoReturn:
        if isinstance(error, CannotListenError) and error.socketError is not None:
            reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
        else:
            reason = str(error) or type(error).__name__
        self.events.emit(
            CANNOT_LISTEN, getattr(listener_service, "service", "netlab"), None,
            LogLevel.critical,
            description=getattr(listener_service, "description", "?"),
            error=reason,
        )
        for started in self.listeners:
            port = getattr(started, "port", None)
            if port is not None:
                port.stopListening()
        raise SystemExit(1)

    def stopService(self) -> Deferred[None]:
        """
        Stop listening, say goodbye to every open connection, then log the
        stop and close the log.
        """
        Service.stopService(self)
        self.notifier.stopping()
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
