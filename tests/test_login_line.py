"""
Tests of the login service's front-end in memory: prompts, telnet echo
negotiation, registration, three strikes, limits, tokens, the shell, and
lines typed ahead of a password check.  Time is a task.Clock; the password
checks are fakes the tests fire by hand, and the store is a real SQLite
":memory:" database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed

from memory import MemoryTCP, PassClock, serve
from netlab.core.passwords import hash_password, verify_password
from netlab.protocols.login.auth import DUMMY_HASH, LoginService
from netlab.protocols.login.line import LoginFactory
from netlab.protocols.login.prompts import WILL_ECHO, WONT_ECHO
from netlab.protocols.login.settings import LoginSettings
from netlab.protocols.login.store import LoginStore

START = 1_790_000_000.0  # Mon Sep 21 2026, 14:13:20 UTC


class Hasher:
    """
    Fake scrypt: the hash of C{pw} is C{fake$pw}.  With C{auto} each check
    answers at once; otherwise it waits in C{pending} for the test to fire.
    """

    def __init__(self) -> None:
        self.auto = True
        self.checked: list[tuple[str, str]] = []
        self.pending: list[tuple[Deferred[bool], bool]] = []

    def verify(self, password: str, encoded: str) -> Deferred[bool]:
        self.checked.append((password, encoded))
        ok = encoded == f"fake${password}" or (
            encoded.startswith("scrypt$") and verify_password(password, encoded)
        )
        if self.auto:
            return succeed(ok)
        d: Deferred[bool] = Deferred()
        self.pending.append((d, ok))
        return d

    def make_hash(self, password: str) -> Deferred[str]:
        return succeed(f"fake${password}")

    def fire(self) -> None:
        d, ok = self.pending.pop(0)
        d.callback(ok)


class Lab:
    """A login factory on a task.Clock, with a fake hasher and a real store."""

    def __init__(self, events: Any, **settings: Any) -> None:
        self.clock = PassClock()
        self.clock.advance(START)
        self.events = events
        self.hasher = Hasher()
        self.store = LoginStore(":memory:", reactor)
        self.store.open(self.clock.seconds())
        self.settings = LoginSettings(name="login", **settings)
        self.service = LoginService(
            self.settings, events, self.clock, self.store,
            verify=self.hasher.verify, make_hash=self.hasher.make_hash,
        )
        self.factory = LoginFactory(self.settings, events, self.clock, self.service)

    def connect(self, host: str = "127.0.0.1") -> MemoryTCP:
        _, transport = serve(self.factory, self.clock, host=host)
        return transport

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.clock.advance(0)  # the connectionLost a close schedules


@pytest.fixture
def labs(events: Any) -> Iterator[Any]:
    """Makes L{Lab}s; their stores are closed after the test."""
    made: list[Lab] = []

    def make(**settings: Any) -> Lab:
        lab = Lab(events, **settings)
        made.append(lab)
        return lab

    yield make
    for lab in made:
        for protocol in list(lab.factory.open_protocols):
            protocol.transport.abortConnection()
        lab.advance(0)
        pytest_twisted.blockon(lab.store.close())


def say(transport: MemoryTCP, data: bytes) -> bytes:
    """The client sends C{data}; what the server answered."""
    transport.peer_write(data)
    return transport.peer_read()


def logged_in(lab: Lab, name: str = "alice", password: str = "secret", **kw: Any) -> Any:
    """A client of C{lab}, logged in as C{name}; (transport, all output so far)."""
    if lab.service.account(name) is None:
        lab.store.add_user(name, f"fake${password}", START)
    transport = lab.connect(**kw)
    out = transport.peer_read()
    out += say(transport, f"{name}\n{password}\n".encode())
    return transport, out


def test_prompts_and_the_shell(labs: Any) -> None:
    """login:, Password:, a token, the prompt; each command's answer; exit closes."""
    lab = labs(idle_timeout=0)
    lab.store.add_user("alice", "fake$secret", START)
    client = lab.connect()
    assert client.peer_read() == b"login: "
    assert say(client, b"alice\n") == b"Password: "
    out = say(client, b"secret\n")
    assert b"Your token: " in out and b"(valid 60 min)\r\n" in out
    assert out.endswith(
        b"Welcome to netlab, alice. Type help for the commands.\r\nalice@netlab:~$ "
    )
    assert say(client, b"ls\n") == b"README  lab1.py  notes.txt\r\nalice@netlab:~$ "
    assert say(client, b"whoami\r\n") == b"alice\r\nalice@netlab:~$ "
    assert say(client, b"date\n") == b"Mon Sep 21 14:13:20 UTC 2026\r\nalice@netlab:~$ "
    assert say(client, b"rm -rf /\n") == b"-sh: rm: command not found\r\nalice@netlab:~$ "
    assert say(client, b"\n") == b"alice@netlab:~$ "
    assert say(client, b"exit\n") == b"logout\r\n"
    lab.advance(0)
    assert not client.connected
    assert lab.hasher.checked == [("secret", "fake$secret")]


