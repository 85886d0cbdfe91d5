"""
Runs the real daemon, C{twistd -n netlab}, as a subprocess for end-to-end
tests, and learns its bound ports from its own "listening on" log lines.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from netlab.app import registry
from netlab.core.endpoints import split_endpoint, unproxied

TWISTD = str(Path(sys.executable).with_name("twistd"))
LISTENING = re.compile(r"\] (?P<service>[\w-]+): listening on (?P<kind>\w+) (?P<address>\S+)$")
STARTUP_TIMEOUT = 30.0


class Daemon:
    """
    A running C{twistd -n netlab} with its log lines collected.

    @ivar ports: C{(service, kind) -> [port, ...]} from the log.
    """

    def __init__(
        self, cwd: Path, *args: str, ready: bool = True, pidfile: str | None = "",
    ) -> None:
        self.cwd = cwd
        # pidfile None: twistd's own default, whatever netlab makes of it.
        twistd = [] if pidfile is None else [f"--pidfile={pidfile}"]
        self.argv = [TWISTD, "-n", *twistd, "netlab", *args]
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.ports: dict[tuple[str, str], list[int]] = {}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env,
        )
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        # "netlab ready" comes after every "listening on", once the reactor
        # runs and a signal would stop the daemon cleanly.
        while ready:
            line = self.next_line()
            match = LISTENING.search(line)
            if match and ":" in match["address"]:  # unix sockets have paths
                port = int(match["address"].rsplit(":", 1)[1])
                key = (match["service"], match["kind"])
                self.ports.setdefault(key, []).append(port)
            ready = "[netlab#info] netlab ready:" not in line

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next_line(self, timeout: float = STARTUP_TIMEOUT) -> str:
        """The next log line; fails if the daemon exits or says nothing in time."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no log line in {timeout}s; so far:\n" + "\n".join(self.lines)
            ) from None
        if line is None:
            self._queue.put(None)
            raise AssertionError("daemon exited; its log:\n" + "\n".join(self.lines))
        self.lines.append(line)
        return line

    def wait_for_log(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> str:
        """Read log lines until one matches C{pattern}; returns it."""
        compiled = re.compile(pattern)
        for line in self.lines:
            if compiled.search(line):
                return line
        while True:
            line = self.next_line(timeout)
            if compiled.search(line):
                return line

    def port(self, service: str, kind: str = "tcp") -> int:
        return self.ports[(service, kind)][0]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the daemon, wait for it, collect the rest of its log; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        status = self.process.wait(timeout=timeout)
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
        return status

    def log(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def fixed_ports(path: Path) -> list[str]:
    """
    The listen strings of the config at C{path} that name a port other than
    0: a section a test leaves out keeps its default (echo on 7007, the chat
    on 7070), which collides with a daemon a developer runs beside the
    suite, or another checkout's suite.
    """
    fixed = []
    # Relative paths in the config are the daemon's, which runs in its folder.
    with contextlib.chdir(path.parent):
        config = registry.load(path, environment=False)
    for where, settings in config.services():
        if not settings.enabled:
            continue
        for description in settings.listen:
            kind, args, kwargs = split_endpoint(unproxied(description)[0])
            port = kwargs.get("port", args[0] if args else "0")
            if kind not in ("unix", "systemd") and port != "0":
                fixed.append(f"[{where}] {description}")
    return fixed


def run_daemon(tmp_path: Path, config: str | None, any_port: bool = False) -> Daemon:
    """
    Start the daemon with C{config} (TOML text) or its built-in defaults;
    a config must listen only on port 0 unless C{any_port}.
    """
    args: list[str] = []
    if config is not None:
        path = tmp_path / "netlab.toml"
        path.write_text(config)
        fixed = [] if any_port else fixed_ports(path)
        assert not fixed, f"a test daemon must listen on free ports (0), not {fixed}"
        args = ["--config", str(path)]
    return Daemon(tmp_path, *args)


@contextmanager
def stops_cleanly(running: Daemon) -> Iterator[Daemon]:
    """Yields C{running}; after the block it must stop with status 0, and is killed regardless."""
    try:
        yield running
        assert running.stop() == 0, running.log()
    finally:
        running.kill()


def running_daemon(tmp_path: Path, config: str | None) -> Any:
    """L{run_daemon} as a context manager that checks the daemon stops cleanly."""
    return stops_cleanly(run_daemon(tmp_path, config))


def signal_name(sig: int) -> str:
    return signal.Signals(sig).name


def echo_only(*lines: str, listen: str = "tcp:0:interface=127.0.0.1") -> str:
    """A config running one TCP echo (plus C{lines} in its section) and nothing else."""
    extra = "".join(line + "\n" for line in lines)
    return (
        f'udp_echo = []\n[[echo]]\nlisten = ["{listen}"]\n{extra}'
        "[chat]\nenabled = false\n[http]\nenabled = false\n"
    )
