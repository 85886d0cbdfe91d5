"""
End-to-end tests of the login service: the real daemon, run with the
[login] section of examples/netlab.toml (on port 0, its database in the
test's folder), and real clients: the course's telnetlib example, the same
read_until logic over a plain socket, and real telnet driven by pexpect.
"""

from __future__ import annotations

import re
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pexpect
import pytest

from daemon import Daemon, running_daemon
from helpers import cannot_run, require_tool

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "netlab.toml"
TIMEOUT = 20


def login_section(database: Path) -> str:
    """The example's [login] section, listening on port 0, its database at C{database}."""
    text = EXAMPLE.read_text(encoding="utf-8")
    section = text[text.index("\n[login]\n"):text.index("\n# -- classic inetd services")]
    section = re.sub(
        r"^listen = \[.*?\]$", 'listen = ["tcp:0:interface=127.0.0.1"]', section,
        flags=re.MULTILINE | re.DOTALL,
    )
    return re.sub(r"^database = .*$", f'database = "{database}"', section, flags=re.MULTILINE)


def login_config(tmp_path: Path) -> str:
    """Only the login service, at debug level, so the test sees every payload sample."""
    return (
        'udp_echo = []\necho = []\n[log]\nlevel = "debug"\n'
        "[chat]\nenabled = false\n[http]\nenabled = false\n"
        + login_section(tmp_path / "login.sqlite3")
    )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path, login_config(tmp_path)) as running:
        yield running


def telnetlib_module() -> ModuleType:
    """The standard library's telnetlib (deprecated, gone in Python 3.13)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import telnetlib
    except ImportError:
        cannot_run("telnetlib is not in this Python")
    return telnetlib


class SocketTelnet:
    """telnetlib's read_until, write and read_all over a plain socket."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buffer = b""

    def read_until(self, expected: bytes) -> bytes:
        while expected not in self.buffer:
            chunk = self.sock.recv(1024)
            if not chunk:
                raise AssertionError(f"closed before {expected!r}; got {self.buffer!r}")
            self.buffer += chunk
        end = self.buffer.index(expected) + len(expected)
        seen, self.buffer = self.buffer[:end], self.buffer[end:]
        return seen

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def read_all(self) -> bytes:
        while chunk := self.sock.recv(1024):
            self.buffer += chunk
        self.sock.close()
        data, self.buffer = self.buffer, b""
        return data


def register(port: int, user: bytes, password: bytes) -> None:
    """Register C{user} over a plain socket, as a student would."""
    client = SocketTelnet("127.0.0.1", port)
    client.read_until(b"login: ")
    client.write(user + b"\n")
    client.read_until(b"New user " + user + b". Choose a password: ")
    client.write(password + b"\n")
    client.read_until(b"Retype the password: ")
    client.write(password + b"\n")
    client.read_until(b"@netlab:~$ ")
    client.write(b"exit\n")
    assert client.read_all() == b"logout\r\n"


def course_example(telnet: type, port: int, user: bytes, password: bytes) -> str:
    """The course's telnetlib example, as written, with host and port edited."""
    tn = telnet("127.0.0.1", port)
    tn.read_until(b"login: ")
    tn.write(user + b"\n")
    tn.read_until(b"Password: ")
    tn.write(password + b"\n")
    tn.write(b"ls\n")
    tn.write(b"exit\n")
    output: str = tn.read_all().decode("ascii")
    tn.close()
    return output


