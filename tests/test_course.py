"""
The course's exercises, each against the real daemon started with the
example config, by a client written the way the course writes its own:
blocking sockets, one send then one recv(1024), often no newline, plus
curl and xmlrpc.client.  docs/course.md lists the same exercises with the
service and port of the example config that answers each.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import course
from course import Course
from helpers import require_tool


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Course]:
    yield from course.start(tmp_path_factory.mktemp("course"))


def client(lab: Course, service: str) -> socket.socket:
    """A connected blocking socket, as the course's clients make one."""
    return socket.create_connection(lab.address(service), timeout=20)


def curl(*args: str) -> bytes:
    """Run the real curl with C{args}; what it printed."""
    result = subprocess.run(
        [require_tool("curl"), *args], capture_output=True, timeout=30, check=True
    )
    return result.stdout


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(1024):
        data += chunk
    return data


def test_first_tcp_client(lab: Course) -> None:
    """connect, send(b'hello, world!') with no newline, recv(1024): the same bytes back."""
    sock = client(lab, "echo")
    sock.send(b"hello, world!")
    assert sock.recv(1024) == b"hello, world!"
    sock.close()


def test_chunked_echo(lab: Course) -> None:
    """A long string sent in 1 KB portions comes back whole and in order."""
    message = ("".join(chr(ord("a") + i % 26) for i in range(10_000))).encode()
    sock = client(lab, "echo")
    for start in range(0, len(message), 1024):
        sock.sendall(message[start:start + 1024])
    received = b""
    while len(received) < len(message):
        received += sock.recv(1024)
    assert received == message
    sock.close()


def test_echo_with_service_messages(lab: Course) -> None:
    """
    Connect, send, disconnect: the log narrates each step with the peer's
    address, and (log_payload on this echo) the data, UTF-8 as text.
    """
    sock = client(lab, "echo")
    host, port = sock.getsockname()
    me = f"{host}:{port}"
    message = "log me, привет".encode()
    sock.send(message)
    assert sock.recv(1024) == message
    sock.close()
    lab.daemon.wait_for_log(rf"echo: {me} connected")
    lab.daemon.wait_for_log(rf"echo: received {len(message)} bytes from {me}: log me, привет$")
    lab.daemon.wait_for_log(rf"echo: sent {len(message)} bytes to {me}: log me, привет$")
    lab.daemon.wait_for_log(
        rf"echo: {me} disconnected \(closed by client\) .* {len(message)} bytes in, "
        rf"{len(message)} bytes out"
    )


def test_udp_client(lab: Course) -> None:
    """sendto, recvfrom: the datagram comes back from the server's address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(20)
    sock.sendto(b"hello, udp", lab.address("udp-echo", "udp"))
    data, server = sock.recvfrom(1024)
    assert (data, server) == (b"hello, udp", lab.address("udp-echo", "udp"))
    sock.close()


def test_session_until_exit_then_reconnect(lab: Course) -> None:
    """Lines until the quit word: the server says goodbye and closes; the next client is served."""
    for _ in range(2):
        sock = client(lab, "echo-ok")
        file = sock.makefile("rb")
        assert b"Type exit to leave" in file.readline()
        for text in (b"first", b"second"):
            sock.sendall(text + b"\n")
            assert file.readline() == b"OK..." + text + b"\n"
        sock.sendall(b"exit\n")
        assert file.read() == b"Bye.\r\n"
        file.close()
        sock.close()


def test_many_clients_at_once(lab: Course) -> None:
    """Several clients connected at once are each answered, in any order of turns."""
    socks = [client(lab, "echo") for _ in range(10)]
    for n, sock in reversed(list(enumerate(socks))):
        sock.send(b"client %d" % n)
    for n, sock in enumerate(socks):
        assert sock.recv(1024) == b"client %d" % n
        sock.close()


def test_multi_user_chat(lab: Course) -> None:
    """Two telnet-style users: arrivals are announced and each line reaches the other."""
    alice, bob = client(lab, "chat"), client(lab, "chat")
    alice_in, bob_in = alice.makefile("rb"), bob.makefile("rb")

    def until(file: object, text: bytes) -> None:
        while text not in file.readline():  # type: ignore[attr-defined]
            pass

    alice.sendall(b"alice\r\n")
    until(alice_in, b"Hello alice!")
    bob.sendall(b"bob\r\n")
    until(alice_in, b"* bob has joined")
    alice.sendall(b"hi bob\r\n")
    until(bob_in, b"<alice> hi bob")
    for file, sock in ((alice_in, alice), (bob_in, bob)):
        file.close()
        sock.close()


def test_http_by_hand(lab: Course) -> None:
    """GET written by hand over a socket gets a valid HTTP response at once."""
    sock = client(lab, "http")
    sock.sendall(b"GET /time.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"<h1>" in reply
    sock.close()


def test_error_pages_and_headers(lab: Course) -> None:
    """curl -i on an unknown path: a real 404 with a page; static files carry Last-Modified."""
    head, _, body = curl("-si", lab.url("/no/such/page")).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 Not Found")
    assert b"Content-Type: text/html" in head
    assert body


def test_xmlrpc_at_rpc2(lab: Course) -> None:
    """The course's XML-RPC client, pointed at /RPC2."""
    proxy = xmlrpc.client.ServerProxy(lab.url("/RPC2"))
    assert proxy.is_even(3) is False
    assert proxy.is_even(4) is True
    assert "is_even" in proxy.system.listMethods()


