"""
End-to-end tests of the line chat: the real daemon in a subprocess, several
real clients at once (netcat and telnet driven by pexpect, and plain
sockets), then a restart and a shutdown.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from daemon import Daemon, run_daemon, running_daemon
from helpers import require_tool

CHAT_CONFIG = """
udp_echo = []
echo = []

[log]
level = "info"

[http]
enabled = false

[chat]
listen = ["tcp:0:interface=127.0.0.1"]
database = "{database}"
flood_lines = {flood_lines}
flood_seconds = 5
max_output = 262144
"""


def chat_config(tmp_path: Path, flood_lines: int = 5) -> str:
    return CHAT_CONFIG.format(database=tmp_path / "chat.sqlite3", flood_lines=flood_lines)


class LineClient:
    """A socket chat user that reads line by line, with a timeout, never a sleep."""

    def __init__(self, port: int, nick: str | None = None, source: str | None = None) -> None:
        """C{source}: the loopback address to connect from (127.0.0.2, say)."""
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=20, source_address=(source, 0) if source else None
        )
        self.file = self.sock.makefile("rb")
        self.history: list[str] = []
        if nick is not None:
            self.expect("Choose a nick")
            self.send(nick)
            self.expect(f"Hello {nick}!")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def expect(self, text: str, earlier: bool = False) -> list[str]:
        """
        Read lines until one contains C{text}; all lines read.  With
        C{earlier}, a line read by a previous call counts too.
        """
        if earlier:
            for line in self.history:
                if text in line:
                    return [line]
        seen: list[str] = []
        while True:
            raw = self.file.readline()
            if not raw:
                raise AssertionError(f"closed before {text!r}; saw {seen}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            seen.append(line)
            self.history.append(line)
            if text in line:
                return seen

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Daemon]:
    """The real daemon running the chat, its database in C{tmp_path}."""
    with running_daemon(tmp_path, chat_config(tmp_path)) as running:
        yield running


def test_nc_and_telnet_users_talk(chat: Daemon) -> None:
    """A netcat user and a telnet user in the same room see each other's lines."""
    port = str(chat.port("chat"))
    nc = pexpect.spawn(require_tool("nc"), ["127.0.0.1", port], timeout=20)
    telnet = pexpect.spawn(require_tool("telnet"), ["127.0.0.1", port], timeout=20)
    try:
        nc.expect("Choose a nick")
        nc.sendline("netcat_user")
        nc.expect("You are now in #lobby")
        telnet.expect("Choose a nick")
        telnet.sendline("telnet_user")
        telnet.expect(r"You are now in #lobby \(2 here\)")
        nc.expect(r"\* telnet_user has joined #lobby")
        nc.sendline("hello from netcat")
        telnet.expect(r"\[\d\d:\d\d\] <netcat_user> hello from netcat\r\n")
        telnet.sendline("hi from telnet")
        nc.expect(r"\[\d\d:\d\d\] <telnet_user> hi from telnet")
        telnet.sendline("/who")
        telnet.expect(r"In #lobby \(2\): netcat_user, telnet_user")
        telnet.sendline("/quit bye all")
        telnet.expect(pexpect.EOF)
        nc.expect(r"\* telnet_user has quit \(quit: bye all\)")
    finally:
        nc.close(force=True)
        telnet.close(force=True)


def test_flooder_muted_others_continue(chat: Daemon) -> None:
    """A flooder is warned, then muted, while the others keep chatting."""
    port = chat.port("chat")
    flooder, alice, bob = (LineClient(port, n) for n in ("flooder", "alice", "bob"))
    try:
        for i in range(8):
            flooder.send(f"spam {i}")
        flooder.expect("Slow down")
        flooder.expect("You are muted for 60 seconds for flooding.")
        alice.send("we carry on")
        seen = bob.expect("<alice> we carry on")
        assert not any("spam 5" in line or "spam 7" in line for line in seen)
        chat.wait_for_log(r"chat: flooder \(127\.0\.0\.1:\d+\) flood_mute")
    finally:
        for client in (flooder, alice, bob):
            client.close()


def test_non_reading_client_dropped(tmp_path: Path) -> None:
    """A client that stops reading is dropped once its backlog passes max_output; others go on."""
    quit_line = "* stuck has quit (too slow: output backlog over max_output)"
    with running_daemon(tmp_path, chat_config(tmp_path, flood_lines=10_000)) as running:
        port = running.port("chat")
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", port))
        stuck.sendall(b"stuck\r\n")
        talker, listener = LineClient(port, "talker"), LineClient(port, "listener")
        line = "x" * 900
        dropped = False
        # Bounded: at most 20,000 lines (18 MB), far more than any kernel buffers.
        # The drop is seen in what the room was told, read from the socket
        # (not by polling the daemon's log against a clock).
        for i in range(20_000):
            talker.send(f"{i} {line}")
            if i % 50 == 49:
                listener.expect(f"<talker> {i} ")
                if any(quit_line in seen for seen in listener.history):
                    dropped = True
                    break
        assert dropped, "the non-reading client was never dropped"
        running.wait_for_log(r"chat: dropped a slow reader from")
        talker.send("after the drop")
        # The quit may already have been read while waiting for a talker line.
        listener.expect(quit_line, earlier=True)
        listener.expect("<talker> after the drop")
        stuck.close()
        talker.close()
        listener.close()


