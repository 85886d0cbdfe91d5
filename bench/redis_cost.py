#!/usr/bin/env python3
"""
What one chat line costs Redis, measured on Redis alone: the CPU time
(/proc/PID/stat, user + system) a redis-server spends per command of the
three a netlab node sends for each line said in a room (RPUSH and LTRIM
on the room's list, PUBLISH on the bus), the PUBLISH with 1 to 16
subscribers reading the bus. Each command is driven by redis-benchmark
(4 connections, a fixed count) unpipelined, as a quiet node sends, and
pipelined 16 deep, as a busy node's lines pile up in one write.

    python3 bench/redis_cost.py [--count 100000] [--subscribers 1,2,4,8,16]

Needs Debian's redis-server and redis-tools (redis-cli, redis-benchmark).
Loopback only; everything it starts is stopped by its PID. See
bench/README.md, "Chat across workers and daemons".
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
# A netlab bus message for one line of the chat fan-out benchmark is about
# this long (JSON: node, seq, kind, room, nick, text, notice).
MESSAGE = "x" * 170
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (every thread)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-h", HOST, "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10).stdout.strip()


def wait_until(check: object, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"redis_cost: {what} not within {seconds:g} s")
        time.sleep(0.02)


def measure(port: int, redis_pid: int, count: int, pipeline: int,
            *command: str) -> dict[str, float]:
    """One redis-benchmark run of C{count} commands: commands/s and Redis µs per command."""
    argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "-c", "4", "-n", str(count),
            "-P", str(pipeline), "-q", *command]
    before, start = cpu_seconds(redis_pid), time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    wall, used = time.monotonic() - start, cpu_seconds(redis_pid) - before
    if result.returncode != 0:
        raise SystemExit(f"redis-benchmark failed: {result.stderr.strip()}")
    return {"per_s": count / wall, "redis_us": used * 1e6 / count, "redis_cores": used / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="commands per measurement")
    parser.add_argument("--subscribers", default="1,2,4,8,16",
                        help="subscriber counts to publish to")
    args = parser.parse_args(argv)
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not installed (apt-get install redis-server redis-tools)")
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    subscribers: list[subprocess.Popen[bytes]] = []
    try:
        wait_until(lambda: cli(port, "ping") == "PONG", "redis-server answering")
        print(f"redis-server pid {redis.pid} on {HOST}:{port}; {args.count:,} commands "
              "per row, 4 connections; Redis CPU from /proc")
        print("| command | subscribers | pipeline | commands/s | Redis CPU per command (µs) "
              "| Redis CPU (cores) |")
        print("|---|---:|---:|---:|---:|---:|")

        def row(name: str, subs: str, pipeline: int, *command: str) -> None:
            got = measure(port, redis.pid, args.count, pipeline, *command)
            print(f"| {name} | {subs} | {pipeline} | {got['per_s']:,.0f} "
                  f"| {got['redis_us']:.2f} | {got['redis_cores']:.2f} |", flush=True)

        for pipeline in (1, 16):
            row("RPUSH room (170 B)", "—", pipeline, "rpush", "room", MESSAGE)
            row("LTRIM room -200 -1", "—", pipeline, "ltrim", "room", "-200", "-1")
        for wanted in sorted(int(n) for n in args.subscribers.split(",")):
            while len(subscribers) < wanted:
                subscribers.append(subprocess.Popen(
                    ["redis-cli", "-h", HOST, "-p", str(port), "subscribe", "bus"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))
            wait_until(lambda n=wanted: cli(port, "pubsub", "numsub", "bus").split()[-1] == str(n),
                       f"{wanted} subscribers")
            for pipeline in (1, 16):
                row("PUBLISH bus (170 B)", str(wanted), pipeline, "publish", "bus", MESSAGE)
    finally:
        for proc in [*subscribers, redis]:
            proc.terminate()
        for proc in [*subscribers, redis]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