def test_classic_daytime(lab: Course) -> None:
    """connect and read: the daytime service answers one line and closes."""
    sock = client(lab, "daytime")
    line = read_until_closed(sock)
    assert line.endswith(b"\r\n") and b"," in line
    sock.close()




@pytest.mark.parametrize(
    ("service", "header"),
    [
        ("framed-int32", lambda n: struct.pack("!I", n)),
        ("framed-le16", lambda n: struct.pack("<H", n)),
        ("framed-digits", lambda n: ("%010d" % n).encode()),  # noqa: UP031 (the course's way)
        ("framed-digits", lambda n: f"{n:<10}".encode()),
    ],
    ids=["int32", "le16", "zero-padded-digits", "space-padded-digits"],
)
def test_length_prefixed_messages(lab: Course, service: str, header: Any) -> None:
    """A fixed-size length header then the text: the answer comes in the same framing."""
    message = b"length-prefixed hello"
    sock = client(lab, service)
    sock.send(header(len(message)) + message)
    assert sock.recv(1024) == header(len(message)) + message
    sock.close()


def test_dictionary_decryption(lab: Course) -> None:
    """A list of encrypted words, no newline: each word decrypted in order, unknown marked."""
    sock = client(lab, "dictionary")
    sock.send(b"qwe,asd,nope,zxc")
    assert sock.recv(1024) == b"hello,world,?nope?,bye"
    sock.close()


def test_http_by_hand_with_bare_newlines(lab: Course) -> None:
    """GET / HTTP/1.0 with bare newlines, as typed into nc: answered at once."""
    sock = client(lab, "http")
    sock.sendall(b"GET / HTTP/1.0\n\n")
    reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"CLIENT VALUES:" in reply
    sock.close()


def test_http_get_inspector(lab: Course) -> None:
    """curl -i 'http://host:port/?foo=bar': the CLIENT / SERVER / HEADERS report."""
    head, _, body = curl("-si", lab.url("/?foo=bar")).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    text = body.decode()
    for expected in ("CLIENT VALUES:", "command=GET", "path=/?foo=bar", "query=foo=bar",
                     "SERVER VALUES:", "HEADERS RECEIVED:", "User-Agent=curl/"):
        assert expected in text, text


def test_http_post_form(lab: Course, tmp_path: Path) -> None:
    """curl -F name=x -F foo=bar -F datafile=@file to /: the course's form report."""
    upload = tmp_path / "notes.txt"
    upload.write_bytes(b"twelve bytes")
    text = curl(
        "-s", lab.url("/"), "-F", "name=x", "-F", "foo=bar", "-F", f"datafile=@{upload}"
    ).decode()
    assert "Path: /" in text and "Form data:" in text, text
    assert "\tname=x" in text and "\tfoo=bar" in text, text
    assert '\tUploaded datafile as "notes.txt" (12 bytes)' in text, text


def test_time_page(lab: Course) -> None:
    """GET /time.html: an <h1>HH:MM:SS DD.MM.YYYY</h1>; anything else 404."""
    import re
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(lab.url("/time.html"), timeout=20) as page:
        html = page.read().decode()
    assert re.search(r"<h1>\d\d:\d\d:\d\d \d\d\.\d\d\.\d{4}</h1>", html), html
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(lab.url("/time.htm"), timeout=20)
    assert missing.value.code == 404


def test_xmlrpc_at_the_root(lab: Course) -> None:
    """xmlrpc.client.ServerProxy('http://host:port/'): is_even for ints and floats."""
    proxy = xmlrpc.client.ServerProxy(lab.url("/"))
    assert [proxy.is_even(n) for n in (3, 4, 3.0, 4.0, 2.5)] == [False, True, False, True, False]
    assert "is_even" in proxy.system.listMethods()


# -- the course's echo servers ---------------------------------------------------


def one_shot(lab: Course, service: str, data: bytes | None) -> bytes:
    """Connect, maybe send once, read until the server closes."""
    sock = client(lab, service)
    if data is not None:
        sock.send(data)
    reply = read_until_closed(sock)
    sock.close()
    return reply


