"""
Running out of file descriptors: the daemon, started with a low open-files
limit, refuses what it cannot hold (logged and counted), keeps serving the
clients it has, and recovers once connections close.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
from pathlib import Path

from daemon import TWISTD, echo_only

LIMIT = 48


def low_limit() -> None:
    """In the child: a low open-files limit that netlab cannot raise (hard = soft)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def test_out_of_file_descriptors_refused_then_recovers(tmp_path: Path) -> None:
    """Past the open-files limit clients are closed and logged; after they go, service resumes."""
    config = tmp_path / "netlab.toml"
    config.write_text(echo_only("max_connections_per_peer = 1000"))
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", "netlab", "--config", str(config)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=low_limit,
    )
    held: list[socket.socket] = []
    try:
        assert process.stdout is not None
        port = 0
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "echo: listening on tcp 127.0.0.1:" in line:
                port = int(line.rsplit(":", 1)[1])
            if "netlab ready" in line:
                break
        assert port, lines
        assert f"open files limit: {LIMIT}" in "".join(lines)
        refused = 0
        for _ in range(LIMIT + 20):
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            try:
                client.sendall(b"ping")
                answer = client.recv(10)
            except OSError:
                answer = b""
            if answer == b"ping":
                held.append(client)
            else:
                refused += 1
                client.close()
        assert refused > 0, "the limit was never reached"
        assert held, "nobody was served"
        for client in held:
            client.sendall(b"still")
            assert client.recv(10) == b"still"
        for client in held:
            client.close()
        held.clear()
        # Recovered: a new client is served once descriptors are free again.
        for _ in range(100):
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as client,
                contextlib.suppress(OSError),
            ):
                client.sendall(b"back")
                if client.recv(10) == b"back":
                    break
        else:
            raise AssertionError("the daemon never recovered")
        process.terminate()
        rest, _ = process.communicate(timeout=30)
        log = "".join(lines) + rest
        assert process.returncode == 0, log
        assert "refused" in log and "out of file descriptors (open files limit reached)" in log
        assert "Traceback" not in log
    finally:
        for client in held:
            client.close()
        if process.poll() is None:
            process.kill()
            process.communicate()
