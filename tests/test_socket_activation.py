"""
Tests for systemd socket activation with the real systemd tools: the daemon
started by C{systemd-socket-activate} serves the sockets it inherits by name,
TCP and UDP, and the shipped units pass C{systemd-analyze verify}.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path

from daemon import TWISTD
from helpers import require_tool

ROOT = Path(__file__).resolve().parents[1]


def free_port(kind: int) -> int:
    """A port nothing listens on now (the tool binds it again at once)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def activated(tmp_path: Path, config: str, *tool_args: str) -> subprocess.Popen[bytes]:
    path = tmp_path / "netlab.toml"
    path.write_text(config + "[chat]\nenabled = false\n[http]\nenabled = false\n")
    tool = require_tool("systemd-socket-activate")
    process = subprocess.Popen(
        [tool, *tool_args, "--", TWISTD, "-n", "--pidfile=", "netlab", "--config", str(path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    # Wait for the tool's own "Listening on ..." before any client connects.
    assert process.stdout is not None
    for _ in range(20):
        line = process.stdout.readline()
        if not line or line.startswith(b"Listening on"):
            break
    return process


def stop(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM the daemon (the tool execs it, so it has the tool's PID); its log."""
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    return out.decode("utf-8", "replace")


def test_tcp_socket_by_name(tmp_path: Path) -> None:
    """A stream service listens on systemd:domain=INET:name=NAME, passed in by the tool."""
    port = free_port(socket.SOCK_STREAM)
    process = activated(
        tmp_path,
        'udp_echo = []\n[[echo]]\nlisten = ["systemd:domain=INET:name=echo"]\nmode = "upper"\n',
        "-l", f"127.0.0.1:{port}", "--fdname=echo",
    )
    try:
        # The tool starts the daemon on the first connection, which then waits
        # in the inherited socket's backlog until the daemon accepts it.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(b"activated\n")
            assert client.makefile("rb").readline() == b"ACTIVATED\n"
        log = stop(process)
        assert process.returncode == 0, log
        assert f"echo: listening on tcp 127.0.0.1:{port}" in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_udp_socket_by_name(tmp_path: Path) -> None:
    """A datagram service adopts systemd-udp:name=NAME, passed in by the tool (--datagram)."""
    port = free_port(socket.SOCK_DGRAM)
    process = activated(
        tmp_path,
        'echo = []\n[[udp_echo]]\nlisten = ["systemd-udp:name=echo-udp"]\n',
        "--datagram", "-l", f"127.0.0.1:{port}", "--fdname=echo-udp",
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(30)
            client.sendto(b"first datagram", ("127.0.0.1", port))
            assert client.recvfrom(100)[0] == b"first datagram"
            client.sendto(b"second", ("127.0.0.1", port))
            assert client.recvfrom(100)[0] == b"second"
        log = stop(process)
        assert process.returncode == 0, log
        assert f"udp-echo: listening on udp 127.0.0.1:{port}" in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_missing_socket_name_stops_daemon(tmp_path: Path) -> None:
    """A systemd-udp name that was not passed in stops the start with a clear line."""
    path = tmp_path / "netlab.toml"
    path.write_text(
        "echo = []\n[chat]\nenabled = false\n[http]\nenabled = false\n"
        '[[udp_echo]]\nlisten = ["systemd-udp:name=nowhere"]\n'
    )
    result = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "netlab", "--config", str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "no inherited socket named \"nowhere\"" in result.stdout + result.stderr


def test_units_verify(tmp_path: Path) -> None:
    """The shipped units pass systemd-analyze verify (with ExecStart pointed at this twistd)."""
    analyze = require_tool("systemd-analyze")
    for unit in (ROOT / "contrib" / "systemd").iterdir():
        shutil.copy(unit, tmp_path / unit.name)
    service = tmp_path / "netlab.service"
    service.write_text(service.read_text().replace("/opt/netlab/bin/twistd", TWISTD))
    units = sorted(str(p) for p in tmp_path.iterdir() if p.suffix in (".service", ".socket"))
    assert len(units) >= 2
    result = subprocess.run(
        [analyze, "verify", *units], capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "contrib" / "systemd" / "netlab.service").read_text()
    for line in ("Type=notify", "DynamicUser=yes", "StateDirectory=netlab",
                 "LimitNOFILE=65536", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "WatchdogSec="):
        assert line in text, line


def unit_sockets() -> list[tuple[str, str, int]]:
    """Each shipped socket unit's (FileDescriptorName, Stream or Datagram, port)."""
    sockets = []
    for unit in sorted((ROOT / "contrib" / "systemd").glob("*.socket")):
        keys = dict(
            line.split("=", 1) for line in unit.read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        kind = "Stream" if "ListenStream" in keys else "Datagram"
        sockets.append((keys["FileDescriptorName"], kind, int(keys[f"Listen{kind}"])))
    return sockets


def free_port6(kind: int) -> int:
    """A port on ::1 nothing listens on now (the tool binds it again at once)."""
    with socket.socket(socket.AF_INET6, kind) as probe:
        probe.bind(("::1", 0))
        return int(probe.getsockname()[1])


def read_all(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := client.recv(size - len(data))):
        data += chunk
    return data


def probe_stream(name: str, port: int) -> None:
    """What each unit's stream socket must answer, by its FileDescriptorName."""
    with socket.create_connection(("::1", port), timeout=30) as client:
        if name == "echo":
            client.sendall(b"activated\n")
            assert read_all(client, 10) == b"activated\n"
        elif name == "daytime":
            assert client.makefile("rb").readline().endswith(b"\r\n")
        elif name == "chargen":
            assert len(read_all(client, 148)) == 148
        elif name == "http":
            client.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert client.makefile("rb").readline() == b"HTTP/1.0 200 OK\r\n"
        elif name == "chat":
            assert client.makefile("rb").readline().startswith(b"Welcome to the netlab chat.")
        else:
            raise AssertionError(f"no probe for the unit socket named {name!r}")


def test_shipped_units_and_config_serve_every_socket(tmp_path: Path) -> None:
    """
    contrib/systemd/netlab.toml, as shipped, under systemd-socket-activate
    holding every shipped unit's socket (its port mapped to a free one on
    ::1, named as the unit names it): the daemon starts and each socket is
    served.  The tool's --datagram is for all its sockets, so a second one,
    exec'd by the first, adds the datagram sockets and names them all.
    """
    tool = require_tool("systemd-socket-activate")
    sockets = unit_sockets()
    assert {name for name, _, _ in sockets} == {
        "echo", "echo-udp", "daytime", "chargen", "http", "chat"
    }
    ports = {
        name: free_port6(socket.SOCK_STREAM if kind == "Stream" else socket.SOCK_DGRAM)
        for name, kind, _ in sockets
    }
    stream = [name for name, kind, _ in sockets if kind == "Stream"]
    datagram = [name for name, kind, _ in sockets if kind == "Datagram"]
    outer = [tool] + [f"-l[::1]:{ports[name]}" for name in stream]
    inner = [tool, "--datagram"] + [f"-l[::1]:{ports[name]}" for name in datagram]
    inner.append(f"--fdname={':'.join(stream + datagram)}")
    config = ROOT / "contrib" / "systemd" / "netlab.toml"
    process = subprocess.Popen(
        [*outer, "--", *inner, "--",
         TWISTD, "-n", "--pidfile=", "netlab", "--config", str(config)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        # The outer tool says "Listening on" once per socket before it waits.
        bound = 0
        while bound < len(stream):
            line = process.stdout.readline()
            assert line, "systemd-socket-activate exited"
            bound += line.startswith(b"Listening on")
        # The first connection starts the daemon; it waits in the backlog.
        probe_stream("echo", ports["echo"])
        for name in stream:
            probe_stream(name, ports[name])
        for name in datagram:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
                client.settimeout(30)
                client.sendto(b"datagram", ("::1", ports[name]))
                assert client.recvfrom(100)[0] == b"datagram"
        log = stop(process)
        assert process.returncode == 0, log
        for name, kind, _ in sockets:
            assert f"listening on {'tcp' if kind == 'Stream' else 'udp'} [::1]:{ports[name]}" in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
