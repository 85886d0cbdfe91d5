#!/usr/bin/env python3
"""
netlab's benchmark suite: one command, loopback only, bounded in time.

    python3 bench/run.py [--quick] [--only WORKLOAD[,WORKLOAD]] [--out bench/results]

Every workload runs against netlab and against reference servers (bare
Twisted, asyncio, uvloop, a C epoll server, socat, xinetd), each repeated
and summarised as median and spread, and netlab's numbers are set against
bare Twisted and against the targets of the benchmark issue. Results go to
OUT/latest.md and OUT/latest.json. See bench/README.md.

This script needs only the standard library; the servers run under a Python
that has Twisted and netlab installed (found automatically, or --python).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/ is the script's folder, first on sys.path.
from chart import chart_svg

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HOST = "127.0.0.1"
C_SOURCES = {
    "tcp_pingpong": "load/tcp_pingpong.c",
    "tcp_bulk": "load/tcp_bulk.c",
    "udp_echo": "load/udp_echo.c",
    "c_echo": "servers/c_echo.c",
    "chat_fanout": "load/chat_fanout.c",
}
READY_TIMEOUT = 20.0


# -- what is measured ------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One number a load generator prints, and which way is better."""

    key: str
    label: str
    higher_is_better: bool = True
    # A CPU cost: in latest.md's table of costs, not the main one.
    cost: bool = False


@dataclass(frozen=True)
class Workload:
    """A load generator run with fixed arguments, on TCP or UDP."""

    name: str
    proto: str
    loader: str
    args: tuple[str, ...]
    metrics: tuple[Metric, ...]
    description: str
    # "echo" (the echo services), "chat" (the line chat), or "custom": the
    # workload is measured by `runner` instead of a C load generator.
    kind: str = "echo"
    # The servers that take part (None: every server of SERVERS that is not
    # only for custom workloads). For these workloads "twisted" means the
    # matching bare-Twisted reference (chat server, twisted.web Site).
    servers: tuple[str, ...] | None = None
    runner: Callable[[Context, str], tuple[list[dict[str, float]], list[str]]] | None = None
    # A load measured from Python instead of a C load generator: one run
    # against the server on PORT, its metrics.
    load: Callable[[Context, int], dict[str, float]] | None = None
    # Servers besides the usual line-up (netlab with [daemon] workers = 2,
    # netlab daemons on Redis).
    also: tuple[str, ...] = ()
    # The count in the load generator's output that the server's CPU time
    # is divided by ("messages", "deliveries"); "" for no CPU cost.
    cpu_per: str = ""

    def loader_argv(self, binary: Path, ports: list[int], seconds: float,
                    warmup: float) -> list[str]:
        """
        The load generator's command line (argument order is the C programs');
        several ports (daemons sharing rooms) only for the chat's.
        """
        argv = [str(binary), HOST, ",".join(str(port) for port in ports)]
        if self.proto == "tcp":
            conns, *rest = self.args
            return [*argv, conns, f"{seconds}", *rest, f"{warmup}"]
        return [*argv, f"{seconds}", *self.args, f"{warmup}"]


RATE = Metric("msgs_per_s", "messages/s")
P50 = Metric("p50_us", "p50 latency (µs)", higher_is_better=False)
P99 = Metric("p99_us", "p99 latency (µs)", higher_is_better=False)
# CPU time (user + system) of the server's processes while the load
# generator counted, over what it counted, and over the time; see cpu_costs().
CPU_PER_MSG = Metric("cpu_us_per_msg", "server CPU per message (µs)", False, cost=True)
SERVER_CORES = Metric("server_cores", "server CPU busy (cores)", False, cost=True)
# The load generator's own: near 1, it is the limit, not the server.
LOAD_CORES = Metric("load_cores", "load generator CPU busy (cores)", False, cost=True)
# What cpu_costs() calls the server's CPU per counted thing.
CPU_METRIC_FOR = {"messages": CPU_PER_MSG.key, "deliveries": "cpu_us_per_delivery"}

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "tcp-pingpong-1", "tcp", "tcp_pingpong", ("1", "64"), (RATE, P50, P99),
        "TCP echo ping-pong, 64-byte messages, 1 connection",
    ),
    Workload(
        "tcp-pingpong-100", "tcp", "tcp_pingpong", ("100", "64"),
        (RATE, P50, P99, CPU_PER_MSG, SERVER_CORES, LOAD_CORES),
        "TCP echo ping-pong, 64-byte messages, 100 connections from one host",
        also=("netlab-2w",), cpu_per="messages",
    ),
    Workload(
        "tcp-bulk", "tcp", "tcp_bulk", ("1", "262144", "1048576"),
        (Metric("mb_per_s", "MB/s echoed"),),
        "TCP bulk echo, 1 connection, 256 KiB writes, 1 MiB in flight",
    ),
    Workload(
        "udp-echo", "udp", "udp_echo", ("64", "32"),
        (Metric("dgrams_per_s", "datagrams/s"),
         Metric("loss_pct", "loss (%)", higher_is_better=False)),
        "UDP echo, 64-byte datagrams, up to 32 in flight from one socket",
    ),
)

CHAT_METRICS = (
    Metric("deliveries_per_s", "lines delivered/s (all members)"),
    Metric("p50_us", "p50 delivery latency (µs)", higher_is_better=False),
    Metric("p99_us", "p99 delivery latency (µs)", higher_is_better=False),
    Metric("cpu_us_per_delivery", "server CPU per delivery (µs)", False, cost=True),
    SERVER_CORES,
    # Only where a Redis server carries the chat between nodes.
    Metric("redis_us_per_line", "Redis CPU per line sent (µs)", False, cost=True),
    Metric("redis_cores", "Redis CPU busy (cores)", False, cost=True),
    LOAD_CORES,
)
# The chat across Redis: one daemon on it, two daemons sharing the rooms
# through it, and two workers (each a node) of one daemon.
CHAT_SCALING = ("netlab-redis", "netlab-2d", "netlab-2w")
CHAT_WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "chat-fanout-50", "tcp", "chat_fanout", ("50", "5", "8"), CHAT_METRICS,
        "line chat, 50 members in one room, 5 of them sending, 8 lines in flight",
        kind="chat", servers=("netlab", "twisted", "ncat"), also=CHAT_SCALING,
        cpu_per="deliveries",
    ),
    Workload(
        "chat-fanout-100", "tcp", "chat_fanout", ("100", "4", "8"), CHAT_METRICS,
        "line chat, 100 members in one room, 4 of them sending, 8 lines in flight",
        kind="chat", servers=("netlab", "twisted", "ncat"), also=CHAT_SCALING,
        cpu_per="deliveries",
    ),
    Workload(
        "chat-fanout-1000", "tcp", "chat_fanout", ("1000", "4", "8"), CHAT_METRICS,
        "line chat, 1,000 members in one room, 4 of them sending, 8 lines in flight",
        # ncat 7.93 quits during the burst of 1,000 connects ("getpeername
        # ... failed. QUITTING."), so it is not run here.
        kind="chat", servers=("netlab", "twisted"), also=CHAT_SCALING,
        cpu_per="deliveries",
    ),
)


