"""Tests for netlab.protocols.chat.store: chat history and nicks in SQLite."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from netlab.protocols.chat.store import ChatStore, ChatStoreError, HistoryLine


class TracingStore(ChatStore):
    """A store that records which thread ran each SQL statement it executed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statements: list[tuple[int, str]] = []
        self.before_statement: Callable[[str], None] = lambda statement: None

    def _connect(self) -> sqlite3.Connection:
        db = super()._connect()
        db.set_trace_callback(self._trace)
        return db

    def _trace(self, statement: str) -> None:
        self.statements.append((threading.get_ident(), statement))
        self.before_statement(statement)


@pytest.fixture
def make_store() -> Iterator[Callable[..., ChatStore]]:
    """Open stores on the real reactor; whatever a test leaves open is closed after it."""
    opened: list[ChatStore] = []

    def make(
        path: str | Path, history_lines: int = 20, cls: type[ChatStore] = ChatStore,
        **kwargs: Any,
    ) -> ChatStore:
        store = cls(str(path), history_lines, reactor, **kwargs)
        store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        pytest_twisted.blockon(store.close())


def line(room: str, n: int, nick: str = "alice", action: bool = False) -> HistoryLine:
    return HistoryLine(room, 1_700_000_000.0 + n, nick, f"line {n}", action)


def count_rows(path: Path, room: str | None = None) -> int:
    """Rows in the history table, seen through a second, plain connection."""
    db = sqlite3.connect(path)
    try:
        if room is None:
            return int(db.execute("SELECT COUNT(*) FROM history").fetchone()[0])
        return int(
            db.execute("SELECT COUNT(*) FROM history WHERE room = ?", (room,)).fetchone()[0]
        )
    finally:
        db.close()


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("PoolThread-chat-store")]


@pytest_twisted.inlineCallbacks
def test_history_survives_restart(tmp_path: Path, make_store: Any) -> Any:
    """Lines appended before a close are there, in order, after reopening the file."""
    path = tmp_path / "chat.db"
    store = make_store(path)
    lines = [line("#lobby", 1), line("#lobby", 2, "bob", action=True), line("#dev", 3)]
    for each in lines:
        store.append(each)
    yield store.close()

    again = make_store(path)
    assert again.recent("#lobby") == lines[:2]
    assert again.recent("#dev") == lines[2:]
    assert again.recent("#nowhere") == []
    yield again.close()


@pytest_twisted.inlineCallbacks
def test_only_last_lines_per_room(tmp_path: Path, make_store: Any) -> Any:
    """Memory and a reload both keep the last N lines of each room, oldest first."""
    path = tmp_path / "chat.db"
    store = make_store(path, history_lines=3)
    busy = [line("#busy", n) for n in range(10)]
    quiet = [line("#quiet", 100 + n) for n in range(2)]
    for each in busy + quiet:
        store.append(each)
    assert store.recent("#busy") == busy[-3:]
    assert store.recent("#quiet") == quiet
    yield store.close()
    assert count_rows(path) == 12

    again = make_store(path, history_lines=3)
    assert again.recent("#busy") == busy[-3:]
    assert again.recent("#quiet") == quiet
    assert set(again.history) == {"#busy", "#quiet"}
    yield again.close()


@pytest_twisted.inlineCallbacks
def test_memory_database(make_store: Any) -> Any:
    """":memory:" works: the one connection is shared by open and the writer."""
    store = make_store(":memory:", cls=TracingStore)
    store.append(line("#lobby", 1))
    store.register("alice", "scrypt$hash")
    yield store.flush()
    executed = [statement for _, statement in store.statements]
    assert any(s.startswith("INSERT INTO history") for s in executed)
    assert any(s.startswith("INSERT INTO nicks") for s in executed)
    assert executed.count("COMMIT") >= 2  # the pruning at open, then the writes
    assert store.recent("#lobby") == [line("#lobby", 1)]
    yield store.close()