def test_netcat_never_sees_telnet_bytes(labs: Any) -> None:
    """A client that ends lines with LF alone and sent no IAC gets no negotiation."""
    lab = labs()
    client, out = logged_in(lab)
    out += say(client, b"exit\n")
    assert b"\xff" not in out


@pytest.mark.parametrize("first", [b"alice\r\n", b"\xff\xfd\x03alice\n"], ids=["crlf", "iac"])
def test_telnet_gets_echo_off_for_the_password(labs: Any, first: bytes) -> None:
    """CR LF or telnet negotiation: IAC WILL ECHO before Password:, IAC WONT ECHO after."""
    lab = labs()
    lab.store.add_user("alice", "fake$secret", START)
    client = lab.connect()
    client.peer_read()
    assert say(client, first) == WILL_ECHO + b"Password: "
    out = say(client, b"\xff\xfd\x01secret\r\n")
    assert out.startswith(WONT_ECHO + b"\r\n")
    assert out.endswith(b"alice@netlab:~$ ")


@pytest.mark.parametrize(("mode", "hidden"), [("always", True), ("never", False)])
def test_hide_password_modes(labs: Any, mode: str, hidden: bool) -> None:
    """hide_password = "always" hides it from netcat too; "never" from nobody."""
    lab = labs(hide_password=mode)
    lab.store.add_user("alice", "fake$secret", START)
    client = lab.connect()
    client.peer_read()
    assert say(client, b"alice\r\n").startswith(WILL_ECHO) is hidden


def test_three_wrong_passwords_close_after_the_delay(labs: Any, events: Any) -> None:
    """Each wrong answer is told attempt_delay later; the third closes the connection."""
    lab = labs(attempt_delay=2)
    lab.store.add_user("alice", "fake$secret", START)
    client = lab.connect()
    client.peer_read()
    for attempt in (1, 2, 3):
        say(client, b"alice\n")
        assert say(client, f"wrong{attempt}\n".encode()) == b""
        lab.advance(1.9)
        assert client.peer_read() == b""
        lab.advance(0.1)
        out = client.peer_read()
        if attempt < 3:
            assert out == b"Login incorrect\r\nlogin: "
    assert out == b"Login incorrect\r\nToo many failed logins: goodbye.\r\n"
    lab.advance(0)
    assert not client.connected
    failed = [e for e in events.kinds("login") if e["action"] == "login failed"]
    assert [e["what"] for e in failed] == [f"login failed: attempt {n} of 3" for n in (1, 2, 3)]
    assert all(e["user"] == "alice" for e in failed)
    assert lab.service.counters.extra["failures"] == 3
    assert not any("wrong" in str(e) for e in events.seen)


