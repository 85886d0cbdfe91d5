"""
Two real netlab daemons sharing their chat rooms through a real Redis
(Debian's C{redis-server}, started here on a free loopback port and stopped
by its PID): users of every kind on each (telnet, netcat, headless
Chromium, UDP, IRC with C{sic}), an operator's ban on one applied on both,
Redis restarted mid-conversation, a daemon killed with SIGKILL.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pexpect
import pytest

from browser import chromium
from daemon import Daemon, run_daemon
from helpers import require_tool
from test_browser_chat import type_line, wait_for_text
from test_chat_e2e import LineClient
from test_chat_hub import OPER_HASH, OPER_PASSWORD

CONFIG = """
udp_echo = []
echo = []

[log]
level = "info"

[http]
listen = ["tcp:0:interface=127.0.0.1"]

[chat]
listen = ["tcp:0:interface=127.0.0.1"]
database = "{database}"
flood_lines = 100
oper_password_hash = "{oper_hash}"

[udp_chat]
enabled = true
listen = ["udp:0:interface=127.0.0.1"]

[irc]
enabled = true
listen = ["tcp:0:interface=127.0.0.1"]

[cluster]
redis = "redis://:{password}@127.0.0.1:{port}/0"
node = "{node}"
heartbeat = 0.5
bound = 2.0
max_retry_delay = 0.5
"""

DEGRADED = "The chat cluster is degraded"
REDIS_PASSWORD = "lab-redis-s3cret"
RESTORED = "The chat cluster is back"


class Redis:
    """A redis-server of the test's own, on C{port}, its output read by a thread."""

    def __init__(self, port: int, *options: str) -> None:
        self.port = port
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [require_tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", *options],
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
    config = CONFIG.format(
        database=folder / "chat.sqlite3", port=redis_port, node=name, oper_hash=OPER_HASH,
        password=REDIS_PASSWORD,
    )
    daemon = run_daemon(folder, config)
    daemon.wait_for_log(rf"cluster_joined: as {name}")
    return daemon


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Redis, Daemon, Daemon]]:
    with ExitStack() as stack:
        # With a password, as a lab's Redis should have: it is never logged.
        redis = Redis(free_port(), "--requirepass", REDIS_PASSWORD)
        stack.callback(redis.stop)
        one = node(tmp_path, redis.port, "one")
        stack.callback(one.kill)
        two = node(tmp_path, redis.port, "two")
        stack.callback(two.kill)
        yield redis, one, two
        for daemon in (one, two):
            assert REDIS_PASSWORD not in daemon.log()


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


def page(daemon: Daemon, path: str) -> str:
    """A page of C{daemon}'s web site, as text."""
    url = f"http://127.0.0.1:{daemon.port('http')}{path}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


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
    # The dashboard and /metrics say so.
    assert "Cluster degraded: this node (one) is out of touch with Redis" in page(one, "/dashboard")
    assert 'netlab_chat_cluster_up{node="one",service="chat"} 0.0' in page(one, "/metrics")
    restarted = Redis(redis.port, "--requirepass", REDIS_PASSWORD)
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
        # one has heard two since the restart: in touch again.
        assert "Cluster: this node is one, in touch through Redis with 1 other: two." in page(
            one, "/dashboard")
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


# -- users of every kind ----------------------------------------------------------

# A room line as every front-end shows it: "[12:00] <nick> text" (telnet,
# netcat, UDP, the browser), "#lobby : 11/28/26 12:00 <nick> text" (sic).
SAID = re.compile(r"<([\w.-]+)> (.*)$")
LINES = 3
# The banned user's own loopback address: the others stay on 127.0.0.1.
BANNED = "127.0.0.2"


def in_order(lines: Iterable[str], expected: dict[str, list[str]]) -> None:
    """
    Read C{lines} until every sender's C{expected} lines came, each
    sender's in the order sent (the senders' lines may interleave).
    """
    left = {nick: list(texts) for nick, texts in expected.items()}
    for line in lines:
        said = SAID.search(line)
        if said is None or said[1] not in left:
            continue
        nick, text = said[1], said[2]
        assert left[nick][:1] == [text], f"from {nick}: {text!r}; next expected {left[nick][:1]}"
        left[nick].pop(0)
        if not any(left.values()):
            return
    raise AssertionError(f"these never came: {left}")


def printed(child: pexpect.spawn) -> Iterator[str]:
    """What C{child} prints, line by line; pexpect's timeout bounds each wait."""
    while line := child.readline():
        yield line.rstrip("\r\n")
    raise AssertionError(f"{child.args} ended")


def spawn(tool: str, *args: object) -> pexpect.spawn:
    return pexpect.spawn(require_tool(tool), [str(a) for a in args], timeout=20,
                         encoding="utf-8")


