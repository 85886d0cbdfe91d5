"""
The mail services in memory for unit tests: the SMTP and POP3 factories
wired as the [smtp] kind wires them, on a task.Clock, with clients over
tests/memory.py's MemoryTCP; the store on ":memory:" (its writer thread
reports back through the real reactor).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from memory import MemoryTCP, serve
from netlab.core.events import EventLog
from netlab.core.passwords import verify_password
from netlab.core.settings import LogSettings
from netlab.protocols.mail.accounts import MailAccounts, MailRealm, mail_portal
from netlab.protocols.mail.pop3 import Pop3Factory, Pop3Mailbox
from netlab.protocols.mail.settings import Pop3Settings, SmtpSettings
from netlab.protocols.mail.smtp import MailDelivery, SmtpFactory, quotas
from netlab.protocols.mail.store import Dropped, MailStore

SMTP_LISTEN = ("tcp:0:interface=127.0.0.1",)


def verify_now(password: str, encoded: str) -> Deferred[bool]:
    """Check a password at once, in the test's thread."""
    return succeed(verify_password(password, encoded))


class MailLab:
    """An SMTP and a POP3 factory sharing a store and a portal, on C{clock}."""

    def __init__(
        self,
        clock: Clock | None = None,
        verify: Callable[[str, str], Deferred[bool]] = verify_now,
        pop3: dict[str, Any] | None = None,
        **smtp: Any,
    ) -> None:
        self.clock = clock if clock is not None else Clock()
        self.seen: list[dict[str, Any]] = []
        self.events = EventLog(LogSettings(), observer=self.seen.append)
        self.settings = SmtpSettings(name="smtp", enabled=True, listen=SMTP_LISTEN,
                                     database=":memory:", **smtp)
        self.dropped: list[Dropped] = []
        self.store = MailStore(":memory:", quotas(self.settings), reactor,
                               on_drop=self.on_drop)
        self.store.open()
        self.accounts = MailAccounts(self.settings, verify)
        portal = mail_portal(self.accounts, MailRealm(MailDelivery, lambda login: Pop3Mailbox(
            self.store, login)))
        self.smtp = SmtpFactory(self.settings, self.events, self.clock, portal, self.store)
        self.pop3 = Pop3Factory(
            Pop3Settings(name="pop3", enabled=True, listen=SMTP_LISTEN, **(pop3 or {})),
            self.events, self.clock, portal, self.accounts,
        )

    def on_drop(self, dropped: Dropped) -> None:
        self.dropped.append(dropped)
        self.smtp.dropped(dropped)

    def texts(self, kind: str | None = None) -> list[str]:
        """The text of every event logged (of C{kind}), in order."""
        return [e["log_text"] for e in self.seen
                if "log_text" in e and (kind is None or e["netlab_event"] == kind)]

    def close(self) -> Deferred[None]:
        return self.store.close()


def make_labs() -> Iterator[Callable[..., MailLab]]:
    """
    A fixture's body (C{labs = pytest.fixture(make_labs)}): makes labs with
    the test's C{[smtp]} settings, and closes their stores after the test.
    """
    made: list[MailLab] = []

    def make(**settings: Any) -> MailLab:
        made.append(MailLab(**settings))
        return made[-1]

    yield make
    for lab in made:
        pytest_twisted.blockon(lab.close())


class Client:
    """A client of one factory over an in-memory connection."""

    def __init__(self, factory: Any, clock: Clock, host: str = "127.0.0.1",
                 port: int = 40000) -> None:
        self.protocol, self.transport = serve(factory, clock, host, port)
        self.clock = clock
        self.greeting = self.read()

    def read(self) -> bytes:
        return self.transport.peer_read()

    def say(self, data: bytes | str) -> bytes:
        """Send C{data} (str: one line, CR LF added) and read what came back."""
        if isinstance(data, str):
            data = data.encode() + b"\r\n"
        self.transport.peer_write(data)
        return self.read()

    @property
    def closed(self) -> bool:
        transport: MemoryTCP = self.transport
        return bool(transport.disconnecting or transport.disconnected)


def plain(user: str, password: str) -> str:
    """An AUTH PLAIN initial response."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def send_mail(client: Client, sender: str, recipients: list[str], body: str) -> bytes:
    """One whole transaction, pipelined; the replies."""
    lines = [f"MAIL FROM:<{sender}>", *(f"RCPT TO:<{r}>" for r in recipients), "DATA"]
    replies = client.say("".join(line + "\r\n" for line in lines).encode())
    text = body.removesuffix("\n").replace("\n", "\r\n")
    return replies + client.say(text.encode() + b"\r\n.\r\n")
