"""
Unit tests of C{[daemon] workers}, in memory: the config section, each
worker's share of the limits, the supervisor's restarts (on a task.Clock),
signals and counter aggregation, the worker's pipe, and /metrics.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from netlab.app import registry
from netlab.app.supervisor import (
    RESTART_DELAY_MAX,
    STABLE_AFTER,
    STOP_TIMEOUT,
    Supervisor,
    WorkerPool,
    WorkerProcess,
    exit_text,
)
from netlab.app.workers import (
    WORKER_ENV,
    WorkerLink,
    WorkerRole,
    check_workers,
    worker_arguments,
    worker_share,
)
from netlab.core.config import ConfigError
from netlab.core.events import EventLog, ServiceCounters
from netlab.core.settings import LogSettings
from netlab.core.workertable import WorkerTable, counters_state, summed
from netlab.protocols.http.metrics import NetlabCollector

NO_CHAT = "[chat]\nenabled = false\n"


def events() -> EventLog:
    return EventLog(LogSettings(), observer=lambda event: None)


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "netlab.toml"
    path.write_text(text)
    return registry.load(path, environment=False)


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value)


# -- the [daemon] section ------------------------------------------------------


def test_workers_default_to_one(tmp_path: Path) -> None:
    assert load(tmp_path, "").daemon.workers == 1
    assert registry.load(None).daemon.workers == 1


def test_workers_number_and_auto(tmp_path: Path) -> None:
    assert load(tmp_path, f"[daemon]\nworkers = 3\n{NO_CHAT}").daemon.workers == 3
    auto = load(tmp_path, f'[daemon]\nworkers = "auto"\n{NO_CHAT}').daemon.workers
    assert auto == min(os.cpu_count() or 1, 256)


@pytest.mark.parametrize(("value", "why"), [
    ("0", "must be from 1 to 256"),
    ("257", "must be from 1 to 256"),
    ('"many"', 'must be a whole number from 1 to 256, or "auto" (one per core)'),
    ("1.5", 'must be a whole number from 1 to 256, or "auto" (one per core)'),
    ("true", 'must be a whole number from 1 to 256, or "auto" (one per core)'),
])
def test_bad_workers_is_one_line(tmp_path: Path, value: str, why: str) -> None:
    message = refused(tmp_path, f"[daemon]\nworkers = {value}\n{NO_CHAT}")
    assert message == f"{tmp_path / 'netlab.toml'}: [daemon].workers = {value}: {why}"


def test_check_config_shows_the_workers(tmp_path: Path) -> None:
    """netlab check-config prints the effective worker count ("auto" as a number)."""
    import subprocess
    import sys

    path = tmp_path / "netlab.toml"
    path.write_text(f'[daemon]\nworkers = "auto"\n{NO_CHAT}')
    netlab = str(Path(sys.executable).with_name("netlab"))
    result = subprocess.run([netlab, "check-config", str(path)], capture_output=True,
                            text=True, timeout=60, check=True)
    assert json.loads(result.stdout)["daemon"] == {"workers": min(os.cpu_count() or 1, 256)}


def test_unknown_daemon_key(tmp_path: Path) -> None:
    assert "[daemon].threads = 2: unknown key (known: workers)" in refused(
        tmp_path, "[daemon]\nthreads = 2\n"
    )


CLUSTER = '[cluster]\nredis = "redis://127.0.0.1:6379/0"\n'


def test_the_chat_needs_the_cluster_with_workers(tmp_path: Path) -> None:
    """Each worker's chat is a node of the [cluster]: without Redis, one line."""
    text = "[daemon]\nworkers = 2\n[chat]\nenabled = true\n[irc]\nenabled = true\n"
    assert refused(tmp_path, text).endswith(
        "[daemon].workers = 2: [chat] is shared by the workers through Redis; set "
        '[cluster] redis = "redis://HOST:PORT/0" (or [chat] enabled = false, or workers = 1)'
    )
    config = load(tmp_path, text + CLUSTER)
    assert config.daemon.workers == 2 and config.sections["cluster"].enabled


