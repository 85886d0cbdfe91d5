"""
End-to-end tests: the real daemon (C{twistd -n netlab}) in a subprocess,
talked to with real clients: openbsd netcat, telnet (driven by pexpect) and
plain Python sockets, then stopped with a signal.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from daemon import TWISTD, Daemon, run_daemon, running_daemon, stops_cleanly
from helpers import cannot_run, require_tool
from selfsigned import write_pem

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[log]
level = "debug"

[chat]
enabled = false

[http]
enabled = false

[[echo]]
name = "echo"
listen = ["tcp:0:interface=127.0.0.1"]

[[echo]]
name = "ok"
mode = "ok"
banner = "Welcome to netlab"
quit = "exit"
listen = ["tcp:0:interface=127.0.0.1"]

[[echo]]
name = "upper"
mode = "upper"
listen = ["tcp:0:interface=127.0.0.1", "tcp6:0:interface=\\\\:\\\\:1"]

[[udp_echo]]
listen = ["udp:0:interface=127.0.0.1"]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the client tests of this module."""
    with running_daemon(tmp_path_factory.mktemp("daemon"), CONFIG) as running:
        yield running


def nc(*args: str, data: bytes) -> bytes:
    binary = require_tool("nc")
    usage = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=30)
    if "OpenBSD" not in usage.stdout + usage.stderr:
        cannot_run(f"{binary} is not openbsd netcat")
    result = subprocess.run(
        [binary, *args], input=data, capture_output=True, timeout=30, check=True
    )
    return result.stdout


def test_nc_tcp_echo(daemon: Daemon) -> None:
    """`nc -N` gets back exactly what it sent, and the daemon logs the session."""
    data = b"hello\nworld\n" + bytes(range(1, 255)) + b"\n"
    assert nc("-N", "127.0.0.1", str(daemon.port("echo")), data=data) == data
    daemon.wait_for_log(r"echo: 127\.0\.0\.1:\d+ disconnected \(closed by client\)")


def test_nc_udp_echo(daemon: Daemon) -> None:
    """`nc -u` gets its datagram echoed back."""
    port = daemon.port("udp-echo", "udp")
    assert nc("-u", "-w1", "127.0.0.1", str(port), data=b"ping over udp\n") == (
        b"ping over udp\n"
    )


def test_nc_upper_over_ipv6(daemon: Daemon) -> None:
    """The upper-case echo answers netcat over IPv6 loopback too."""
    port = daemon.ports[("upper", "tcp")][1]
    assert nc("-N", "::1", str(port), data=b"shout\n") == b"SHOUT\n"


def test_telnet_ok_session(daemon: Daemon) -> None:
    """telnet sees the banner, OK... answers, and a goodbye on the quit word."""
    binary = require_tool("telnet")
    child = pexpect.spawn(binary, ["127.0.0.1", str(daemon.port("ok"))], timeout=20)
    try:
        child.expect("Welcome to netlab\r\n")
        child.sendline("hello there")
        child.expect(r"OK\.\.\.hello there\r\n")
        child.sendline("exit")
        child.expect("Bye.\r\n")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    daemon.wait_for_log(r"ok: 127\.0\.0\.1:\d+ disconnected \(quit\)")


def test_log_narrates_every_event(daemon: Daemon) -> None:
    """Connect, receive, send and disconnect are logged with the client's address."""
    with socket.create_connection(("127.0.0.1", daemon.port("echo"))) as s:
        peer = f"127.0.0.1:{s.getsockname()[1]}"
        s.sendall(b"narrate me")
        assert s.recv(1024) == b"narrate me"
    daemon.wait_for_log(rf"echo: {peer} connected")
    daemon.wait_for_log(rf"echo: received 10 bytes from {peer}: narrate me")
    daemon.wait_for_log(rf"echo: sent 10 bytes to {peer}: narrate me")
    daemon.wait_for_log(
        rf"echo: {peer} disconnected \(closed by client\) after [\d.]+s, "
        r"10 bytes in, 10 bytes out"
    )


