"""Tests for reloading on SIGHUP: safe settings applied, connections kept, logs reopened."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from daemon import TWISTD
from helpers import close_all, connect
from netlab.app.registry import load
from netlab.app.reload import reload
from netlab.app.service import NetlabService
from netlab.core.listen import bound_port

BASE = """udp_echo = []
{log}
[chat]
enabled = false
[http]
enabled = false
[[echo]]
mode = "ok"
banner = "{banner}"
max_connections_per_peer = {per_peer}
listen = ["{listen}"]
"""


def write(
    path: Path, banner: str, per_peer: int = 5,
    listen: str = "tcp:0:interface=127.0.0.1", log: Path | None = None,
) -> None:
    """The test's config, with this banner, per-peer limit, listen address and log file."""
    log_section = f'[log]\nfile = "{log}"' if log else ""
    path.write_text(
        BASE.format(banner=banner, per_peer=per_peer, listen=listen, log=log_section)
    )


@pytest_twisted.inlineCallbacks
def test_reload_applies_safe_settings_and_keeps_connections(tmp_path: Path, events: Any) -> Any:
    """A reload applies banner and limits, keeps open connections, and defers listen changes."""
    path = tmp_path / "netlab.toml"
    write(path, "one")
    service = NetlabService(load(path), reactor, events=events, config_path=str(path))
    service.privilegedStartService()
    service.startService()
    port = bound_port(service.listeners[0])
    endpoint = service.listeners[0].port  # type: ignore[attr-defined]
    first = yield connect(endpoint)
    yield first.wait_text(b"one\r\n")

    write(path, "two", per_peer=9, listen="tcp:1:interface=127.0.0.1")
    reload(service)
    (outcome,) = [e["outcome"] for e in events.kinds("reload")]
    assert "applied echo.max_connections_per_peer, echo.banner" in outcome
    assert "needs a restart: echo.listen" in outcome
    assert service.factories[0].limits.max_per_peer == 9
    assert bound_port(service.listeners[0]) == port

    first.send(b"still here\n")
    yield first.wait_text(b"OK...still here\n")
    second = yield connect(endpoint)
    yield second.wait_text(b"two\r\n")

    path.write_text("[[echo]]\nmode = 'shout'\n")
    reload(service)
    refused = events.kinds("reload")[-1]["outcome"]
    assert refused.startswith("config refused, still running the old one:")
    assert 'mode = "shout"' in refused
    third = yield connect(endpoint)
    yield third.wait_text(b"two\r\n")

    yield close_all(first, second, third)
    yield service.stopService()


def test_sighup_reopens_log_and_reloads(tmp_path: Path) -> None:
    """SIGHUP after logrotate moved the log: a new log file, the new banner, no dropped client."""
    log = tmp_path / "netlab.log"
    path = tmp_path / "netlab.toml"
    write(path, "before", log=log)
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", "netlab", "--config", str(path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        port = 0
        for line in process.stdout:
            if "netlab ready: echo " in line:  # events go to the file; this line does not
                port = int(line.split("netlab ready: echo ")[1].split(";")[0])
            if port:
                break
        assert port
        client = socket.create_connection(("127.0.0.1", port), timeout=20)
        reader = client.makefile("rb")
        assert reader.readline() == b"before\r\n"
        os.rename(log, tmp_path / "netlab.log.1")
        write(path, "after", log=log)
        process.send_signal(signal.SIGHUP)
        # The reload is logged in the new file; wait for it by reading the new
        # connection's banner, which can only change after the reload.
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", port), timeout=20) as probe:
                if probe.makefile("rb").readline() == b"after\r\n":
                    break
        else:
            raise AssertionError("the banner never changed")
        client.sendall(b"still connected\n")
        assert reader.readline() == b"OK...still connected\n"
        client.close()
        assert log.exists(), "the log was not reopened"
        assert "reload: " in log.read_text()
        assert "listening on" in (tmp_path / "netlab.log.1").read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
