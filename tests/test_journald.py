"""Tests for the journald log observer: syslog priorities on each line under systemd."""

from __future__ import annotations

import io
import os
import socket
import subprocess
from pathlib import Path

from twisted.logger import LogLevel

from daemon import TWISTD, echo_only
from netlab.core.journald import journal_line, observer


def event(level: LogLevel, text: str) -> dict[str, object]:
    return {"log_format": text, "log_level": level, "log_namespace": "netlab.echo",
            "log_time": 0.0}


def test_priorities() -> None:
    """Each level gets its syslog priority; every line of a message is prefixed."""
    assert journal_line(event(LogLevel.info, "hello")) == "<6>[netlab.echo] hello\n"
    assert journal_line(event(LogLevel.warn, "careful")) == "<4>[netlab.echo] careful\n"
    assert journal_line(event(LogLevel.error, "a\nb")) == (
        "<3>[netlab.echo] a\n<3>[netlab.echo] b\n"
    )
    assert journal_line(event(LogLevel.critical, "x")) == "<2>[netlab.echo] x\n"
    assert journal_line(event(LogLevel.debug, "x")) == "<7>[netlab.echo] x\n"


def test_terminal_keeps_timestamps() -> None:
    """Without $JOURNAL_STREAM the observer writes twistd's usual timestamped text."""
    out = io.StringIO()
    observer(out, environ={})(event(LogLevel.warn, "plain"))
    assert "[netlab.echo#warn] plain" in out.getvalue()
    out = io.StringIO()
    observer(out, environ={"JOURNAL_STREAM": "8:1"})(event(LogLevel.warn, "plain"))
    assert out.getvalue() == "<4>[netlab.echo] plain\n"


def test_daemon_under_journal(tmp_path: Path) -> None:
    """With JOURNAL_STREAM set, the daemon's warnings carry <4> and its info <6>."""
    config = tmp_path / "netlab.toml"
    config.write_text(echo_only("max_connections_per_peer = 1"))
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", "--logger=netlab.core.journald.observer",
         "netlab", "--config", str(config)],
        cwd=tmp_path, env={**os.environ, "JOURNAL_STREAM": "8:12345"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        port = 0
        for line in process.stdout:
            lines.append(line)
            if "echo: listening on tcp 127.0.0.1:" in line:
                port = int(line.rsplit(":", 1)[1])
            if "netlab ready" in line:
                break
        assert port, lines
        with socket.create_connection(("127.0.0.1", port), timeout=10) as first:
            first.sendall(b"x")
            assert first.recv(1) == b"x"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as second:
                assert second.recv(100).startswith(b"ERROR too many connections")
            for line in process.stdout:
                lines.append(line)
                if "refused" in line:
                    break
        process.terminate()
        rest, _ = process.communicate(timeout=30)
        lines.extend(rest.splitlines(keepends=True))
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert any(line.startswith("<6>[netlab.echo] echo: listening on tcp") for line in lines)
    assert any(line.startswith("<4>[netlab.echo] echo: refused 127.0.0.1:") for line in lines)
    assert all(line.startswith("<") for line in lines if line.strip()), lines
