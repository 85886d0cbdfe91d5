"""
End-to-end tests of C{[daemon] workers = 2} with the real daemon: one
parent that binds, two twistd workers that serve, real clients.

Which worker answers a connection is the kernel's choice; to make each
worker answer in turn, the other is stopped (SIGSTOP) for that client,
so the one left running accepts it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from daemon import TWISTD, Daemon, run_daemon
from helpers import require_tool
from test_socket_activation import free_port

CONFIG = """
[daemon]
workers = 2

[chat]
enabled = false

[http]
listen = ["tcp:0:interface=127.0.0.1"]

[[echo]]
name = "ok"
mode = "ok"
banner = "Welcome to netlab"
listen = ["tcp:0:interface=127.0.0.1"]

[[udp_echo]]
listen = ["udp:0:interface=127.0.0.1"]
"""

READY = re.compile(r"worker (\d) \(pid (\d+)\) ready")
# How long a condition that changes once a second (counter reports) may take.
REPORT_WAIT = 30.0


def worker_pids(running: Daemon) -> dict[int, int]:
    """Each worker's pid, from its "ready" line (the latest, after a restart)."""
    pids = {}
    for line in running.lines:
        match = READY.search(line)
        if match:
            pids[int(match[1])] = int(match[2])
    return pids


@contextmanager
def only(running: Daemon, worker: int) -> Iterator[None]:
    """Every other worker stopped (SIGSTOP) for the block: C{worker} serves it."""
    others = [pid for index, pid in worker_pids(running).items() if index != worker]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def greet(port: int) -> None:
    """One echo client: the banner, one answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        assert f.readline() == b"Welcome to netlab\r\n"
        s.sendall(b"ping\r\n")
        assert f.readline() == b"OK...ping\r\n"


def udp_echo(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(30)
        client.sendto(payload, ("127.0.0.1", port))
        assert client.recvfrom(100)[0] == payload


def metrics(running: Daemon) -> str:
    url = f"http://127.0.0.1:{running.port('http')}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def value(text: str, series: str) -> float:
    """The value of C{series} (name and labels as written) in a scrape, 0 if absent."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


