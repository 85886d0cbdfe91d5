"""Running as root with twistd's --uid/--gid: bind a privileged port, then drop to nobody."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from daemon import TWISTD, echo_only


def free_privileged_port() -> int:
    """A port below 1024 that nothing on loopback uses."""
    for port in range(990, 900, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free privileged port")


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_uid_gid_drop_after_binding(tmp_path: Path) -> None:
    """As root, twistd --uid=nobody binds a port below 1024, then serves as nobody."""
    port = free_privileged_port()
    config = tmp_path / "netlab.toml"
    config.write_text(echo_only(listen=f"tcp:{port}:interface=127.0.0.1"))
    nobody = pwd.getpwnam("nobody")
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", f"--uid={nobody.pw_uid}", f"--gid={nobody.pw_gid}",
         "netlab", "--config", str(config)],
        cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "netlab ready" in line:
                break
        assert f"listening on tcp 127.0.0.1:{port}" in "".join(lines), lines
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"unprivileged")
            assert client.recv(20) == b"unprivileged"
        status = Path(f"/proc/{process.pid}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