def test_lines_typed_ahead_wait_for_the_check(labs: Any) -> None:
    """The telnetlib example: ls and exit sent with the password run after the check."""
    lab = labs()
    lab.store.add_user("alice", "fake$secret", START)
    lab.hasher.auto = False
    client = lab.connect()
    client.peer_read()
    client.peer_write(b"alice\n")
    client.peer_write(b"secret\nls\n")
    assert not client.reading  # nothing more is read while the check runs
    client.peer_write(b"exit\n")
    assert client.peer_read() == b"Password: "
    lab.hasher.fire()
    # The transport reads again: "exit", still in the client's send buffer, comes too.
    out = client.peer_read() + client.peer_read()
    assert b"README  lab1.py  notes.txt\r\nalice@netlab:~$ logout\r\n" in out
    assert out.index(b"Welcome") < out.index(b"README") < out.index(b"logout")
    lab.advance(0)
    assert not client.connected


def test_unknown_name_checked_like_a_password(labs: Any) -> None:
    """With registration closed, an unknown name gets Password: and a real-cost check."""
    lab = labs(attempt_delay=0)
    client = lab.connect()
    client.peer_read()
    assert say(client, b"mallory\n") == b"Password: "
    say(client, b"guess\n")
    lab.advance(0)
    assert client.peer_read() == b"Login incorrect\r\nlogin: "
    assert lab.hasher.checked == [("guess", DUMMY_HASH)]


def test_registration(labs: Any, events: Any) -> None:
    """Open registration: a new name chooses a password twice; only its hash is kept."""
    lab = labs(registration="open", min_password=6)
    client = lab.connect()
    client.peer_read()
    assert say(client, b"Bob\n") == b"New user Bob. Choose a password: "
    assert say(client, b"abc\n") == b"Use a password of at least 6 characters.\r\nlogin: "
    say(client, b"Bob\n")
    assert say(client, b"hunter22\n") == b"Retype the password: "
    assert say(client, b"hunter23\n") == b"Passwords do not match.\r\nlogin: "
    say(client, b"Bob\n")
    say(client, b"hunter22\n")
    out = say(client, b"hunter22\n")
    assert out.endswith(b"Bob@netlab:~$ ")
    assert lab.store.user("bob") == ("Bob", "fake$hunter22")
    assert [e["action"] for e in events.kinds("login")].count("registered") == 1
    assert not any("hunter2" in str(e) for e in events.seen)
    # The new account logs in with its password, in any case.
    again = lab.connect("127.0.0.2")
    again.peer_read()
    assert say(again, b"bob\n") == b"Password: "
    assert say(again, b"hunter22\n").endswith(b"Bob@netlab:~$ ")


def test_config_users(labs: Any) -> None:
    """A user of the config logs in with its scrypt hash, and its name cannot be registered."""
    teacher = hash_password("chalk-dust", n=2**10)
    lab = labs(registration="open", users=(f"Teacher:{teacher}",))
    client = lab.connect()
    client.peer_read()
    assert say(client, b"teacher\n") == b"Password: "
    assert say(client, b"chalk-dust\n").endswith(b"Teacher@netlab:~$ ")


def test_registration_full(labs: Any) -> None:
    """Past max_users nobody else registers; the client is told in one line."""
    lab = labs(registration="open", max_users=1)
    lab.store.add_user("alice", "fake$secret", START)
    client = lab.connect()
    client.peer_read()
    assert say(client, b"bob\n") == b"No more users can register here.\r\nlogin: "


def token_of(out: bytes) -> str:
    return out.split(b"Your token: ", 1)[1].split(b" ", 1)[0].decode()