def test_upper_case_echo(lab: Course) -> None:
    """send('hello, world!') with no newline: HELLO, WORLD! at once."""
    sock = client(lab, "echo-upper")
    sock.send("hello, world! straße".encode())
    assert sock.recv(1024) == b"HELLO, WORLD! STRASSE"
    sock.close()


def test_ok_server(lab: Course) -> None:
    """The welcome line, then OK...<data> for each chunk, newline or not."""
    sock = client(lab, "echo-ok")
    assert b"Welcome" in sock.recv(1024)
    sock.send(b"hello")
    assert sock.recv(1024) == b"OK...hello"
    sock.send(b"again\r\n")
    assert sock.recv(1024) == b"OK...again\r\n"
    sock.close()


def test_one_shot_servers(lab: Course) -> None:
    """The course's four one-shot servers."""
    assert one_shot(lab, "course-your-data", b"hello") == b"Hello!\r\nYour data: hello"
    assert one_shot(lab, "course-ok-once", b"hello") == b"OK...hello"
    assert one_shot(lab, "course-echo-once", b"hello") == b"hello"
    assert one_shot(lab, "course-thanks", None) == b"Thank you for the connection\r\n"


def test_udp_fixed_reply(lab: Course) -> None:
    """sendto, recvfrom: a fixed text instead of the data."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(20)
    sock.sendto(b"some data", lab.address("course-udp-thanks", "udp"))
    assert sock.recvfrom(1024)[0] == b"Thank you for the data"
    sock.close()


def test_sink_server(lab: Course) -> None:
    """Lines, then an empty line (or exit): everything logged, then the close."""
    for last in (b"\n", b"exit\n"):
        sock = client(lab, "discard")
        port = sock.getsockname()[1]
        sock.sendall(b"first line\nsecond line\n" + last)
        assert read_until_closed(sock) == b""
        sock.close()
        lab.daemon.wait_for_log(
            rf"discard: received \d+ bytes from 127\.0\.0\.1:{port}: first line\\nsecond line"
        )
        lab.daemon.wait_for_log(rf"discard: 127\.0\.0\.1:{port} disconnected")


def test_timeouts(lab: Course) -> None:
    """Connect and send nothing: after the timeout, a message and the close."""
    sock = client(lab, "course-timeout")
    assert read_until_closed(sock) == b"Idle for 5 seconds, closing. Bye.\r\n"
    sock.close()


# -- identification and login -------------------------------------------------------


def test_identification_and_telnetlib_login(lab: Course) -> None:
    """
    A new user registers; the course's telnetlib example prints the listing;
    the token it is given logs in again; the address is then known by name.
    """
    import re

    from test_login_e2e import SocketTelnet, course_example, register, telnetlib_module

    port = lab.port("login")
    register(port, b"student", b"s3cret-pw")
    output = course_example(telnetlib_module().Telnet, port, b"student", b"s3cret-pw")
    assert "README  lab1.py  notes.txt" in output
    token = re.search(r"Your token: ([0-9a-f]{32})", output)
    assert token is not None
    again = course_example(SocketTelnet, port, b"student", token[1].encode())
    assert "Token accepted" in again and "README  lab1.py  notes.txt" in again
    known = SocketTelnet("127.0.0.1", port)
    assert known.read_until(b"login: ") == b"Hello, student.\r\nlogin: "
    known.close()


def test_serving_a_folder(lab: Course) -> None:
    """Like python -m http.server: the folder is listed, its files served with Last-Modified."""
    import urllib.request

    with urllib.request.urlopen(lab.url("/static/"), timeout=20) as listing:
        assert b"hello.txt" in listing.read()
    with urllib.request.urlopen(lab.url("/static/hello.txt"), timeout=20) as page:
        assert page.read() == (course.EXAMPLE.parent / "static" / "hello.txt").read_bytes()
        assert page.headers["Last-Modified"]


def test_error_handling(lab: Course) -> None:
    """
    A port nothing listens on refuses the connection; a client past a
    service's per-peer cap gets one ERROR line and the close, and the
    clients already in are still served.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(closed, timeout=20)
    # From 127.0.0.2, an address no other test connects from, so the count
    # of this peer's connections is exactly the ones held here.
    def from_another_host() -> socket.socket:
        return socket.create_connection(
            lab.address("echo"), timeout=20, source_address=("127.0.0.2", 0)
        )

    held = [from_another_host() for _ in range(50)]  # max_connections_per_peer = 50
    try:
        extra = from_another_host()
        assert read_until_closed(extra).startswith(b"ERROR too many connections")
        extra.close()
        held[0].send(b"still here")
        assert held[0].recv(1024) == b"still here"
    finally:
        for sock in held:
            sock.close()
