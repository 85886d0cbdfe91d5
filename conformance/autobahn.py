#!/usr/bin/env python3
"""
Autobahn|Testsuite's fuzzingclient against netlab's WebSocket echo.

    python3 conformance/autobahn.py                    # both runs (about 10 minutes)
    python3 conformance/autobahn.py --max-body 20971520 # one run, max_body 20 MiB
    python3 conformance/autobahn.py --cases '6.*,7.*'  # some cases only

Each run starts the real daemon (C{twistd -n netlab}, the web site alone,
on a free port of 127.0.0.1, with the given C{max_body}), points
C{wstest -m fuzzingclient} at C{/ws/echo}, reads the suite's JSON report,
prints the counts per result and the cases that failed, and stops the
daemon by its PID.

Without C{--max-body} it makes two runs: at netlab's default C{max_body},
where exactly the cases whose messages are larger than the limit must fail
(the daemon refuses them with 1009), and at 20 MiB, above the suite's
largest message (16 MiB), where no case may fail.  Which cases are too big
is read from the suite's own case classes.  The exit status is 1 when a
case failed that its size does not explain, when an over-size case did
not fail, or when permessage-deflate (cases 12.* and 13.*) was not
negotiated.

The suite is Python 2 only.  The first run makes a Python 2.7 virtualenv
(from pyenv's C{python2.7} unless C{--python2} names one) under
C{~/.cache/netlab-conformance/autobahn-venv} and installs the suite there
with the pins of C{autobahn-requirements.txt}; later runs reuse it.

This script needs only the standard library; netlab runs under a Python
that has it installed (this repository's C{.venv} unless C{--python}).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REQUIREMENTS = HERE / "autobahn-requirements.txt"
CASE_SIZES = HERE / "case_sizes_py2.py"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "netlab-conformance"
VENV = CACHE / "autobahn-venv"
BOOTSTRAP = CACHE / "virtualenv"
# The last virtualenv that runs on Python 2 as one file with no dependencies.
VIRTUALENV = "virtualenv==16.7.12"
HOST = "127.0.0.1"
LARGE_MAX_BODY = 20 * 1_048_576
# What a case's "behavior" may be without failing it.
PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")
KNOWN = (*PASSING, "UNIMPLEMENTED", "FAILED")
LISTENING = re.compile(r"\] (?P<service>[\w-]+): listening on tcp (?P<host>\S+):(?P<port>\d+)$")
READY = "[netlab#info] netlab ready:"
STARTUP_TIMEOUT = 60.0


# -- the Python 2 side -----------------------------------------------------------------


def find_python2(explicit: str | None) -> str:
    """pyenv's python2.7, or the one named, or one on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [explicit] if explicit else [
        str(pyenv / "2.7.18" / "bin" / "python2.7"),
        *sorted(str(p) for p in pyenv.glob("2.7*/bin/python2.7")),
        shutil.which("python2.7") or "",
    ]
    for python in candidates:
        if python and Path(python).exists():
            return python
    raise SystemExit(
        "no python2.7 found (the suite is Python 2 only): install it with pyenv "
        "(pyenv install 2.7.18) or pass --python2"
    )