def test_history_survives_restart(tmp_path: Path) -> None:
    """Room history is in SQLite: after a restart, a new user is shown it."""
    with running_daemon(tmp_path, chat_config(tmp_path)) as running:
        alice = LineClient(running.port("chat"), "alice")
        alice.send("remember me")
        alice.send("/me waves")
        alice.send("/quit")
        alice.expect("Bye.")
        alice.close()
        running.wait_for_log(r"alice \(127\.0\.0\.1:\d+\) quit")
    with running_daemon(tmp_path, chat_config(tmp_path)) as again:
        bob = LineClient(again.port("chat"))
        bob.expect("Choose a nick")
        bob.send("bob")
        seen = bob.expect("* alice waves")
        assert any(line.endswith("<alice> remember me") for line in seen)
        bob.close()


def test_shutdown_notice(tmp_path: Path) -> None:
    """On SIGTERM every user, chatting or still choosing a nick, is told before the close."""
    running = run_daemon(tmp_path, chat_config(tmp_path))
    try:
        alice = LineClient(running.port("chat"), "alice")
        newcomer = LineClient(running.port("chat"))
        newcomer.expect("Choose a nick")
        status = running.stop()
        alice.expect("* server shutting down")
        newcomer.expect("* server shutting down")
        assert alice.file.read() == b""
        assert status == 0
        assert "netlab stopped" in running.log()
    finally:
        running.kill()


def test_plain_udp_clients_chat_with_a_telnet_user(tmp_path: Path) -> None:
    """
    The course's UDP chat client (blocking sendto/recvfrom, no handshake)
    talks with another UDP client and a TCP user through the real daemon.
    """
    config = chat_config(tmp_path) + (
        '[udp_chat]\nenabled = true\nlisten = ["udp:0:interface=127.0.0.1"]\n'
    )
    with running_daemon(tmp_path, config) as running:
        server = ("127.0.0.1", running.port("udp-chat", "udp"))
        tcp_user = LineClient(running.port("chat"), "tina")
        students = []
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(20)
            students.append(s)
        first, second = students
        first.sendto(b"hello from udp", server)
        second.sendto(b"JOIN bob", server)

        def until(sock: socket.socket, text: str) -> None:
            while text not in sock.recvfrom(1024)[0].decode():
                pass

        nick = f"udp{first.getsockname()[1]}"
        until(second, f"<{nick}> hello from udp")
        tcp_user.expect(f"<{nick}> hello from udp")
        second.sendto(b"hi, I am bob", server)
        until(first, "<bob> hi, I am bob")
        tcp_user.send("welcome both")
        until(first, "<tina> welcome both")
        until(second, "<tina> welcome both")
        for s in students:
            s.close()
        tcp_user.close()


def test_storage_faults_never_take_the_daemon_down(tmp_path: Path) -> None:
    """
    The database's shared-memory file truncated under it (SQLite's -shm is
    mapped: a write fault there was a SIGBUS, exit 135) and then its files
    deleted: the daemon logs one clear error, counts what it could not
    save, and the chat goes on; then it stops cleanly.
    """
    database = tmp_path / "chat.sqlite3"
    with running_daemon(tmp_path, chat_config(tmp_path)) as running:
        alice = LineClient(running.port("chat"), "alice")
        bob = LineClient(running.port("chat"), "bob")
        alice.send("before the faults")
        bob.expect("before the faults")
        shared = tmp_path / "chat.sqlite3-shm"
        if shared.exists():
            os.truncate(shared, 0)
        alice.send("after the truncation")
        bob.expect("after the truncation")
        for path in tmp_path.glob("chat.sqlite3*"):
            path.unlink()
        for n in range(3):
            alice.send(f"into the void {n}")
            bob.expect(f"into the void {n}")
        running.wait_for_log(r"chat: -: chat store .*deleted or replaced")
        carol = LineClient(running.port("chat"), "carol")
        carol.expect("into the void 2", earlier=True)
        for client in (alice, bob, carol):
            client.close()
    errors = [line for line in running.lines if "chat store" in line]
    assert len(errors) == 1, errors
    assert not database.exists()