def until(condition: Callable[[], bool], timeout: float = REPORT_WAIT) -> None:
    """Check C{condition} until it holds; fail after C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        # Reports come once a second: ask again a little later.
        time.sleep(0.2)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Daemon]:
    daemon = run_daemon(tmp_path, CONFIG)
    try:
        yield daemon
    finally:
        for pid in worker_pids(daemon).values():
            if not gone(pid):
                os.kill(pid, signal.SIGCONT)
        daemon.kill()
        for pid in worker_pids(daemon).values():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_both_workers_serve_and_metrics_sum_them(running: Daemon) -> None:
    """
    Each worker answers TCP echo, UDP echo and HTTP on the parent's one set
    of ports; /metrics (from either) shows each worker's counts and the sum.
    """
    pids = worker_pids(running)
    assert sorted(pids) == [0, 1] and len(set(pids.values())) == 2
    assert running.ports[("ok", "tcp")] == [running.port("ok")]  # announced once, by the parent
    for worker in (0, 1):
        with only(running, worker):
            greet(running.port("ok"))
            greet(running.port("ok"))
            udp_echo(running.port("udp-echo", "udp"), f"to worker {worker}".encode())
            assert "netlab_worker_info" in metrics(running)

    scrapes: list[str] = []

    def counted() -> bool:
        # Each worker's own counts are live, the other's up to a second old:
        # wait for one scrape that has them all.
        text = metrics(running)
        scrapes.append(text)
        return all(
            value(text, f'netlab_worker_connections_total{{service="ok",worker="{w}"}}') == 2
            and value(text, f'netlab_worker_datagrams_received_total'
                            f'{{service="udp-echo",worker="{w}"}}') == 1
            for w in (0, 1)
        ) and value(text, 'netlab_connections_total{service="ok"}') == 4 and value(
            text, 'netlab_datagrams_received_total{service="udp-echo"}') == 2

    until(counted)
    for worker, pid in pids.items():
        assert f'netlab_worker_info{{pid="{pid}",worker="{worker}"}} 1.0' in scrapes[-1]
    assert running.stop() == 0, running.log()


def test_sighup_reaches_every_worker(running: Daemon) -> None:
    """SIGHUP to the parent: it checks the file, then each worker reloads it."""
    path = running.cwd / "netlab.toml"
    path.write_text(CONFIG.replace('banner = "Welcome to netlab"', 'banner = "Hello again"'))
    running.process.send_signal(signal.SIGHUP)
    running.wait_for_log(r"reload: .*checked, reloading 2 workers")
    pids = worker_pids(running)
    for worker, pid in pids.items():
        running.wait_for_log(rf"worker {worker} \(pid {pid}\) reloaded")
    assert running.log().count("applied ok.banner") == 2
    for worker in (0, 1):
        with only(running, worker), \
                socket.create_connection(("127.0.0.1", running.port("ok")), timeout=30) as s:
            assert s.makefile("rb").readline() == b"Hello again\r\n"
    # A bad file is refused by the parent and reaches no worker.
    path.write_text(CONFIG + "[[echo]]\nname = 42\n")
    running.process.send_signal(signal.SIGHUP)
    running.wait_for_log(r"config refused, still running the old one")
    assert running.stop() == 0, running.log()
    assert running.log().count(") reloaded") == 2


def test_killed_worker_is_restarted(running: Daemon) -> None:
    """A worker killed with SIGKILL is logged and started again; the others serve meanwhile."""
    killed = worker_pids(running)[1]
    os.kill(killed, signal.SIGKILL)
    running.wait_for_log(
        rf"worker 1 \(pid {killed}\) exited \(killed by SIGKILL\); restarting in 1s"
    )
    greet(running.port("ok"))
    line = running.wait_for_log(rf"worker 1 \(pid (?!{killed}\))\d+\) ready")
    new = int(re.search(r"pid (\d+)", line)[1])  # type: ignore[index]
    assert worker_pids(running)[1] == new != killed
    with only(running, 1):
        greet(running.port("ok"))
    assert running.stop() == 0, running.log()


def test_sigterm_stops_every_worker_with_goodbyes(running: Daemon) -> None:
    """SIGTERM to the parent: each worker's clients get a goodbye, all exit, status 0."""
    pids = worker_pids(running)
    clients = []
    for worker in (0, 1):
        with only(running, worker):
            client = socket.create_connection(("127.0.0.1", running.port("ok")), timeout=30)
            reader = client.makefile("rb")
            assert reader.readline() == b"Welcome to netlab\r\n"
            clients.append((client, reader))
    assert running.stop() == 0, running.log()
    for client, reader in clients:
        assert reader.readline() == b"Server shutting down.\r\n"
        client.close()
    log = running.log()
    for worker, pid in pids.items():
        assert f"worker {worker} (pid {pid}) stopped (exit status 0)" in log
        assert gone(pid)
    assert log.count("ok: closing 1 open connections") == 2
    assert "Traceback" not in log


def test_refuses_workers_with_the_chat_alone(tmp_path: Path) -> None:
    """The workers' chats are shared through Redis: workers > 1 without it is one config line."""
    path = tmp_path / "netlab.toml"
    path.write_text("[daemon]\nworkers = 2\n[chat]\nenabled = true\n")
    result = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "netlab", "--config", str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"{path}: [daemon].workers = 2: [chat] is shared by the workers through Redis; "
        'set [cluster] redis = "redis://HOST:PORT/0" (or [chat] enabled = false, or workers = 1)'
    )