def line_user(tool: str, port: int, nick: str) -> pexpect.spawn:
    """A telnet or netcat user of the chat on C{port}, in #lobby as C{nick}."""
    child = spawn(tool, "127.0.0.1", port)
    child.expect("Choose a nick")
    child.sendline(nick)
    child.expect(r"You are now in #lobby \((\d+) here\)")
    return child


class UdpUser:
    """A UDP chat user: a real datagram socket, one line a datagram each way."""

    def __init__(self, daemon: Daemon, nick: str, host: str = "127.0.0.1") -> None:
        self.server = ("127.0.0.1", daemon.port("udp-chat", "udp"))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(20)
        self.sock.bind((host, 0))
        self.send(f"JOIN {nick}")

    def send(self, line: str) -> None:
        self.sock.sendto(line.encode(), self.server)

    def lines(self) -> Iterator[str]:
        """The lines that come; a socket timeout (20 s) bounds each wait."""
        while True:
            yield self.sock.recvfrom(65536)[0].decode()

    def expect(self, text: str) -> str:
        return next(line for line in self.lines() if text in line)

    def close(self) -> None:
        self.sock.close()


def log_lines(driver: Any) -> list[str]:
    """The browser chat page's lines, as the page put them (textContent)."""
    lines: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#log .line'), e => e.textContent)"
    )
    return lines


def first_websocket_message(port: int, source: str) -> str:
    """What the browser chat's WebSocket says first to a client from C{source}."""
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0))
    with connect(f"ws://127.0.0.1:{port}/ws/chat", sock=sock, open_timeout=20,
                 close_timeout=20) as websocket:
        message = websocket.recv(timeout=20)
    assert isinstance(message, str)
    return message


def browser_heard(driver: Any, expected: dict[str, list[str]]) -> None:
    """Wait for every expected line on the page, then check each sender's order."""
    for nick, texts in expected.items():
        wait_for_text(driver, f"<{nick}> {texts[-1]}")
    in_order(log_lines(driver), expected)


@pytest.mark.timeout(240)
def test_every_kind_of_user_across_two_daemons(
    cluster: tuple[Redis, Daemon, Daemon], tmp_path: Path,
) -> None:
    """
    telnet and a browser on one daemon, netcat, UDP and IRC (sic) on the
    other, in one room: joins, lines in order per sender, NAMES and WHO
    across the daemons, a topic, quits.
    """
    _, one, two = cluster
    with ExitStack() as stack, chromium(tmp_path / "chromium-profile") as browser:
        tina = line_user("telnet", one.port("chat"), "tina")
        stack.callback(tina.close, force=True)
        assert tina.match[1] == "1"
        ned = line_user("nc", two.port("chat"), "ned")
        stack.callback(ned.close, force=True)
        tina.expect_exact("* ned has joined #lobby")

        browser.get(f"http://127.0.0.1:{one.port('http')}/chat")
        wait_for_text(browser, "Choose a nick")
        type_line(browser, "bea")
        # One has heard of ned (tina saw him join).
        wait_for_text(browser, "You are now in #lobby (3 here)")
        for child in (tina, ned):
            child.expect_exact("* bea has joined #lobby")

        uma = UdpUser(two, "uma")
        stack.callback(uma.close)
        uma.expect("Hello uma!")
        # Two has heard of bea (ned saw her join), so of tina before her.
        uma.expect("You are now in #lobby (4 here)")
        for child in (tina, ned):
            child.expect_exact("* uma has joined #lobby")
        wait_for_text(browser, "* uma has joined #lobby")

        ivan = spawn("sic", "-h", "127.0.0.1", "-p", two.port("irc"), "-n", "ivan")
        stack.callback(ivan.close, force=True)
        # Joining, IRC lists the room: the users of both daemons.
        ivan.expect(r"353 \(ivan = #lobby\): ([^\r\n]*)")
        assert sorted(ivan.match[1].split()) == ["bea", "ivan", "ned", "tina", "uma"]
        ivan.expect_exact("366 (ivan #lobby): End of /NAMES list")
        for child in (tina, ned):
            child.expect_exact("* ivan has joined #lobby")
        wait_for_text(browser, "* ivan has joined #lobby")
        uma.expect("* ivan has joined #lobby")

        # One's nicks are taken on two, whatever the case, however one comes.
        udp_twin = UdpUser(two, "TINA")
        stack.callback(udp_twin.close)
        udp_twin.expect("The nick TINA is taken.")
        irc_twin = spawn("sic", "-h", "127.0.0.1", "-p", two.port("irc"), "-n", "BEA")
        stack.callback(irc_twin.close, force=True)
        irc_twin.expect(r">< 433 \(\* BEA\): ")

        # Everyone says LINES numbered lines; each hears every other's, in order.
        ivan.sendline(":s #lobby")
        numbered = [f"number {n}" for n in range(LINES)]
        for n in range(LINES):
            tina.sendline(numbered[n])
            ned.sendline(numbered[n])
            type_line(browser, numbered[n])
            uma.send(numbered[n])
            ivan.sendline(numbered[n])
        users = ("tina", "ned", "bea", "uma", "ivan")

        def others(nick: str) -> dict[str, list[str]]:
            return {other: numbered for other in users if other != nick}

        in_order(printed(tina), others("tina"))
        in_order(printed(ned), others("ned"))
        browser_heard(browser, others("bea"))
        in_order(uma.lines(), others("uma"))
        in_order(printed(ivan), others("ivan"))

        # IRC asked: one's users are there, on their own server.
        ivan.sendline(":NAMES #lobby")
        ivan.expect(r"353 \(ivan = #lobby\): ([^\r\n]*)")
        assert sorted(ivan.match[1].split()) == ["bea", "ivan", "ned", "tina", "uma"]
        ivan.sendline(":WHO tina")
        ivan.expect_exact("352 (ivan #lobby ~tina one one tina H): 1 netlab chat user")
        ivan.expect_exact("315 (ivan tina): End of /WHO list")

        ned.sendline("/topic all together")
        tina.expect_exact("* ned set the topic of #lobby: all together")
        wait_for_text(browser, "* ned set the topic of #lobby: all together")
        uma.expect("* ned set the topic of #lobby: all together")
        ivan.expect(r"ned +: [^\r\n]* >< TOPIC \(#lobby\): all together")

        tina.sendline("/quit see you")
        tina.expect(pexpect.EOF)
        ned.expect_exact("* tina has quit (quit: see you)")
        wait_for_text(browser, "* tina has quit (quit: see you)")
        uma.expect("* tina has quit (quit: see you)")
        ivan.expect(r"tina +: [^\r\n]* >< QUIT \(\): quit: see you")

        browser.get("about:blank")  # the page goes: its WebSocket closes
        ned.expect_exact("* bea has quit (connection lost)")
        uma.expect("* bea has quit (connection lost)")
        ivan.expect(r"bea +: [^\r\n]* >< QUIT \(\): connection lost")

        uma.send("/quit later")
        ned.expect_exact("* uma has quit (quit: later)")
        ivan.sendline(":QUIT :done")
        ivan.expect(pexpect.EOF)
        ned.expect_exact("* ivan has quit (quit: done)")
    for daemon in (one, two):
        assert daemon.stop() == 0, daemon.log()


