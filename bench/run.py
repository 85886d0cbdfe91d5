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
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HOST = "127.0.0.1"
C_SOURCES = {
    "tcp_pingpong": "load/tcp_pingpong.c",
    "tcp_bulk": "load/tcp_bulk.c",
    "udp_echo": "load/udp_echo.c",
    "c_echo": "servers/c_echo.c",
}
READY_TIMEOUT = 20.0


# -- what is measured ------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One number a load generator prints, and which way is better."""

    key: str
    label: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class Workload:
    """A load generator run with fixed arguments, on TCP or UDP."""

    name: str
    proto: str
    loader: str
    args: tuple[str, ...]
    metrics: tuple[Metric, ...]
    description: str

    def loader_argv(self, binary: Path, port: int, seconds: float, warmup: float) -> list[str]:
        """The load generator's command line (argument order is the C programs')."""
        argv = [str(binary), HOST, str(port)]
        if self.proto == "tcp":
            conns, *rest = self.args
            return [*argv, conns, f"{seconds}", *rest, f"{warmup}"]
        return [*argv, f"{seconds}", *self.args, f"{warmup}"]


RATE = Metric("msgs_per_s", "messages/s")
P50 = Metric("p50_us", "p50 latency (µs)", higher_is_better=False)
P99 = Metric("p99_us", "p99 latency (µs)", higher_is_better=False)

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "tcp-pingpong-1", "tcp", "tcp_pingpong", ("1", "64"), (RATE, P50, P99),
        "TCP echo ping-pong, 64-byte messages, 1 connection",
    ),
    Workload(
        "tcp-pingpong-100", "tcp", "tcp_pingpong", ("100", "64"), (RATE, P50, P99),
        "TCP echo ping-pong, 64-byte messages, 100 connections from one host",
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
class Server:
    """A server under test: when it can run, and how to start it."""

    name: str
    description: str
    launch: Callable[[Context, Workload, int], Launch | None]
    missing: Callable[[Context], str | None] = lambda ctx: None
    unsupported: Callable[[Workload], str | None] = lambda w: None


def netlab_config(workload: Workload, port: int) -> tuple[str, list[str]]:
    """netlab's shipped defaults plus only what this workload must lift."""
    lifted: list[str] = []
    lines = [
        "# Written by bench/run.py: defaults, one listener on the bench port,",
        "# chat and web off (not on the measured path; they would take fixed ports).",
    ]
    if workload.proto == "tcp":
        lines += ["udp_echo = []", "[chat]", "enabled = false", "[http]", "enabled = false"]
        lines += ["[[echo]]", f'listen = ["tcp:{port}:interface={HOST}"]']
        conns = int(workload.args[0])
        if conns > 50:  # the shipped max_connections_per_peer
            lines.append(f"max_connections_per_peer = {conns + 10}")
            lifted.append(f"max_connections_per_peer = {conns + 10} (default 50)")
    else:
        lines += ["echo = []", "[chat]", "enabled = false", "[http]", "enabled = false"]
        lines += ["[[udp_echo]]", f'listen = ["udp:{port}:interface={HOST}"]']
        lines.append('rate_exempt = ["127.0.0.0/8"]')
        lifted.append('udp_echo rate_exempt = ["127.0.0.0/8"] (default rate 100/s, burst 200)')
    return "\n".join(lines) + "\n", lifted


def launch_netlab(ctx: Context, workload: Workload, port: int) -> Launch:
    """twistd -n netlab with a generated config, EventLog at its default level."""
    config, lifted = netlab_config(workload, port)
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
)


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
def running(ctx: Context, server: Server, workload: Workload) -> Iterator[tuple[int, Launch]]:
    """Start a server pinned to the server core, yield its port, then stop it."""
    kind = socket.SOCK_STREAM if workload.proto == "tcp" else socket.SOCK_DGRAM
    port = free_port(kind)
    launch = server.launch(ctx, workload, port)
    assert launch is not None
    work = ctx.run_dir / f"{server.name}-{workload.name}"
    work.mkdir(parents=True, exist_ok=True)
    for name, text in launch.files.items():
        (work / name).write_text(text)
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        launch.argv, cwd=work, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, preexec_fn=pinned(ctx.server_cpu), start_new_session=True,
    )
    try:
        wait_ready(proc, workload.proto, port)
        yield port, launch
    finally:
        stop(proc)
        log.close()


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


