"""
Tests of the login service's plain parts: the shell, the failure limit,
the token helpers, the C{users} list, config errors, and the SQLite store
(persistence across a reopen, token expiry, a bad path).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from netlab.app.registry import parse
from netlab.core.config import ConfigError
from netlab.core.kinds import StartError
from netlab.core.limits import FailureLimit
from netlab.core.passwords import hash_password
from netlab.protocols.login import shell
from netlab.protocols.login.auth import looks_like_token, token_digest
from netlab.protocols.login.kind import LoginDatabase
from netlab.protocols.login.settings import parse_users
from netlab.protocols.login.store import LoginStore, LoginStoreError

UTC = ZoneInfo("UTC")
HASH = hash_password("teacherpass", n=2**10)


@pytest.mark.parametrize(
    ("line", "lines", "done"),
    [
        ("ls", ("README  lab1.py  notes.txt",), False),
        ("ls -l", ("README  lab1.py  notes.txt",), False),
        ("ls lab1.py nope", ("lab1.py", "ls: cannot access 'nope': No such file or directory"),
         False),
        ("whoami", ("alice",), False),
        ("pwd", ("/home/alice",), False),
        ("date", ("Thu Jan  1 00:00:00 UTC 1970",), False),
        ("  ", (), False),
        ("foo bar", ("-sh: foo: command not found",), False),
        ("exit", ("logout",), True),
        ("logout", ("logout",), True),
    ],
)
def test_shell(line: str, lines: tuple[str, ...], done: bool) -> None:
    """Each command's fixed answer; exit and logout end the session."""
    assert shell.run(line, "alice", 0.0, UTC) == shell.Reply(lines, done)


def test_shell_date_in_the_zone() -> None:
    """date uses the configured zone."""
    assert shell.date_line(0.0, ZoneInfo("Europe/Berlin")) == "Thu Jan  1 01:00:00 CET 1970"


def test_failure_limit() -> None:
    """failures at once; the next locks for window/failures; refills evenly."""
    clock = Clock()
    limit = FailureLimit(3, 60, clock.seconds)
    assert [limit.failed("a") for _ in range(3)] == [False, False, False]
    assert limit.wait("a") == 0
    assert limit.failed("a") is True
    assert limit.wait("a") == 20
    assert limit.wait("b") == 0
    clock.advance(20)
    assert limit.wait("a") == 0
    assert limit.failed("a") is False
    limit.configure(3, 60)  # unchanged: the count stays
    assert limit.failed("a") is True
    limit.configure(5, 60)  # changed: a fresh start
    assert limit.wait("a") == 0


def test_tokens_are_recognised_by_form() -> None:
    """Only 32 lowercase hex digits can be a token; what is stored is its sha256."""
    assert looks_like_token("0123456789abcdef" * 2)
    assert not looks_like_token("0123456789ABCDEF" * 2)
    assert not looks_like_token("secret")
    assert len(token_digest("ab" * 16)) == 64