class Activated(Daemon):
    """The daemon started by C{systemd-socket-activate}, its log read as L{Daemon} reads it."""

    def __init__(self, cwd: Path, *tool_args: str) -> None:
        self.cwd = cwd
        self.argv = [
            require_tool("systemd-socket-activate"), *tool_args, "--",
            TWISTD, "-n", "--pidfile=", "netlab", "--config", str(cwd / "netlab.toml"),
        ]
        self.lines = []
        self._queue = queue.Queue()
        self.ports = {}
        self.process = subprocess.Popen(
            self.argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()


@pytest.mark.parametrize("datagram", [False, True], ids=["tcp", "udp"])
def test_socket_activation_with_workers(tmp_path: Path, datagram: bool) -> None:
    """The socket systemd-socket-activate passes in is served by both workers."""
    kind = socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM
    port = free_port(kind)
    (tmp_path / "netlab.toml").write_text(
        ('echo = []\n[[udp_echo]]\nlisten = ["systemd-udp:name=echo"]\n' if datagram else
         'udp_echo = []\n[[echo]]\nname = "ok"\nmode = "ok"\n'
         'banner = "Welcome to netlab"\nlisten = ["systemd:domain=INET:name=echo"]\n')
        + "[daemon]\nworkers = 2\n[chat]\nenabled = false\n[http]\nenabled = false\n"
    )
    activated = Activated(
        tmp_path, *(["--datagram"] if datagram else []), "-l", f"127.0.0.1:{port}",
        "--fdname=echo",
    )
    try:
        activated.wait_for_log("Listening on")
        # The tool starts the daemon on the first connection or datagram.
        if datagram:
            udp_echo(port, b"first")
        else:
            greet(port)
        activated.wait_for_log(r"netlab ready: 1 listeners")
        for worker in (0, 1):
            with only(activated, worker):
                if datagram:
                    udp_echo(port, f"to worker {worker}".encode())
                else:
                    greet(port)
        pids = worker_pids(activated)
        assert activated.stop() == 0, activated.log()
        log = activated.log()
        assert f"listening on {'udp' if datagram else 'tcp'} 127.0.0.1:{port}" in log
        for worker, pid in pids.items():
            assert f"worker {worker} (pid {pid}) stopped (exit status 0)" in log
    finally:
        activated.kill()


CHAT_CONFIG = """
echo = []
udp_echo = []

[daemon]
workers = 2

[log]
level = "info"

[http]
enabled = false

[chat]
listen = ["tcp:0:interface=127.0.0.1"]
database = "{folder}/chat.sqlite3"
flood_lines = 100

[udp_chat]
enabled = true
listen = ["udp:0:interface=127.0.0.1"]

[cluster]
redis = "redis://127.0.0.1:{port}/0"
node = "lab"
heartbeat = 0.5
bound = 5.0
max_retry_delay = 0.5
"""


def test_chat_in_two_workers_through_redis(tmp_path: Path) -> None:
    """
    With [cluster] redis, each worker's chat is a node: users on the two
    workers (and a UDP user, whom the first worker serves) share a room, a
    nick registered on one works on the other, and a killed worker's users
    quit for the others.
    """
    from test_cluster_e2e import Redis
    from test_cluster_e2e import free_port as free_tcp_port

    with ExitStack() as stack:
        redis = Redis(free_tcp_port())
        stack.callback(redis.stop)
        daemon = run_daemon(tmp_path, CHAT_CONFIG.format(folder=tmp_path, port=redis.port))
        stack.callback(daemon.kill)
        chat_in_two_workers(daemon)
        assert daemon.stop() == 0, daemon.log()


def chat_in_two_workers(daemon: Daemon) -> None:
    from test_chat_e2e import LineClient

    clients: list[LineClient] = []
    try:
        daemon.wait_for_log("cluster_joined: as lab.w0")
        daemon.wait_for_log("cluster_joined: as lab.w1")
        port = daemon.port("chat")
        with only(daemon, 0):
            alice = LineClient(port, "alice")
        clients.append(alice)
        with only(daemon, 1):
            bob = LineClient(port, "bob")
        clients.append(bob)
        alice.expect("* bob has joined #lobby")
        # alice's worker was stopped maybe before it had published her join;
        # her next line comes after it on the bus.
        alice.send("hello")
        bob.expect("<alice> hello")
        bob.send("/who")
        assert bob.expect("In #lobby (")[-1].endswith("In #lobby (2): bob, alice")
        for n in range(3):
            alice.send(f"from w0 {n}")
            bob.send(f"from w1 {n}")
        for n in range(3):
            bob.expect(f"<alice> from w0 {n}")
            alice.expect(f"<bob> from w1 {n}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(20)
            udp.connect(("127.0.0.1", daemon.port("udp-chat", "udp")))
            udp.send(b"JOIN dgram")
            cookie = udp.recv(200).decode().split()[1]
            udp.send(f"COOKIE {cookie}".encode())
            bob.expect("* dgram has joined #lobby")
            bob.send("to the datagram")
            while b"<bob> to the datagram" not in udp.recv(2000):
                pass
            udp.send(b"from the datagram")
            bob.expect("<dgram> from the datagram")
            udp.send(b"/quit")
            bob.expect("* dgram has quit")
        bob.send("/register hunter22")
        bob.expect("The nick bob is now registered.")
        bob.send("/quit")
        alice.expect("* bob has quit (quit)")
        with only(daemon, 0):
            again = LineClient(port)
            clients.append(again)
            again.expect("Choose a nick")
            again.send("bob")
            again.expect("The nick bob is registered. Password:")
            again.send("hunter22")
            again.expect("Hello bob!")
        with only(daemon, 1):
            carol = LineClient(port, "carol")
        clients.append(carol)
        alice.expect("* carol has joined #lobby")
        os.kill(worker_pids(daemon)[1], signal.SIGKILL)
        quit_line = alice.expect("* carol has quit")[-1]
        assert re.search(r"\(lab\.w1 (restarted|is gone)\)", quit_line), quit_line
    finally:
        for client in clients:
            client.close()
        for pid in worker_pids(daemon).values():
            if not gone(pid):
                os.kill(pid, signal.SIGCONT)


def test_dashboard_shows_the_whole_daemon_and_each_worker(
    running: Daemon, tmp_path: Path,
) -> None:
    """
    Chromium on the dashboard of a two-worker daemon: the echo card counts
    both workers' connections, and the Workers table lists both, live.
    """
    from selenium.webdriver.common.by import By

    from browser import chromium
    from test_browser_dashboard import open_page, wait

    pids = worker_pids(running)
    with chromium(tmp_path / "profile") as driver:
        open_page(driver, running, "/")

        def rows(d: object) -> list[list[str]]:
            table = driver.find_element(By.ID, "workers")
            return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
                    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

        def connections(d: object) -> list[int]:
            return [int(row[3]) for row in rows(d)]

        before = connections(driver)
        for worker in (0, 1):
            with only(running, worker):
                greet(running.port("ok"))
        total = '[data-service="ok"] [data-counter="connections_total"]'
        wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, total).text == "2")
        # Every service's connections (the browser's own too), updated live:
        # one more echo connection on each worker.
        wait(driver).until(lambda d: [row[:2] for row in rows(d)] == [
            ["0", str(pids[0])], ["1", str(pids[1])],
        ] and all(now >= was + 1 for now, was in zip(connections(d), before, strict=True)))
        assert driver.execute_script("return window.netlabNoReload") == "still here"
    assert running.stop() == 0, running.log()


