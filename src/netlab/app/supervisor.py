"""
The parent of C{[daemon] workers = N}: binds every listening socket once
(or takes systemd's), starts N worker processes that each adopt them all,
and supervises them.

It restarts a worker that dies (logged, with a growing delay so that a
crash loop does not spin), forwards SIGHUP once it has checked the config
file itself, passes every worker the others' counters, and on SIGTERM
waits for each worker's goodbyes, killing any still running after
L{STOP_TIMEOUT} seconds.  It never accepts a connection or reads a
datagram itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.error import ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol, Factory, ProcessProtocol, Protocol
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from netlab import __version__
from netlab.app import registry
from netlab.app.registry import KINDS
from netlab.app.reload import plan
from netlab.app.service import LISTEN_ERRORS, announce_ready, cannot_listen, handle_sighup
from netlab.app.workers import WORKER_ENV, WorkerRole
from netlab.core._twisted import clear_exit_signal, systemd_inherited_fds
from netlab.core.config import Config, ConfigError
from netlab.core.endpoints import endpoint_kind, parse_systemd_udp, split_endpoint, unproxied
from netlab.core.events import DAEMON_START, DAEMON_STOP, RELOAD, WORKER, EventLog
from netlab.core.kinds import ServiceKind
from netlab.core.listen import listener
from netlab.core.systemd import Notifier

# A worker that dies is started again after this many seconds, doubled for
# each death in a row up to RESTART_DELAY_MAX; one that ran STABLE_AFTER
# seconds or more starts the count again.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 10.0

# How long the workers have to say their goodbyes before they are killed.
STOP_TIMEOUT = 30.0

# A worker is this twistd, with LISTEN_PID set to its own pid first when
# systemd's sockets are passed on, as the systemd protocol wants: Twisted
# reads them when it is imported.
WORKER_BOOT = (
    "import os\n"
    "if 'LISTEN_FDS' in os.environ:\n"
    "    os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "from twisted.scripts.twistd import run\n"
    "run()\n"
)

# What a worker must not inherit: systemd talks to the parent only.
PARENT_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS")


def exit_text(reason: Failure) -> str:
    """How a process ended, in words: C{exit status 1}, C{killed by SIGKILL}."""
    value = reason.value
    sig = getattr(value, "signal", None)
    if sig:
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    status = getattr(value, "exitCode", None)
    return f"exit status {status if status is not None else '?'}"


class WorkerProcess(ProcessProtocol):
    """
    The parent's end of one worker: its pipes (JSON lines on
    C{report_fd} from it, on its standard input to it) and its end.

    @ivar counters: its counters as of its last report.
    """

    def __init__(self, pool: WorkerPool, index: int, started_at: float) -> None:
        self.pool = pool
        self.index = index
        self.started_at = started_at
        self.report_fd = 3
        self.pid = 0
        self.ready = False
        # A reload asked for before it could take one (see WorkerPool.reload).
        self.reload_when_ready = False
        self.counters: dict[str, Any] = {}
        self._received = b""

    def connectionMade(self) -> None:
        # Kept: the transport forgets it once the process has exited.
        self.pid = int(getattr(self.transport, "pid", None) or 0)
        self.pool.started(self)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != self.report_fd:
            return
        self._received += data
        *lines, self._received = self._received.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                self.pool.report(self, message)

    def send(self, message: Mapping[str, Any]) -> None:
        if self.transport is not None:
            line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
            self.transport.writeToChild(0, line)

    def signal(self, name: str) -> None:
        """Send it C{SIG}C{name}, unless it has exited already."""
        if self.transport is not None:
            with contextlib.suppress(ProcessExitedAlready):
                self.transport.signalProcess(name)

    def processEnded(self, reason: Failure) -> None:
        self.pool.ended(self, reason)


class WorkerPool:
    """
    N workers kept running: started by C{launch}, restarted when they die,
    told each other's counters, signalled together, stopped together.

    @ivar launch: starts the process of a L{WorkerProcess} (the daemon's
        spawns twistd; tests record the call).
    @ivar on_ready: called once, when every worker has first said ready.
    """

    def __init__(
        self, count: int, launch: Callable[[WorkerProcess], None], clock: IReactorTime,
        events: EventLog, on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self.count = count
        self.launch = launch
        self.clock = clock
        self.events = events
        self.on_ready = on_ready
        self.workers: dict[int, WorkerProcess] = {}
        self.failures: dict[int, int] = {}
        self.restarts: dict[int, IDelayedCall] = {}
        self.stopping = False
        self.announced = False
        self._stopped: Deferred[None] | None = None
        self._kill: IDelayedCall | None = None

    def _emit(
        self, worker: WorkerProcess, what: str, level: LogLevel = LogLevel.info
    ) -> None:
        self.events.emit(WORKER, "netlab", None, level, worker=worker.index, pid=worker.pid,
                         what=what)

    def start(self) -> None:
        """Start every worker."""
        for index in range(self.count):
            self._start(index)

    def _start(self, index: int) -> None:
        self.restarts.pop(index, None)
        worker = WorkerProcess(self, index, self.clock.seconds())
        self.workers[index] = worker
        self.launch(worker)

    def started(self, worker: WorkerProcess) -> None:
        self._emit(worker, "started")

    def report(self, worker: WorkerProcess, message: Mapping[str, Any]) -> None:
        """A message from C{worker}: ready, or its counters."""
        if message.get("ready") and not worker.ready:
            worker.ready = True
            self._emit(worker, "ready")
            if worker.reload_when_ready:
                worker.signal("HUP")
            if not self.announced and len(self.workers) == self.count and all(
                w.ready for w in self.workers.values()
            ):
                self.announced = True
                self.on_ready()
        counters = message.get("counters")
        if isinstance(counters, dict):
            worker.counters = counters
            self.broadcast()

    def table(self) -> dict[str, dict[str, Any]]:
        """Every running worker's pid and last counters, by number."""
        return {
            str(index): {"pid": worker.pid, "counters": worker.counters}
            for index, worker in sorted(self.workers.items())
        }

    def broadcast(self) -> None:
        """Send every worker the table (each learns the others' counters)."""
        message = {"workers": self.table()}
        for worker in self.workers.values():
            worker.send(message)

    def restart_delay(self, worker: WorkerProcess) -> float:
        """How long to wait before starting C{worker}'s successor: doubling while it crashes."""
        ran = self.clock.seconds() - worker.started_at
        failures = 1 if ran >= STABLE_AFTER else self.failures.get(worker.index, 0) + 1
        self.failures[worker.index] = failures
        return float(min(RESTART_DELAY * 2 ** (failures - 1), RESTART_DELAY_MAX))

    def ended(self, worker: WorkerProcess, reason: Failure) -> None:
        """C{worker} has exited: restart it, unless the daemon is stopping."""
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        how = exit_text(reason)
        if self.stopping:
            clean = not isinstance(reason.value, ProcessTerminated) or reason.value.exitCode == 0
            self._emit(worker, f"stopped ({how})", LogLevel.info if clean else LogLevel.warn)
            if not self.workers:
                self._all_stopped()
            return
        delay = self.restart_delay(worker)
        self._emit(worker, f"exited ({how}); restarting in {delay:g}s", LogLevel.error)
        self.restarts[worker.index] = self.clock.callLater(delay, self._start, worker.index)
        self.broadcast()

    def signal_all(self, name: str) -> None:
        """Send every running worker C{SIG}C{name}."""
        for worker in list(self.workers.values()):
            worker.signal(name)

    def reload(self) -> None:
        """
        Every worker reloads (SIGHUP).  One still starting has no handler
        for SIGHUP yet, which would kill it: it gets its SIGHUP once ready.
        """
        for worker in list(self.workers.values()):
            if worker.ready:
                worker.signal("HUP")
            else:
                worker.reload_when_ready = True

    def stop(self) -> Deferred[None]:
        """
        Stop every worker (SIGTERM: each says its goodbyes); fires once all
        have exited, those still running after L{STOP_TIMEOUT} killed.
        """
        self.stopping = True
        for call in self.restarts.values():
            if call.active():
                call.cancel()
        self.restarts.clear()
        if not self.workers:
            return succeed(None)
        self._stopped = Deferred()
        self._kill = self.clock.callLater(STOP_TIMEOUT, self._kill_stragglers)
        self.signal_all("TERM")
        return self._stopped

    def _kill_stragglers(self) -> None:
        self._kill = None
        for worker in list(self.workers.values()):
            self._emit(worker, f"still running after {STOP_TIMEOUT:g}s: killed", LogLevel.warn)
            worker.signal("KILL")

    def _all_stopped(self) -> None:
        if self._kill is not None and self._kill.active():
            self._kill.cancel()
        self._kill = None
        stopped, self._stopped = self._stopped, None
        if stopped is not None:
            stopped.callback(None)


