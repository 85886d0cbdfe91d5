"""
Two real netlab daemons sharing their chat rooms through a real Redis
(Debian's C{redis-server}, started here on a free loopback port and stopped
by its PID): users on each, Redis restarted mid-conversation, a daemon
killed with SIGKILL.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pexpect
import pytest

from daemon import Daemon, run_daemon
from helpers import require_tool
from test_chat_e2e import LineClient

CONFIG = """
udp_echo = []
echo = []

[log]
level = "info"

[http]
enabled = false

[chat]
listen = ["tcp:0:interface=127.0.0.1"]
database = "{database}"
flood_lines = 100

[cluster]
redis = "redis://127.0.0.1:{port}/0"
node = "{node}"
heartbeat = 0.5
bound = 2.0
max_retry_delay = 0.5
"""

DEGRADED = "The chat cluster is degraded"
RESTORED = "The chat cluster is back"


class Redis:
    """A redis-server of the test's own, on C{port}, its output read by a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [require_tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=self.read, daemon=True).start()
        if not self.ready.wait(30):
            self.stop()
            raise AssertionError("redis-server not ready:\n" + "\n".join(self.lines))

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "Ready to accept connections" in line:
                self.ready.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def node(tmp_path: Path, redis_port: int, name: str) -> Daemon:
    folder = tmp_path / name
    folder.mkdir()
    config = CONFIG.format(database=folder / "chat.sqlite3", port=redis_port, node=name)
    daemon = run_daemon(folder, config)
    daemon.wait_for_log(rf"cluster_joined: as {name}")
    return daemon


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Redis, Daemon, Daemon]]:
    with ExitStack() as stack:
        redis = Redis(free_port())
        stack.callback(redis.stop)
        one = node(tmp_path, redis.port, "one")
        stack.callback(one.kill)
        two = node(tmp_path, redis.port, "two")
        stack.callback(two.kill)
        yield redis, one, two


def test_users_on_two_daemons_share_a_room(cluster: tuple[Redis, Daemon, Daemon]) -> None:
    _, one, two = cluster
    alice = LineClient(one.port("chat"), "alice")
    nc = pexpect.spawn(require_tool("nc"), ["127.0.0.1", str(two.port("chat"))], timeout=20)
    try:
        nc.expect("Choose a nick")
        nc.sendline("bob")
        nc.expect(r"You are now in #lobby \(2 here\)")
        alice.expect("* bob has joined #lobby")
        for n in range(5):
            alice.send(f"line {n}")
        for n in range(5):
            nc.expect(rf"<alice> line {n}\r")
        nc.sendline("/topic cross-host")
        alice.expect("* bob set the topic of #lobby: cross-host")
        clash = LineClient(one.port("chat"))
        clash.expect("Choose a nick")
        clash.send("BOB")
        clash.expect("The nick BOB is taken.")
        clash.close()
        nc.sendline("/quit later")
        alice.expect("* bob has quit (quit: later)")
    finally:
        nc.close(force=True)
        alice.close()
    for daemon in (one, two):
        assert daemon.stop() == 0, daemon.log()


def test_redis_restarted_mid_conversation(cluster: tuple[Redis, Daemon, Daemon]) -> None:
    redis, one, two = cluster
    alice = LineClient(one.port("chat"), "alice")
    carol = LineClient(one.port("chat"), "carol")
    bob = LineClient(two.port("chat"), "bob")
    alice.expect("* bob has joined #lobby")
    bob.send("before")
    alice.expect("<bob> before")
    redis.stop()
    alice.expect(DEGRADED)
    bob.expect(DEGRADED)
    one.wait_for_log("cluster_degraded")
    # Local chat goes on.
    alice.send("just us")
    carol.expect("<alice> just us")
    restarted = Redis(redis.port)
    try:
        alice.expect(RESTORED)
        bob.expect(RESTORED)
        alice.send("after")
        bob.expect("<alice> after")
        # The line alice said while Redis was gone never reached bob: he is
        # told (when the bus tells him, before or after "after").
        bob.expect("Some messages from server one were missed", earlier=True)
        bob.send("back")
        alice.expect("<bob> back")
    finally:
        for client in (alice, bob, carol):
            client.close()
        for daemon in (one, two):
            assert daemon.stop() == 0, daemon.log()
        restarted.stop()


def test_killed_daemon_users_quit_within_the_bound(
    cluster: tuple[Redis, Daemon, Daemon],
) -> None:
    _, one, two = cluster
    alice = LineClient(one.port("chat"), "alice")
    bob = LineClient(two.port("chat"), "bob")
    alice.expect("* bob has joined #lobby")
    two.process.send_signal(signal.SIGKILL)
    two.process.wait(timeout=30)
    alice.expect("* bob has quit (two is gone)")
    # And bob's nick is free again once its claim expired in Redis.
    again = LineClient(one.port("chat"))
    again.expect("Choose a nick")
    again.send("bob")
    again.expect("Hello bob!")
    for client in (alice, bob, again):
        client.close()
    assert one.stop() == 0, one.log()
