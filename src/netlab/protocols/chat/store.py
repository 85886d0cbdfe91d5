"""
The chat's persistence: room history and registered nicks in SQLite.

Reads never touch the database after start: L{ChatStore.open} loads the last
lines of every room and every registered nick into memory, and the hub reads
those.  Writes change memory at once and queue the SQL for a single writer
thread, so a slow disk never stalls the reactor and writes reach the database
in the order they were made.  Exactly one connection exists, used only by
C{open} (before the writer starts) and then only by the writer, which is also
why C{":memory:"} works.

The journal is SQLite's rollback journal, not its write-ahead log: WAL keeps
a C{-shm} file mapped into memory, and a fault writing a mapped page (a full
disk, the file truncated) is a SIGBUS that kills the daemon without a word.
A storage fault at run time (an SQL error, the files deleted or replaced
under the store) is one error, however many writes fail after it, and the
chat goes on with its history in memory: what could not be saved is
counted (C{storage_faults}, C{unsaved_changes}).  A write reaches the
database at most C{COMMIT_DELAY} (50 ms) after it is made, so a C{kill -9}
loses at most that last window.

Only room lines are stored.  Private messages must never reach this module:
the hub does not pass them, so the store keeps them neither on disk nor in
memory, and nothing here tells a private line from a room line.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from netlab.protocols import sqlwriter

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    time REAL NOT NULL,
    nick TEXT NOT NULL,
    text TEXT NOT NULL,
    action INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS history_room_id ON history (room, id);
CREATE TABLE IF NOT EXISTS nicks (
    nick_key TEXT PRIMARY KEY,
    nick TEXT NOT NULL,
    hash TEXT NOT NULL,
    created REAL NOT NULL
);
"""

INSERT_LINE = "INSERT INTO history (room, time, nick, text, action) VALUES (?, ?, ?, ?, ?)"
# A re-registration (a new password) keeps the nick's original creation time.
UPSERT_NICK = (
    "INSERT INTO nicks (nick_key, nick, hash, created) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (nick_key) DO UPDATE SET nick = excluded.nick, hash = excluded.hash"
)
DELETE_NICK = "DELETE FROM nicks WHERE nick_key = ?"
# Everything in a room at or below the id of its (keep + 1)-th newest row.
PRUNE_ROOM = (
    "DELETE FROM history WHERE room = ? AND id <= "
    "(SELECT id FROM history WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
)

_Write = tuple[str, Sequence[Any]]


class ChatStoreError(Exception):
    """
    The chat database cannot be used; the message names the path and why.

    @ivar lost: how many changes this failure lost.
    """

    lost = 0


class ChatStoreGoneError(ChatStoreError):
    """The database file was deleted or replaced: nothing written now would last."""


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """One line said in a room, as replayed to whoever joins it later."""

    room: str
    time: float
    nick: str
    text: str
    action: bool = False


class _DaemonThread(threading.Thread):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, daemon=True, **kwargs)


def nick_key(nick: str) -> str:
    """The form a nick is registered under, so lookups ignore case."""
    return nick.casefold()