def test_token_logs_in_until_it_expires(labs: Any, events: Any) -> None:
    """A token answers Password: for its own user until token_ttl passes."""
    lab = labs(token_ttl=600, attempt_delay=0, idle_timeout=0, login_timeout=3600)
    lab.store.add_user("bob", "fake$bobpass", START)
    _, out = logged_in(lab)
    token = token_of(out)
    assert len(token) == 32
    assert b"(valid 10 min)" in out
    assert token not in str(events.seen)
    second = lab.connect()
    second.peer_read()
    say(second, b"alice\n")
    out = say(second, token.encode() + b"\n")
    assert b"Token accepted (valid 10 more min).\r\n" in out and b"Your token" not in out
    assert out.endswith(b"alice@netlab:~$ ")
    assert lab.hasher.checked == [("secret", "fake$secret")]  # no scrypt for a token
    # Not bob's password.
    third = lab.connect()
    third.peer_read()
    say(third, b"bob\n")
    say(third, token.encode() + b"\n")
    lab.advance(0)
    assert third.peer_read() == b"Login incorrect\r\nlogin: "
    lab.advance(600)
    say(third, b"alice\n")
    say(third, token.encode() + b"\n")
    lab.advance(0)
    assert third.peer_read() == b"Login incorrect\r\nlogin: "
    assert [e["what"] for e in events.kinds("login") if e["action"] == "logged in"] == [
        "logged in: with a password", "logged in: with a token",
    ]


def test_no_tokens_when_ttl_is_zero(labs: Any) -> None:
    """token_ttl = 0 issues none."""
    lab = labs(token_ttl=0)
    _, out = logged_in(lab)
    assert b"token" not in out.lower()


def fail_once(lab: Lab, client: MemoryTCP, name: bytes) -> bytes:
    say(client, name + b"\n")
    say(client, b"wrong\n")
    lab.advance(0)
    return client.peer_read()


def test_failures_per_user_lock_the_user(labs: Any, events: Any) -> None:
    """Past user_failures, the user is locked from every address, without a check."""
    lab = labs(user_failures=2, failure_window=60, max_attempts=100, attempt_delay=0)
    lab.store.add_user("alice", "fake$secret", START)
    client = lab.connect()
    client.peer_read()
    for _ in range(3):
        assert fail_once(lab, client, b"alice") == b"Login incorrect\r\nlogin: "
    assert [e["action"] for e in events.kinds("login")].count("locked out") == 1
    checks = len(lab.hasher.checked)
    other = lab.connect("192.0.2.7")
    other.peer_read()
    say(other, b"alice\n")
    say(other, b"secret\n")
    lab.advance(0)
    assert other.peer_read() == b"Too many failed logins: try again in 30 seconds.\r\nlogin: "
    assert len(lab.hasher.checked) == checks
    assert lab.service.counters.extra["lockouts"] == 1
    # Someone else is not locked, and alice may try again once the pause passed.
    assert fail_once(lab, other, b"carol").startswith(b"Login incorrect")
    lab.advance(30)
    _, out = logged_in(lab, host="192.0.2.7")
    assert out.endswith(b"alice@netlab:~$ ")


def test_failures_per_address_lock_the_address(labs: Any) -> None:
    """Past address_failures, guessing from one address stops; other addresses go on."""
    lab = labs(address_failures=2, failure_window=100, max_attempts=100, attempt_delay=0)
    client = lab.connect("192.0.2.1")
    client.peer_read()
    for name in (b"a1", b"a2", b"a3"):
        assert fail_once(lab, client, name).startswith(b"Login incorrect")
    assert fail_once(lab, client, b"a4").startswith(b"Too many failed logins: try again in 50")
    _, out = logged_in(lab, host="192.0.2.2")
    assert out.endswith(b"alice@netlab:~$ ")


def test_concurrent_hashing_is_bounded(labs: Any) -> None:
    """With max_hashing = 1, a second check waits until the first is done."""
    lab = labs(max_hashing=1)
    lab.store.add_user("alice", "fake$secret", START)
    lab.hasher.auto = False
    one, two = lab.connect("192.0.2.1"), lab.connect("192.0.2.2")
    for client in (one, two):
        client.peer_write(b"alice\nsecret\n")
    assert len(lab.hasher.pending) == 1
    lab.hasher.fire()
    assert one.peer_read().endswith(b"alice@netlab:~$ ")
    assert len(lab.hasher.pending) == 1
    lab.hasher.fire()
    assert two.peer_read().endswith(b"alice@netlab:~$ ")


