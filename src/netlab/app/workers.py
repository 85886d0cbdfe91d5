"""
A worker's side of C{[daemon] workers = N}: what a worker is told by its
parent (L{WorkerRole}), its share of the daemon's limits, and the pipe on
which it reports its counters and learns everyone else's (L{WorkerLink}).

The parent's side, which binds the sockets and supervises the workers, is
L{netlab.app.supervisor}.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from netlab.core.config import Config, ConfigError
from netlab.core.kinds import InWorkers, ServiceKind
from netlab.core.workertable import WorkerTable, counters_state

# The environment variable that makes a twistd process a worker: the JSON of its role.
WORKER_ENV = "NETLAB_WORKER"

# How often a worker reports its counters (and so how stale another
# worker's counters can be on /metrics and the dashboard).
REPORT_INTERVAL = 1.0

# The limits each worker gets a 1/N share of, rounded up.
SHARED_COUNTS = ("max_connections", "max_connections_per_peer", "burst")
SHARED_RATES = ("rate",)


def placements(config: Config, kinds: Sequence[ServiceKind[Any]]) -> dict[str, InWorkers]:
    """
    Which workers serve each section of C{config}: as its kind says, or in
    the first worker alone when it reads the state of an enabled kind that
    runs there (the web site, with mail on).
    """
    by_section = {kind.section: kind for kind in kinds}
    enabled = {
        where.split("]", 1)[0] for where, settings in config.services() if settings.enabled
    }
    pinned = {
        reader for section in enabled if section in by_section
        and by_section[section].in_workers is InWorkers.FIRST
        for reader in by_section[section].readers
    }
    return {
        section: InWorkers.FIRST if section in pinned else kind.in_workers
        for section, kind in by_section.items()
    }


def check_workers(config: Config, kinds: Sequence[ServiceKind[Any]]) -> Config:
    """
    C{config}, if its services can run in C{[daemon] workers} processes:
    each kind says how (L{InWorkers}).

    @raise ConfigError: one line naming the section that cannot, and why.
    """
    workers = config.daemon.workers
    if workers == 1:
        return config
    placed = placements(config, kinds)
    cluster = config.sections.get("cluster")
    for where, settings in config.services():
        section = where.split("]", 1)[0]
        if not settings.enabled or placed.get(section) is not InWorkers.CLUSTER:
            continue
        if not (cluster and cluster.enabled):
            raise ConfigError(
                f"{config.source}: [daemon].workers = {workers}: [{section}] is shared "
                "by the workers through Redis; set [cluster] redis = \"redis://HOST:PORT/0\" "
                f"(or [{section}] enabled = false, or workers = 1)"
            )
    return config


def serves(placement: InWorkers, worker: int | None) -> bool:
    """Whether the worker numbered C{worker} (None: a single process) serves what is placed so."""
    return worker is None or placement is not InWorkers.FIRST or worker == 0


def worker_share(settings: Any, workers: int) -> Any:
    """
    One worker's share of a service's limits: each per-daemon count and
    rate divided by C{workers}, counts rounded up, so the daemon as a
    whole admits at most what the file says, plus rounding.
    """
    if workers == 1:
        return settings
    changes: dict[str, Any] = {}
    for key in SHARED_COUNTS:
        if hasattr(settings, key):
            changes[key] = math.ceil(getattr(settings, key) / workers)
    for key in SHARED_RATES:
        if hasattr(settings, key):
            changes[key] = getattr(settings, key) / workers
    return dataclasses.replace(settings, **changes)


@dataclass(frozen=True)
class WorkerRole:
    """
    What the parent tells a worker, in its environment.

    @ivar index: its number, 0 to C{count} - 1.
    @ivar count: how many workers the daemon runs.
    @ivar report_fd: the pipe it writes its reports to (it reads the
        parent's table on standard input).
    @ivar sockets: the listening sockets the parent bound, by
        C{(service name, listen string)}: the descriptor each is open on in
        the worker.  systemd's own sockets are passed as systemd passed
        them, and found as in a single process.
    @ivar config: the configuration the parent runs, so that a restarted
        worker serves what the others serve, whatever the file says now.
    """

    index: int
    count: int
    report_fd: int
    sockets: Mapping[tuple[str, str], int]
    config: Config

    def to_environ(self) -> str:
        """This role as the value of L{WORKER_ENV}."""
        return json.dumps({
            "index": self.index,
            "count": self.count,
            "report_fd": self.report_fd,
            "sockets": [[name, description, fd] for (name, description), fd
                        in self.sockets.items()],
            # Pickled: the parent and the worker run the same code.
            "config": base64.b64encode(pickle.dumps(self.config)).decode(),
        })

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WorkerRole | None:
        """The role the parent gave this process, or None: not a worker."""
        text = environ.get(WORKER_ENV)
        if not text:
            return None
        data = json.loads(text)
        return cls(
            index=int(data["index"]),
            count=int(data["count"]),
            report_fd=int(data["report_fd"]),
            sockets={(name, description): int(fd) for name, description, fd in data["sockets"]},
            config=pickle.loads(base64.b64decode(data["config"])),
        )


class WorkerLink(LineOnlyReceiver):
    """
    A worker's pipes to its parent, JSON lines both ways: it says C{ready}
    once it serves and sends its counters every L{REPORT_INTERVAL}; the
    parent sends back every worker's.  The parent gone (its pipe closed),
    the worker stops: C{on_lost}.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1 << 24

    def __init__(
        self, table: WorkerTable, clock: IReactorTime, on_lost: Callable[[], None]
    ) -> None:
        self.table = table
        self.on_lost = on_lost
        self.closing = False
        self._reports = LoopingCall(self.report)
        self._reports.clock = clock

    def connectionMade(self) -> None:
        self._reports.start(REPORT_INTERVAL, now=False)

    def send(self, message: Mapping[str, Any]) -> None:
        """One message to the parent."""
        if self.transport is not None and not self.closing:
            self.sendLine(json.dumps(message, separators=(",", ":")).encode())

    def ready(self) -> None:
        """Tell the parent this worker serves."""
        self.send({"ready": True})

    def report(self) -> None:
        """Send this worker's counters."""
        self.send({"counters": counters_state(self.table.events.counters)})

    def lineReceived(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        workers = message.get("workers") if isinstance(message, dict) else None
        if isinstance(workers, dict):
            self.table.update(workers)

    def close(self) -> None:
        """The worker is stopping: no more reports."""
        self.closing = True
        if self._reports.running:
            self._reports.stop()
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._reports.running:
            self._reports.stop()
        if not self.closing:
            self.closing = True
            self.on_lost()


def worker_arguments(twistd: Mapping[str, Any], config_path: str) -> list[str]:
    """
    The twistd command line of a worker (after the interpreter): in the
    foreground, no pid file, logging where its parent logs.
    """
    arguments = ["--nodaemon", "--pidfile="]
    logfile = twistd.get("logfile")
    if not logfile and not twistd.get("nodaemon") and not twistd.get("syslog"):
        logfile = "twistd.log"  # where a daemonized twistd logs by default
    if logfile and logfile != "-":
        arguments += ["--logfile", logfile]
    if twistd.get("syslog"):
        arguments += ["--syslog", "--prefix", str(twistd.get("prefix") or "twisted")]
    logger = twistd.get("logger")
    if isinstance(logger, str):
        # A name given on the command line (twistd has imported it by now,
        # and netlab's console logger the worker chooses for itself).
        arguments += ["--logger", logger]
    return [*arguments, "netlab", "--config", config_path]


__all__ = [
    "REPORT_INTERVAL",
    "WORKER_ENV",
    "WorkerLink",
    "WorkerRole",
    "check_workers",
    "placements",
    "serves",
    "worker_arguments",
    "worker_share",
]