@pytest_twisted.inlineCallbacks
def test_zero_history_lines_stores_nothing(tmp_path: Path, make_store: Any) -> Any:
    """With history_lines = 0 nothing is kept in memory or written to the file."""
    path = tmp_path / "chat.db"
    store = make_store(path, history_lines=0)
    store.append(line("#lobby", 1))
    assert store.recent("#lobby") == []
    yield store.close()
    assert count_rows(path) == 0

    again = make_store(path, history_lines=5)
    assert again.recent("#lobby") == []
    yield again.close()


@pytest_twisted.inlineCallbacks
def test_writes_run_off_the_reactor_thread(tmp_path: Path, make_store: Any) -> Any:
    """Open runs in the reactor thread; every later write runs in one other thread."""
    reactor_thread = threading.get_ident()
    store = make_store(tmp_path / "chat.db", cls=TracingStore)
    at_open = len(store.statements)
    assert at_open and all(ident == reactor_thread for ident, _ in store.statements)

    store.append(line("#lobby", 1))
    store.register("alice", "scrypt$hash")
    store.unregister("alice")
    yield store.flush()
    writes = store.statements[at_open:]
    assert any(s.startswith("INSERT INTO history") for _, s in writes)
    assert any(s.startswith("DELETE FROM nicks") for _, s in writes)
    writers = {ident for ident, _ in writes}
    assert len(writers) == 1
    assert reactor_thread not in writers
    yield store.close()


@pytest_twisted.inlineCallbacks
def test_append_does_not_wait_for_the_writer(tmp_path: Path, make_store: Any) -> Any:
    """While the writer is stuck in a statement, appends still return and show in memory."""
    path = tmp_path / "chat.db"
    store = make_store(path, cls=TracingStore)
    started, release = threading.Event(), threading.Event()

    def block_first_insert(statement: str) -> None:
        if statement.startswith("INSERT") and not started.is_set():
            started.set()
            release.wait(timeout=30)

    store.before_statement = block_first_insert
    store.append(line("#lobby", 0))
    first = store.flush()  # the writer takes it now, not after COMMIT_DELAY
    assert started.wait(timeout=30)
    for n in range(1, 101):
        store.append(line("#lobby", n))
    assert store.recent("#lobby") == [line("#lobby", n) for n in range(81, 101)]
    release.set()
    yield first
    yield store.flush()
    assert count_rows(path) == 101
    yield store.close()


@pytest_twisted.inlineCallbacks
def test_flush_waits_for_queued_writes(tmp_path: Path, make_store: Any) -> Any:
    """After flush fires, a second connection sees every appended line."""
    path = tmp_path / "chat.db"
    store = make_store(path, history_lines=50)
    for n in range(1000):
        store.append(line("#lobby", n))
    yield store.flush()
    assert count_rows(path) == 1000
    yield store.close()


@pytest_twisted.inlineCallbacks
def test_registered_nicks(tmp_path: Path, make_store: Any) -> Any:
    """Registrations ignore case, can change password, can be removed, and persist."""
    path = tmp_path / "chat.db"
    store = make_store(path)
    store.register("Alice", "scrypt$old")
    store.register("ALICE", "scrypt$new")
    store.register("bob", "scrypt$bob")
    assert store.registered("alice") == "scrypt$new"
    store.unregister("BOB")
    assert store.registered("bob") is None
    store.unregister("nobody")
    yield store.close()

    again = make_store(path)
    assert again.registered("aLiCe") == "scrypt$new"
    assert again.registered("bob") is None
    yield again.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT nick_key, nick, hash FROM nicks").fetchall() == [
            ("alice", "ALICE", "scrypt$new")
        ]
    finally:
        db.close()


def test_unopenable_path(tmp_path: Path) -> None:
    """A path in a missing directory raises ChatStoreError naming the path."""
    path = tmp_path / "missing" / "chat.db"
    store = ChatStore(str(path), 20, reactor)
    with pytest.raises(ChatStoreError, match="cannot open") as raised:
        store.open()
    assert str(path) in str(raised.value)
    assert pool_threads() == []