def test_identify_ask(labs: Any, events: Any) -> None:
    """identify = "ask": an unknown address is asked its name, then greeted by it."""
    lab = labs(identify="ask")
    client = lab.connect()
    assert client.peer_read() == b"What is your name? "
    assert say(client, b"\n") == b"What is your name? "
    assert say(client, b"Ann \x1b[31mSmith\r\n") == b"Nice to meet you, Ann [31mSmith.\r\nlogin: "
    again = lab.connect()
    assert again.peer_read() == b"Hello, Ann [31mSmith.\r\nlogin: "
    assert lab.connect("192.0.2.9").peer_read() == b"What is your name? "
    assert [e["action"] for e in events.kinds("login")].count("named") == 1


def test_identify_by_login(labs: Any) -> None:
    """identify = "login": the first login from an address names it."""
    lab = labs()
    _, out = logged_in(lab)
    assert out.startswith(b"login: Password: Nice to meet you, alice.\r\n")
    again = lab.connect()
    assert again.peer_read() == b"Hello, alice.\r\nlogin: "
    _, out = logged_in(lab, "bob", "bobpass")
    assert b"Nice to meet you" not in out
    assert lab.connect().peer_read() == b"Hello, bob.\r\nlogin: "


def test_identify_off(labs: Any) -> None:
    """identify = "off": no greeting, nothing remembered."""
    lab = labs(identify="off")
    _, out = logged_in(lab)
    assert b"Nice" not in out
    assert lab.connect().peer_read() == b"login: "
    assert lab.store.name_of("127.0.0.1") is None


def test_login_deadline(labs: Any) -> None:
    """A client not logged in after login_timeout is told and closed; a logged-in one stays."""
    lab = labs(login_timeout=30, idle_timeout=0)
    slow = lab.connect("192.0.2.1")
    slow.peer_read()
    quick, _ = logged_in(lab, host="192.0.2.2")
    lab.advance(30)
    assert slow.peer_read() == b"Login timed out after 30 seconds.\r\n"
    lab.advance(0)
    assert not slow.connected
    assert quick.connected


def test_long_line_one_error(labs: Any, events: Any) -> None:
    """A line over max_line gets one error line and the prompt again."""
    lab = labs(max_line=16)
    client = lab.connect()
    client.peer_read()
    assert say(client, b"x" * 40 + b"\n") == b"Line longer than 16 bytes, ignored.\r\nlogin: "
    assert len(events.kinds("dropped")) == 1


def test_bad_login_name(labs: Any) -> None:
    """A name that cannot be a login name is told so in one line."""
    lab = labs()
    client = lab.connect()
    client.peer_read()
    assert say(client, b"no way\n").startswith(b"Login names are a letter")


def test_cr_nul_ends_a_line(labs: Any) -> None:
    """telnet in character mode ends lines with CR NUL, even split across reads."""
    lab = labs()
    lab.store.add_user("alice", "fake$secret", START)
    client = lab.connect()
    client.peer_read()
    assert say(client, b"alice\r") == b""
    assert say(client, b"\0") == WILL_ECHO + b"Password: "


def test_debug_samples_hold_no_password_or_token(labs: Any, events: Any) -> None:
    """At debug level, nothing received before login and no token is sampled."""
    lab = labs()
    client, out = logged_in(lab, "alice", "pa55word")
    say(client, b"whoami\n")
    logged = str(events.seen)
    assert "pa55word" not in logged
    assert token_of(out) not in logged
    assert "whoami" in logged  # shell lines are sampled
    assert "before login: not shown" in logged