def test_telnetlib_example_and_token(daemon: Daemon, tmp_path: Path) -> None:
    """
    The course's example prints the listing; its token then logs in again;
    nothing secret reaches the log; users and names survive a restart.
    """
    telnetlib = telnetlib_module()
    port = daemon.port("login")
    register(port, b"student", b"s3cret-pw")
    output = course_example(telnetlib.Telnet, port, b"student", b"s3cret-pw")
    assert "README  lab1.py  notes.txt\r\n" in output
    assert output.endswith("student@netlab:~$ logout\r\n")
    token = re.search(r"Your token: ([0-9a-f]{32}) \(valid 60 min\)", output)
    assert token is not None
    again = course_example(telnetlib.Telnet, port, b"student", token[1].encode())
    assert "Token accepted" in again and "README  lab1.py  notes.txt" in again
    daemon.wait_for_log(r"login: student \(127\.0\.0\.1:\d+\) logged in: with a token")
    assert daemon.stop() == 0
    log = daemon.log()
    assert "s3cret-pw" not in log and token[1] not in log
    assert "before login: not shown" in log
    # A restart on the same database: the address is greeted, the user logs in.
    with running_daemon(tmp_path, login_config(tmp_path)) as second:
        client = SocketTelnet("127.0.0.1", second.port("login"))
        assert client.read_until(b"login: ") == b"Hello, student.\r\nlogin: "
        client.write(b"student\nwrong\n")
        client.read_until(b"Login incorrect\r\nlogin: ")
        client.write(b"student\ns3cret-pw\nwhoami\nexit\n")
        output = client.read_all()
        assert output.endswith(b"student@netlab:~$ student\r\nstudent@netlab:~$ logout\r\n")


def test_socket_read_until_example(daemon: Daemon) -> None:
    """The same read_until logic over a raw socket: no telnet bytes for a LF client."""
    port = daemon.port("login")
    register(port, b"rawuser", b"rawpass1")
    output = course_example(SocketTelnet, port, b"rawuser", b"rawpass1")  # type: ignore[arg-type]
    assert "README  lab1.py  notes.txt\r\n" in output


def test_three_wrong_passwords_over_a_socket(daemon: Daemon) -> None:
    """Three wrong answers: three "Login incorrect", then goodbye and the close."""
    register(daemon.port("login"), b"victim", b"right-pw")
    client = SocketTelnet("127.0.0.1", daemon.port("login"))
    client.read_until(b"login: ")
    client.write(b"victim\nx1\nvictim\nx2\nvictim\nx3\n")
    output = client.read_all()
    assert output.count(b"Login incorrect") == 3
    assert output.endswith(b"Login incorrect\r\nToo many failed logins: goodbye.\r\n")
    daemon.wait_for_log(r"login failed: attempt 3 of 3")


def test_real_telnet_hides_the_password(daemon: Daemon) -> None:
    """Real telnet: echo is off for the password, on again for the shell."""
    port = str(daemon.port("login"))
    register(int(port), b"telnetuser", b"tel-pass-99")
    child = pexpect.spawn(require_tool("telnet"), ["127.0.0.1", port], timeout=TIMEOUT)
    try:
        child.expect("login: ")
        child.sendline("telnetuser")
        child.expect("Password: ")
        child.send("tel-pass-99\r")
        child.expect(r"telnetuser@netlab:~\$ ")
        assert b"tel-pass-99" not in child.before
        child.send("ls\r")
        child.expect(r"README  lab1\.py  notes\.txt")
        child.expect(r"telnetuser@netlab:~\$ ")
        child.send("bogus\r")
        child.expect("-sh: bogus: command not found")
        child.send("exit\r")
        child.expect("logout")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_daemon_refuses_a_bad_login_config(tmp_path: Path) -> None:
    """A bad [login] value stops the daemon before it listens: file, key and value."""
    config = login_config(tmp_path).replace("max_attempts = 3", "max_attempts = 0")
    running = run_daemon_expecting_exit(tmp_path, config)
    assert "[login].max_attempts = 0: must be from 1 to 100" in running.log()


def run_daemon_expecting_exit(tmp_path: Path, config: str) -> Daemon:
    path = tmp_path / "netlab.toml"
    path.write_text(config)
    running = Daemon(tmp_path, "--config", str(path), ready=False)
    try:
        assert running.process.wait(timeout=TIMEOUT) == 1
        running.stop()
    finally:
        running.kill()
    return running