def test_not_a_database(tmp_path: Path) -> None:
    """A file that is not SQLite raises ChatStoreError naming the path, not sqlite3's error."""
    path = tmp_path / "chat.db"
    path.write_bytes(b"this is not a database, just some text " * 100)
    store = ChatStore(str(path), 20, reactor)
    with pytest.raises(ChatStoreError) as raised:
        store.open()
    assert str(path) in str(raised.value)


@pytest_twisted.inlineCallbacks
def test_pruning_keeps_table_bounded(tmp_path: Path, make_store: Any) -> Any:
    """A busy room's rows stay bounded while running, and are cut to the limit on reopen."""
    path = tmp_path / "chat.db"
    store = make_store(path, history_lines=10)
    keep, every = store.KEEP_AT_LEAST, store.PRUNE_EVERY
    total = keep + 3 * every + 7
    for n in range(total):
        store.append(line("#busy", n))
    store.append(line("#quiet", 0))
    yield store.close()
    assert keep <= count_rows(path, "#busy") < keep + every
    assert count_rows(path, "#quiet") == 1

    again = make_store(path, history_lines=10)
    assert again.recent("#busy") == [line("#busy", n) for n in range(total - 10, total)]
    yield again.flush()
    assert count_rows(path, "#busy") == keep
    yield again.close()


@pytest_twisted.inlineCallbacks
def test_close_is_idempotent(tmp_path: Path, make_store: Any) -> Any:
    """Every close fires, the writer thread is gone, and later changes stay in memory."""
    errors: list[str] = []
    store = make_store(tmp_path / "chat.db", on_error=errors.append)
    store.append(line("#lobby", 1))
    assert pool_threads()
    first, second = store.close(), store.close()
    yield first
    yield second
    yield store.close()
    yield store.flush()
    assert pool_threads() == []

    store.append(line("#lobby", 2))
    assert store.recent("#lobby") == [line("#lobby", 1), line("#lobby", 2)]
    assert len(errors) == 1
    assert "not open" in errors[0]


@pytest_twisted.inlineCallbacks
def test_write_error_is_reported(tmp_path: Path, make_store: Any) -> Any:
    """A failed write goes to on_error with the path; the store and flush keep working."""
    path = tmp_path / "chat.db"
    errors: list[str] = []
    store = make_store(path, on_error=errors.append)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE history")
    db.commit()
    db.close()
    store.append(line("#lobby", 1))
    store.register("alice", "scrypt$hash")
    yield store.flush()
    assert len(errors) == 1
    assert str(path) in errors[0]
    assert "no such table" in errors[0]
    assert store.recent("#lobby") == [line("#lobby", 1)]

    store.register("bob", "scrypt$hash")
    yield store.close()
    assert len(errors) == 1
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT nick FROM nicks").fetchall() == [("bob",)]
    finally:
        db.close()