def test_one_exit_never_stops_the_server(daemon: Daemon) -> None:
    """After one client quits, the next one is served (the reconnect exercise)."""
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", daemon.port("ok"))) as s:
            f = s.makefile("rb")
            assert f.readline() == b"Welcome to netlab\r\n"
            s.sendall(b"exit\r\n")
            assert f.readline() == b"Bye.\r\n"
            assert f.read() == b""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_says_goodbye_and_exits_zero(tmp_path: Path, sig: int) -> None:
    """SIGTERM or SIGINT: clients get a goodbye line, the log says stopped, status 0."""
    running = run_daemon(tmp_path, CONFIG)
    try:
        with socket.create_connection(("127.0.0.1", running.port("ok"))) as s:
            f = s.makefile("rb")
            assert f.readline() == b"Welcome to netlab\r\n"
            status = running.stop(sig)
            assert f.readline() == b"Server shutting down.\r\n"
            assert f.read() == b""
        assert status == 0, running.log()
        log = running.log()
        assert "ok: closing 1 open connections" in log
        assert "disconnected (server shutdown)" in log
        assert "netlab stopped" in log
        assert "Traceback" not in log
    finally:
        running.kill()


def test_signal_closes_plain_echo_silently(tmp_path: Path) -> None:
    """A plain (byte-exact) echo's client gets its own bytes back and nothing else on SIGTERM."""
    running = run_daemon(tmp_path, CONFIG)
    try:
        with socket.create_connection(("127.0.0.1", running.port("echo")), timeout=30) as s:
            s.sendall(b"\x00binary\xff")
            assert s.recv(100) == b"\x00binary\xff"
            status = running.stop()
            assert s.recv(100) == b""
        assert status == 0, running.log()
        assert "echo: closing 1 open connections" in running.log()
    finally:
        running.kill()


def test_builtin_defaults_loopback_7007(tmp_path: Path) -> None:
    """With no config: TCP and UDP echo on 127.0.0.1:7007 and the chat on 7070, loopback only."""
    with running_daemon(tmp_path, None) as running:
        assert running.ports == {
            ("echo", "tcp"): [7007],
            ("udp-echo", "udp"): [7007],
            ("chat", "tcp"): [7070],
            ("http", "tcp"): [8080],
        }
        assert "listening on tcp 127.0.0.1:7070" in running.log()
        assert "listening on tcp 127.0.0.1:7007" in running.log()
        assert "listening on udp 127.0.0.1:7007" in running.log()
        with socket.create_connection(("127.0.0.1", 7007)) as s:
            s.sendall(b"default")
            assert s.recv(100) == b"default"


def test_port_taken_stops_daemon(tmp_path: Path) -> None:
    """A port already in use stops the daemon with a clear line and a non-zero status."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "netlab.toml"
        config.write_text(
            "[chat]\nenabled = false\n[http]\nenabled = false\n"
            "[[echo]]\n"
            f'listen = ["tcp:0:interface=127.0.0.1", "tcp:{port}:interface=127.0.0.1"]\n'
        )
        result = run_twistd(tmp_path, "--config", str(config))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        f"echo: cannot listen on tcp:{port}:interface=127.0.0.1: Address already in use"
        in output
    )
    assert "Traceback" not in output


def test_bad_config_exits_before_listening(tmp_path: Path) -> None:
    """A config error names file, key and value, exits non-zero, and nothing listens."""
    config = tmp_path / "netlab.toml"
    config.write_text('[[echo]]\nmode = "loud"\nlisten = ["tcp:0"]\n')
    result = run_twistd(tmp_path, "--config", str(config))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f'{config}: [echo][0].mode = "loud": must be one of plain, upper, ok' in output
    assert "listening on" not in output


def run_twistd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run twistd netlab to completion (for runs that must fail at start)."""
    return subprocess.run(
        [TWISTD, "-n", "--pidfile=", "netlab", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )


def test_json_log_file(tmp_path: Path) -> None:
    """[log] file with format json writes one JSON object per line, per event."""
    log_file = tmp_path / "events.jsonl"
    config = tmp_path / "netlab.toml"
    config.write_text(
        "udp_echo = []\n"
        "[chat]\nenabled = false\n[http]\nenabled = false\n"
        f'[log]\nformat = "json"\nfile = "{log_file}"\n'
        '[[echo]]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
    )
    with stops_cleanly(Daemon(tmp_path, "--config", str(config), ready=False)) as running:
        # netlab's own events go to the file; one line in twistd's log still says where.
        line = running.wait_for_log(r"netlab ready: echo \d+; events are logged to ")
        port = int(line.split("netlab ready: echo ")[1].split(";")[0])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"x")
            assert s.recv(10) == b"x"
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    kinds = [e["netlab_event"] for e in events]
    assert kinds[0] == "daemon_start"
    assert kinds[-1] == "daemon_stop"
    assert "listening" in kinds
    assert "connected" in kinds
    assert "disconnected" in kinds
    assert "received" not in kinds  # payload events are debug only
    assert all(e["log_level"]["name"] in ("info", "warn") for e in events)