# -- where things run --------------------------------------------------------------


@dataclass
class Context:
    """Everything a server or a load run needs to know about this machine."""

    python: str
    bin_dir: Path
    run_dir: Path
    server_cpu: int | None
    load_cpu: int | None
    seconds: float
    warmup: float
    repeats: int
    has_uvloop: bool = False


def pinned(cpu: int | None) -> Callable[[], None] | None:
    """A preexec_fn that pins the child to one core (None on a one-core box)."""
    if cpu is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


def choose_cpus() -> tuple[int | None, int | None]:
    """Server on one core, load on another, so neither steals the other's time."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def python_has(python: str, *modules: str) -> bool:
    """Whether an interpreter can import the given modules."""
    code = "; ".join(f"import {m}" for m in modules)
    result = subprocess.run([python, "-c", code], capture_output=True, timeout=60)
    return result.returncode == 0


def find_python(explicit: str | None) -> str:
    """A Python with Twisted and netlab: the servers need both, this script neither."""
    candidates = [explicit] if explicit else [
        sys.executable,
        str(REPO / ".venv" / "bin" / "python"),
        "/tmp/venv/bin/python",
        shutil.which("python3") or "",
    ]
    for python in candidates:
        if python and Path(python).exists() and python_has(python, "twisted", "netlab"):
            return python
    raise SystemExit(
        "no Python with twisted and netlab found; install netlab in .venv or pass --python"
    )


def free_port(kind: int) -> int:
    """A port the kernel says is free now on loopback (racy, fine on a quiet box)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# -- building the C programs -------------------------------------------------------


def build(cache_root: Path) -> Path:
    """Compile the load generators and the C server once per source version."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise SystemExit("gcc is needed to build the load generators (apt-get install gcc)")
    digest = hashlib.sha256()
    for path in sorted([*C_SOURCES.values(), "load/common.h"]):
        digest.update((BENCH / path).read_bytes())
    digest.update(gcc.encode())
    out = cache_root / digest.hexdigest()[:16]
    out.mkdir(parents=True, exist_ok=True)
    for name, source in C_SOURCES.items():
        target = out / name
        if not target.exists():
            compile_one(gcc, BENCH / source, target)
    return out


def compile_one(gcc: str, source: Path, target: Path) -> None:
    """gcc -O2 into a temporary name, then rename, so a failed build leaves nothing."""
    tmp = target.with_suffix(".tmp")
    cmd = [gcc, "-O2", "-Wall", "-o", str(tmp), str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"building {source.name} failed:\n{result.stderr}")
    tmp.rename(target)


# -- the servers ---------------------------------------------------------------------


@dataclass
class Launch:
    """How to start one server for one workload: argv, files to write, notes."""

    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)
    lifted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Redis:
    """A redis-server of the run's own, on a free loopback port."""

    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"


@dataclass
class Setup:
    """A server set-up that serves: where the load goes, whose CPU time is measured."""

    ports: list[int]
    lifted: list[str]
    # Each measured role's root PIDs ("server": netlab or the reference,
    # with its workers or forked children; "redis"): a role's CPU time is
    # that of its process trees.
    processes: dict[str, list[int]]


@dataclass(frozen=True)
class Server:
    """
    A server under test: when it can run, and how to start it: C{launch},
    one process pinned to the server core, or C{compose}, a set-up of
    several processes (workers, daemons, Redis) that it starts on C{stack}.
    """

    name: str
    description: str
    launch: Callable[[Context, Workload, int], Launch | None] | None = None
    missing: Callable[[Context], str | None] = lambda ctx: None
    unsupported: Callable[[Workload], str | None] = lambda w: None
    compose: Callable[[Context, Workload, ExitStack, Path], Setup] | None = None


def netlab_config(workload: Workload, port: int, workers: int = 1,
                  redis: Redis | None = None, node: str = "") -> tuple[str, list[str]]:
    """
    netlab's shipped defaults plus only what this workload must lift; with
    C{workers} > 1, that many worker processes; with C{redis} (the chat),
    a node called C{node} of the cluster on that Redis server.
    """
    lifted: list[str] = []
    lines = [
        "# Written by bench/run.py: defaults, one listener on the bench port,",
        "# every other service off (not on the measured path; they would take fixed ports).",
    ]
    if workload.kind == "http":
        lines += ["echo = []", "udp_echo = []", "[chat]", "enabled = false", "[http]"]
        lines += [f'listen = ["tcp:{port}:interface={HOST}"]']
        lifted += ["access_log = true (default); echo, udp_echo, chat off"]
    elif workload.kind == "chat":
        lines += ["echo = []", "udp_echo = []", "[http]", "enabled = false", "[chat]"]
        # History on, in the default SQLite file (in the run's work dir).
        lines += [f'listen = ["tcp:{port}:interface={HOST}"]']
        members = int(workload.args[0])
        # Each worker admits 1/N of the caps: N times gives each worker
        # the whole run's members, as one process has.
        cap = workers * (members + 100)
        lines += ["flood_lines = 10000",
                  f"max_connections = {cap}",
                  f"max_connections_per_peer = {cap}"]
        lifted += ["flood_lines = 10000 (default 5 per 5 s)",
                   f"max_connections and max_connections_per_peer = {cap} "
                   "(defaults 1000 and 50)"]
        if redis is not None:
            lines += ["[cluster]", f'redis = "{redis.url}"', f'node = "{node}"']
            lifted.append("[cluster] on the run's own redis-server")
    elif workload.proto == "tcp":
        lines += ["udp_echo = []", "[chat]", "enabled = false", "[http]", "enabled = false"]
        lines += ["[[echo]]", f'listen = ["tcp:{port}:interface={HOST}"]']
        conns = int(workload.args[0])
        if conns > 50:  # the shipped max_connections_per_peer
            # Each worker admits 1/N of the cap: N times it gives each
            # worker the whole run's connections, as one process has.
            lines.append(f"max_connections_per_peer = {workers * (conns + 10)}")
            lifted.append(f"max_connections_per_peer = {workers * (conns + 10)} (default 50)")
    else:
        lines += ["echo = []", "[chat]", "enabled = false", "[http]", "enabled = false"]
        lines += ["[[udp_echo]]", f'listen = ["udp:{port}:interface={HOST}"]']
        lines.append('rate_exempt = ["127.0.0.0/8"]')
        lifted.append('udp_echo rate_exempt = ["127.0.0.0/8"] (default rate 100/s, burst 200)')
    if workers > 1:
        lines += ["[daemon]", f"workers = {workers}"]
        lifted.append(f"[daemon] workers = {workers}")
    return "\n".join(lines) + "\n", lifted