def test_which_workers_serve_each_kind(tmp_path: Path) -> None:
    """
    Login, the UDP chat and mail live in the first worker alone; the web
    site too while mail is on (its /mail reads mail's store), in every
    worker otherwise.
    """
    from netlab.app.workers import placements, serves
    from netlab.core.kinds import InWorkers

    text = f"[daemon]\nworkers = 2\n{NO_CHAT}"
    alone = placements(load(tmp_path, text), registry.KINDS)
    with_mail = placements(
        load(tmp_path, text + "[smtp]\nenabled = true\n[pop3]\nenabled = true\n"),
        registry.KINDS,
    )
    first = {s for s, placed in with_mail.items() if placed is InWorkers.FIRST}
    assert first == {"login", "udp_chat", "smtp", "pop3", "http"}
    assert alone["http"] is InWorkers.EVERY and alone["echo"] is InWorkers.EVERY
    assert alone["chat"] is InWorkers.CLUSTER and alone["irc"] is InWorkers.CLUSTER
    for placed, worker, served in [(InWorkers.FIRST, 0, True), (InWorkers.FIRST, 1, False),
                                   (InWorkers.EVERY, 1, True), (InWorkers.CLUSTER, 1, True),
                                   (InWorkers.FIRST, None, True)]:
        assert serves(placed, worker) is served


def test_check_workers_passes_one_worker(tmp_path: Path) -> None:
    config = load(tmp_path, "[chat]\nenabled = true\n")
    assert check_workers(config, registry.KINDS) is config


# -- each worker's share -------------------------------------------------------


def test_worker_share_divides_limits_rounding_counts_up(tmp_path: Path) -> None:
    config = load(tmp_path, f"[daemon]\nworkers = 3\n{NO_CHAT}[[udp_echo]]\nrate = 90.0\n"
                            "burst = 10\n[[echo]]\nmax_connections = 100\n"
                            "max_connections_per_peer = 5\n")
    echo, udp = config.echo[0], config.udp_echo[0]
    shared = worker_share(echo, 3)
    assert (shared.max_connections, shared.max_connections_per_peer) == (34, 2)
    assert shared.idle_timeout == echo.idle_timeout
    shared_udp = worker_share(udp, 3)
    assert (shared_udp.rate, shared_udp.burst) == (30.0, 4)
    assert worker_share(echo, 1) is echo


# -- the worker's role and command line ----------------------------------------


def test_role_travels_in_the_environment(tmp_path: Path) -> None:
    config = load(tmp_path, f"[daemon]\nworkers = 2\n{NO_CHAT}")
    role = WorkerRole(1, 2, 4, {("echo", "tcp:0:interface=127.0.0.1"): 5}, config)
    assert WorkerRole.from_environ({WORKER_ENV: role.to_environ()}) == role
    assert WorkerRole.from_environ({}) is None


def test_worker_arguments() -> None:
    assert worker_arguments({"nodaemon": True, "logger": object()}, "/etc/n.toml") == [
        "--nodaemon", "--pidfile=", "netlab", "--config", "/etc/n.toml",
    ]
    daemonized = worker_arguments({"nodaemon": False}, "/etc/n.toml")
    assert daemonized[:4] == ["--nodaemon", "--pidfile=", "--logfile", "twistd.log"]
    logged = worker_arguments({"nodaemon": True, "logfile": "/var/log/n.log",
                               "logger": "my.observer"}, "n.toml")
    assert logged[2:6] == ["--logfile", "/var/log/n.log", "--logger", "my.observer"]


# -- the supervisor's pool, on a task.Clock ------------------------------------


