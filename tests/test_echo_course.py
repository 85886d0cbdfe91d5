"""
The course's own clients, unchanged but for host and port, against the
real daemon running the course servers of examples/netlab.toml (moved to
free loopback ports): blocking sockets, one send, one recv(1024), often no
newline.  Each client is written the way the course writes it; the only
addition is a timeout, so a server that does not answer fails the test
instead of hanging it.
"""

from __future__ import annotations

import json
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon import Daemon, running_daemon

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "netlab.toml"
HOST = "127.0.0.1"
TIMEOUT = 10.0

# The example's services these exercises use.
ECHOES = (
    "echo-upper", "echo-ok", "course-your-data", "course-ok-once",
    "course-echo-once", "course-thanks",
)
UDP_ECHOES = ("course-udp-thanks",)


def _table(header: str, values: dict[str, Any]) -> str:
    # JSON's strings, numbers, booleans and lists of strings are TOML too.
    return "\n".join([header, *(f"{k} = {json.dumps(v)}" for k, v in values.items())])


def course_config() -> str:
    """The example's course servers, each on a free port of 127.0.0.1."""
    with EXAMPLE.open("rb") as f:
        example = tomllib.load(f)
    tables = ['[log]\nlevel = "debug"', "[chat]\nenabled = false", "[http]\nenabled = false"]
    for section, names, listen in (
        ("echo", ECHOES, "tcp:0:interface=127.0.0.1"),
        ("udp_echo", UDP_ECHOES, "udp:0:interface=127.0.0.1"),
    ):
        blocks = {block["name"]: block for block in example[section]}
        for name in names:
            tables.append(_table(f"[[{section}]]", {**blocks[name], "listen": [listen]}))
    discard = {**example["discard"], "listen": ["tcp:0:interface=127.0.0.1"]}
    tables.append(_table("[discard]", discard))
    return "\n\n".join(tables) + "\n"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon serving every course server of the example."""
    with running_daemon(tmp_path_factory.mktemp("course"), course_config()) as running:
        yield running


def connect(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect((HOST, port))
    return s


def test_first_tcp_client_upper(daemon: Daemon) -> None:
    """Upper-case echo: 'hello, world!' with no newline comes back upper-cased at once."""
    s = connect(daemon.port("echo-upper"))
    s.send(b"hello, world!")
    data = s.recv(1024)
    s.close()
    assert data == b"HELLO, WORLD!"


def test_ok_server_per_chunk_until_exit(daemon: Daemon) -> None:
    """The "OK..." server: welcome, OK... per send with no newline, goodbye on exit."""
    s = connect(daemon.port("echo-ok"))
    assert s.recv(1024) == b"Welcome to the netlab OK echo. Type exit to leave.\r\n"
    for message in (b"hello", b"second message"):
        s.send(message)
        assert s.recv(1024) == b"OK..." + message
    s.send(b"exit")
    assert s.recv(1024) == b"Bye.\r\n"
    assert s.recv(1024) == b""
    s.close()
    daemon.wait_for_log(r"echo-ok: 127\.0\.0\.1:\d+ disconnected \(quit\)")


def test_hello_your_data_then_close(daemon: Daemon) -> None:
    """One-shot: 'Hello!', then 'Your data: <data>', then the server closes."""
    s = connect(daemon.port("course-your-data"))
    assert s.recv(1024) == b"Hello!\r\n"
    s.send(b"hello")
    assert s.recv(1024) == b"Your data: hello"
    assert s.recv(1024) == b""
    s.close()
    daemon.wait_for_log(
        r"course-your-data: 127\.0\.0\.1:\d+ disconnected \(close_after = 1 reached\)"
    )


def test_one_ok_then_close(daemon: Daemon) -> None:
    """One-shot: one 'OK...<data>', then the server closes."""
    s = connect(daemon.port("course-ok-once"))
    s.send(b"hello")
    assert s.recv(1024) == b"OK...hello"
    assert s.recv(1024) == b""
    s.close()


def test_echo_once_then_close(daemon: Daemon) -> None:
    """One-shot: the data echoed once, then the server closes."""
    s = connect(daemon.port("course-echo-once"))
    s.send(b"hello, world!")
    assert s.recv(1024) == b"hello, world!"
    assert s.recv(1024) == b""
    s.close()


def test_thank_you_for_the_connection(daemon: Daemon) -> None:
    """Accept and close: the greeting, then the close, without a word from the client."""
    for _ in range(2):  # and the server is still there for the next one
        s = connect(daemon.port("course-thanks"))
        assert s.recv(1024) == b"Thank you for the connection\r\n"
        assert s.recv(1024) == b""
        s.close()
    daemon.wait_for_log(
        r"course-thanks: 127\.0\.0\.1:\d+ disconnected \(close_after = 0 reached\)"
    )


def test_udp_thank_you_for_the_data(daemon: Daemon) -> None:
    """UDP client: sendto, then recvfrom the fixed answer."""
    port = daemon.port("course-udp-thanks", "udp")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    s.sendto(b"hello", (HOST, port))
    data, addr = s.recvfrom(1024)
    s.close()
    assert data == b"Thank you for the data"
    assert addr == (HOST, port)


@pytest.mark.parametrize(("last", "why"), [(b"\n", "empty line"), (b"exit", "quit")])
def test_sink_closes_on_empty_line_or_exit(daemon: Daemon, last: bytes, why: str) -> None:
    """Sink server: lines are logged and never answered; the empty line or exit closes."""
    s = connect(daemon.port("discard"))
    peer = f"127.0.0.1:{s.getsockname()[1]}"
    for line in (b"first line\n", b"second line\n", last):
        s.send(line)
    assert s.recv(1024) == b""
    s.close()
    daemon.wait_for_log(rf"discard: received \d+ bytes from {peer}: first line")
    daemon.wait_for_log(rf"discard: {peer} disconnected \({why}\)")