def load_once(ctx: Context, workload: Workload, port: int) -> dict[str, float]:
    """One bounded run of the load generator on the load core; its JSON line."""
    argv = workload.loader_argv(ctx.bin_dir / workload.loader, port, ctx.seconds, ctx.warmup)
    result = subprocess.run(
        argv, capture_output=True, text=True, preexec_fn=pinned(ctx.load_cpu),
        timeout=ctx.seconds + ctx.warmup + 30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed: {result.stderr.strip() or result.stdout}")
    parsed: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def summarise(values: list[float]) -> dict[str, float]:
    """Median, and spread as (max - min) / median so runs can be compared at a glance."""
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median * 100 if median else 0.0
    return {"median": median, "spread_pct": spread, "min": min(values), "max": max(values)}


def measure(ctx: Context, server: Server, workload: Workload) -> list[dict[str, Any]]:
    """All repeats of one workload against one server, one row per metric."""
    with running(ctx, server, workload) as (port, launch):
        runs = [load_once(ctx, workload, port) for _ in range(ctx.repeats)]
    rows = []
    for metric in workload.metrics:
        values = [float(run[metric.key]) for run in runs]
        rows.append({
            "workload": workload.name, "server": server.name, "metric": metric.key,
            "label": metric.label, "higher_is_better": metric.higher_is_better,
            **summarise(values), "runs": values, "lifted": launch.lifted,
        })
    return rows


def skip_reason(ctx: Context, server: Server, workload: Workload) -> str | None:
    """Why a server cannot take part in a workload, if it cannot."""
    return server.missing(ctx) or server.unsupported(workload)


def run_all(
    ctx: Context, workloads: list[Workload], servers: list[Server]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every workload against every server; failures are recorded, not fatal."""
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for workload in workloads:
        for server in servers:
            reason = skip_reason(ctx, server, workload)
            if reason is None:
                print(f"  {workload.name:18} {server.name:8} ...", end=" ", flush=True)
                try:
                    got = measure(ctx, server, workload)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                    reason = f"failed: {error}"
                else:
                    rows += got
                    print(f"{got[0]['median']:.1f} {got[0]['label']}")
                    continue
                print(reason)
            skipped.append({"workload": workload.name, "server": server.name, "reason": reason})
    add_ratios(rows)
    return rows, skipped


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's median over bare Twisted's for the same workload and metric."""
    reference = {
        (r["workload"], r["metric"]): r["median"] for r in rows if r["server"] == "twisted"
    }
    for row in rows:
        base = reference.get((row["workload"], row["metric"]))
        row["ratio_vs_twisted"] = row["median"] / base if base else None


# -- the targets ---------------------------------------------------------------


TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("tcp-pingpong-1", "msgs_per_s", "twisted", 1.5),
    ("tcp-pingpong-100", "msgs_per_s", "twisted", 1.5),
    ("tcp-pingpong-1", "msgs_per_s", "xinetd", 1.0),
    ("tcp-pingpong-100", "msgs_per_s", "xinetd", 1.0),
    ("tcp-bulk", "mb_per_s", "c-epoll", 0.6),
    ("udp-echo", "dgrams_per_s", "twisted", 0.95),
    ("udp-echo", "dgrams_per_s", "xinetd", 10.0),
)


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """netlab's ratio to each target's reference, and whether it meets it."""
    median = {(r["workload"], r["metric"], r["server"]): r["median"] for r in rows}
    checks = []
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
        ratio = "—" if r["ratio_vs_twisted"] is None else f"{r['ratio_vs_twisted']:.2f}"
        first = previous != (r["workload"], r["server"])
        previous = (r["workload"], r["server"])
        lifted = "; ".join(r["lifted"]) if first else ""
        out.append(
            f"| {r['workload']} | {r['server']} | {r['label']} | {fmt(r['median'])} "
            f"| ±{r['spread_pct']:.1f}% | {ratio} | {lifted} |"
        )
    out += ["", "Targets (netlab's median over the reference's median):", "",
            "| workload | metric | reference | target | measured | status |",
            "|---|---|---|---:|---:|---|"]
    for t in targets:
        measured = "—" if t["ratio"] is None else f"{t['ratio']:.2f}×"  # noqa: RUF001
        status = {True: "met", False: "**missed**", None: "n/a (not measured)"}[t["met"]]
        out.append(f"| {t['workload']} | {t['metric']} | {t['reference']} "
                   f"| ≥ {t['target']}× | {measured} | {status} |")  # noqa: RUF001
    if skipped:
        out += ["", "Skipped:", ""]
        out += [f"- {s['workload']} / {s['server']}: {s['reason']}" for s in skipped]
    return "\n".join(out) + "\n"


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
        f"server pinned to CPU {ctx.server_cpu}, load to CPU {ctx.load_cpu}"
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
    """latest.json for tools, latest.md for people."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "results": rows, "skipped": skipped, "targets": targets}
    (out / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(meta, rows, skipped, targets))


# -- command line --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options documented in bench/README.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help="1 s runs instead of 3 s (3 repeats either way)")
    parser.add_argument("--only", metavar="WORKLOAD",
                        help="comma-separated workloads: " + ", ".join(w.name for w in WORKLOADS))
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
    workloads = pick(args.only, WORKLOADS, "workload")
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