def launch_netlab(ctx: Context, workload: Workload, port: int, workers: int = 1,
                  redis: Redis | None = None, node: str = "") -> Launch:
    """twistd -n netlab with a generated config, EventLog at its default level."""
    config, lifted = netlab_config(workload, port, workers, redis, node)
    twistd = Path(ctx.python).parent / "twistd"
    if twistd.exists():
        head = [str(twistd)]
    else:
        head = [ctx.python, "-c", "from twisted.scripts.twistd import run; run()"]
    argv = [*head, "-n", "--pidfile=", "netlab", "--config", "netlab.toml"]
    return Launch(argv, {"netlab.toml": config}, lifted)


def ports_for(workload: Workload, port: int) -> list[str]:
    """--tcp/--udp arguments for the Python references."""
    return ["--tcp", str(port)] if workload.proto == "tcp" else ["--udp", str(port)]


def launch_twisted(ctx: Context, workload: Workload, port: int) -> Launch:
    if workload.kind == "chat":
        return Launch([ctx.python, str(BENCH / "servers" / "twisted_chat.py"), "--tcp", str(port)])
    if workload.kind == "http":
        return Launch([ctx.python, str(BENCH / "servers" / "twisted_web.py"), "--tcp", str(port)])
    script = str(BENCH / "servers" / "twisted_echo.py")
    return Launch([ctx.python, script, *ports_for(workload, port)])


def launch_asyncio(ctx: Context, workload: Workload, port: int) -> Launch:
    script = str(BENCH / "servers" / "asyncio_echo.py")
    return Launch([ctx.python, script, "--loop", "asyncio", *ports_for(workload, port)])


def launch_uvloop(ctx: Context, workload: Workload, port: int) -> Launch:
    script = str(BENCH / "servers" / "asyncio_echo.py")
    return Launch([ctx.python, script, "--loop", "uvloop", *ports_for(workload, port)])


def launch_c(ctx: Context, workload: Workload, port: int) -> Launch:
    tcp, udp = (port, 0) if workload.proto == "tcp" else (0, port)
    return Launch([str(ctx.bin_dir / "c_echo"), str(tcp), str(udp)])


def launch_socat(ctx: Context, workload: Workload, port: int) -> Launch:
    """socat forks one child per connection, each echoing through PIPE."""
    listen = f"TCP-LISTEN:{port},bind={HOST},reuseaddr,fork,backlog=1024"
    return Launch(["socat", listen, "PIPE"])


XINETD_CONF = """\
defaults
{{
    instances = UNLIMITED
    per_source = UNLIMITED
    cps = 1000000 1
    log_type = FILE {log}
}}
service echo
{{
    id = echo-{kind}
    type = INTERNAL UNLISTED
    socket_type = {kind}
    protocol = {proto}
    port = {port}
    bind = {host}
    wait = {wait}
    user = root
}}
"""


def launch_xinetd(ctx: Context, workload: Workload, port: int) -> Launch:
    """xinetd's internal echo (stream: a fork per connection; dgram: in process)."""
    tcp = workload.proto == "tcp"
    conf = XINETD_CONF.format(
        log=ctx.run_dir / "xinetd.log", kind="stream" if tcp else "dgram",
        proto=workload.proto, port=port, host=HOST, wait="no" if tcp else "yes",
    )
    argv = ["xinetd", "-dontfork", "-stayalive", "-f", "xinetd.conf", "-pidfile", "xinetd.pid"]
    lifted = ["cps, instances, per_source unlimited (xinetd defaults cap connections/s)"]
    return Launch(argv, {"xinetd.conf": conf}, lifted if tcp else [])


def launch_ncat(ctx: Context, workload: Workload, port: int) -> Launch:
    """Nmap's ncat in chat mode: every line to every other client as <userN> line."""
    members = int(workload.args[0])
    argv = ["ncat", "--chat", "-l", HOST, str(port), "--max-conns", str(members + 100)]
    return Launch(argv, {}, [f"--max-conns {members + 100} (default 100)"])


def launch_httpbin(ctx: Context, workload: Workload, port: int) -> Launch:
    """httpbin on one gunicorn sync worker, its access log to stdout."""
    gunicorn = find_gunicorn(ctx)
    assert gunicorn is not None
    argv = [gunicorn, "-w", "1", "-b", f"{HOST}:{port}", "--access-logfile", "-", "httpbin:app"]
    return Launch(argv, {}, ["gunicorn -w 1 (sync worker), access log to stdout"])


def start_server(stack: ExitStack, argv: list[str], work: Path, files: dict[str, str],
                 cpu: int | None, proto: str, port: int) -> subprocess.Popen[bytes]:
    """
    Start one server process in its own session (its log in WORK/server.log),
    stopped when C{stack} closes, and wait until it answers on C{port}.
    """
    work.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (work / name).write_text(text)
    log = (work / "server.log").open("wb")
    stack.callback(log.close)
    proc = subprocess.Popen(
        argv, cwd=work, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, preexec_fn=pinned(cpu), start_new_session=True,
    )
    stack.callback(stop, proc)
    wait_ready(proc, proto, port)
    return proc


def wait_logged(proc: subprocess.Popen[bytes], log: Path, text: str, times: int = 1) -> None:
    """Poll a server's log until C{text} is in it C{times} times, or fail."""
    deadline = time.monotonic() + READY_TIMEOUT
    while log.read_text(errors="replace").count(text) < times:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{text!r} not logged {times} times in {log}")
        time.sleep(0.05)


def start_redis(stack: ExitStack, work: Path) -> Redis:
    """Debian's redis-server on a free loopback port, nothing saved, not pinned."""
    port = free_port(socket.SOCK_STREAM)
    argv = ["redis-server", "--port", str(port), "--bind", HOST,
            "--save", "", "--appendonly", "no"]
    proc = start_server(stack, argv, work, {}, None, "tcp", port)
    return Redis(port, proc.pid)


def compose_netlab(daemons: int, workers: int = 1,
                   redis: bool = True) -> Callable[[Context, Workload, ExitStack, Path], Setup]:
    """
    A set-up of C{daemons} netlab daemons of C{workers} workers each, for
    the chat all on one Redis (each daemon, or each worker, a node of the
    cluster), none of it pinned: the kernel spreads the processes over
    every core, which the load generator shares.
    """
    def compose(ctx: Context, workload: Workload, stack: ExitStack, work: Path) -> Setup:
        bus = start_redis(stack, work / "redis") if redis and workload.kind == "chat" else None
        ports: list[int] = []
        pids: list[int] = []
        lifted: list[str] = []
        for index in range(daemons):
            port = free_port(socket.SOCK_STREAM)
            node = "ab"[index] if daemons > 1 else "a"
            launch = launch_netlab(ctx, workload, port, workers, bus, node)
            folder = work / f"daemon-{node}"
            proc = start_server(stack, launch.argv, folder, launch.files, None,
                                workload.proto, port)
            # The parent's socket answers before its workers serve it, and a
            # node's lines reach the others only once it has joined.
            if workers > 1:
                wait_logged(proc, folder / "server.log", ") ready", workers)
            if bus is not None:
                wait_logged(proc, folder / "server.log", "cluster_joined", workers)
            ports.append(port)
            pids.append(proc.pid)
            lifted = launch.lifted
        lifted = [*lifted, "not pinned (several processes: both cores, shared with the load)"]
        processes = {"server": pids, **({"redis": [bus.pid]} if bus else {})}
        return Setup(ports, lifted, processes)

    return compose


