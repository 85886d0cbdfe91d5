"""
The framed echo end to end: the real daemon (C{twistd -n netlab}) and
clients written the way the course writes them: a blocking socket, one
C{sendall} of C{header + message}, then C{recv(1024)}.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator

import pytest

from daemon import Daemon, running_daemon

LOCAL = 'listen = ["tcp:0:interface=127.0.0.1"]'

CONFIG = f"""
udp_echo = []
echo = []
[chat]
enabled = false
[http]
enabled = false

[[framed_echo]]
name = "int32"
{LOCAL}

[[framed_echo]]
name = "u8"
framing = "binary"
length_bytes = 1
{LOCAL}

[[framed_echo]]
name = "le16"
framing = "binary"
length_bytes = 2
byte_order = "little"
{LOCAL}

[[framed_echo]]
name = "be64"
framing = "binary"
length_bytes = 8
max_frame = 100
{LOCAL}

[[framed_echo]]
name = "le64"
framing = "binary"
length_bytes = 8
byte_order = "little"
{LOCAL}

[[framed_echo]]
name = "digits10"
framing = "digits"
digits = 10
max_frame = 100
{LOCAL}

[[framed_echo]]
name = "netstring"
framing = "netstring"
{LOCAL}
"""

MESSAGE = "Привет, world!".encode()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon with a framed echo of each shape."""
    with running_daemon(tmp_path_factory.mktemp("framed"), CONFIG) as running:
        yield running


def course_client(port: int, request: bytes) -> bytes:
    """The course's client: connect, one send, one recv(1024), close."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request)
        return s.recv(1024)


def read_all(port: int, request: bytes) -> bytes:
    """Send C{request}, read until the server closes (bounded by the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request)
        data = b""
        for _ in range(1000):
            chunk = s.recv(1024)
            if not chunk:
                return data
            data += chunk
        raise AssertionError(f"still open after {data!r}")


CLIENTS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "int32": ("int32", lambda m: struct.pack("!I", len(m)) + m),
    "u8": ("u8", lambda m: struct.pack("B", len(m)) + m),
    "le16": ("le16", lambda m: struct.pack("<H", len(m)) + m),
    "be64": ("be64", lambda m: struct.pack(">Q", len(m)) + m),
    "le64": ("le64", lambda m: struct.pack("<Q", len(m)) + m),
    "zeros10": ("digits10", lambda m: ("%010d" % len(m)).encode() + m),  # noqa: UP031
    "right10": ("digits10", lambda m: ("%10d" % len(m)).encode() + m),  # noqa: UP031
    "left10": ("digits10", lambda m: f"{len(m):<10}".encode() + m),
    "netstring": ("netstring", lambda m: f"{len(m)}:".encode() + m + b","),
}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_course_client(daemon: Daemon, client: str) -> None:
    """Each client gets its frame back in its own framing, padding and byte order included."""
    service, frame = CLIENTS[client]
    assert course_client(daemon.port(service), frame(MESSAGE)) == frame(MESSAGE)


def test_two_frames_in_one_send(daemon: Daemon) -> None:
    """Frames sent together come back together (a recv may hold both)."""
    frame = CLIENTS["le16"][1]
    request = frame(b"one") + frame(b"two")
    with socket.create_connection(("127.0.0.1", daemon.port("le16")), timeout=20) as s:
        s.sendall(request)
        data = b""
        while len(data) < len(request):
            chunk = s.recv(1024)
            assert chunk, data
            data += chunk
    assert data == request


def test_over_long_frame(daemon: Daemon) -> None:
    """A length over max_frame gets one error frame in the client's framing, then EOF."""
    error = b"ERROR frame of 101 bytes is longer than max_frame (100)"
    assert read_all(daemon.port("be64"), struct.pack(">Q", 101)) == (
        struct.pack(">Q", len(error)) + error
    )
    daemon.wait_for_log(r"be64: .*a frame.*longer than max_frame")


def test_bad_digits_then_served_again(daemon: Daemon) -> None:
    """A bad header is one error frame and a close; the next client is served."""
    answer = read_all(daemon.port("digits10"), b"hello, world!")
    # How much of the text the server had read when it refused is up to TCP.
    header, error = answer[:10], answer[10:]
    assert header == ("%010d" % len(error)).encode()  # noqa: UP031
    assert error.startswith(b"ERROR bad length header 'h"), answer
    assert error.endswith(b"': want 10 digits, padded with 0 or spaces"), answer
    frame = CLIENTS["right10"][1]
    assert course_client(daemon.port("digits10"), frame(b"again")) == frame(b"again")