class _Holder(Factory):
    """What the parent's stream sockets are bound for: it never accepts on them."""

    protocol = Protocol
    noisy = False


class _DatagramHolder(DatagramProtocol):
    """What the parent's datagram sockets are bound for: it never reads them."""

    noisy = False


def systemd_fd(description: str) -> int | None:
    """
    The descriptor systemd passed in for C{description} (the number a
    worker finds it at, as the systemd protocol numbers them), or None for
    a socket of netlab's own.
    """
    kind, _, kwargs = split_endpoint(unproxied(description)[0])
    if kind == "systemd-udp":
        return parse_systemd_udp(description)
    if kind != "systemd":
        return None
    inventory = systemd_inherited_fds()
    if "name" in kwargs:
        return inventory.inheritedNamedDescriptors()[kwargs["name"]]
    return inventory.inheritedDescriptors()[int(kwargs["index"])]


class Supervisor(MultiService):
    """
    The daemon as the parent of C{[daemon] workers} processes.

    @ivar held: C{(service name, listen string, listener)} for every socket
        it bound (or took from systemd) and holds for the workers.
    @ivar worker_args: the twistd command line of a worker.
    """

    def __init__(
        self,
        config: Config,
        reactor: Any,
        config_path: str,
        worker_args: Sequence[str],
        environ: Mapping[str, str] | None = None,
        kinds: Sequence[ServiceKind[Any]] = KINDS,
    ) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.config_path = config_path
        self.worker_args = list(worker_args)
        self.kinds = kinds
        self.environ = dict(os.environ if environ is None else environ)
        self.notifier = Notifier(reactor, self.environ)
        self.events = EventLog(config.log)
        self.events.setServiceParent(self)
        self.held: list[tuple[str, str, Service]] = []
        for _, settings in config.services():
            if settings.enabled:
                for description in settings.listen:
                    target: Any = (
                        _DatagramHolder() if endpoint_kind(description) == "datagram"
                        else _Holder()
                    )
                    held = listener(description, target, self.events, settings.name, reactor)
                    self.held.append((settings.name, description, held))
        self.pool = WorkerPool(
            config.daemon.workers, self._launch, reactor, self.events, self._ready
        )
        self._previous_hup: Any = None

    @property
    def listeners(self) -> list[Service]:
        return [held for _, _, held in self.held]

    def privilegedStartService(self) -> None:
        """Bind every socket, as a single process would, and accept on none."""
        self.events.privilegedStartService()
        self.events.emit(DAEMON_START, "netlab", version=__version__, config=self.config.source)
        Service.privilegedStartService(self)
        for held in self.listeners:
            try:
                held.privilegedStartService()
            except LISTEN_ERRORS as e:
                cannot_listen(self.events, self.listeners, held, e)
            port = getattr(held, "port", None)
            if port is None:
                # Every worker must be given this socket when it starts.
                cannot_listen(self.events, self.listeners, held,
                              RuntimeError("not bound at start, so no worker could adopt it"))
            # The workers accept and read; the parent only holds the socket open.
            port.stopReading()

    def startService(self) -> None:
        super().startService()
        self.reactor.callWhenRunning(self._run)

    def _run(self) -> None:
        if self.running:
            self._previous_hup = handle_sighup(self.reactor, self.reload)
            self.pool.start()

    def _ready(self) -> None:
        announce_ready(self.events, self.config, self.notifier, len(self.held))

    def worker_role(self, index: int) -> tuple[WorkerRole, dict[int, Any]]:
        """
        What worker C{index} is told, and its descriptors (C{childFDs}):
        standard input from the parent, the parent's standard output and
        error, systemd's sockets at systemd's numbers, then the report pipe,
        then every socket the parent bound.
        """
        systemd = systemd_inherited_fds().inheritedDescriptors()
        report_fd = max([2, *systemd]) + 1
        child_fds: dict[int, Any] = {0: "w", 1: 1, 2: 2, report_fd: "r"}
        child_fds.update({fd: fd for fd in systemd})
        sockets: dict[tuple[str, str], int] = {}
        fd = report_fd + 1
        for name, description, held in self.held:
            own = held.port.fileno()  # type: ignore[attr-defined]
            numbered = systemd_fd(description)
            if numbered is not None:
                # Twisted closes systemd's descriptor once it has adopted a
                # copy (a stream socket's): the copy goes at systemd's number.
                child_fds[numbered] = own
                continue
            child_fds[fd] = own
            sockets[(name, description)] = fd
            fd += 1
        role = WorkerRole(index, self.pool.count, report_fd, sockets, self.config)
        return role, child_fds

    def worker_environ(self, role: WorkerRole) -> dict[str, str]:
        """A worker's environment: the parent's, less systemd's notifications, plus its role."""
        environ = {k: v for k, v in self.environ.items() if k not in PARENT_ONLY}
        systemd = systemd_inherited_fds().inheritedDescriptors()
        if systemd:
            environ["LISTEN_FDS"] = str(len(systemd))
        environ[WORKER_ENV] = role.to_environ()
        return environ

    def _launch(self, worker: WorkerProcess) -> None:
        role, child_fds = self.worker_role(worker.index)
        worker.report_fd = role.report_fd
        self.reactor.spawnProcess(
            worker, sys.executable, [sys.executable, "-c", WORKER_BOOT, *self.worker_args],
            env=self.worker_environ(role), childFDs=child_fds,
        )

    def reload(self) -> None:
        """
        SIGHUP: reopen the log, check the config file, and if it is good
        have every worker reload it; a bad one is logged and changes nothing.
        """
        self.events.reopen()
        try:
            new = registry.load(self.config_path)
        except ConfigError as e:
            self.events.emit(
                RELOAD, "netlab", None, LogLevel.error,
                outcome=f"config refused, still running the old one: {e}",
            )
            return
        # Restarted workers run what the others run: the old config less what reload applies.
        self.config = plan(self.config, new, self.kinds).running
        outcome = f"{self.config.source}: checked, reloading {len(self.pool.workers)} workers"
        if new.daemon != self.config.daemon:
            outcome += "; needs a restart: daemon.workers"
        self.events.emit(RELOAD, "netlab", outcome=outcome)
        self.pool.reload()

    def stopService(self) -> Deferred[None]:
        """Stop every worker (each says its goodbyes), then close the sockets and the log."""
        Service.stopService(self)
        self.notifier.stopping()
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
        d = self.pool.stop()
        d.addCallback(lambda _: DeferredList(
            [maybeDeferred(held.stopService) for held in reversed(self.listeners)],
            consumeErrors=True,
        ))

        def stopped(_: object) -> None:
            self.events.emit(DAEMON_STOP, "netlab")
            self.events.stopService()
            clear_exit_signal(self.reactor, (signal.SIGTERM, signal.SIGINT))

        d.addCallback(stopped)
        return d


__all__ = [
    "RESTART_DELAY",
    "RESTART_DELAY_MAX",
    "STABLE_AFTER",
    "STOP_TIMEOUT",
    "Supervisor",
    "WorkerPool",
    "WorkerProcess",
    "exit_text",
]