def test_example_config_runs(tmp_path: Path) -> None:
    """The documented example config starts, listening on IPv4 and IPv6 loopback."""
    example = ROOT / "examples" / "netlab.toml"
    # Started from another folder: its ssl: listeners' privateKey= and its
    # static_dir are the config file's, wherever the daemon runs.
    with stops_cleanly(Daemon(tmp_path, "--config", str(example))) as running:
        running.wait_for_log(r"listening on \w+ \[::1\]:")
        running.wait_for_log(r"listening on \w+ 127\.0\.0\.1:")
        assert "Traceback" not in running.log()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway key and self-signed certificate for localhost."""
    return write_pem(directory)


def test_tls_and_unix_endpoints(tmp_path: Path) -> None:
    """ssl: and unix: listen strings work: TLS echo to a verifying client, unix echo to nc -U."""
    import ssl

    key, cert = _self_signed(tmp_path)
    sock = tmp_path / "echo.sock"
    config = (
        "udp_echo = []\n"
        "[chat]\nenabled = false\n[http]\nenabled = false\n"
        "[[echo]]\n"
        'name = "tls-echo"\n'
        'mode = "upper"\n'
        f'listen = ["ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"]\n'
        "[[echo]]\n"
        'name = "unix-echo"\n'
        f'listen = ["unix:{sock}"]\n'
    )
    with running_daemon(tmp_path, config) as running:
        context = ssl.create_default_context(cafile=str(cert))
        port = running.port("tls-echo")
        with socket.create_connection(("127.0.0.1", port)) as raw, context.wrap_socket(
            raw, server_hostname="localhost"
        ) as tls:
            tls.sendall(b"secret\n")
            assert tls.recv(100) == b"SECRET\n"
        assert nc("-N", "-U", str(sock), data=b"over a unix socket\n") == (
            b"over a unix socket\n"
        )
        running.wait_for_log(r"unix-echo: unix-client disconnected \(closed by client\)")


def test_example_startup_and_shutdown_log_is_short(tmp_path: Path) -> None:
    """
    The example config's log: twistd's two lines, netlab's start and open
    files lines, one "listening on" line per listener (none of Twisted's own
    "... starting on N"), one "netlab ready: N listeners: echo 7007, ..."
    summary; at shutdown no "(TCP Port N Closed)" lines, and the log ends
    with "netlab stopped", then twistd's "Main loop terminated." and
    "Server Shut Down." as the README says.
    """
    from course import example_on_free_ports
    from netlab.app.registry import parse

    text = example_on_free_ports()
    config = parse(tomllib.loads(text), environment=False)
    listeners = sum(len(s.listen) for _, s in config.services() if s.enabled)
    running = run_daemon(tmp_path, text)
    try:
        startup = list(running.lines)
        assert running.stop() == 0, running.log()
    finally:
        running.kill()
    assert len(startup) == listeners + 5, "\n".join(startup)
    assert sum(": listening on " in line for line in startup) == listeners
    ready = startup[-1]
    assert f"[netlab#info] netlab ready: {listeners} listeners: echo " in ready, ready
    assert "udp-echo " in ready and "/udp" in ready
    assert not any(" starting on " in line for line in running.lines)
    assert not any("Port" in line and "Closed)" in line for line in running.lines)
    ending = [line.split("] ", 1)[1] for line in running.lines[-3:]]
    assert ending == ["netlab stopped", "Main loop terminated.", "Server Shut Down."]