def ensure_suite(python2: str) -> Path:
    """The cached virtualenv with the pinned suite in it; made once per requirements file."""
    stamp = VENV / ".netlab-requirements"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + python2.encode()).hexdigest()
    wstest = VENV / "bin" / "wstest"
    if wstest.exists() and stamp.exists() and stamp.read_text() == wanted:
        return wstest
    print(f"installing Autobahn|Testsuite into {VENV} (once)", flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    quiet = ["--quiet", "--disable-pip-version-check", "--no-python-version-warning"]
    if not (BOOTSTRAP / "virtualenv.py").exists():
        run_step([python2, "-m", "pip", "install", *quiet[:2], "--target", str(BOOTSTRAP),
                  VIRTUALENV])
    run_step([python2, "-m", "virtualenv", "--quiet", str(VENV)],
             env={**os.environ, "PYTHONPATH": str(BOOTSTRAP)})
    run_step([str(VENV / "bin" / "pip"), "install", *quiet, "-r", str(REQUIREMENTS)])
    stamp.write_text(wanted)
    return wstest


def run_step(argv: list[str], env: dict[str, str] | None = None) -> None:
    """One setup command; its output only if it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def case_sizes(wstest: Path) -> dict[str, int]:
    """Each case's largest message payload, from the suite's own case classes."""
    python = wstest.with_name("python")
    # From stdin, in the venv's folder: run as a file from here, this script
    # (autobahn.py) would shadow the autobahn package it imports.
    result = subprocess.run([str(python), "-"], input=CASE_SIZES.read_text(), cwd=VENV,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"reading the suite's case sizes failed:\n{result.stderr}")
    return {case: int(size) for case, size in json.loads(result.stdout).items()}


# -- netlab ----------------------------------------------------------------------------


def python_has(python: str, module: str) -> bool:
    result = subprocess.run([python, "-c", f"import {module}"], capture_output=True,
                            timeout=60)
    return result.returncode == 0


def find_netlab_python(explicit: str | None) -> str:
    """A Python that imports netlab: the one named, this repository's .venv, or this one."""
    candidates = [explicit] if explicit else [
        str(REPO / ".venv" / "bin" / "python"), sys.executable,
    ]
    for python in candidates:
        if python and Path(python).exists() and python_has(python, "netlab"):
            return python
    raise SystemExit("no Python with netlab found; install netlab in .venv or pass --python")


def default_max_body(python: str) -> int:
    """netlab's built-in [http] max_body, asked of netlab itself."""
    code = ("from netlab.protocols.http.settings import HttpSettings; "
            "print(HttpSettings().max_body)")
    return int(subprocess.run([python, "-c", code], capture_output=True, text=True,
                              check=True, timeout=60).stdout)


def netlab_config(max_body: int | None, deflate: bool) -> str:
    """The web site alone, on a free loopback port; every other service off."""
    lines = [
        "# Written by conformance/autobahn.py.",
        "echo = []", "udp_echo = []",
        "[chat]", "enabled = false",
        "[http]", f'listen = ["tcp:0:interface={HOST}"]',
        f"websocket_deflate = {'true' if deflate else 'false'}",
    ]
    if max_body is not None:
        lines.append(f"max_body = {max_body}")
    return "\n".join(lines) + "\n"


class Daemon:
    """C{twistd -n netlab} in C{work}, its log copied to C{work/netlab.log}."""

    def __init__(self, python: str, work: Path, config: str) -> None:
        (work / "netlab.toml").write_text(config)
        twistd = Path(python).with_name("twistd")
        head = [str(twistd)] if twistd.exists() else [
            python, "-c", "from twisted.scripts.twistd import run; run()"]
        argv = [*head, "-n", "--pidfile=", "netlab", "--config", "netlab.toml"]
        self.log_path = work / "netlab.log"
        self.process = subprocess.Popen(
            argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        self.copier = threading.Thread(target=self._copy, args=(self.process.stdout,),
                                       daemon=True)
        self.copier.start()

    def _copy(self, stream: IO[str]) -> None:
        with self.log_path.open("w") as log:
            for line in stream:
                log.write(line)
                log.flush()
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_ready(self) -> int:
        """The web site's port, once the daemon says it is ready."""
        port = None
        while True:
            try:
                line = self.lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                raise SystemExit(f"netlab said nothing for {STARTUP_TIMEOUT}s; see "
                                 f"{self.log_path}") from None
            if line is None:
                raise SystemExit(f"netlab exited at start; its log:\n"
                                 f"{self.log_path.read_text()}")
            match = LISTENING.search(line)
            if match and match["service"] == "http":
                port = int(match["port"])
            if READY in line:
                if port is None:
                    raise SystemExit(f"netlab is ready but the web site does not listen: "
                                     f"{self.log_path}")
                return port

    def stop(self) -> int:
        """SIGTERM the daemon by its PID and wait for it (SIGKILL if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.copier.join(timeout=10)
        return status


# -- one run -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """One run's results: each case's behaviour, and what the check makes of them."""

    max_body: int
    deflate: bool
    behaviors: dict[str, str]
    sizes: dict[str, int]
    over_size: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    over_size_passed: list[str] = field(default_factory=list)
    undeflated: list[str] = field(default_factory=list)

    def check(self) -> None:
        self.over_size = sorted((c for c in self.behaviors if self.sizes.get(c, 0) > self.max_body),
                                key=case_key)
        failing = [c for c, b in self.behaviors.items() if b not in (*PASSING, "UNIMPLEMENTED")]
        self.unexplained = sorted(set(failing) - set(self.over_size), key=case_key)
        self.over_size_passed = sorted(set(self.over_size) - set(failing), key=case_key)
        if self.deflate:
            self.undeflated = sorted(
                (c for c, b in self.behaviors.items() if b == "UNIMPLEMENTED"), key=case_key)

    @property
    def ok(self) -> bool:
        return not (self.unexplained or self.over_size_passed or self.undeflated)

    def ids(self, cases: list[str]) -> str:
        return compact(cases, self.sizes)

    def summary(self, url: str, default: bool) -> str:
        counts = Counter(self.behaviors.values())
        shown = [f"{counts.get(name, 0)} {name}" for name in KNOWN]
        shown += [f"{n} {name}" for name, n in sorted(counts.items()) if name not in KNOWN]
        limit = f"max_body = {self.max_body}" + (" (netlab's default)" if default else "")
        lines = [
            f"fuzzingclient against {url}, {limit}, "
            f"permessage-deflate {'on' if self.deflate else 'off'}",
            f"  {len(self.behaviors)} cases: " + ", ".join(shown),
        ]
        failed = sorted((c for c, b in self.behaviors.items() if b not in PASSING), key=case_key)
        lines.append(f"  not passed: {self.ids(failed) or 'none'}")
        if self.over_size:
            lines.append(f"  over max_body by payload (must fail): {self.ids(self.over_size)}")
        lines.append(f"  failed, not explained by max_body: {self.ids(self.unexplained) or 'none'}")
        if self.over_size_passed:
            lines.append(f"  over max_body but passed: {self.ids(self.over_size_passed)}")
        if self.undeflated:
            lines.append(f"  permessage-deflate not negotiated: {self.ids(self.undeflated)}")
        lines.append("  result: " + ("as expected" if self.ok else "UNEXPECTED"))
        return "\n".join(lines)


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def compact(cases: list[str], universe: dict[str, int]) -> str:
    """Case ids, a whole group of the suite shortened: 9.3.1 ... 9.3.9 as 9.3.*."""
    groups: dict[str, list[str]] = {}
    for case in universe:
        groups.setdefault(case.rpartition(".")[0], []).append(case)
    chosen = set(cases)
    shown: list[str] = []
    for case in cases:
        group = case.rpartition(".")[0]
        members = groups.get(group, [case])
        if len(members) > 1 and chosen.issuperset(members):
            if f"{group}.*" not in shown:
                shown.append(f"{group}.*")
        else:
            shown.append(case)
    return " ".join(shown)


def run_once(wstest: Path, python: str, sizes: dict[str, int], max_body: int | None,
             deflate: bool, patterns: list[str], work: Path, timeout: float,
             default: int) -> tuple[Outcome, str]:
    """Start netlab, run the suite against it, stop netlab; the outcome and the URL."""
    daemon = Daemon(python, work, netlab_config(max_body, deflate))
    try:
        port = daemon.wait_ready()
        url = f"ws://{HOST}:{port}/ws/echo"
        reports = work / "reports"
        spec = {
            "outdir": str(reports),
            "servers": [{"agent": "netlab", "url": url}],
            "cases": patterns,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        (work / "fuzzingclient.json").write_text(json.dumps(spec, indent=2))
        print(f"running the suite against {url} (log: {work / 'wstest.log'})", flush=True)
        with (work / "wstest.log").open("w") as log:
            suite = subprocess.Popen(
                [str(wstest), "-m", "fuzzingclient", "-s", "fuzzingclient.json"],
                cwd=work, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            try:
                status = suite.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                suite.kill()
                suite.wait()
                raise SystemExit(f"the suite did not finish in {timeout:.0f}s; see "
                                 f"{work / 'wstest.log'}") from None
        if status != 0:
            raise SystemExit(f"wstest exited with {status}; see {work / 'wstest.log'}")
    finally:
        stopped = daemon.stop()
    if stopped != 0:
        print(f"netlab exited with status {stopped}; see {daemon.log_path}", file=sys.stderr)
    index = json.loads((reports / "index.json").read_text())
    behaviors = {case: result["behavior"] for case, result in index["netlab"].items()}
    outcome = Outcome(max_body if max_body is not None else default, deflate, behaviors, sizes)
    outcome.check()
    return outcome, url


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-body", type=int, action="append",
                        help="[http] max_body of one run (repeat for more runs); default: "
                             "two runs, netlab's default and 20 MiB")
    parser.add_argument("--cases", default="*",
                        help="comma-separated case patterns (default *: all)")
    parser.add_argument("--no-deflate", action="store_true",
                        help="websocket_deflate = false (12.* and 13.* are then UNIMPLEMENTED)")
    parser.add_argument("--python", help="a Python that has netlab (default: .venv's)")
    parser.add_argument("--python2", help="the python2.7 for the suite (default: pyenv's)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds one run of the suite may take (default 3600)")
    parser.add_argument("--keep", type=Path,
                        help="keep each run's config, logs and reports under this folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = find_netlab_python(args.python)
    wstest = ensure_suite(find_python2(args.python2))
    sizes = case_sizes(wstest)
    default = default_max_body(python)
    limits: list[int | None] = list(args.max_body or [None, LARGE_MAX_BODY])
    patterns = [p.strip() for p in args.cases.split(",") if p.strip()]
    wanted = [c for c in sizes if any(fnmatch.fnmatchcase(c, p) for p in patterns)]
    if not wanted:
        raise SystemExit(f"no case matches {args.cases!r}")
    summaries = []
    everything_ok = True
    with tempfile.TemporaryDirectory(prefix="netlab-autobahn-") as scratch:
        root = args.keep or Path(scratch)
        for n, max_body in enumerate(limits):
            work = root / f"run{n + 1}-max_body-{max_body or 'default'}"
            work.mkdir(parents=True, exist_ok=True)
            outcome, url = run_once(wstest, python, sizes, max_body, not args.no_deflate,
                                    patterns, work, args.timeout, default)
            summary = outcome.summary(url, max_body is None or max_body == default)
            print(summary, flush=True)
            summaries.append(summary)
            everything_ok = everything_ok and outcome.ok
    if len(summaries) > 1:
        print("\n" + "\n\n".join(summaries))
    return 0 if everything_ok else 1


if __name__ == "__main__":
    sys.exit(main())