def needs_program(name: str, package: str) -> Callable[[Context], str | None]:
    """A `missing` check for a Debian peer that the suite skips when absent."""
    def check(ctx: Context) -> str | None:
        if shutil.which(name):
            return None
        return f"{name} not installed (apt-get install {package})"

    return check


def xinetd_missing(ctx: Context) -> str | None:
    """xinetd needs root to run its internal services as user root."""
    missing = needs_program("xinetd", "xinetd")(ctx)
    if missing is None and os.geteuid() != 0:
        return "xinetd needs root"
    return missing


SERVERS: tuple[Server, ...] = (
    Server("netlab", "netlab under twistd, shipped defaults", launch_netlab),
    Server(
        "netlab-2w", "netlab with [daemon] workers = 2 (the chat's workers nodes on Redis)",
        compose=compose_netlab(1, workers=2),
        unsupported=lambda w: (
            "redis-server not installed (apt-get install redis-server)"
            if w.kind == "chat" and shutil.which("redis-server") is None else None
        ),
    ),
    Server(
        "netlab-redis", "one netlab daemon, its chat a node on Redis (chat only)",
        compose=compose_netlab(1), missing=needs_program("redis-server", "redis-server"),
    ),
    Server(
        "netlab-2d", "two netlab daemons sharing the chat through one Redis (chat only)",
        compose=compose_netlab(2), missing=needs_program("redis-server", "redis-server"),
    ),
    Server("twisted", "bare Twisted: dataReceived -> transport.write", launch_twisted),
    Server("asyncio", "asyncio default loop, Protocol callbacks", launch_asyncio),
    Server(
        "uvloop", "asyncio Protocol callbacks on uvloop", launch_uvloop,
        missing=lambda ctx: None if ctx.has_uvloop else "uvloop not installed (pip install uvloop)",
    ),
    Server("c-epoll", "single-threaded C epoll echo", launch_c),
    Server(
        "socat", "socat TCP-LISTEN,fork PIPE", launch_socat,
        missing=needs_program("socat", "socat"),
        unsupported=lambda w: (
            "socat has no multi-peer UDP echo without a fork per datagram"
            if w.proto == "udp" else None
        ),
    ),
    Server("xinetd", "xinetd internal echo service", launch_xinetd, missing=xinetd_missing),
    Server(
        "ncat", "ncat --chat (chat workloads only)", launch_ncat,
        missing=needs_program("ncat", "ncat"),
    ),
    Server(
        "httpbin", "httpbin on one gunicorn sync worker (http-get only)", launch_httpbin,
        missing=lambda ctx: None if find_gunicorn(ctx) else
        "httpbin/gunicorn not installed (pip install httpbin gunicorn)",
    ),
)
# Servers that only take part in the workloads that name them.
NAMED_ONLY = {"httpbin", "ncat", "netlab-2w", "netlab-redis", "netlab-2d"}


# -- running --------------------------------------------------------------------------


def wait_ready(proc: subprocess.Popen[bytes], proto: str, port: int) -> None:
    """Poll until the server answers on its port, or fail with its exit."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        if answers(proto, port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not answer on {proto} port {port}")


def answers(proto: str, port: int) -> bool:
    """One TCP connect, or one UDP datagram echoed: the server is serving."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(0.2)
        try:
            sock.connect((HOST, port))
            if proto == "udp":
                sock.send(b"ready?")
                return sock.recv(64) == b"ready?"
            return True
        except OSError:
            return False


@contextmanager
def running(ctx: Context, server: Server, workload: Workload) -> Iterator[Setup]:
    """Start a server (one process pinned to the server core, or a set-up), then stop it."""
    work = ctx.run_dir / f"{server.name}-{workload.name}"
    with ExitStack() as stack:
        if server.compose is not None:
            yield server.compose(ctx, workload, stack, work)
            return
        kind = socket.SOCK_STREAM if workload.proto == "tcp" else socket.SOCK_DGRAM
        port = free_port(kind)
        assert server.launch is not None
        launch = server.launch(ctx, workload, port)
        assert launch is not None
        proc = start_server(stack, launch.argv, work, launch.files, ctx.server_cpu,
                            workload.proto, port)
        yield Setup([port], launch.lifted, {"server": [proc.pid]})


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group (socat/xinetd fork children), then KILL."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


SETTLE_S = 0.5


def load_once(ctx: Context, workload: Workload, setup: Setup) -> dict[str, float]:
    """
    One bounded run of the load generator on the load core; its JSON line,
    with the set-up's CPU costs over what it counted (see L{cpu_costs}).
    """
    if workload.load is not None:
        return workload.load(ctx, setup.ports[0])
    argv = workload.loader_argv(ctx.bin_dir / workload.loader, setup.ports, ctx.seconds,
                                ctx.warmup)
    samples: list[tuple[float, dict[str, float]]] = []

    def sample(loader: int) -> None:
        roles = {role: tree_cpu_seconds(pids) for role, pids in setup.processes.items()}
        roles["load"] = tree_cpu_seconds([loader])
        samples.append((time.monotonic(), roles))

    returncode, out, err = run_marked(argv, pinned(ctx.load_cpu),
                                      ctx.seconds + ctx.warmup + 90, sample)
    if returncode != 0:
        raise RuntimeError(f"load generator failed: {err.strip() or out}")
    parsed: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    if parsed.get("undelivered"):
        print(f"  {workload.name:18} {parsed['undelivered']:.0f} counted deliveries had not "
              "arrived 5 s after counting stopped")
    if workload.cpu_per and len(samples) == 2:
        parsed.update(cpu_costs(parsed, workload.cpu_per, samples[0], samples[1]))
    return parsed


def run_marked(argv: list[str], preexec: Callable[[], None] | None, timeout: float,
               on_mark: Callable[[int], None]) -> tuple[int, str, str]:
    """
    Run a load generator, calling C{on_mark} with its PID the moment it
    prints a C{MARK} line (counting starts, counting ends); killed after
    C{timeout} seconds. Its exit status, standard output and error.
    """
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=preexec)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    marks_seen = 0
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        try:
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout)
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    key.data.extend(chunk)
                    marks = sum(line.startswith(b"MARK ") for line in out.split(b"\n")[:-1])
                    for _ in range(marks - marks_seen):
                        on_mark(proc.pid)
                    marks_seen = marks
            returncode = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
    return returncode, out.decode(errors="replace"), err.decode(errors="replace")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(roots: list[int]) -> float:
    """
    CPU seconds (user + system, every thread) used so far by the processes
    C{roots} and all their descendants (a daemon's workers, forked
    children), with what their exited and reaped children used.
    """
    return sum(process_tree(roots).values()) / CLOCK_TICKS