class ChatStore:
    """
    Room history and registered nicks: in memory for the hub, in SQLite so
    they survive a restart.

    Every method is called from the reactor thread.  Write failures at run
    time go to C{on_error} (in the reactor thread) instead of raising: losing
    a chat line must not take the daemon down.  Whoever opens the store closes
    it when the daemon stops (L{close} returns a Deferred to wait on);
    otherwise the writes still queued at exit are lost.
    """

    log = Logger()

    # Prune after this many inserts, keeping at least this many rows a room.
    PRUNE_EVERY = 500
    # How long a write may wait in memory for others to share its commit.
    COMMIT_DELAY = 0.05
    KEEP_AT_LEAST = 1000

    def __init__(
        self,
        path: str,
        history_lines: int,
        reactor: Any,
        on_error: Callable[[str], None] | None = None,
        count: Callable[[str, int], None] | None = None,
        seed: str | None = None,
    ) -> None:
        """
        @param on_error: told of a storage fault, once until writes work again.
        @param count: counts C{storage_faults} and C{unsaved_changes}.
        @param seed: another chat database that a store opened on a new file
            starts from (its history and registered nicks): a new worker's
            copy of the first worker's.
        """
        self.path = path
        self.seed = seed
        self.history_lines = history_lines
        self.history: dict[str, deque[HistoryLine]] = {}
        self._reactor = reactor
        self._on_error = on_error if on_error is not None else self._log_error
        self._count = count if count is not None else lambda what, amount: None
        # The fault being reported (None: writes work), and whether the file
        # is gone for good; the file's (device, inode) as opened.
        self._fault: str | None = None
        self._gone = False
        self._identity: tuple[int, int] | None = None
        self._nicks: dict[str, tuple[str, str]] = {}
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=f"chat-store {path}")
        # A store nobody closed must not keep the process from exiting; what
        # a cut-off writer had not committed is lost, but the file stays whole.
        self._pool.threadFactory = _DaemonThread
        self._state = "new"
        self._close_waiters: list[Deferred[None]] = []
        # Shared by the reactor thread (appends) and the writer (takes all).
        self._lock = threading.Lock()
        self._pending: list[_Write] = []
        self._drain_queued = False
        self._drain_later: IDelayedCall | None = None
        self._inserts_since_prune = 0
        self._rooms_since_prune: set[str] = set()

    @property
    def keep_rows(self) -> int:
        """How many rows a room keeps in the database: more than it replays."""
        return max(self.history_lines, self.KEEP_AT_LEAST)

    def _connect(self) -> sqlite3.Connection:
        """
        The one connection (L{sqlwriter.connect}: no WAL); C{check_same_thread}
        is off because C{open} uses it in the reactor thread before handing it
        to the writer for good.
        """
        return sqlwriter.connect(self.path)

    def open(self) -> None:
        """
        Connect, create the schema if missing, load history and nicks, and
        start the writer.  Synchronous, once, before the daemon listens, so a
        bad path stops the daemon with a clear L{ChatStoreError}.
        """
        if self._state != "new":
            raise ChatStoreError(f"chat store {self.path}: already opened")
        new = self._file_identity() is None
        try:
            db = self._connect()
        except sqlite3.Error as e:
            raise ChatStoreError(f"chat store {self.path}: cannot open: {e}") from e
        try:
            db.executescript(SCHEMA)
            if new and self.seed is not None and os.path.exists(self.seed):
                try:
                    self._copy_seed(db, self.seed)
                except sqlite3.Error as e:
                    # Not fatal: the cluster's bus brings the nicks, and
                    # the history is the rooms' lines from now on.
                    self.log.warn(
                        "chat store {path}: not started from {seed}: {why}",
                        path=self.path, seed=self.seed, why=str(e),
                    )
            rooms = [row[0] for row in db.execute("SELECT DISTINCT room FROM history")]
            # Bounds the file across restarts too, not only within one run.
            db.execute("BEGIN")
            for room in rooms:
                db.execute(PRUNE_ROOM, (room, room, self.keep_rows))
            db.execute("COMMIT")
            self._load(db, rooms)
        except sqlite3.Error as e:
            db.close()
            raise ChatStoreError(f"chat store {self.path}: cannot use: {e}") from e
        self._db = db
        self._identity = self._file_identity()
        self._pool.start()
        self._state = "open"

    @staticmethod
    def _copy_seed(db: sqlite3.Connection, seed: str) -> None:
        """Start from C{seed}'s history and nicks, read in one transaction."""
        db.execute("ATTACH DATABASE ? AS seed", (seed,))
        try:
            db.execute("BEGIN")
            try:
                db.execute(
                    "INSERT INTO history (room, time, nick, text, action) "
                    "SELECT room, time, nick, text, action FROM seed.history ORDER BY id"
                )
                db.execute(
                    "INSERT OR IGNORE INTO nicks (nick_key, nick, hash, created) "
                    "SELECT nick_key, nick, hash, created FROM seed.nicks"
                )
            except sqlite3.Error:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.execute("DETACH DATABASE seed")

    def _file_identity(self) -> tuple[int, int] | None:
        """The database file's (device, inode) now; None in memory or if it is gone."""
        if self.path in ("", ":memory:"):
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _load(self, db: sqlite3.Connection, rooms: list[str]) -> None:
        self.history = {}
        if self.history_lines > 0:
            for room in rooms:
                rows = db.execute(
                    "SELECT time, nick, text, action FROM history WHERE room = ? "
                    "ORDER BY id DESC LIMIT ?",
                    (room, self.history_lines),
                ).fetchall()
                self.history[room] = deque(
                    (HistoryLine(room, t, nick, text, bool(action))
                     for t, nick, text, action in reversed(rows)),
                    maxlen=self.history_lines,
                )
        self._nicks = {
            key: (nick, password_hash)
            for key, nick, password_hash in db.execute("SELECT nick_key, nick, hash FROM nicks")
        }

    def recent(self, room: str) -> list[HistoryLine]:
        """The last lines of C{room}, oldest first, for replay on join."""
        lines = self.history.get(room)
        return list(lines) if lines else []

    def append(self, line: HistoryLine) -> None:
        """Remember a room line now; it reaches the database soon after."""
        if self.history_lines <= 0:
            return
        lines = self.history.get(line.room)
        if lines is None:
            lines = self.history[line.room] = deque(maxlen=self.history_lines)
        lines.append(line)
        self._queue((INSERT_LINE, (line.room, line.time, line.nick, line.text, int(line.action))))
        self._inserts_since_prune += 1
        self._rooms_since_prune.add(line.room)
        if self._inserts_since_prune >= self.PRUNE_EVERY:
            for room in self._rooms_since_prune:
                self._queue((PRUNE_ROOM, (room, room, self.keep_rows)))
            self._inserts_since_prune = 0
            self._rooms_since_prune.clear()

    def registered(self, nick: str) -> str | None:
        """The stored password hash of C{nick} in any case, or C{None}."""
        entry = self._nicks.get(nick_key(nick))
        return entry[1] if entry else None

    def registrations(self) -> dict[str, tuple[str, str]]:
        """Every registered nick: its nick and password hash, by its key (L{nick_key})."""
        return dict(self._nicks)

    def register(self, nick: str, password_hash: str) -> None:
        """Register C{nick} (or change its password) now; saved soon after."""
        key = nick_key(nick)
        self._nicks[key] = (nick, password_hash)
        self._queue((UPSERT_NICK, (key, nick, password_hash, self._reactor.seconds())))

    def unregister(self, nick: str) -> None:
        """Forget C{nick}'s registration now; saved soon after."""
        key = nick_key(nick)
        self._nicks.pop(key, None)
        self._queue((DELETE_NICK, (key,)))

    def flush(self) -> Deferred[None]:
        """
        Fire, in the reactor thread, once every write queued so far has been
        committed (or reported to C{on_error} as lost).
        """
        if self._state == "closing":
            return self.close()
        if self._state != "open":
            return succeed(None)
        self._cancel_drain_later()
        return self._submit(self._drain)

    def close(self) -> Deferred[None]:
        """
        Write what is queued, stop the writer and close the database.  Safe to
        call more than once; every call's Deferred fires when it is closed.
        """
        if self._state == "new":
            self._state = "closed"
        if self._state == "closed":
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._close_waiters.append(waiter)
        if self._state == "open":
            self._state = "closing"
            self._cancel_drain_later()
            self._submit(self._final).addBoth(self._closed)
        return waiter

    def _closed(self, result: object) -> None:
        """Reactor thread, after the writer's last job: stop it, wake waiters."""
        self._pool.stop()
        self._db = None
        self._state = "closed"
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _queue(self, write: _Write) -> None:
        """Reactor thread: add a write, and a job to drain them if none is due."""
        if self._state != "open":
            self._on_error(
                f"chat store {self.path}: not open; a change was kept in memory only"
            )
            return
        if self._gone:
            self._count("unsaved_changes", 1)
            return
        with self._lock:
            self._pending.append(write)
            if self._drain_queued:
                return
            self._drain_queued = True
        # Gather COMMIT_DELAY seconds of writes into one job and transaction:
        # a busy room would otherwise cost a thread hand-off and a commit for
        # almost every line.
        if self._drain_later is None:
            self._drain_later = self._reactor.callLater(self.COMMIT_DELAY, self._drain_soon)

    def _drain_soon(self) -> None:
        self._drain_later = None
        if self._state == "open":
            self._submit(self._drain)

    def _cancel_drain_later(self) -> None:
        """The writer is about to drain anyway: no separate job is needed."""
        if self._drain_later is not None:
            if self._drain_later.active():
                self._drain_later.cancel()
            self._drain_later = None

    def _submit(self, job: Callable[[], None]) -> Deferred[None]:
        """Run C{job} in the writer; failures go to C{on_error}, not the caller."""
        return deferToThreadPool(self._reactor, self._pool, job).addCallbacks(
            self._worked, self._failed
        )

    def _worked(self, result: object) -> None:
        """A job went through: a fault being reported is over."""
        self._fault = None

    def _failed(self, failure: Failure) -> None:
        """One error per fault; every change lost is counted."""
        error = failure.value
        if isinstance(error, ChatStoreError):
            message = str(error)
            lost = error.lost
        else:
            message = f"chat store {self.path}: {failure.getTraceback()}"
            lost = 0
        if lost:
            self._count("unsaved_changes", lost)
        if failure.check(ChatStoreGoneError):
            self._gone = True
        if self._fault is None:
            self._fault = message
            self._count("storage_faults", 1)
            self._on_error(message)

    def _drain(self) -> None:
        """Writer thread: commit every write queued so far in one transaction."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._drain_queued = False
        if batch:
            self._write(batch)

    def _write(self, batch: list[_Write]) -> None:
        """Writer thread: the whole batch in one transaction, one commit."""
        assert self._db is not None
        db = self._db
        if self._identity is not None and self._file_identity() != self._identity:
            # SQLite would write on into the unlinked file, without an error.
            gone = ChatStoreGoneError(
                f"chat store {self.path}: the database file was deleted or replaced;"
                f" changes are no longer saved ({len(batch)} lost)"
            )
            gone.lost = len(batch)
            raise gone
        try:
            db.execute("BEGIN")
            for sql, params in batch:
                db.execute(sql, params)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.rollback()
            error = ChatStoreError(
                f"chat store {self.path}: {len(batch)} change(s) not saved: {e}"
            )
            error.lost = len(batch)
            raise error from e

    def _final(self) -> None:
        """Writer thread: the last job; write what is left and close the connection."""
        try:
            self._drain()
        finally:
            assert self._db is not None
            self._db.close()

    def _log_error(self, message: str) -> None:
        self.log.error("{message}", message=message)
