#!/usr/bin/env python3
"""
netlab soak test: connections churning on every protocol at once, for a
bounded time, while the daemon's memory and file descriptors are sampled.

    python3 bench/soak.py                  # 5 minutes
    python3 bench/soak.py --minutes 1 --interval 2

One netlab daemon (twistd -n) on free loopback ports runs TCP echo, UDP
echo, the line chat and the web site. Worker threads (--workers per
protocol) open a connection, do one small exchange, check the answer and
close, over and over, until the time is up:

* echo: connect, 64 bytes out and back, close;
* udp: a fresh socket, one 64-byte datagram out and back, close;
* chat: connect, a nick, one line, /quit, close;
* http: connect, two keep-alive GET /get, close.

Every --interval seconds the daemon's VmRSS (/proc/PID/status), its open
file descriptors (/proc/PID/fd) and the timed calls waiting in its reactor
(DelayedCalls: the netlab_reactor_delayed_calls gauge of its /metrics) are
sampled. The first 10 % of the run is warm-up (arenas, caches and the
event ring fill up) and is not judged; the rest is cut in thirds, and the
run FAILS (exit status 1) if the last third's average RSS exceeds the
first third's by more than --rss-margin percent, its average fd count by
more than --fd-margin descriptors, or its average DelayedCall count by
more than --calls-margin, or the daemon exits. Exit status 0 otherwise. Standard library only; the
daemon runs under a Python with Twisted and netlab (found like run.py's).
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from run import HOST, answers, find_python, free_port, stop  # noqa: E402

PROTOCOLS = ("echo", "udp", "chat", "http")
MSG = bytes(range(32, 96))  # 64 bytes


def config(ports: dict[str, int]) -> str:
    return f"""# Written by bench/soak.py: every protocol on a free loopback port.
[[echo]]
listen = ["tcp:{ports['echo']}:interface={HOST}"]
[[udp_echo]]
listen = ["udp:{ports['udp']}:interface={HOST}"]
rate_exempt = ["127.0.0.0/8"]
[chat]
listen = ["tcp:{ports['chat']}:interface={HOST}"]
[http]
listen = ["tcp:{ports['http']}:interface={HOST}"]
"""


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed early")
        data += chunk
    return data


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed early")
        data += chunk
        if len(data) > 1 << 20:
            raise ConnectionError("no marker in 1 MiB")
    return data


def one_echo(port: int, _: str) -> None:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(MSG)
        if recv_exactly(sock, len(MSG)) != MSG:
            raise ValueError("echo mismatch")


def one_udp(port: int, _: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(MSG, (HOST, port))
        if sock.recv(256) != MSG:
            raise ValueError("udp mismatch")


def one_chat(port: int, nick: str) -> None:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        recv_until(sock, b"nick")
        sock.sendall(nick.encode() + b"\r\n")
        recv_until(sock, b"You are now in")
        sock.sendall(b"soak line\r\n/quit\r\n")
        with suppress(OSError):
            while sock.recv(4096):
                pass


def one_http(port: int, _: str) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        for _request in range(2):
            conn.request("GET", "/get")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
    finally:
        conn.close()


ACTIONS = {"echo": one_echo, "udp": one_udp, "chat": one_chat, "http": one_http}


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = dict.fromkeys(PROTOCOLS, 0)
        self.errors = dict.fromkeys(PROTOCOLS, 0)
        self.last_error: dict[str, str] = {}

    def add(self, proto: str, error: Exception | None) -> None:
        with self.lock:
            if error is None:
                self.ok[proto] += 1
            else:
                self.errors[proto] += 1
                self.last_error[proto] = f"{type(error).__name__}: {error}"


def worker(proto: str, index: int, port: int, until: float, counters: Counters,
           stop_flag: threading.Event) -> None:
    action = ACTIONS[proto]
    n = 0
    while time.monotonic() < until and not stop_flag.is_set():
        n += 1
        nick = f"s{index}x{n % 1_000_000}"
        try:
            action(port, nick)
        except (OSError, ValueError) as error:
            counters.add(proto, error)
            time.sleep(0.05)
        else:
            counters.add(proto, None)


def sample(pid: int) -> tuple[float, int]:
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def delayed_calls(port: int) -> int:
    """The daemon's netlab_reactor_delayed_calls gauge, from one /metrics scrape."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith("netlab_reactor_delayed_calls "):
            return int(float(line.split()[1]))
    raise RuntimeError("no netlab_reactor_delayed_calls in /metrics")


Sample = tuple[float, float, int, int]  # seconds, RSS MB, fds, DelayedCalls


