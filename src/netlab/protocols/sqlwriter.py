"""
One SQLite connection written by one thread, for the stores that keep
everything in memory and save each change behind it (the login service's,
the mail's; the chat's store opens its database with L{connect} too):
changes are queued in the order they were made, each change's statements
in one transaction, so a slow disk never stalls the reactor.

The store opens the connection and loads from it in the reactor thread,
before anything listens; then L{SqliteWriter.start} hands it to the writer
thread for good (hence C{check_same_thread=False}).  A failed write goes to
C{on_error} in the reactor thread: a lost change must not take the daemon
down.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from netlab.core.kinds import StartError

Statement = tuple[str, Sequence[Any]]


class Database:
    """
    A store's database as a shared resource (L{netlab.core.kinds.SharedResource}):
    opened before anything listens, an error opening it stopping the start
    with its one line, and closed after the last goodbye.
    """

    def __init__(
        self, service: str, path: str, opening: Callable[[], None],
        closing: Callable[[], Deferred[None]], errors: type[Exception],
    ) -> None:
        self.service = service
        self.description = f"database {path}"
        self._opening, self._closing, self._errors = opening, closing, errors

    def open(self) -> None:
        try:
            self._opening()
        except self._errors as e:
            raise StartError(str(e)) from None

    def close(self) -> Deferred[None]:
        return self._closing()


class _WriteError(Exception):
    """A change was not saved; the message says which store and why."""


class _DaemonThread(threading.Thread):
    """A writer nobody closed must not keep the process from exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, daemon=True, **kwargs)


def connect(path: str) -> sqlite3.Connection:
    """
    The one connection of a store, in autocommit mode, to be handed to its
    writer.  SQLite's rollback journal, never its write-ahead log: WAL keeps
    a C{-shm} file mapped into memory, and a fault writing a mapped page (a
    full disk, the file truncated) is a SIGBUS that kills the daemon without
    a word, where the rollback journal gives an error the store can report.
    """
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error:
        db.close()
        raise
    return db


class SqliteWriter:
    """
    The writer thread of one store.

    @param label: how messages name the store (C{login store netlab-login.sqlite3}).
    @param on_error: told, in the reactor thread, of each change not saved.
    """

    def __init__(self, label: str, reactor: Any, on_error: Callable[[str], None]) -> None:
        self.label = label
        self._reactor = reactor
        self._on_error = on_error
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=label)
        self._pool.threadFactory = _DaemonThread
        self.state = "new"
        self._closing: list[Deferred[None]] = []

    def start(self, db: sqlite3.Connection) -> None:
        """Take C{db} (opened and loaded) and start writing to it."""
        self._db = db
        self._pool.start()
        self.state = "open"

    def write(self, statements: list[Statement]) -> None:
        """Queue one change: its statements, made in one transaction after the ones before."""
        if self.state != "open":
            self._on_error(f"{self.label}: not open; a change was kept in memory only")
            return
        deferToThreadPool(self._reactor, self._pool, self._execute, statements).addErrback(
            self._failed
        )

    def _execute(self, statements: list[Statement]) -> None:
        """Writer thread: one change, committed or rolled back whole."""
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN")
            for sql, params in statements:
                db.execute(sql, params)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise _WriteError(f"{self.label}: a change was not saved: {e}") from e

    def _failed(self, failure: Failure) -> None:
        if failure.check(_WriteError):
            self._on_error(str(failure.value))
        else:
            self._on_error(f"{self.label}: {failure.getTraceback()}")

    def flush(self) -> Deferred[None]:
        """Fires once every change queued so far has been made (or reported)."""
        if self.state != "open":
            return succeed(None)
        return deferToThreadPool(self._reactor, self._pool, lambda: None)

    def close(self) -> Deferred[None]:
        """
        Make the queued changes, stop the writer, close the database.  Safe to
        call more than once; every call's Deferred fires once it is closed.
        """
        if self.state == "new":
            self.state = "closed"
        if self.state == "closed":
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._closing.append(waiter)
        if self.state == "open":
            self.state = "closing"
            deferToThreadPool(self._reactor, self._pool, self._final).addErrback(
                self._failed
            ).addBoth(self._closed)
        return waiter

    def _final(self) -> None:
        """Writer thread, after every queued change: close the connection."""
        assert self._db is not None
        self._db.close()

    def _closed(self, result: object) -> None:
        self._pool.stop()
        self._db = None
        self.state = "closed"
        waiters, self._closing = self._closing, []
        for waiter in waiters:
            waiter.callback(None)


__all__ = ["SqliteWriter", "Statement", "connect"]
