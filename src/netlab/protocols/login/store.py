"""
The login service's persistence, in SQLite: registered users (salted scrypt
hashes only), the names of known client addresses, and login tokens (their
sha256 digests only, with an expiry).

As in the chat's store, reads never touch the database after start:
L{LoginStore.open} loads everything into memory, and each change is made in
memory at once and its SQL queued for one writer thread, so a slow disk
never stalls the reactor and writes land in the order they were made.  The
one connection is used by C{open}, then only by the writer, which is also
why C{":memory:"} works (and keeps nothing).

Time is always passed in (C{now}): the service reads its clock, so tests
drive token expiry with a C{task.Clock} while the writer runs on a thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from netlab.protocols.login.settings import user_key
from netlab.protocols.sqlwriter import SqliteWriter, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_key TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    hash TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS addresses (
    address TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY,
    user_key TEXT NOT NULL,
    expires REAL NOT NULL
);
"""

INSERT_USER = "INSERT OR REPLACE INTO users (user_key, user, hash, created) VALUES (?, ?, ?, ?)"
UPSERT_ADDRESS = (
    "INSERT INTO addresses (address, name, seen) VALUES (?, ?, ?) "
    "ON CONFLICT (address) DO UPDATE SET name = excluded.name, seen = excluded.seen"
)
INSERT_TOKEN = "INSERT OR REPLACE INTO tokens (digest, user_key, expires) VALUES (?, ?, ?)"
DELETE_EXPIRED = "DELETE FROM tokens WHERE expires <= ?"

_Write = tuple[str, Sequence[Any]]


class LoginStoreError(Exception):
    """The login database cannot be used; the message names the path and why."""


class LoginStore:
    """
    Users, address names and tokens: in memory for the service, in SQLite
    so they survive a restart.  Every method is called in the reactor
    thread; write failures go to C{on_error} rather than raising, since a
    lost "last seen" must not take the daemon down.
    """

    log = Logger()

    def __init__(
        self, path: str, reactor: Any, on_error: Callable[[str], None] | None = None
    ) -> None:
        self.path = path
        self._reactor = reactor
        self._on_error = on_error if on_error is not None else self._log_error
        self._users: dict[str, tuple[str, str]] = {}
        self._addresses: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self.writer = SqliteWriter(f"login store {path}", reactor, self._on_error)

    def open(self, now: float) -> None:
        """
        Connect, create the schema, drop expired tokens, load the rest, and
        start the writer: synchronous, before the daemon listens, so a bad
        path stops it with a clear L{LoginStoreError}.
        """
        if self.writer.state != "new":
            raise LoginStoreError(f"login store {self.path}: already opened")
        try:
            db = connect(self.path)
        except sqlite3.Error as e:
            raise LoginStoreError(f"login store {self.path}: cannot open: {e}") from e
        try:
            db.executescript(SCHEMA)
            db.execute(DELETE_EXPIRED, (now,))
            self._users = {
                key: (user, encoded)
                for key, user, encoded in db.execute("SELECT user_key, user, hash FROM users")
            }
            self._addresses = dict(db.execute("SELECT address, name FROM addresses"))
            self._tokens = {
                digest: (key, expires)
                for digest, key, expires in db.execute(
                    "SELECT digest, user_key, expires FROM tokens"
                )
            }
        except sqlite3.Error as e:
            db.close()
            raise LoginStoreError(f"login store {self.path}: cannot use: {e}") from e
        self.writer.start(db)

    # -- users -------------------------------------------------------------------

    def user(self, name: str) -> tuple[str, str] | None:
        """C{(name as registered, hash)} of a registered user, in any case, or None."""
        return self._users.get(user_key(name))

    def user_count(self) -> int:
        """How many users registered themselves."""
        return len(self._users)

    def add_user(self, name: str, encoded: str, now: float) -> None:
        """Register C{name} with the hash C{encoded}; saved soon after."""
        key = user_key(name)
        self._users[key] = (name, encoded)
        self._write(INSERT_USER, (key, name, encoded, now))

    # -- addresses ----------------------------------------------------------------

    def name_of(self, address: str) -> str | None:
        """The name the client at C{address} gave, or None."""
        return self._addresses.get(address)

    def remember(self, address: str, name: str, now: float) -> None:
        """C{address} belongs to C{name} from now on (and across restarts)."""
        self._addresses[address] = name
        self._write(UPSERT_ADDRESS, (address, name, now))

    # -- tokens -------------------------------------------------------------------

    def add_token(self, digest: str, name: str, expires: float, now: float) -> None:
        """Keep a token's C{digest} for C{name} until C{expires}; expired ones go."""
        for old in [d for d, (_, until) in self._tokens.items() if until <= now]:
            del self._tokens[old]
        self._tokens[digest] = (user_key(name), expires)
        self._write(DELETE_EXPIRED, (now,))
        self._write(INSERT_TOKEN, (digest, user_key(name), expires))

    def token_expires(self, digest: str, name: str, now: float) -> float | None:
        """When the token with C{digest} of C{name} expires, if it is valid now."""
        entry = self._tokens.get(digest)
        if entry is None or entry[0] != user_key(name):
            return None
        if entry[1] <= now:
            del self._tokens[digest]
            return None
        return entry[1]

    # -- the writer -------------------------------------------------------------------

    def _write(self, sql: str, params: Sequence[Any]) -> None:
        self.writer.write([(sql, params)])

    def flush(self) -> Deferred[None]:
        """Fires once every write queued so far has been made (or reported)."""
        return self.writer.flush()

    def close(self) -> Deferred[None]:
        """
        Make the queued writes, stop the writer, close the database.  Safe to
        call more than once; every call's Deferred fires once it is closed.
        """
        return self.writer.close()

    def _log_error(self, message: str) -> None:
        self.log.error("{message}", message=message)