def test_ban_on_one_daemon_applies_on_both(cluster: tuple[Redis, Daemon, Daemon]) -> None:
    """
    An operator on one bans a network: its user on two is disconnected, and
    it is refused on both, by every way in (telnet and netcat, IRC, UDP, the
    browser's WebSocket); the others chat on.
    """
    _, one, two = cluster
    oscar = LineClient(one.port("chat"), "oscar")
    bella = LineClient(two.port("chat"), "bella")
    oscar.expect("* bella has joined #lobby")
    with ExitStack() as stack:
        mallory = LineClient(two.port("chat"), "mallory", source=BANNED)
        stack.callback(mallory.close)
        oscar.expect("* mallory has joined #lobby")
        bella.expect("* mallory has joined #lobby")
        oscar.send(f"/oper {OPER_PASSWORD}")
        oscar.expect("You are now an operator.")
        oscar.send(f"/ban {BANNED}/32 10")
        oscar.expect(f"Banned {BANNED}/32 until ")
        mallory.expect("* You were banned by oscar.")
        assert mallory.file.read() == b""  # closed
        bella.expect("* mallory has quit (banned by oscar)")
        oscar.expect("* mallory has quit (banned by oscar)")
        two.wait_for_log(rf"chat: mallory \({re.escape(BANNED)}:\d+\) quit: banned by oscar")
        # Refused on both daemons, however it comes.
        for daemon in (one, two):
            # nc -d: types nothing, and so ends when the server closes.
            again = spawn("nc", "-d", "-s", BANNED, "127.0.0.1", daemon.port("chat"))
            stack.callback(again.close, force=True)
            again.expect_exact("ERROR You are banned from this chat until ")
            again.expect(pexpect.EOF)
            irc = spawn("nc", "-d", "-s", BANNED, "127.0.0.1", daemon.port("irc"))
            stack.callback(irc.close, force=True)
            irc.expect_exact("You are banned from this chat until ")
            irc.expect(pexpect.EOF)
            udp = UdpUser(daemon, "mallory", host=BANNED)
            stack.callback(udp.close)
            udp.expect("ERROR You are banned from this chat until ")
            assert first_websocket_message(daemon.port("http"), BANNED).startswith(
                "ERROR You are banned from this chat until "
            )
        # Nobody else was: 127.0.0.1 chats on across the daemons.
        bella.send("still here")
        oscar.expect("<bella> still here")
    for client in (oscar, bella):
        client.close()
    for daemon in (one, two):
        assert daemon.stop() == 0, daemon.log()
