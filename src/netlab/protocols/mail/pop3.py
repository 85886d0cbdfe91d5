"""
Reading the stored mail, C{[pop3]}: Twisted's L{POP3} with netlab's
limits, serving each login the messages sent to its address.

Twisted runs the login (C{USER}/C{PASS}, C{APOP}) through the cred portal
and keeps the session's state; this module checks every command's
arguments before Twisted sees them (Twisted logs a traceback for a bad
message number), answers C{STAT}, C{LIST}, C{UIDL}, C{RETR} and C{TOP}
from the mailbox without the messages C{DELE} marked (RFC 1939), stuffs
dots line by line (Twisted's chunked stuffing misses a dot that starts a
chunk), and adds C{STLS} (RFC 2595).
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable
from typing import IO, Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.mail import pop3
from twisted.mail.pop3 import POP3, IMailbox
from twisted.python.failure import Failure
from zope.interface import implementer

from netlab.core.events import EventLog
from netlab.protocols.mail.accounts import MailAccounts
from netlab.protocols.mail.session import MailFactory, MailSession
from netlab.protocols.mail.settings import Pop3Settings
from netlab.protocols.mail.store import MailStore, StoredMessage

# Each command and how many arguments it takes (None: any number, PASS's
# password may hold spaces).
ARGUMENTS: dict[bytes, tuple[int, int | None]] = {
    b"USER": (1, 1), b"PASS": (1, None), b"APOP": (2, 2), b"AUTH": (0, 1),
    b"CAPA": (0, 0), b"STLS": (0, 0), b"QUIT": (0, 0), b"NOOP": (0, 0),
    b"STAT": (0, 0), b"LIST": (0, 1), b"UIDL": (0, 1), b"RETR": (1, 1),
    b"TOP": (2, 2), b"DELE": (1, 1), b"RSET": (0, 0),
}
BEFORE_LOGIN = frozenset({b"USER", b"PASS", b"APOP", b"AUTH", b"CAPA", b"STLS", b"QUIT"})
LOGIN_ONLY = frozenset({b"USER", b"PASS", b"APOP", b"AUTH", b"STLS"})


def dot_stuffed(data: bytes) -> bytes:
    """C{data} as a POP3 multi-line answer: each line ending CR LF, a leading dot doubled."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join(
        (b"." if line.startswith(b".") else b"") + line.removesuffix(b"\r") + b"\r\n"
        for line in lines
    )


def top_of(data: bytes, count: int) -> bytes:
    """The headers of a message, the blank line, and the first C{count} lines of its body."""
    head, blank, body = data.partition(b"\r\n\r\n")
    if not blank:
        return data
    lines = body.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    return head + blank + b"".join(line + b"\r\n" for line in lines[:count])


@implementer(IMailbox)
class Pop3Mailbox:
    """
    The messages one login reads, as they were when it logged in (RFC
    1939's maildrop): C{DELE} marks, C{RSET} unmarks, C{QUIT} removes.
    """

    def __init__(self, store: MailStore, login: str) -> None:
        self.store = store
        self.login = login
        self.messages: list[StoredMessage] = store.mailbox(login)
        self.deleted: set[int] = set()

    def _index(self, i: int) -> StoredMessage:
        if not 0 <= i < len(self.messages):
            raise ValueError(f"no message {i + 1}")
        return self.messages[i]

    def listMessages(self, i: int | None = None) -> Any:
        if i is None:
            return [0 if n in self.deleted else m.size for n, m in enumerate(self.messages)]
        return 0 if i in self.deleted else self._index(i).size

    def getMessage(self, i: int) -> IO[bytes]:
        return io.BytesIO(self.data(i))

    def data(self, i: int) -> bytes:
        """Message C{i} as stored (empty if it was dropped since)."""
        return self.store.data(self._index(i).id) or b""

    def getUidl(self, i: int) -> bytes:
        return self._index(i).uid.encode("ascii")

    def deleteMessage(self, i: int) -> None:
        self._index(i)
        self.deleted.add(i)

    def undeleteMessages(self) -> None:
        self.deleted.clear()

    def sync(self) -> None:
        self.store.remove(self.login, [self.messages[i].id for i in sorted(self.deleted)])
        self.deleted.clear()