def test_parse_users() -> None:
    """NAME:HASH entries by case-folded name."""
    assert parse_users((f"Teacher:{HASH}",)) == {"teacher": ("Teacher", HASH)}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"login": {"users": ["teacher"]}},
         'x.toml: [login].users = ["teacher"]: "teacher" is not a user name'),
        ({"login": {"users": ["teacher:plain"]}},
         'x.toml: [login].users = ["teacher:plain"]: the hash of "teacher" must be a hash'),
        ({"login": {"users": [f"t:{HASH}", f"T:{HASH}"]}}, '"T" is listed twice'),
        ({"login": {"timezone": "Mars/Olympus"}},
         'x.toml: [login].timezone = "Mars/Olympus": unknown time zone'),
        ({"login": {"registration": "maybe"}},
         'x.toml: [login].registration = "maybe": must be one of closed, open'),
        ({"login": {"identify": "always"}},
         'x.toml: [login].identify = "always": must be one of login, ask, off'),
        ({"login": {"hide_password": "yes"}},
         'x.toml: [login].hide_password = "yes": must be one of telnet, always, never'),
        ({"login": {"attempt_delay": 61}},
         "x.toml: [login].attempt_delay = 61: must be from 0 to 60"),
        ({"login": {"max_attempts": 0}},
         "x.toml: [login].max_attempts = 0: must be from 1 to 100"),
        ({"login": {"login_timeout": 0}},
         "x.toml: [login].login_timeout = 0: must be from 1 to 3600"),
        ({"login": {"token_ttl": -1}},
         "x.toml: [login].token_ttl = -1: must be from 0 to 2592000"),
        ({"login": {"max_hashing": 65}},
         "x.toml: [login].max_hashing = 65: must be from 1 to 64"),
        ({"login": {"user_failures": 0}},
         "x.toml: [login].user_failures = 0: must be from 1 to 100000"),
        ({"login": {"address_failures": 0}},
         "x.toml: [login].address_failures = 0: must be from 1 to 100000"),
        ({"login": {"failure_window": 0}},
         "x.toml: [login].failure_window = 0: must be from 1 to 86400"),
        ({"login": {"min_password": 0}},
         "x.toml: [login].min_password = 0: must be from 1 to 128"),
        ({"login": {"max_users": 0}},
         "x.toml: [login].max_users = 0: must be from 1 to 1000000"),
        ({"login": {"max_line": 8}},
         "x.toml: [login].max_line = 8: must be from 16 to 4096"),
        ({"login": {"database": 7}}, "x.toml: [login].database = 7:"),
        ({"login": {"users": "teacher"}}, 'x.toml: [login].users = "teacher":'),
    ],
)
def test_config_errors(data: dict[str, Any], message: str) -> None:
    """Each refused value stops the load with one line naming file, key and value."""
    with pytest.raises(ConfigError) as caught:
        parse(data, "x.toml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_off_by_default_and_loopback() -> None:
    """Without a section the service is off; its default address is loopback port 7025."""
    login = parse({}, "x.toml").login
    assert not login.enabled
    assert login.listen == ("tcp:7025:interface=127.0.0.1",)
    assert (login.registration, login.identify, login.hide_password) == (
        "closed", "login", "telnet",
    )


@pytest.fixture
def stores() -> Iterator[Callable[..., LoginStore]]:
    """Opens stores on the real reactor's threads; closes them after the test."""
    opened: list[LoginStore] = []

    def make(path: str | Path, now: float = 1000.0) -> LoginStore:
        store = LoginStore(str(path), reactor)
        store.open(now)
        opened.append(store)
        return store

    yield make
    for store in opened:
        pytest_twisted.blockon(store.close())


@pytest_twisted.inlineCallbacks
def test_store_survives_a_reopen(tmp_path: Path, stores: Any) -> Any:
    """Users, address names and live tokens come back; expired tokens do not."""
    path = tmp_path / "login.sqlite3"
    store = stores(path)
    store.add_user("Alice", HASH, 1000.0)
    store.remember("192.0.2.1", "Ann", 1000.0)
    store.add_token("live", "alice", 5000.0, 1000.0)
    store.add_token("dead", "alice", 1500.0, 1000.0)
    yield store.close()
    again = stores(path, now=2000.0)
    assert again.user("ALICE") == ("Alice", HASH)
    assert again.user_count() == 1
    assert again.name_of("192.0.2.1") == "Ann"
    assert again.token_expires("live", "Alice", 2000.0) == 5000.0
    assert again.token_expires("dead", "alice", 1000.0) is None
    assert again.token_expires("live", "bob", 2000.0) is None
    assert again.token_expires("live", "alice", 5000.0) is None  # expired now, and gone
    yield again.flush()
    rows = sqlite3.connect(path).execute("SELECT * FROM users").fetchall()
    assert rows == [("alice", "Alice", HASH, 1000.0)]  # the hash only, never a password


def test_store_memory_keeps_nothing(stores: Any) -> None:
    """":memory:" works, in memory only."""
    store = stores(":memory:")
    store.remember("192.0.2.1", "Ann", 1.0)
    assert store.name_of("192.0.2.1") == "Ann"


def test_bad_database_path_stops_the_start(tmp_path: Path) -> None:
    """A database that cannot be opened is a StartError naming the path."""
    path = tmp_path / "missing" / "login.sqlite3"
    database = LoginDatabase(LoginStore(str(path), reactor), "login", Clock())
    with pytest.raises(StartError, match=f"login store {path}: cannot open"):
        database.open()
    with pytest.raises(LoginStoreError):
        LoginStore(str(path), reactor).open(0.0)


@pytest_twisted.inlineCallbacks
def test_store_keeps_no_shared_memory_file(tmp_path: Path, stores: Any) -> Any:
    """As the chat's: no -shm file, which SQLite maps into memory (a fault writing it
    is a SIGBUS that kills the daemon, not an error)."""
    store = stores(tmp_path / "login.sqlite3")
    store.add_user("Alice", HASH, 1000.0)
    yield store.flush()
    assert not (tmp_path / "login.sqlite3-shm").exists()