def judge(samples: list[Sample], seconds: float, rss_margin: float,
          fd_margin: float, calls_margin: float) -> tuple[bool, list[str]]:
    judged = [s for s in samples if s[0] >= seconds * 0.1]
    if len(judged) < 3:
        return False, ["too few samples to judge (run longer or sample more often)"]
    third = len(judged) // 3
    first, last = judged[:third], judged[-third:]
    rss0, rss1 = statistics.mean(s[1] for s in first), statistics.mean(s[1] for s in last)
    fd0, fd1 = statistics.mean(s[2] for s in first), statistics.mean(s[2] for s in last)
    dc0, dc1 = statistics.mean(s[3] for s in first), statistics.mean(s[3] for s in last)
    rss_ok = rss1 <= rss0 * (1 + rss_margin / 100)
    fd_ok = fd1 <= fd0 + fd_margin
    calls_ok = dc1 <= dc0 + calls_margin
    lines = [
        f"RSS  first third {rss0:8.1f} MB, last third {rss1:8.1f} MB "
        f"({(rss1 / rss0 - 1) * 100:+.1f} %, limit +{rss_margin:g} %): "
        + ("ok" if rss_ok else "GROWING"),
        f"fds  first third {fd0:8.1f},    last third {fd1:8.1f}    "
        f"({fd1 - fd0:+.1f}, limit +{fd_margin:g}): " + ("ok" if fd_ok else "GROWING"),
        f"DelayedCalls first third {dc0:5.1f}, last third {dc1:5.1f} "
        f"({dc1 - dc0:+.1f}, limit +{calls_margin:g}): " + ("ok" if calls_ok else "GROWING"),
    ]
    return rss_ok and fd_ok and calls_ok, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--workers", type=int, default=2, help="threads per protocol")
    parser.add_argument("--rss-margin", type=float, default=10.0, help="percent")
    parser.add_argument("--fd-margin", type=float, default=20.0, help="descriptors")
    parser.add_argument("--calls-margin", type=float, default=50.0, help="DelayedCalls")
    parser.add_argument("--python", help="a Python with twisted and netlab (default: found)")
    args = parser.parse_args(argv)
    seconds = max(10.0, args.minutes * 60)
    python = find_python(args.python)
    twistd = Path(python).parent / "twistd"
    head = [str(twistd)] if twistd.exists() else [
        python, "-c", "from twisted.scripts.twistd import run; run()"]

    with tempfile.TemporaryDirectory(prefix="netlab-soak-") as tmp:
        work = Path(tmp)
        ports = {p: free_port(socket.SOCK_DGRAM if p == "udp" else socket.SOCK_STREAM)
                 for p in PROTOCOLS}
        (work / "netlab.toml").write_text(config(ports))
        log = (work / "daemon.log").open("wb")
        proc = subprocess.Popen(
            [*head, "-n", "--pidfile=", "netlab", "--config", "netlab.toml"], cwd=work,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 20
            while not all(answers("udp" if p == "udp" else "tcp", ports[p]) for p in PROTOCOLS):
                if proc.poll() is not None or time.monotonic() > deadline:
                    print("daemon did not start; its log:\n" + (work / "daemon.log").read_text())
                    return 1
                time.sleep(0.1)
            return soak(proc, ports, seconds, args)
        finally:
            stop(proc)
            log.close()


def soak(proc: subprocess.Popen[bytes], ports: dict[str, int], seconds: float,
         args: argparse.Namespace) -> int:
    counters = Counters()
    stop_flag = threading.Event()
    start = time.monotonic()
    until = start + seconds
    threads = [
        threading.Thread(target=worker, daemon=True,
                         args=(proto, i * 10 + PROTOCOLS.index(proto), ports[proto], until,
                               counters, stop_flag))
        for proto in PROTOCOLS for i in range(args.workers)
    ]
    for t in threads:
        t.start()
    print(f"soak: netlab pid {proc.pid}, {seconds:.0f} s, {args.workers} workers per protocol, "
          f"sample every {args.interval:g} s")
    print(f"{'t (s)':>7} {'RSS MB':>8} {'fds':>5} {'calls':>5} "
          + " ".join(f"{p + '/s':>8}" for p in PROTOCOLS) + f" {'errors':>7}")
    samples: list[Sample] = []
    died = False
    last_ok = dict(counters.ok)
    last_t = start
    try:
        while time.monotonic() < until:
            time.sleep(min(args.interval, max(0.0, until - time.monotonic())))
            if proc.poll() is not None:
                died = True
                break
            now = time.monotonic()
            rss, fds = sample(proc.pid)
            calls = delayed_calls(ports["http"])
            samples.append((now - start, rss, fds, calls))
            with counters.lock:
                ok = dict(counters.ok)
                errors = sum(counters.errors.values())
            rates = [(ok[p] - last_ok[p]) / max(1e-9, now - last_t) for p in PROTOCOLS]
            last_ok, last_t = ok, now
            print(f"{now - start:7.1f} {rss:8.1f} {fds:5d} {calls:5d} "
                  + " ".join(f"{r:8.0f}" for r in rates) + f" {errors:7d}", flush=True)
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        stop_flag.set()
        for t in threads:
            t.join(timeout=10)

    print()
    print("| protocol | exchanges | errors | last error |")
    print("|---|---:|---:|---|")
    for p in PROTOCOLS:
        print(f"| {p} | {counters.ok[p]:,} | {counters.errors[p]:,} "
              f"| {counters.last_error.get(p, '')} |")
    print()
    if died:
        print(f"FAIL: the daemon exited with status {proc.returncode}")
        return 1
    passed, lines = judge(samples, seconds, args.rss_margin, args.fd_margin, args.calls_margin)
    for line in lines:
        print(line)
    print("PASS" if passed else "FAIL: RSS, file descriptors or DelayedCalls keep growing")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