class Pop3Session(MailSession, POP3):  # type: ignore[misc]
    """One POP3 client."""

    factory: Pop3Factory  # type: ignore[assignment]
    mbox: Pop3Mailbox | None

    def connectionMade(self) -> None:
        MailSession.connectionMade(self)
        hostname = self.factory.settings.hostname
        greeting = "netlab POP3 ready"
        if self.factory.accounts.apop:
            self.magic = f"<{secrets.token_hex(8)}@{hostname}>".encode("ascii")
            greeting += " " + self.magic.decode("ascii")
        self.successResponse(greeting)

    def successResponse(self, message: Any = "") -> None:
        self.send(pop3.successResponse(message))

    def failResponse(self, message: Any = b"") -> None:
        text = message if isinstance(message, bytes) else str(message).encode("utf-8")
        self.bad_input(text.decode("utf-8", "replace"))
        self.sendLine(b"-ERR " + text)

    def goodbye(self, text: str, reason: str) -> None:
        if self.close_reason is None and self.transport is not None:
            self.sendLine(b"-ERR " + text.encode("ascii", "replace"))
        self.close(reason)

    def lineReceived(self, line: bytes) -> None:
        POP3.lineReceived(self, line)

    def line_too_long(self, start: bytes) -> None:
        self.state = "COMMAND"
        self.failResponse(f"line too long: over max_line ({self.factory.settings.max_line})")

    def state_COMMAND(self, line: bytes) -> None:
        word, _, rest = line.partition(b" ")
        command = word.upper()
        arguments = [rest] if command == b"PASS" and rest else rest.split()
        if command not in ARGUMENTS:
            shown = command[:16].decode("ascii", "replace")
            self.failResponse(f"unknown command {shown!r}" if command else "empty command")
            return
        least, most = ARGUMENTS[command]
        name = command.decode("ascii")
        if len(arguments) < least or (most is not None and len(arguments) > most):
            self.failResponse(f"wrong number of arguments for {name}")
        elif self.mbox is None and command not in BEFORE_LOGIN:
            self.failResponse(f"log in first (USER and PASS, or APOP), then {name}")
        elif self.mbox is not None and command in LOGIN_ONLY:
            self.failResponse(f"already logged in: {name} is for before")
        else:
            getattr(self, f"do_{name}")(*arguments)

    def listCapabilities(self) -> list[bytes]:
        capabilities = [b"TOP", b"USER", b"UIDL", b"PIPELINING"]
        if self.factory.tls is not None and not self.tls:
            capabilities.append(b"STLS")
        return [*capabilities, b"IMPLEMENTATION netlab"]

    def do_STLS(self) -> None:
        if self.tls:
            self.failResponse("already using TLS")
        elif self.factory.tls is None:
            self.failResponse("STLS is not offered here (no tls_certificate)")
        else:
            self.successResponse("Begin TLS negotiation now")
            self.start_tls()

    # -- the mailbox ------------------------------------------------------------------

    def number(self, text: bytes) -> int | None:
        """The 0-based index of a message that is there, or None (the client is told)."""
        assert self.mbox is not None
        if not text.isdigit() or len(text) > 9:
            self.failResponse(f"not a message number: {text[:16].decode('ascii', 'replace')!r}")
            return None
        i = int(text) - 1
        if not 0 <= i < len(self.mbox.messages):
            self.failResponse(f"no message {int(text)}")
            return None
        if i in self.mbox.deleted:
            self.failResponse(f"message {i + 1} is deleted")
            return None
        return i

    def live(self) -> list[tuple[int, StoredMessage]]:
        """The messages not marked deleted, numbered from 1."""
        assert self.mbox is not None
        return [
            (n + 1, m) for n, m in enumerate(self.mbox.messages) if n not in self.mbox.deleted
        ]

    def do_STAT(self) -> None:
        live = self.live()
        self.successResponse(f"{len(live)} {sum(m.size for _, m in live)}")

    def listing(
        self, which: bytes | None, describe: Callable[[StoredMessage], object], heading: str
    ) -> None:
        """LIST or UIDL: one message's line, or every message not deleted."""
        if which is not None:
            i = self.number(which)
            if i is not None:
                assert self.mbox is not None
                self.successResponse(f"{i + 1} {describe(self.mbox.messages[i])}")
            return
        live = self.live()
        lines = "".join(f"{n} {describe(m)}\r\n" for n, m in live)
        self.successResponse(heading.format(count=len(live)))
        self.send(lines.encode("ascii") + b".\r\n")

    def do_LIST(self, which: bytes | None = None) -> None:
        self.listing(which, lambda m: m.size, "{count} messages")

    def do_UIDL(self, which: bytes | None = None) -> None:
        self.listing(which, lambda m: m.uid, "")

    def do_RETR(self, which: bytes) -> None:
        i = self.number(which)
        if i is not None:
            assert self.mbox is not None
            data = self.mbox.data(i)
            self.successResponse(f"{len(data)} octets")
            self.send(dot_stuffed(data) + b".\r\n")
            self.count("messages_read")

    def do_TOP(self, which: bytes, count: bytes) -> None:
        i = self.number(which)
        if i is None:
            return
        if not count.isdigit() or len(count) > 9:
            self.failResponse("the line count must be a number")
            return
        assert self.mbox is not None
        self.successResponse("top of message follows")
        self.send(dot_stuffed(top_of(self.mbox.data(i), int(count))) + b".\r\n")

    def do_DELE(self, which: bytes) -> None:
        i = self.number(which)
        if i is not None:
            assert self.mbox is not None
            self.mbox.deleteMessage(i)
            self.successResponse(f"message {i + 1} deleted")

    def do_QUIT(self) -> None:
        removed = 0
        if self.mbox is not None:
            removed = len(self.mbox.deleted)
            self.mbox.sync()
            if removed:
                self.count("messages_deleted")
                self.mail_event(f"{self.mbox.login} deleted {removed} messages", removed=removed)
        self.successResponse(f"netlab POP3 signing off ({removed} messages deleted)")
        self.close("quit")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        POP3.connectionLost(self, reason)
        MailSession.connectionLost(self, reason)

    def logged_in(self) -> bool:
        return self.mbox is not None


class Pop3Factory(MailFactory):
    """The POP3 service: its sessions read the store through the shared portal."""

    protocol = Pop3Session  # type: ignore[assignment]
    settings: Pop3Settings

    def __init__(
        self, settings: Pop3Settings, events: EventLog, clock: IReactorTime,
        portal: Any, accounts: MailAccounts,
    ) -> None:
        super().__init__(settings, events, clock, portal)
        self.accounts = accounts

    def refusal_line(self, reason: str) -> str:
        return f"-ERR {reason}"


__all__ = ["Pop3Factory", "Pop3Mailbox", "Pop3Session", "dot_stuffed", "top_of"]