def test_unclosed_store_does_not_block_exit(tmp_path: Path) -> None:
    """A process that forgets to close its store still exits: the writer is a daemon thread."""
    script = (
        "from twisted.internet import reactor\n"
        "from netlab.protocols.chat.store import ChatStore, HistoryLine\n"
        "store = ChatStore(':memory:', 5, reactor)\n"
        "store.open()\n"
        "store.append(HistoryLine('#lobby', 0.0, 'alice', 'hi'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest_twisted.inlineCallbacks
def test_lines_reach_the_database_without_a_flush(tmp_path: Path, make_store: Any) -> Any:
    """Appended lines are committed by themselves, one transaction after COMMIT_DELAY."""
    path = tmp_path / "chat.db"
    store = make_store(path, cls=TracingStore)
    statements: list[str] = []
    store.before_statement = statements.append
    for n in range(50):
        store.append(line("#lobby", n))
    deadline = reactor.seconds() + 10
    while count_rows(path) < 50 and reactor.seconds() < deadline:
        yield deferLater(reactor, store.COMMIT_DELAY, lambda: None)
    assert count_rows(path) == 50
    assert statements.count("BEGIN") == 1
    yield store.close()


@pytest_twisted.inlineCallbacks
def test_no_shared_memory_file(tmp_path: Path, make_store: Any) -> Any:
    """
    The store keeps no -shm file, which SQLite maps into memory: a fault
    writing it (a full disk, a truncated file) is a SIGBUS, not an error.
    """
    path = tmp_path / "chat.db"
    store = make_store(path)
    store.append(line("#lobby", 1))
    yield store.flush()
    assert not (tmp_path / "chat.db-shm").exists()
    assert count_rows(path) == 1
    yield store.close()


@pytest_twisted.inlineCallbacks
def test_deleted_database_is_one_error_then_counted(tmp_path: Path, make_store: Any) -> Any:
    """
    Database files deleted while open: the next write reports one clear
    error, later changes are counted as unsaved, not written into the void
    nor logged again, and the history in memory goes on.
    """
    path = tmp_path / "chat.db"
    errors: list[str] = []
    counted: dict[str, int] = {}

    def count(what: str, amount: int = 1) -> None:
        counted[what] = counted.get(what, 0) + amount

    store = make_store(path, on_error=errors.append, count=count)
    store.append(line("#lobby", 1))
    yield store.flush()
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    store.append(line("#lobby", 2))
    yield store.flush()
    for n in range(3, 6):
        store.append(line("#lobby", n))
    store.register("alice", "scrypt$hash")
    yield store.flush()
    assert errors == [
        f"chat store {path}: the database file was deleted or replaced;"
        " changes are no longer saved (1 lost)"
    ]
    assert counted == {"storage_faults": 1, "unsaved_changes": 5}
    assert [h.text for h in store.recent("#lobby")] == [f"line {n}" for n in range(1, 6)]
    yield store.close()
    assert list(tmp_path.iterdir()) == []


@pytest_twisted.inlineCallbacks
def test_a_fault_is_reported_once_until_writes_work_again(
    tmp_path: Path, make_store: Any
) -> Any:
    """Failing batch after failing batch is one error; after a good write, a new fault is new."""
    path = tmp_path / "chat.db"
    errors: list[str] = []
    store = make_store(path, on_error=errors.append)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE history RENAME TO away")
    db.commit()
    for n in range(3):
        store.append(line("#lobby", n))
        yield store.flush()
    assert len(errors) == 1
    db.execute("ALTER TABLE away RENAME TO history")
    db.commit()
    store.append(line("#lobby", 3))
    yield store.flush()
    db.execute("ALTER TABLE history RENAME TO away")
    db.commit()
    db.close()
    store.append(line("#lobby", 4))
    yield store.flush()
    assert len(errors) == 2
    yield store.close()


@pytest_twisted.inlineCallbacks
def test_a_new_worker_store_starts_from_the_first(tmp_path: Path, make_store: Any) -> Any:
    """
    A second worker's store, new, starts with the first's history and nicks;
    one that exists already keeps its own; a seed that is no database yet
    (the first worker still creating it) is passed over with a warning.
    """
    first = make_store(tmp_path / "chat.sqlite3")
    first.append(line("#lobby", 1))
    first.register("Alice", "scrypt$alice")
    yield first.flush()
    second = make_store(tmp_path / "chat.w1.sqlite3", seed=str(tmp_path / "chat.sqlite3"))
    assert [h.text for h in second.recent("#lobby")] == ["line 1"]
    assert second.registered("alice") == "scrypt$alice"
    second.unregister("alice")
    yield second.close()
    again = make_store(tmp_path / "chat.w1.sqlite3", seed=str(tmp_path / "chat.sqlite3"))
    assert again.registered("alice") is None
    (tmp_path / "empty.sqlite3").write_bytes(b"")
    fresh = make_store(tmp_path / "chat.w2.sqlite3", seed=str(tmp_path / "empty.sqlite3"))
    assert fresh.recent("#lobby") == [] and fresh.registered("alice") is None
