"""
The mail store: every accepted message, its envelope and where it came
from, in SQLite so it survives a restart.

As in the chat's and the login service's stores, reads never touch the
database after start: L{MailStore.open} loads everything into memory (the
store's total is capped by C{max_stored_bytes}, so memory is too), each
change is made in memory at once, and its SQL is queued for one writer
thread, so a slow disk never stalls the reactor and writes land in the
order they were made.  C{":memory:"} works, and keeps nothing.

A message is stored once, with one delivery per recipient address; the
mailbox of an address is its deliveries.  A POP3 C{DELE} removes a
delivery, a quota drops the oldest, and a message goes when its last
delivery does.  The query methods (L{MailStore.messages_for},
L{MailStore.message}, L{MailStore.data}) are what a web page listing and
showing messages needs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from netlab.protocols.sqlwriter import SqliteWriter, Statement, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    received REAL NOT NULL,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    user TEXT NOT NULL,
    client TEXT NOT NULL,
    helo TEXT NOT NULL,
    tls INTEGER NOT NULL,
    size INTEGER NOT NULL,
    subject TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    message_id INTEGER NOT NULL REFERENCES messages (id),
    mailbox TEXT NOT NULL,
    PRIMARY KEY (message_id, mailbox)
);
"""

INSERT_MESSAGE = (
    "INSERT INTO messages (id, uid, received, sender, recipients, user, client, helo, tls, "
    "size, subject, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_DELIVERY = "INSERT OR IGNORE INTO deliveries (message_id, mailbox) VALUES (?, ?)"
DELETE_DELIVERY = "DELETE FROM deliveries WHERE message_id = ? AND mailbox = ?"
DELETE_MESSAGE = "DELETE FROM messages WHERE id = ?"

class MailStoreError(Exception):
    """The mail database cannot be used; the message names the path and why."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """
    What SMTP knows of a message besides its text.

    @ivar sender: the C{MAIL FROM} address ("" for the null sender C{<>}).
    @ivar recipients: the C{RCPT TO} addresses, in order, each once.
    @ivar user: who authenticated ("" if nobody did).
    @ivar client: the client's address, C{host:port}.
    @ivar helo: the name it gave in C{EHLO} or C{HELO}.
    @ivar tls: whether the message came over TLS.
    """

    sender: str
    recipients: tuple[str, ...]
    user: str
    client: str
    helo: str
    tls: bool


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored message: its envelope, size, subject and when it came."""

    id: int
    uid: str
    received: float
    envelope: Envelope
    size: int
    subject: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """A delivery a quota took away: from which mailbox, and why."""

    mailbox: str
    message: StoredMessage
    why: str


@dataclass(frozen=True, slots=True)
class Quotas:
    """How much the store keeps: per mailbox, and in all."""

    mailbox_messages: int
    mailbox_bytes: int
    max_stored_bytes: int


def mailbox_key(address: str) -> str:
    """The mailbox an address delivers to: case does not count."""
    return address.casefold()


def owns(login: str, address: str) -> bool:
    """
    Whether the user C{login} reads mail sent to C{address}: the address
    itself, or, for a login with no C{@}, its local part at any domain
    (C{alice} reads C{alice@netlab.test} and C{alice@example.com}).
    """
    login, address = login.casefold(), address.casefold()
    if "@" in login:
        return login == address
    return address.rpartition("@")[0] == login if "@" in address else address == login


def sees(login: str | None, message: StoredMessage) -> bool:
    """
    Whether C{login} may read C{message}: it sent it (as the sender or the
    authenticated user) or was sent it; C{None}, the instructor, reads all.
    """
    if login is None:
        return True
    envelope = message.envelope
    return (
        owns(login, envelope.sender)
        or envelope.user.casefold() == login.casefold()
        or any(owns(login, r) for r in envelope.recipients)
    )


class MailStore:
    """
    Messages and their deliveries: in memory for the services, in SQLite so
    they survive a restart.  Every method is called in the reactor thread;
    write failures go to C{on_error} rather than raising.

    @param on_drop: told of each delivery a quota takes away.
    @param on_change: told after each change of what is stored (a message
        delivered, removed or dropped), to keep the service's gauges.
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        quotas: Quotas,
        reactor: Any,
        on_error: Callable[[str], None] | None = None,
        on_drop: Callable[[Dropped], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.quotas = quotas
        self._reactor = reactor
        self._on_error = on_error if on_error is not None else self._log_error
        self._on_drop = on_drop if on_drop is not None else (lambda dropped: None)
        self._on_change = on_change if on_change is not None else (lambda: None)
        self._watchers: list[Callable[[StoredMessage], None]] = []
        self._messages: dict[int, StoredMessage] = {}
        self._data: dict[int, bytes] = {}
        self._boxes: dict[str, dict[int, None]] = {}
        self._box_bytes: dict[str, int] = {}
        self._holders: dict[int, set[str]] = {}
        self.total_bytes = 0
        self._next_id = 1
        self.writer = SqliteWriter(f"mail store {path}", reactor, self._on_error)

    # -- opening ------------------------------------------------------------------

    def open(self) -> None:
        """
        Connect, create the schema, load every message, apply the quotas and
        start the writer: synchronous, before the daemon listens, so a bad
        path stops it with a clear L{MailStoreError}.
        """
        if self.writer.state != "new":
            raise MailStoreError(f"mail store {self.path}: already opened")
        try:
            db = connect(self.path)
        except sqlite3.Error as e:
            raise MailStoreError(f"mail store {self.path}: cannot open: {e}") from e
        try:
            db.executescript(SCHEMA)
            self._load(db)
        except (sqlite3.Error, ValueError) as e:
            db.close()
            raise MailStoreError(f"mail store {self.path}: cannot use: {e}") from e
        self.writer.start(db)
        # Quotas lowered since the last run apply now.
        for key in list(self._boxes):
            self._enforce_mailbox(key)
        self._enforce_total()
        self._on_change()

    def _load(self, db: sqlite3.Connection) -> None:
        boxes: dict[int, list[str]] = {}
        for message_id, key in db.execute(
            "SELECT message_id, mailbox FROM deliveries ORDER BY message_id"
        ):
            boxes.setdefault(message_id, []).append(key)
        rows = db.execute(
            "SELECT id, uid, received, sender, recipients, user, client, helo, tls, size, "
            "subject, data FROM messages ORDER BY id"
        )
        for (message_id, uid, received, sender, recipients, user, client, helo, tls, size,
             subject, data) in rows:
            envelope = Envelope(
                sender, tuple(json.loads(recipients)), user, client, helo, bool(tls)
            )
            message = StoredMessage(message_id, uid, received, envelope, size, subject)
            self._add(message, bytes(data), boxes.get(message_id, ()))
        # Ids are never used twice, even those of messages since removed:
        # a link to a message must not come to show another.
        for (highest,) in db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'messages'"
        ):
            self._next_id = max(self._next_id, highest + 1)

    def configure(self, quotas: Quotas) -> None:
        """New quotas (a reload): lower ones drop the oldest at once."""
        self.quotas = quotas
        for key in list(self._boxes):
            self._enforce_mailbox(key)
        self._enforce_total()
        self._on_change()

    # -- storing -------------------------------------------------------------------

    def deliver(self, uid: str, envelope: Envelope, data: bytes, now: float,
                subject: str = "") -> StoredMessage:
        """
        Store a message for each of its recipients, then make room: the
        oldest deliveries over a mailbox's quota, then the oldest messages
        over the store's total, go (each told to C{on_drop}).
        """
        message = StoredMessage(self._next_id, uid, now, envelope, len(data), subject)
        self._next_id += 1
        keys = list(dict.fromkeys(mailbox_key(r) for r in envelope.recipients))
        self._add(message, data, keys)
        self._write([
            (INSERT_MESSAGE, (
                message.id, uid, now, envelope.sender, json.dumps(list(envelope.recipients)),
                envelope.user, envelope.client, envelope.helo, int(envelope.tls),
                message.size, subject, data,
            )),
            *((INSERT_DELIVERY, (message.id, key)) for key in keys),
        ])
        for key in keys:
            self._enforce_mailbox(key)
        self._enforce_total()
        self._on_change()
        if message.id in self._messages:
            for watcher in list(self._watchers):
                watcher(message)
        return message

    def watch(self, watcher: Callable[[StoredMessage], None]) -> Callable[[], None]:
        """
        Tell C{watcher} of each message delivered from now on (a live web
        page); returns what stops it.
        """
        self._watchers.append(watcher)

        def unwatch() -> None:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

        return unwatch

    def _add(self, message: StoredMessage, data: bytes, keys: Iterable[str]) -> None:
        self._messages[message.id] = message
        self._data[message.id] = data
        self.total_bytes += message.size
        holders = self._holders[message.id] = set()
        for key in keys:
            self._boxes.setdefault(key, {})[message.id] = None
            self._box_bytes[key] = self._box_bytes.get(key, 0) + message.size
            holders.add(key)

    def _enforce_mailbox(self, key: str) -> None:
        quotas = self.quotas
        box = self._boxes.get(key, {})
        while box and (
            len(box) > quotas.mailbox_messages or self._box_bytes[key] > quotas.mailbox_bytes
        ):
            oldest = self._messages[next(iter(box))]
            why = (
                f"over its quota of {quotas.mailbox_messages} messages"
                if len(box) > quotas.mailbox_messages
                else f"over its quota of {quotas.mailbox_bytes} bytes"
            )
            self._undeliver(oldest.id, key)
            self._on_drop(Dropped(key, oldest, why))

    def _enforce_total(self) -> None:
        limit = self.quotas.max_stored_bytes
        while self.total_bytes > limit and self._messages:
            oldest = next(iter(self._messages.values()))
            for key in sorted(self._holders.get(oldest.id, ())):
                self._undeliver(oldest.id, key)
                self._on_drop(Dropped(key, oldest, f"the store is over {limit} bytes"))
            if oldest.id in self._messages:  # a message nobody held
                self._forget(oldest.id)

    def _undeliver(self, message_id: int, key: str) -> None:
        """Take the message out of one mailbox; with its last, the message goes."""
        box = self._boxes.get(key)
        if box is None or message_id not in box:
            return
        del box[message_id]
        self._box_bytes[key] -= self._messages[message_id].size
        if not box:
            del self._boxes[key], self._box_bytes[key]
        holders = self._holders[message_id]
        holders.discard(key)
        statements: list[Statement] = [(DELETE_DELIVERY, (message_id, key))]
        if not holders:
            self._forget(message_id, write=False)
            statements.append((DELETE_MESSAGE, (message_id,)))
        self._write(statements)

    def _forget(self, message_id: int, write: bool = True) -> None:
        message = self._messages.pop(message_id)
        del self._data[message_id], self._holders[message_id]
        self.total_bytes -= message.size
        if write:
            self._write([(DELETE_MESSAGE, (message_id,))])

    # -- reading -------------------------------------------------------------------

    def message(self, message_id: int) -> StoredMessage | None:
        """One message's record, or None if it is gone."""
        return self._messages.get(message_id)

    def data(self, message_id: int) -> bytes | None:
        """One message as stored (an C{.eml}: headers, CRLF lines), or None."""
        return self._data.get(message_id)

    def messages_for(self, login: str | None) -> list[StoredMessage]:
        """
        Newest first: every message (C{login} None, the instructor's view),
        or those C{login} sent (as sender or authenticated user) or was sent.
        """
        return [m for m in reversed(self._messages.values()) if sees(login, m)]

    def mailbox(self, login: str) -> list[StoredMessage]:
        """Oldest first: the messages still delivered to an address C{login} reads."""
        ids: set[int] = set()
        for key, box in self._boxes.items():
            if owns(login, key):
                ids.update(box)
        return [self._messages[i] for i in sorted(ids)]

    def remove(self, login: str, message_ids: Iterable[int]) -> int:
        """Take C{message_ids} out of every mailbox C{login} reads (POP3 C{DELE}, then C{QUIT})."""
        removed = 0
        for message_id in message_ids:
            for key in sorted(self._holders.get(message_id, ())):
                if owns(login, key):
                    self._undeliver(message_id, key)
                    removed += 1
        if removed:
            self._on_change()
        return removed

    def counts(self) -> tuple[int, int, int]:
        """C{(messages, bytes, mailboxes)} stored now, for a dashboard."""
        return len(self._messages), self.total_bytes, len(self._boxes)

    # -- the writer ------------------------------------------------------------------

    def _write(self, statements: list[Statement]) -> None:
        self.writer.write(statements)

    def flush(self) -> Deferred[None]:
        """Fires once every change made so far is saved (or reported)."""
        return self.writer.flush()

    def close(self) -> Deferred[None]:
        """Save what is queued and close the database; safe to call more than once."""
        return self.writer.close()

    def _log_error(self, message: str) -> None:
        self.log.error("{message}", message=message)


__all__ = [
    "Dropped",
    "Envelope",
    "MailStore",
    "MailStoreError",
    "Quotas",
    "StoredMessage",
    "mailbox_key",
    "owns",
    "sees",
]