def test_mail_and_the_web_site_in_the_first_worker(tmp_path: Path) -> None:
    """
    With mail on, SMTP, POP3 and the web site (whose /mail reads the store)
    run in worker 0, with their whole limits; the echo in both. A message
    sent with smtplib is read back with poplib and counted on /metrics.
    """
    import poplib
    import smtplib

    from test_mail_e2e import mail_config

    config = mail_config(tmp_path).replace(
        "\necho = []\n", '\n[[echo]]\nlisten = ["tcp:0:interface=127.0.0.1"]\n', 1,
    ).replace(
        "[http]\nenabled = false\n", '[http]\nlisten = ["tcp:0:interface=127.0.0.1"]\n', 1,
    )
    daemon = run_daemon(tmp_path, config + "\n[daemon]\nworkers = 2\n")
    try:
        serving = {int(m[1]): int(m[2]) for m in re.finditer(
            r"worker (\d) \(pid \d+\) serving (\d+) listeners", daemon.log())}
        # smtp and pop3 (two each), http and echo; worker 1 only the echo.
        assert serving == {0: 6, 1: 1}, daemon.log()
        smtp_port = daemon.ports[("smtp", "tcp")][0]
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail("alice@netlab.test", ["bob@netlab.test"],
                            "Subject: workers\r\n\r\nfrom a two-worker lab\r\n")
        pop = poplib.POP3("127.0.0.1", daemon.ports[("pop3", "tcp")][0], timeout=30)
        try:
            pop.user("bob")
            pop.pass_("any")
            assert b"from a two-worker lab" in b"\n".join(pop.retr(1)[1])
        finally:
            pop.quit()
        scrape = metrics(daemon)
        assert value(scrape, 'netlab_service_events_total{event="messages_accepted",'
                             'service="smtp"}') == 1
        for worker in (0, 1):
            with only(daemon, worker):
                greet_echo(daemon.port("echo"))
    finally:
        for pid in worker_pids(daemon).values():
            if not gone(pid):
                os.kill(pid, signal.SIGCONT)
    assert daemon.stop() == 0, daemon.log()


def greet_echo(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"ping\r\n")
        assert s.makefile("rb").readline() == b"ping\r\n"
