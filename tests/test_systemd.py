"""Tests for sd_notify readiness, stopping and the watchdog, with a real AF_UNIX socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from daemon import TWISTD, echo_only
from netlab.app.registry import parse
from netlab.app.service import NetlabService
from netlab.core.listen import bound_port
from netlab.core.systemd import Notifier, notify, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's notification socket."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    yield sock, path
    sock.close()


def test_notify_sends_datagram(notify_socket: tuple[socket.socket, str]) -> None:
    """notify() sends its message as one datagram to $NOTIFY_SOCKET."""
    sock, path = notify_socket
    assert notify("READY=1", {"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1"


def test_notify_abstract_socket() -> None:
    """An @name in $NOTIFY_SOCKET is the abstract socket namespace."""
    name = f"netlab-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(30)
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"


def test_no_notify_socket_is_a_no_op() -> None:
    """Outside systemd nothing is sent and nothing fails."""
    assert not notify("READY=1", {})
    Notifier(Clock(), {}).ready("x")


def test_watchdog_interval() -> None:
    """The watchdog pings at half of WATCHDOG_USEC, and only for our own PID."""
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    mine = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 2.0
    assert watchdog_interval({}) is None


def test_notifier_watchdog_and_stopping(notify_socket: tuple[socket.socket, str]) -> None:
    """READY=1 starts WATCHDOG=1 pings every half interval; STOPPING=1 ends them."""
    sock, path = notify_socket
    clock = Clock()
    notifier = Notifier(clock, {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    notifier.ready("listening: echo tcp 127.0.0.1:7")
    ready = sock.recv(4096).decode()
    assert ready.startswith("READY=1\nSTATUS=listening: echo tcp 127.0.0.1:7")
    assert sock.recv(100) == b"WATCHDOG=1"
    clock.advance(1.0)
    assert sock.recv(100) == b"WATCHDOG=1"
    notifier.stopping()
    assert sock.recv(100).startswith(b"STOPPING=1")
    clock.advance(5.0)
    sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        sock.recv(100)
    assert not clock.getDelayedCalls()


@pytest_twisted.inlineCallbacks
def test_ready_only_after_listeners_bound(
    notify_socket: tuple[socket.socket, str], events: Any
) -> Any:
    """The daemon says READY=1, naming where it listens, once every listener is bound."""
    sock, path = notify_socket
    config = parse({
        "echo": [{"listen": ["tcp:0:interface=127.0.0.1"]}],
        "udp_echo": [{"listen": ["udp:0:interface=127.0.0.1"]}],
        "chat": {"enabled": False},
        "http": {"enabled": False},
    })
    service = NetlabService(config, reactor, events=events, environ={"NOTIFY_SOCKET": path})
    service.privilegedStartService()
    service.startService()
    tcp, udp = (bound_port(s) for s in service.listeners)
    message = sock.recv(4096).decode()
    assert message.startswith("READY=1\n")
    assert f"echo tcp 127.0.0.1:{tcp}" in message
    assert f"udp-echo udp 127.0.0.1:{udp}" in message
    yield service.stopService()
    assert sock.recv(4096).startswith(b"STOPPING=1")


def test_daemon_notifies_systemd(notify_socket: tuple[socket.socket, str], tmp_path: Path) -> None:
    """The real daemon sends READY=1 after binding and STOPPING=1 on SIGTERM, then exits 0."""
    sock, path = notify_socket
    config = tmp_path / "netlab.toml"
    config.write_text(echo_only())
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", "netlab", "--config", str(config)],
        cwd=tmp_path, env={**os.environ, "NOTIFY_SOCKET": path},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        ready = sock.recv(4096).decode()
        assert ready.startswith("READY=1\nSTATUS=listening: echo tcp 127.0.0.1:")
        port = int(ready.split("127.0.0.1:")[1].split()[0].rstrip(";"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"up")
            assert client.recv(10) == b"up"
        process.send_signal(signal.SIGTERM)
        assert sock.recv(4096).startswith(b"STOPPING=1")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