def process_tree(roots: list[int]) -> dict[int, int]:
    """
    The processes C{roots} and their descendants, each with the clock ticks
    it and its reaped children used (utime + stime + cutime + cstime).
    """
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # Fields after the command name, which may hold spaces and parentheses:
        # state ppid ... utime (14) stime cutime cstime (17), counted from 1.
        fields = stat[stat.rindex(")") + 2:].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = sum(int(value) for value in fields[11:15])
    tree: dict[int, int] = {}
    todo = [pid for pid in roots if pid in ticks]
    while todo:
        pid = todo.pop()
        tree[pid] = ticks[pid]
        todo += children.get(pid, [])
    return tree


def cpu_costs(result: dict[str, float], per: str, start: tuple[float, dict[str, float]],
              end: tuple[float, dict[str, float]]) -> dict[str, float]:
    """
    Between the load generator's two marks: the server's CPU µs per counted
    C{per} (message, delivery), the cores it and the load generator kept
    busy, and for a chat on Redis, Redis's CPU µs per line sent (each line
    is published once) and its cores.
    """
    wall = end[0] - start[0]
    used = {role: end[1][role] - start[1][role] for role in end[1]}
    costs = {CPU_METRIC_FOR[per]: used["server"] * 1e6 / max(1.0, result[per]),
             "server_cores": used["server"] / wall, "load_cores": used["load"] / wall}
    if "redis" in used:
        costs["redis_us_per_line"] = used["redis"] * 1e6 / max(1.0, result["lines"])
        costs["redis_cores"] = used["redis"] / wall
    return costs


def summarise(values: list[float]) -> dict[str, float]:
    """Median, and spread as (max - min) / median so runs can be compared at a glance."""
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median * 100 if median else 0.0
    return {"median": median, "spread_pct": spread, "min": min(values), "max": max(values)}


def rows_for(workload: Workload, server: str, runs: list[dict[str, float]],
             lifted: list[str]) -> list[dict[str, Any]]:
    """One row per metric of C{workload}: median, spread and every run."""
    rows = []
    for metric in workload.metrics:
        if not all(metric.key in run for run in runs):
            continue  # not measured here (Redis's cost without Redis)
        values = [float(run[metric.key]) for run in runs]
        rows.append({
            "workload": workload.name, "server": server, "metric": metric.key,
            "label": metric.label, "higher_is_better": metric.higher_is_better,
            "cost": metric.cost, **summarise(values), "runs": values, "lifted": lifted,
        })
    return rows


def measure(ctx: Context, server: Server, workload: Workload) -> list[dict[str, Any]]:
    """All repeats of a custom workload against one server, one row per metric."""
    assert workload.runner is not None
    runs, lifted = workload.runner(ctx, server.name)
    return rows_for(workload, server.name, runs, lifted)