class FakeProcess(StringTransport):
    """A worker process: what was written to its standard input, and its signals."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid
        self.signals: list[str] = []
        self.to_child: list[bytes] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def writeToChild(self, fd: int, data: bytes) -> None:
        assert fd == 0
        self.to_child.append(data)


class Pool:
    """A WorkerPool whose launches are recorded, with fresh pids."""

    def __init__(self, count: int = 2) -> None:
        self.clock = Clock()
        self.events = events()
        self.ready = 0
        self.launched: list[WorkerProcess] = []
        self.pool = WorkerPool(count, self.launch, self.clock, self.events, self.on_ready)

    def on_ready(self) -> None:
        self.ready += 1

    def launch(self, worker: WorkerProcess) -> None:
        self.launched.append(worker)
        worker.makeConnection(FakeProcess(1000 + len(self.launched)))

    def transport(self, index: int) -> FakeProcess:
        transport = self.pool.workers[index].transport
        assert isinstance(transport, FakeProcess)
        return transport

    def say(self, index: int, message: dict[str, Any]) -> None:
        worker = self.pool.workers[index]
        data = json.dumps(message).encode() + b"\n"
        # A line may come in pieces.
        worker.childDataReceived(worker.report_fd, data[:5])
        worker.childDataReceived(worker.report_fd, data[5:])

    def lines(self) -> list[str]:
        return [event["log_text"] for event in self.events.recent]


def killed(sig: int = 9) -> Failure:
    return Failure(ProcessTerminated(signal=sig))


def test_ready_once_every_worker_is() -> None:
    pool = Pool()
    pool.pool.start()
    assert [w.pid for w in pool.launched] == [1001, 1002]
    pool.say(0, {"ready": True})
    assert pool.ready == 0
    pool.say(1, {"ready": True})
    pool.say(1, {"ready": True})
    assert pool.ready == 1
    assert "worker 0 (pid 1001) started" in pool.lines()
    assert "worker 1 (pid 1002) ready" in pool.lines()


def test_dead_worker_restarted_with_doubling_delay() -> None:
    pool = Pool()
    pool.pool.start()
    delays = []
    for _ in range(7):
        worker = pool.pool.workers[1]
        worker.processEnded(killed())
        assert 1 not in pool.pool.workers
        delays.append(pool.pool.restarts[1].getTime() - pool.clock.seconds())
        pool.clock.advance(delays[-1])
        assert pool.pool.workers[1] is not worker
    assert delays == [1, 2, 4, 8, 16, RESTART_DELAY_MAX, RESTART_DELAY_MAX]
    assert "worker 1 (pid 1002) exited (killed by SIGKILL); restarting in 1s" in pool.lines()
    # One that ran a while before dying starts the count again.
    pool.clock.advance(STABLE_AFTER)
    pool.pool.workers[1].processEnded(Failure(ProcessTerminated(exitCode=3)))
    assert pool.pool.restarts[1].getTime() - pool.clock.seconds() == 1
    assert pool.lines()[-1].endswith("exited (exit status 3); restarting in 1s")
    assert len(pool.launched) == 9


def test_counters_are_shared_with_every_worker() -> None:
    pool = Pool()
    pool.pool.start()
    echo = {"echo": dataclasses.asdict(ServiceCounters(connections_total=3))}
    pool.say(0, {"counters": echo})
    table = json.loads(pool.transport(1).to_child[-1])
    assert table == {"workers": {"0": {"pid": 1001, "counters": echo},
                                 "1": {"pid": 1002, "counters": {}}}}
    assert pool.transport(0).to_child[-1] == pool.transport(1).to_child[-1]
    # A dead worker drops out of the table the others get.
    pool.pool.workers[0].processEnded(killed())
    assert json.loads(pool.transport(1).to_child[-1]) == {
        "workers": {"1": {"pid": 1002, "counters": {}}}
    }


def test_garbage_from_a_worker_is_ignored() -> None:
    pool = Pool(1)
    pool.pool.start()
    worker = pool.pool.workers[0]
    worker.childDataReceived(worker.report_fd, b"not json\n[1]\n")
    worker.childDataReceived(2, b'{"ready": true}\n')  # not its report pipe
    assert not worker.ready


def test_signals_reach_every_worker() -> None:
    pool = Pool()
    pool.pool.start()
    pool.pool.signal_all("TERM")
    assert pool.transport(0).signals == pool.transport(1).signals == ["TERM"]


def test_reload_reaches_a_starting_worker_once_it_is_ready() -> None:
    """SIGHUP would kill a worker that has no handler for it yet: it waits for ready."""
    pool = Pool()
    pool.pool.start()
    pool.say(0, {"ready": True})
    pool.pool.reload()
    assert pool.transport(0).signals == ["HUP"]
    assert pool.transport(1).signals == []
    pool.say(1, {"ready": True})
    assert pool.transport(1).signals == ["HUP"]


def test_stop_waits_for_every_worker() -> None:
    pool = Pool()
    pool.pool.start()
    pool.pool.workers[1].processEnded(killed())
    stopped = pool.pool.stop()
    assert not pool.pool.restarts  # no restart once stopping
    assert pool.transport(0).signals == ["TERM"]
    assert not stopped.called
    pool.pool.workers[0].processEnded(Failure(ProcessDone(0)))
    assert stopped.called
    assert "worker 0 (pid 1001) stopped (exit status 0)" in pool.lines()
    assert not pool.clock.getDelayedCalls()
    pool.clock.advance(RESTART_DELAY_MAX)
    assert len(pool.launched) == 2


def test_stragglers_are_killed() -> None:
    pool = Pool()
    pool.pool.start()
    stopped = pool.pool.stop()
    pool.pool.workers[0].processEnded(Failure(ProcessDone(0)))
    pool.clock.advance(STOP_TIMEOUT)
    transport = pool.transport(1)
    assert transport.signals == ["TERM", "KILL"]
    assert f"worker 1 (pid 1002) still running after {STOP_TIMEOUT:g}s: killed" in pool.lines()
    pool.pool.workers[1].processEnded(killed())
    assert stopped.called
    assert "worker 1 (pid 1002) stopped (killed by SIGKILL)" in pool.lines()


def test_exit_text() -> None:
    assert exit_text(Failure(ProcessDone(0))) == "exit status 0"
    assert exit_text(killed(signal.SIGTERM)) == "killed by SIGTERM"
    assert exit_text(Failure(ProcessTerminated(exitCode=1))) == "exit status 1"


# -- the supervisor's reload ---------------------------------------------------


def test_reload_checks_the_file_before_the_workers_hear(tmp_path: Path) -> None:
    path = tmp_path / "netlab.toml"
    text = f'[daemon]\nworkers = 2\n{NO_CHAT}[[echo]]\nbanner = "hi"\nlisten = ["tcp:0"]\n'
    path.write_text(text)
    config = registry.load(path)
    supervisor = Supervisor(config, Clock(), str(path), [], environ={})
    pool = Pool()
    supervisor.pool = pool.pool
    supervisor.events = pool.events
    pool.pool.start()
    pool.say(0, {"ready": True})
    pool.say(1, {"ready": True})
    path.write_text(text + "[[echo]]\nname = 42\n")
    supervisor.reload()
    assert pool.transport(0).signals == []
    assert "config refused, still running the old one" in pool.lines()[-1]
    path.write_text(text.replace('"hi"', '"hello"').replace("workers = 2", "workers = 3"))
    supervisor.reload()
    assert pool.transport(0).signals == pool.transport(1).signals == ["HUP"]
    assert pool.lines()[-1].endswith(
        "checked, reloading 2 workers; needs a restart: daemon.workers"
    )
    # A worker started from now on runs the new banner.
    assert supervisor.config.echo[0].banner == "hello"
    assert supervisor.config.daemon.workers == 2


# -- the worker's side: its pipe and its table ---------------------------------


def test_link_reports_and_learns_the_others() -> None:
    log = events()
    log.counters_for("echo").connections_total = 2
    table = WorkerTable(0, 500, log)
    clock = Clock()
    lost: list[bool] = []
    link = WorkerLink(table, clock, lambda: lost.append(True))
    transport = StringTransport()
    link.makeConnection(transport)
    link.ready()
    clock.advance(1)
    sent = [json.loads(line) for line in transport.value().splitlines()]
    assert sent == [{"ready": True}, {"counters": counters_state(log.counters)}]
    other = {"echo": dataclasses.asdict(ServiceCounters(connections_total=5, extra={"x": 1}))}
    link.dataReceived(json.dumps({"workers": {"0": {"pid": 500, "counters": {}},
                                              "1": {"pid": 501, "counters": other}}}).encode()
                      + b"\nnot json\n")
    assert table.total()["echo"].connections_total == 7
    assert table.total()["echo"].extra == {"x": 1}
    assert list(table.by_worker()) == [0, 1]
    snapshot = table.snapshot()
    assert snapshot["total"]["echo"]["connections_total"] == 7
    assert snapshot["workers"][1] == {
        "worker": 1, "pid": 501, "counters": {"echo": ServiceCounters(
            connections_total=5, extra={"x": 1}).snapshot()},
    }
    # The parent gone: the worker stops, once; its own stop does not call it.
    link.connectionLost(Failure(ConnectionError()))
    link.connectionLost(Failure(ConnectionError()))
    assert lost == [True]
    assert not clock.getDelayedCalls()


def test_link_close_is_not_the_parent_gone() -> None:
    lost: list[bool] = []
    clock = Clock()
    link = WorkerLink(WorkerTable(0, 1, events()), clock, lambda: lost.append(True))
    link.makeConnection(StringTransport())
    link.close()
    link.connectionLost(Failure(ConnectionError()))
    assert lost == []
    assert not clock.getDelayedCalls()


def test_summed() -> None:
    a = {"echo": ServiceCounters(bytes_in=1, extra={"joins": 2})}
    b = {"echo": ServiceCounters(bytes_in=2), "udp": ServiceCounters(datagrams_in=4)}
    total = summed([a, b])
    assert total["echo"] == ServiceCounters(bytes_in=3, extra={"joins": 2})
    assert total["udp"].datagrams_in == 4


def test_metrics_sum_workers_and_label_each() -> None:
    log = events()
    log.counters_for("echo").connections_total = 2
    table = WorkerTable(1, 601, log)
    table.update({"0": {"pid": 600, "counters": counters_state(
        {"echo": ServiceCounters(connections_total=3, connections_open=1)})}})
    families = {m.name: m for m in NetlabCollector(log, workers=table).collect()}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for m in families.values() for s in m.samples}
    assert samples[("netlab_connections_total", (("service", "echo"),))] == 5
    assert samples[("netlab_worker_connections_total",
                    (("service", "echo"), ("worker", "0")))] == 3
    assert samples[("netlab_worker_connections_total",
                    (("service", "echo"), ("worker", "1")))] == 2
    assert samples[("netlab_worker_connections_open",
                    (("service", "echo"), ("worker", "0")))] == 1
    assert samples[("netlab_worker_info", (("pid", "601"), ("worker", "1")))] == 1
    # One process: no worker families.
    alone = {m.name for m in NetlabCollector(log).collect()}
    assert not any(name.startswith("netlab_worker") for name in alone)


# -- a worker's daemon service -------------------------------------------------


def test_worker_adopts_the_parents_sockets_and_runs_its_share(tmp_path: Path) -> None:
    """A worker listens on no port of its own: it adopts each socket its parent bound."""
    import socket

    from netlab.app.service import NetlabService
    from netlab.core.limits import DatagramGuard

    config = load(tmp_path, f"[daemon]\nworkers = 2\n{NO_CHAT}[http]\nenabled = false\n"
                            '[[echo]]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                            "max_connections_per_peer = 5\n"
                            '[[udp_echo]]\nlisten = ["udp:0:interface=127.0.0.1"]\nrate = 10.0\n')
    with socket.socket() as stream, socket.socket(type=socket.SOCK_DGRAM) as datagram:
        sockets = {("echo", "tcp:0:interface=127.0.0.1"): stream.fileno(),
                   ("udp-echo", "udp:0:interface=127.0.0.1"): datagram.fileno()}
        role = WorkerRole(1, 2, 4, sockets, config)
        reactor = MemoryReactorClock()
        log = events()
        service = NetlabService(config, reactor, events=log, environ={}, worker=role)
        service.privilegedStartService()
        assert [port[0] for port in reactor.adoptedPorts] == [stream.fileno(), datagram.fileno()]
        assert reactor.tcpServers == []  # and it has no listenUDP at all
    assert service.factories[0].settings.max_connections_per_peer == 3  # type: ignore[attr-defined]
    guard = next(p for p in service.components["udp-echo"] if isinstance(p, DatagramGuard))
    assert guard.settings.rate == 5.0
    # Its "listening on" is debug: the parent announced these sockets.
    assert log.listening == {"echo": ["tcp 0.0.0.0:1234"], "udp-echo": ["udp 0.0.0.0:1234"]}
    assert not any(e["netlab_event"] == "listening" for e in log.recent)
    # Its lines in the log the workers share say which worker wrote them.
    log.emit("connected", "echo", "127.0.0.1:5000", open=1)
    assert log.recent[-1]["log_namespace"] == "netlab.w1.echo"
    assert service.worker_table is not None and service.worker_table.index == 1
    # A reload hands the components their share of the new settings.
    new = dataclasses.replace(config.echo[0], max_connections_per_peer=9)
    service.configure(dataclasses.replace(config, sections={**config.sections, "echo": (new,)}))
    assert service.factories[0].settings.max_connections_per_peer == 5  # type: ignore[attr-defined]
    assert service.config.echo[0].max_connections_per_peer == 9


def test_inherited_socket_reactor_adopts_for_every_listen_call() -> None:
    """TCP, TLS (wrapped as the reactor's own listenSSL wraps it) and systemd adoption."""
    import socket

    from twisted.internet.protocol import Factory
    from twisted.internet.ssl import CertificateOptions
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from netlab.core.listen import InheritedSocketReactor

    reactor = MemoryReactorClock()
    factory = Factory()
    with socket.socket(socket.AF_INET6) as inherited:
        proxy = InheritedSocketReactor(reactor, inherited.fileno())
        proxy.listenTCP(7007, factory, 50, "127.0.0.1")
        proxy.listenSSL(7443, factory, CertificateOptions(), 50, "127.0.0.1")
        proxy.adoptStreamPort(3, socket.AF_INET, factory)
        fd = inherited.fileno()
    assert [(p[0], p[1]) for p in reactor.adoptedPorts] == [(fd, socket.AF_INET6)] * 3
    assert reactor.adoptedPorts[0][2] is factory
    tls = reactor.adoptedPorts[1][2]
    assert isinstance(tls, TLSMemoryBIOFactory) and tls.wrappedFactory is factory
    assert proxy.seconds() == reactor.seconds()  # the rest is the reactor's


def test_second_worker_is_a_chat_node_of_its_own_without_login(tmp_path: Path) -> None:
    """
    A worker's chat hub is a cluster node named after the daemon's, with a
    database of its own beside the named one (started from it); login and
    the UDP chat are the first worker's alone.
    """
    from netlab.app.service import NetlabService
    from netlab.protocols.chat.hub import ChatHub

    named = tmp_path / "chat.sqlite3"
    config = load(tmp_path, f"[daemon]\nworkers = 2\n{CLUSTER}node = \"lab\"\n"
                            f'[chat]\nenabled = true\ndatabase = "{named}"\n'
                            "[udp_chat]\nenabled = true\n[http]\nenabled = false\n"
                            f'[login]\nenabled = true\ndatabase = "{tmp_path}/login.db"\n')
    hubs = []
    for index in (0, 1):
        role = WorkerRole(index, 2, 4, {}, config)
        service = NetlabService(config, MemoryReactorClock(), events=events(), environ={},
                                worker=role)
        hub = next(p for p in service.components["chat"] if isinstance(p, ChatHub))
        hubs.append(hub)
        assert ("login" in service.components) is (index == 0)
        assert ("udp-chat" in service.components) is (index == 0)
    first, second = hubs
    assert first.cluster is not None and first.cluster.node == "lab.w0"
    assert second.cluster is not None and second.cluster.node == "lab.w1"
    assert first.store is not None and first.store.path == str(named)
    assert second.store is not None
    assert second.store.path == str(tmp_path / "chat.w1.sqlite3")
    assert second.store.seed == str(named) and first.store.seed is None


def test_a_service_of_the_first_worker_alone_keeps_its_whole_limits(tmp_path: Path) -> None:
    """Login and the UDP chat run in one worker: theirs is the daemon's whole cap, not 1/N."""
    from netlab.app.service import NetlabService
    from netlab.core.limits import DatagramGuard

    config = load(tmp_path, f"[daemon]\nworkers = 2\n{CLUSTER}"
                            f'[chat]\nenabled = true\ndatabase = "{tmp_path}/chat.db"\n'
                            "max_connections = 100\n"
                            "[udp_chat]\nenabled = true\nrate = 40.0\n[http]\nenabled = false\n"
                            f'[login]\nenabled = true\ndatabase = "{tmp_path}/login.db"\n'
                            "max_connections = 100\n")
    role = WorkerRole(0, 2, 4, {}, config)
    service = NetlabService(config, MemoryReactorClock(), events=events(), environ={},
                            worker=role)

    def limit(name: str, key: str) -> Any:
        part = next(p for p in service.components[name] if hasattr(p.settings, key))
        return getattr(part.settings, key)

    assert limit("chat", "max_connections") == 50  # every worker serves the chat
    assert limit("login", "max_connections") == 100
    guard = next(p for p in service.components["udp-chat"] if isinstance(p, DatagramGuard))
    assert guard.settings.rate == 40.0
    # And so after a reload.
    service.configure(config)
    assert limit("login", "max_connections") == 100