def measure_interleaved(
    ctx: Context, servers: list[Server], workload: Workload
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """
    A load-generator workload against every server, the repeats interleaved
    (run 1 on each server, then run 2 on each...): all servers are started
    first and idle while another is measured, so a machine that drifts
    (other tenants, clock changes) shifts every server's runs alike instead
    of one server's. Returns the rows, and the servers that failed and why.
    """
    runs: dict[str, list[dict[str, float]]] = {}
    lifted: dict[str, list[str]] = {}
    failed: list[dict[str, str]] = []
    with ExitStack() as stack:
        setups: dict[str, Setup] = {}
        for server in servers:
            try:
                setup = stack.enter_context(running(ctx, server, workload))
            except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as error:
                failed.append({"workload": workload.name, "server": server.name,
                               "reason": f"failed: {error}"})
                continue
            setups[server.name] = setup
            lifted[server.name] = setup.lifted
            runs[server.name] = []
        previous = None
        for _ in range(ctx.repeats):
            for name in list(setups):
                # Let a server see its last run's connections close first
                # (only one server left in the rotation): new connects racing
                # old ones would meet the per-peer cap.
                time.sleep(SETTLE_S if previous == name else 0)
                previous = name
                try:
                    runs[name].append(load_once(ctx, workload, setups[name]))
                except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as error:
                    failed.append({"workload": workload.name, "server": name,
                                   "reason": f"failed: {error}"})
                    del setups[name], runs[name]
    rows: list[dict[str, Any]] = []
    for name, server_runs in runs.items():
        rows += rows_for(workload, name, server_runs, lifted[name])
    return rows, failed


def skip_reason(ctx: Context, server: Server, workload: Workload) -> str | None:
    """Why a server cannot take part in a workload, if it cannot."""
    if workload.name == "http-get" and shutil.which("wrk") is None:
        return "wrk not installed (apt-get install wrk)"
    return server.missing(ctx) or server.unsupported(workload)


def takes_part(server: Server, workload: Workload) -> bool:
    """Whether a server is in a workload's line-up at all (not a skip)."""
    if server.name in workload.also:
        return True
    if workload.servers is None:
        return server.name not in NAMED_ONLY
    return server.name in workload.servers


def run_all(
    ctx: Context, workloads: list[Workload], servers: list[Server]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every workload against every server; failures are recorded, not fatal."""
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for workload in workloads:
        taking_part = []
        for server in servers:
            if not takes_part(server, workload):
                continue
            reason = skip_reason(ctx, server, workload)
            if reason is not None:
                print(f"  {workload.name:18} {server.name:8} ... {reason}")
                skipped.append({"workload": workload.name, "server": server.name,
                                "reason": reason})
            else:
                taking_part.append(server)
        if workload.runner is None:
            print(f"  {workload.name:18} {', '.join(s.name for s in taking_part)} "
                  "(interleaved) ...", flush=True)
            got, failed = measure_interleaved(ctx, taking_part, workload)
            rows += got
            skipped += failed
            for row in got:
                if row["metric"] == workload.metrics[0].key:
                    print(f"  {workload.name:18} {row['server']:8} ... "
                          f"{row['median']:.1f} {row['label']}")
            for failure in failed:
                print(f"  {workload.name:18} {failure['server']:8} ... {failure['reason']}")
            print_scaling(workload, got)
            continue
        for server in taking_part:
            print(f"  {workload.name:18} {server.name:8} ...", end=" ", flush=True)
            try:
                got = measure(ctx, server, workload)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as error:
                reason = f"failed: {error}"
                print(reason)
                skipped.append({"workload": workload.name, "server": server.name,
                                "reason": reason})
            else:
                rows += got
                print(f"{got[0]['median']:.1f} {got[0]['label']}")
    add_ratios(rows)
    return rows, skipped


def print_scaling(workload: Workload, rows: list[dict[str, Any]]) -> None:
    """
    Each server's CPU costs (medians), and netlab's set-ups of several
    processes (2 workers, daemons on Redis) over netlab in one process,
    measured in the same interleaved run: they share the machine's cores
    with the load generator.
    """
    medians: dict[str, dict[str, float]] = {}
    for r in rows:
        medians.setdefault(r["server"], {})[r["metric"]] = r["median"]
    headline = workload.metrics[0].key
    for server, got in medians.items():
        costs = [f"{fmt(got[m.key])} {m.label}" for m in workload.metrics
                 if m.cost and m.key in got]
        if costs:
            print(f"  {workload.name:18} {server:12} " + ", ".join(costs))
    alone = medians.get("netlab", {})
    for server in ("netlab-2w", "netlab-redis", "netlab-2d"):
        if alone.get(headline) and server in medians:
            got = medians[server]
            p99 = (f", p99 {fmt(got['p99_us'])} µs against {fmt(alone['p99_us'])} µs"
                   if "p99_us" in got and "p99_us" in alone else "")
            print(f"  {workload.name:18} {server} / netlab = "
                  f"{got[headline] / alone[headline]:.2f}{p99} "
                  "(the load generator shares the cores)")


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's median over bare Twisted's for the same workload and metric."""
    reference = {
        (r["workload"], r["metric"]): r["median"] for r in rows if r["server"] == "twisted"
    }
    for row in rows:
        base = reference.get((row["workload"], row["metric"]))
        row["ratio_vs_twisted"] = row["median"] / base if base else None


# -- workloads measured from Python: start-up, idle connections, HTTP ---------------


def spawn(ctx: Context, argv: list[str], work: Path, env: dict[str, str] | None = None,
          cpu: int | None = None) -> tuple[subprocess.Popen[bytes], Any]:
    """Start a server in its own session with its log in WORK/server.log."""
    work.mkdir(parents=True, exist_ok=True)
    log = (work / "server.log").open("ab")
    proc = subprocess.Popen(
        argv, cwd=work, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, preexec_fn=pinned(ctx.server_cpu if cpu is None else cpu),
        start_new_session=True,
    )
    return proc, log


def twistd_argv(ctx: Context, config: str) -> list[str]:
    twistd = Path(ctx.python).parent / "twistd"
    head = [str(twistd)] if twistd.exists() else [
        ctx.python, "-c", "from twisted.scripts.twistd import run; run()"]
    return [*head, "-n", "--pidfile=", "netlab", "--config", config]


def free_both() -> int:
    """A port free for TCP and UDP on loopback (v4 and, if present, v6) right now."""
    for _ in range(200):
        port = free_port(socket.SOCK_STREAM)
        try:
            for family, host in ((socket.AF_INET, HOST), (socket.AF_INET6, "::1")):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(family, kind) as sock:
                        sock.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free for both TCP and UDP")


def example_config_free_ports() -> str:
    """examples/netlab.toml with every listen port moved to a free one."""
    import re

    text = (REPO / "examples" / "netlab.toml").read_text()
    mapping: dict[str, str] = {}

    def repl(match: re.Match[str]) -> str:
        old = match.group(2)
        if old not in mapping:
            mapping[old] = str(free_both())
        return f"{match.group(1)}{mapping[old]}"

    return re.sub(r'("(?:tcp6?|udp):)(\d+)', repl, text)


def start_ready_once(ctx: Context, server: str, index: int) -> dict[str, float]:
    """Seconds from spawn to READY=1 (netlab) or to the first accepted connect (twisted)."""
    work = ctx.run_dir / f"start-{server}-{index}"
    work.mkdir(parents=True, exist_ok=True)
    if server == "netlab":
        (work / "netlab.toml").write_text(example_config_free_ports())
        notify_path = str(work / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify_path)
        env = {**os.environ, "NOTIFY_SOCKET": notify_path}
        start = time.monotonic()
        proc, log = spawn(ctx, twistd_argv(ctx, "netlab.toml"), work, env)
        try:
            sock.settimeout(READY_TIMEOUT)
            while True:
                try:
                    message = sock.recv(4096).decode("utf-8", "replace")
                except TimeoutError:
                    raise RuntimeError("no READY=1 within the time limit") from None
                if "READY=1" in message.split("\n"):
                    return {"start_s": time.monotonic() - start}
        finally:
            sock.close()
            stop(proc)
            log.close()
    port = free_port(socket.SOCK_STREAM)
    argv = [ctx.python, str(BENCH / "servers" / "twisted_echo.py"), "--tcp", str(port)]
    start = time.monotonic()
    proc, log = spawn(ctx, argv, work)
    try:
        deadline = start + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with status {proc.returncode}")
            if answers("tcp", port):
                return {"start_s": time.monotonic() - start}
            time.sleep(0.002)
        raise RuntimeError("bare Twisted did not answer")
    finally:
        stop(proc)
        log.close()


def run_start_ready(ctx: Context, server: str) -> tuple[list[dict[str, float]], list[str]]:
    runs = [start_ready_once(ctx, server, i) for i in range(ctx.repeats)]
    lifted = ["examples/netlab.toml, its ports moved to free ones"] if server == "netlab" else []
    return runs, lifted


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


IDLE_CONNS = 10_000


def raise_nofile(want: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def idle_once(ctx: Context, server: str, index: int) -> dict[str, float]:
    """A fresh server, RSS before and after IDLE_CONNS idle TCP connections."""
    work = ctx.run_dir / f"idle-{server}-{index}"
    work.mkdir(parents=True, exist_ok=True)
    port = free_port(socket.SOCK_STREAM)
    if server == "netlab":
        (work / "netlab.toml").write_text(
            "udp_echo = []\n[chat]\nenabled = false\n[http]\nenabled = false\n"
            f'[[echo]]\nlisten = ["tcp:{port}:interface={HOST}"]\n'
            f"max_connections = {IDLE_CONNS * 2}\nmax_connections_per_peer = {IDLE_CONNS * 2}\n"
        )
        argv = twistd_argv(ctx, "netlab.toml")
    else:
        argv = [ctx.python, "-c",
                "import resource; s, h = resource.getrlimit(resource.RLIMIT_NOFILE); "
                "resource.setrlimit(resource.RLIMIT_NOFILE, (h, h)); import sys, runpy; "
                f"sys.argv = ['twisted_echo.py', '--tcp', '{port}']; "
                f"runpy.run_path({str(BENCH / 'servers' / 'twisted_echo.py')!r}, "
                "run_name='__main__')"]
    proc, log = spawn(ctx, argv, work)
    conns: list[socket.socket] = []
    try:
        wait_ready(proc, "tcp", port)
        time.sleep(0.5)
        fds0, rss0 = fd_count(proc.pid), vm_rss_kb(proc.pid)
        deadline = time.monotonic() + 120
        for i in range(IDLE_CONNS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect((HOST, port))
            conns.append(sock)
            # Let the server accept each batch before the next: an overflowing
            # listen backlog (Twisted's default is 50) costs 1 s SYN retries.
            while i % 40 == 39 and fd_count(proc.pid) < fds0 + len(conns) - 10:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("server stopped accepting")
                time.sleep(0.001)
        while fd_count(proc.pid) < fds0 + IDLE_CONNS:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(
                    f"server holds {fd_count(proc.pid) - fds0} of {IDLE_CONNS} connections")
            time.sleep(0.1)
        time.sleep(1.0)
        for sock in conns[:: max(1, IDLE_CONNS // 50)]:  # they are served, not just queued
            sock.sendall(b"x")
            if sock.recv(1) != b"x":
                raise RuntimeError("idle connection not echoed")
        rss1 = vm_rss_kb(proc.pid)
        return {"bytes_per_conn": (rss1 - rss0) * 1024 / IDLE_CONNS,
                "rss_before_mb": rss0 / 1024, "rss_after_mb": rss1 / 1024}
    finally:
        for sock in conns:
            sock.close()
        stop(proc)
        log.close()


def run_idle(ctx: Context, server: str) -> tuple[list[dict[str, float]], list[str]]:
    raise_nofile(IDLE_CONNS + 1000)
    runs = [idle_once(ctx, server, i) for i in range(ctx.repeats)]
    lifted = ([f"echo max_connections and max_connections_per_peer = {IDLE_CONNS * 2} "
               "(defaults 1000 and 50)"] if server == "netlab" else [])
    return runs, lifted


def find_gunicorn(ctx: Context) -> str | None:
    """A gunicorn whose Python imports httpbin."""
    for cand in (Path(ctx.python).parent / "gunicorn", REPO / ".venv" / "bin" / "gunicorn",
                 Path("/tmp/bench-httpbin-venv/bin/gunicorn"),
                 Path(shutil.which("gunicorn") or "/nonexistent")):
        if cand.exists() and python_has(str(cand.parent / "python"), "httpbin"):
            return str(cand)
    return None


WRK_CONNS = 10


def wrk_once(ctx: Context, port: int, seconds: float) -> dict[str, float]:
    """wrk -t1 -c10 --latency on /get, keep-alive; requests/s and p99 in µs."""
    import re

    argv = ["wrk", "-t1", f"-c{WRK_CONNS}", f"-d{max(1, round(seconds))}s", "--latency",
            f"http://{HOST}:{port}/get"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30,
                            preexec_fn=pinned(ctx.load_cpu))
    out = result.stdout
    if result.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed: {result.stderr.strip() or out}")
    if re.search(r"Non-2xx or 3xx responses|Socket errors", out):
        raise RuntimeError("wrk saw errors:\n" + out)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    if m is None:
        raise RuntimeError("no p99 in wrk output")
    scale = {"us": 1.0, "ms": 1e3, "s": 1e6}[m.group(2)]
    return {"req_per_s": rate, "p99_us": float(m.group(1)) * scale}


def wrk_load(ctx: Context, port: int) -> dict[str, float]:
    """One http-get run: a 1 s wrk warm-up (not counted), then the measured wrk."""
    wrk_once(ctx, port, 1)
    return wrk_once(ctx, port, ctx.seconds)


CUSTOM_WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "start-ready", "custom", "", (), (Metric("start_s", "seconds to ready", False),),
        "spawn to READY=1 on $NOTIFY_SOCKET with examples/netlab.toml (bare Twisted: "
        "spawn to first accepted connect)",
        kind="custom", servers=("netlab", "twisted"), runner=run_start_ready,
    ),
    Workload(
        "idle-10k", "custom", "", (), (
            Metric("bytes_per_conn", "RSS bytes per idle connection", False),
            Metric("rss_after_mb", "RSS with 10k open (MB)", False)),
        "10,000 idle TCP echo connections: VmRSS after minus before, per connection",
        kind="custom", servers=("netlab", "twisted"), runner=run_idle,
    ),
    Workload(
        "http-get", "tcp", "", (), (
            Metric("req_per_s", "requests/s"),
            Metric("p99_us", "p99 latency (µs)", False)),
        "HTTP GET /get, keep-alive, wrk -t1 -c10",
        kind="http", servers=("netlab", "twisted", "httpbin"), load=wrk_load,
    ),
)


ALL_WORKLOADS = (*WORKLOADS, *CUSTOM_WORKLOADS, *CHAT_WORKLOADS)


# -- the targets ---------------------------------------------------------------


TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("tcp-pingpong-1", "msgs_per_s", "twisted", 1.5),
    ("tcp-pingpong-100", "msgs_per_s", "twisted", 1.5),
    ("tcp-pingpong-1", "msgs_per_s", "xinetd", 1.0),
    ("tcp-pingpong-100", "msgs_per_s", "xinetd", 1.0),
    ("tcp-bulk", "mb_per_s", "c-epoll", 0.6),
    ("udp-echo", "dgrams_per_s", "twisted", 0.95),
    ("udp-echo", "dgrams_per_s", "xinetd", 10.0),
    ("chat-fanout-50", "deliveries_per_s", "twisted", 1.0),
    ("chat-fanout-100", "deliveries_per_s", "twisted", 1.0),
    ("chat-fanout-1000", "deliveries_per_s", "twisted", 1.0),
    ("http-get", "req_per_s", "twisted", 1.0),
    ("http-get", "req_per_s", "httpbin", 4.0),
)


# Absolute targets: netlab's median must be at most this.
LIMITS: tuple[tuple[str, str, float, str], ...] = (
    ("start-ready", "start_s", 1.0, "s"),
    ("idle-10k", "bytes_per_conn", 2560.0, "bytes (2.5 KB)"),
    ("chat-fanout-50", "p99_us", 10000.0, "µs p99 delivery (10 ms)"),
)


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """netlab's ratio to each target's reference, and whether it meets it."""
    median = {(r["workload"], r["metric"], r["server"]): r["median"] for r in rows}
    checks = []
    for workload, metric, limit, unit in LIMITS:
        ours = median.get((workload, metric, "netlab"))
        checks.append({
            "workload": workload, "metric": metric, "reference": None, "limit": limit,
            "unit": unit, "value": ours, "met": None if ours is None else ours <= limit,
        })
    for workload, metric, reference, wanted in TARGETS:
        ours = median.get((workload, metric, "netlab"))
        theirs = median.get((workload, metric, reference))
        ratio = ours / theirs if ours is not None and theirs else None
        checks.append({
            "workload": workload, "metric": metric, "reference": reference,
            "target": wanted, "ratio": ratio,
            "met": None if ratio is None else ratio >= wanted,
        })
    return checks


# -- reporting ---------------------------------------------------------------------------


def fmt(value: float) -> str:
    """Numbers as a reader compares them: thousands separated, few decimals."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], skipped: list[dict[str, str]],
             targets: list[dict[str, Any]]) -> str:
    """latest.md: the results table, the targets, what was skipped and why."""
    out = [
        f"Run {meta['date']} on {meta['machine']}; {meta['pinning']}.",
        f"{meta['repeats']} runs of {meta['seconds']} s (after {meta['warmup']} s warm-up) "
        "per cell; spread = (max - min) / median.",
        "",
        "| workload | server | metric | median | spread | × bare Twisted | limits lifted |",  # noqa: RUF001
        "|---|---|---|---:|---:|---:|---|",
    ]
    previous = None
    for r in rows:
        if r.get("cost"):
            continue  # in the table of costs below
        ratio = "—" if r["ratio_vs_twisted"] is None else f"{r['ratio_vs_twisted']:.2f}"
        first = previous != (r["workload"], r["server"])
        previous = (r["workload"], r["server"])
        lifted = "; ".join(r["lifted"]) if first else ""
        out.append(
            f"| {r['workload']} | {r['server']} | {r['label']} | {fmt(r['median'])} "
            f"| ±{r['spread_pct']:.1f}% | {ratio} | {lifted} |"
        )
    out += cost_table(rows)
    out += ["", "Targets (netlab's median over the reference's median):", "",
            "| workload | metric | reference | target | measured | status |",
            "|---|---|---|---:|---:|---|"]
    for t in targets:
        if t["reference"] is None:
            measured = "—" if t["value"] is None else fmt(t["value"])
            status = {True: "met", False: "**missed**", None: "n/a (not measured)"}[t["met"]]
            out.append(f"| {t['workload']} | {t['metric']} | — (absolute) "
                       f"| ≤ {fmt(t['limit'])} {t['unit']} | {measured} | {status} |")
            continue
        measured = "—" if t["ratio"] is None else f"{t['ratio']:.2f}×"  # noqa: RUF001
        status = {True: "met", False: "**missed**", None: "n/a (not measured)"}[t["met"]]
        out.append(f"| {t['workload']} | {t['metric']} | {t['reference']} "
                   f"| ≥ {t['target']}× | {measured} | {status} |")  # noqa: RUF001
    if skipped:
        out += ["", "Skipped:", ""]
        out += [f"- {s['workload']} / {s['server']}: {s['reason']}" for s in skipped]
    return "\n".join(out) + "\n"


COST_COLUMNS = (
    ("cpu_us_per_msg", "cpu_us_per_delivery"), ("server_cores",),
    ("redis_us_per_line",), ("redis_cores",), ("load_cores",),
)


def cost_table(rows: list[dict[str, Any]]) -> list[str]:
    """
    latest.md's CPU costs: per workload and server, the rate and p99 beside
    the server's CPU µs per message or delivery and the cores it kept busy,
    and Redis's µs per line published and its cores (medians of the runs).
    """
    medians: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        medians.setdefault((r["workload"], r["server"]), {})[r["metric"]] = r
    out = ["", "CPU costs, from /proc/PID/stat (user + system, every process of the "
           "set-up) while the load generator counted, over what it counted:", "",
           "| workload | server | rate | p99 (µs) | server CPU per message or delivery (µs) "
           "| server CPU (cores) | Redis CPU per line (µs) | Redis CPU (cores) "
           "| load generator CPU (cores) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (workload, server), metrics in medians.items():
        if not any(m.get("cost") for m in metrics.values()):
            continue
        rate = next(iter(metrics.values()))
        cells = [f"{fmt(rate['median'])} {rate['label']}",
                 fmt(metrics["p99_us"]["median"]) if "p99_us" in metrics else "—"]
        for keys in COST_COLUMNS:
            found = [metrics[k] for k in keys if k in metrics]
            cells.append(fmt(found[0]["median"]) if found else "—")
        out.append(f"| {workload} | {server} | " + " | ".join(cells) + " |")
    return out if len(out) > 5 else []


def metadata(ctx: Context, quick: bool) -> dict[str, Any]:
    """Enough about the run to tell two result files apart."""
    version = subprocess.run(
        [ctx.python, "-c", "import twisted, netlab, sys; "
         "print(twisted.__version__, getattr(netlab, '__version__', '?'), sys.version.split()[0])"],
        capture_output=True, text=True,
    ).stdout.split()
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    pinning = (
        f"server pinned to CPU {ctx.server_cpu}, load to CPU {ctx.load_cpu}; set-ups of "
        "several processes (workers, daemons, redis-server) not pinned: they share "
        "both cores with the load generator"
        if ctx.server_cpu is not None else "one CPU: not pinned"
    )
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Linux {platform.release()}",
        "pinning": pinning, "quick": quick, "seconds": ctx.seconds, "warmup": ctx.warmup,
        "repeats": ctx.repeats, "git": rev,
        "twisted": version[0] if version else "?",
        "netlab": version[1] if len(version) > 1 else "?",
        "python": version[2] if len(version) > 2 else "?",
    }


def write_results(out: Path, meta: dict[str, Any], rows: list[dict[str, Any]],
                  skipped: list[dict[str, str]], targets: list[dict[str, Any]]) -> None:
    """latest.json for tools, latest.md and its picture, latest.svg, for people."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "results": rows, "skipped": skipped, "targets": targets}
    (out / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(meta, rows, skipped, targets))
    (out / "latest.svg").write_text(chart_svg(doc))


# -- command line --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options documented in bench/README.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help="1 s runs instead of 3 s (3 repeats either way)")
    parser.add_argument("--only", metavar="WORKLOAD",
                        help="comma-separated workloads: "
                        + ", ".join(w.name for w in ALL_WORKLOADS))
    parser.add_argument("--servers", metavar="NAMES",
                        help="comma-separated servers: " + ", ".join(s.name for s in SERVERS))
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--python", help="a Python with twisted and netlab (default: found)")
    return parser.parse_args(argv)


def pick(names: str | None, choices: tuple[Any, ...], what: str) -> list[Any]:
    """The named subset of workloads or servers, in suite order."""
    if not names:
        return list(choices)
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    unknown = wanted - {c.name for c in choices}
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(sorted(unknown))}")
    return [c for c in choices if c.name in wanted]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = pick(args.only, ALL_WORKLOADS, "workload")
    servers = pick(args.servers, SERVERS, "server")
    python = find_python(args.python)
    bin_dir = build(BENCH / ".build")
    server_cpu, load_cpu = choose_cpus()
    with tempfile.TemporaryDirectory(prefix="netlab-bench-") as tmp:
        ctx = Context(
            python=python, bin_dir=bin_dir, run_dir=Path(tmp),
            server_cpu=server_cpu, load_cpu=load_cpu,
            seconds=1.0 if args.quick else 3.0, warmup=0.3 if args.quick else 0.5,
            repeats=max(3, args.repeats), has_uvloop=python_has(python, "uvloop"),
        )
        meta = metadata(ctx, args.quick)
        print(f"netlab bench: {meta['pinning']}; python {python}")
        rows, skipped = run_all(ctx, workloads, servers)
    targets = check_targets(rows)
    write_results(args.out, meta, rows, skipped, targets)
    print((args.out / "latest.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
