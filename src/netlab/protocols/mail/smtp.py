"""
The mail sink, C{[smtp]}: Twisted's L{ESMTP} with netlab's limits, storing
every accepted message and relaying none.

Twisted parses the commands and addresses, runs C{AUTH} through the cred
portal and switches to TLS; this module adds the extensions a client
expects (C{SIZE}, C{8BITMIME}, C{PIPELINING}), the limits (message size,
recipients, messages per connection and per minute, the command and data
deadlines, line length, errors), and the delivery: every recipient is
accepted (it is a sink) and the message is stored once for all of them.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import LogLevel
from twisted.mail import smtp
from twisted.mail.imap4 import IllegalClientResponse, PLAINCredentials
from twisted.mail.smtp import (
    ESMTP,
    IMessage,
    IMessageDelivery,
    LOGINCredentials,
    SMTPServerError,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from netlab.core.events import MAIL, EventLog
from netlab.core.limits import RateLimiter
from netlab.protocols.mail.headers import printable, received_header, subject_of
from netlab.protocols.mail.session import MailFactory, MailSession
from netlab.protocols.mail.settings import SmtpSettings
from netlab.protocols.mail.store import Dropped, Envelope, MailStore, Quotas

# Rate limits remember at most this many client hosts.
MAX_SOURCES = 65_536

# MAIL FROM parameters understood (RFC 1870 SIZE, RFC 6152 BODY, RFC 4954 AUTH).
MAIL_PARAMETER = re.compile(rb"^(?P<key>[A-Za-z0-9-]+)(=(?P<value>\S*))?$")
BODY_TYPES = (b"7BIT", b"8BITMIME")


def quotas(settings: SmtpSettings) -> Quotas:
    """The store's quotas from C{[smtp]}."""
    return Quotas(settings.mailbox_messages, settings.mailbox_bytes, settings.max_stored_bytes)


@implementer(IMessageDelivery)
class MailDelivery:
    """
    The delivery of one logged-in name (or of nobody, C{""}): every sender
    and recipient is welcome; the session applies the limits, and netlab
    writes its own C{Received:} header when it stores the message.
    """

    def __init__(self, user: str) -> None:
        self.user = user

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> None:
        return None

    def validateFrom(self, helo: Any, origin: smtp.Address) -> smtp.Address:
        return origin

    def validateTo(self, user: smtp.User) -> Any:
        session: SmtpSession = user.protocol
        return session.message_for_recipient


@implementer(IMessage)
class MailMessage:
    """One message being received: its lines, up to the size cap."""

    def __init__(self, session: SmtpSession, envelope: Envelope) -> None:
        self.session = session
        self.envelope = envelope
        self.lines: list[bytes] = []
        self.size = 0
        self.failure: SMTPServerError | None = None

    def lineReceived(self, line: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        self.size += len(line) + 2
        limit = self.session.factory.settings.max_message_size
        if self.size > limit:
            self.fail(552, f"5.3.4 Message too big: over max_message_size ({limit} bytes)",
                      "size", "larger than max_message_size")
            raise self.failure  # type: ignore[misc]
        self.lines.append(line)

    def fail(self, code: int, text: str, limit: str, reason: str) -> None:
        """Refuse the message at its end with C{code}; the rest of it is read and dropped."""
        self.lines = []
        self.failure = SMTPServerError(code, text.encode("ascii"))
        self.session.refused(limit, "a message", reason)

    def eomReceived(self) -> Deferred[bytes]:
        return self.session.store(self)

    def connectionLost(self) -> None:
        self.lines = []


@implementer(IMessage)
class ExtraRecipient:
    """
    Twisted makes one message per recipient; netlab stores one message for
    all of them, so every recipient after the first gets this, which keeps
    nothing.
    """

    def lineReceived(self, line: bytes) -> None:
        pass

    def eomReceived(self) -> Deferred[None]:
        return succeed(None)

    def connectionLost(self) -> None:
        pass


class SmtpSession(MailSession, ESMTP):  # type: ignore[misc]
    """One SMTP client."""

    factory: SmtpFactory
    noisy = False  # the EventLog narrates

    def connectionMade(self) -> None:
        settings = self.factory.settings
        MailSession.connectionMade(self)
        self.host = settings.hostname.encode("ascii")
        self.challengers = {b"PLAIN": PLAINCredentials, b"LOGIN": LOGINCredentials}
        self.ctx = self.factory.tls
        self.timeout = settings.idle_timeout  # type: ignore[assignment]
        self.delivery = MailDelivery("")
        self.sender: smtp.Address | None = None
        self.helo_name = ""
        self.recipients: list[str] = []
        self.declared_size = 0
        self.message: MailMessage | None = None
        self.messages = 0
        self.junk = 0
        self.data_deadline: IDelayedCall | None = None
        ESMTP.connectionMade(self)
        if self.tls:
            self.startedTLS = True

    def greeting(self) -> bytes:
        return self.host + b" ESMTP netlab: messages are stored here and never relayed"

    def extensions(self) -> dict[bytes, list[bytes] | None]:
        extensions: dict[bytes, list[bytes] | None] = ESMTP.extensions(self)
        extensions[b"SIZE"] = [str(self.factory.settings.max_message_size).encode()]
        extensions[b"8BITMIME"] = None
        extensions[b"PIPELINING"] = None
        return extensions

    def sendCode(self, code: int, message: bytes = b"") -> None:
        if code >= 500:
            first = message.splitlines()[0] if message else b""
            self.bad_input(f"{code} {first.decode('ascii', 'replace')}")
        else:
            self.announced = False
        ESMTP.sendCode(self, code, message)

    def goodbye(self, text: str, reason: str) -> None:
        if self.close_reason is None and self.transport is not None:
            ESMTP.sendCode(self, 421, self.host + b" " + text.encode("ascii", "replace"))
        self.close(reason)

    # -- lines -------------------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        ESMTP.lineReceived(self, line)

    def line_too_long(self, start: bytes) -> None:
        limit = self.factory.settings.max_line
        if self.mode == smtp.DATA and self.message is not None:
            # The message is refused at its end; the line is read (and dropped).
            if self.message.failure is None:
                self.message.fail(500, f"5.5.2 Line too long: over max_line ({limit})",
                                  "line", "a line longer than max_line")
            self.state_DATA(start)
            return
        self.mode = smtp.COMMAND
        self.sendCode(500, f"5.5.2 Line too long: over max_line ({limit})".encode())

    # -- commands ------------------------------------------------------------------------

    def junk_command(self) -> bool:
        """Count a command that moves no mail; past the limit, the session ends."""
        self.junk += 1
        limit = self.factory.settings.max_junk_commands
        if self.junk <= limit:
            return False
        self.refused("junk", "a command", f"more than max_junk_commands ({limit})")
        self.goodbye(f"too many commands that send nothing (limit {limit})", "too many commands")
        return True

    def do_HELO(self, rest: bytes) -> None:
        if not self.junk_command():
            ESMTP.do_HELO(self, rest)

    def do_EHLO(self, rest: bytes) -> None:
        if not self.junk_command():
            ESMTP.do_EHLO(self, rest)

    def do_NOOP(self, rest: bytes) -> None:
        if not self.junk_command():
            self.sendCode(250, b"2.0.0 OK")

    def do_RSET(self, rest: bytes) -> None:
        if not self.junk_command():
            ESMTP.do_RSET(self, rest)

    def do_VRFY(self, rest: bytes) -> None:
        if not self.junk_command():
            self.sendCode(252, b"2.5.2 netlab does not verify addresses; send the message, "
                               b"it will be stored")

    def do_EXPN(self, rest: bytes) -> None:
        if not self.junk_command():
            self.sendCode(502, b"5.5.1 EXPN is not offered here")

    def do_HELP(self, rest: bytes) -> None:
        if not self.junk_command():
            self.sendCode(214, b"netlab SMTP: EHLO, AUTH, STARTTLS, MAIL, RCPT, DATA, RSET, "
                               b"NOOP, QUIT")

    def do_QUIT(self, rest: bytes) -> None:
        ESMTP.sendCode(self, 221, b"2.0.0 Bye")
        self.close("quit")

    def ext_STARTTLS(self, rest: bytes) -> None:
        if self.startedTLS or not self.canStartTLS:
            ESMTP.ext_STARTTLS(self, rest)
            return
        ESMTP.sendCode(self, 220, b"2.0.0 Ready to start TLS")
        self.start_tls()
        self.startedTLS = True
        # RFC 3207: what was said in the clear is forgotten.
        self.authenticated = False
        self.delivery = MailDelivery("")

    def state_AUTH(self, response: bytes | None) -> None:
        try:
            ESMTP.state_AUTH(self, response)
        except IllegalClientResponse:
            self.mode = smtp.COMMAND
            self.challenger = None
            self.sendCode(501, b"5.5.2 Malformed AUTH response")

    def do_MAIL(self, rest: bytes) -> None:
        match = self.mail_re.match(rest)
        if match is not None and not self.parameters(match.group("opts") or b""):
            return
        ESMTP.do_MAIL(self, rest)

    def parameters(self, options: bytes) -> bool:
        """Take C{MAIL FROM}'s parameters (C{SIZE=}, C{BODY=}); False if one was refused."""
        self.declared_size = 0
        for word in options.split():
            match = MAIL_PARAMETER.match(word)
            key = match.group("key").upper() if match else b""
            value = (match.group("value") or b"") if match else b""
            if key == b"SIZE" and value.isdigit() and len(value) <= 20:
                self.declared_size = int(value)
            elif (key == b"BODY" and value.upper() in BODY_TYPES) or key == b"AUTH":
                continue
            else:
                self.sendCode(555, b"5.5.4 MAIL FROM parameter not recognized: "
                              + word[:40].decode("ascii", "replace").encode("ascii", "replace"))
                return False
        return True

    def validateFrom(self, helo: Any, origin: smtp.Address) -> Any:
        settings = self.factory.settings
        if settings.require_auth and not self.authenticated:
            raise SMTPServerError(530, "5.7.0 Authentication required: AUTH first")
        if not printable(str(origin)):
            raise SMTPServerError(553, "5.1.7 The sender address holds control characters")
        if self.declared_size > settings.max_message_size:
            self.refused("size", "a message", "declared SIZE larger than max_message_size")
            raise SMTPServerError(
                552, f"5.3.4 Message too big: over max_message_size "
                     f"({settings.max_message_size} bytes)",
            )
        if self.messages >= settings.max_messages_per_connection:
            limit = settings.max_messages_per_connection
            self.refused("messages_per_connection", "a message",
                         f"more than max_messages_per_connection ({limit})")
            raise SMTPServerError(
                452, f"4.5.3 Too many messages on one connection (limit {limit}): "
                     "QUIT and connect again",
            )
        if not self.factory.rates.allow(self.peer_host):
            limit = settings.messages_per_minute
            self.refused("rate", "a message", f"more than messages_per_minute ({limit})")
            raise SMTPServerError(
                450, f"4.7.1 Too many messages from {self.peer_host} "
                     f"(limit {limit} a minute): try again later",
            )
        self.recipients = []
        self.sender = origin
        self.helo_name = (helo[0] or b"").decode("ascii", "replace") if helo else ""
        return ESMTP.validateFrom(self, helo, origin)

    def validateTo(self, user: smtp.User) -> Any:
        address = str(user.dest)
        limit = self.factory.settings.max_recipients
        if not printable(address):
            raise SMTPServerError(553, "5.1.3 The recipient address holds control characters")
        if address.casefold() in (r.casefold() for r in self.recipients):
            return ExtraRecipient  # stored once, however often it is named
        if len(self.recipients) >= limit:
            self.refused("recipients", "a recipient", f"more than max_recipients ({limit})")
            raise SMTPServerError(452, f"4.5.3 Too many recipients (limit {limit})")
        accept = ESMTP.validateTo(self, user)
        self.recipients.append(address)
        return accept

    @property
    def user(self) -> str:
        """Who logged in ("" if nobody did): the name the portal's delivery carries."""
        return str(getattr(self.delivery, "user", ""))

    # -- data ------------------------------------------------------------------------------

    def message_for_recipient(self) -> IMessage:
        """What Twisted writes the message to, for each recipient: the first gets it all."""
        if self.message is not None:
            return ExtraRecipient()
        sender = str(self.sender) if self.sender is not None else ""
        envelope = Envelope(
            sender=sender, recipients=tuple(self.recipients), user=self.user,
            client=self.peer, helo=self.helo_name, tls=self.tls,
        )
        self.message = MailMessage(self, envelope)
        return self.message

    def do_DATA(self, rest: bytes) -> None:
        self.message = None
        ESMTP.do_DATA(self, rest)
        if self.mode == smtp.DATA:
            self.setTimeout(None)
            self.data_deadline = self.callLater(
                self.factory.settings.data_timeout, self.data_too_slow
            )

    def state_DATA(self, line: bytes) -> None:
        ESMTP.dataLineReceived(self, line)
        if self.mode != smtp.DATA:
            self.data_done()

    def data_done(self) -> None:
        if self.data_deadline is not None and self.data_deadline.active():
            self.data_deadline.cancel()
        self.data_deadline = None
        self.message = None
        if self.close_reason is None:
            self.setTimeout(self.factory.settings.idle_timeout)

    def data_too_slow(self) -> None:
        self.data_deadline = None
        timeout = self.factory.settings.data_timeout
        self.refused("data_timeout", "a message",
                     f"not complete within data_timeout ({timeout:g} s)")
        self.goodbye(f"the message did not come within {timeout:g} seconds; closing",
                     "data timeout")

    def store(self, message: MailMessage) -> Deferred[bytes]:
        """Keep a complete message, stamped with netlab's C{Received:} header."""
        factory = self.factory
        now = factory.clock.seconds()
        uid = secrets.token_hex(8)
        protocol = "ESMTP" + ("S" if self.tls else "") + ("A" if self.user else "")
        header = received_header(
            message.envelope.helo, self.peer_host, factory.settings.hostname, protocol, uid, now
        )
        body = b"".join(line + b"\r\n" for line in message.lines)
        stored = factory.store.deliver(uid, message.envelope, header + body, now, subject_of(body))
        message.lines = []
        self.messages += 1
        factory.count("messages_accepted")
        factory.counters.extra["recipients_accepted"] = (
            factory.counters.extra.get("recipients_accepted", 0) + len(message.envelope.recipients)
        )
        self.mail_event(
            f"accepted message {uid} ({stored.size} bytes) for "
            f"{len(message.envelope.recipients)} recipients",
            uid=uid, size=stored.size, recipients=len(message.envelope.recipients),
            user=self.user or "-",
        )
        return succeed(uid.encode("ascii"))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.data_deadline is not None and self.data_deadline.active():
            self.data_deadline.cancel()
        ESMTP.connectionLost(self, reason)
        MailSession.connectionLost(self, reason)

    def logged_in(self) -> bool:
        return bool(self.authenticated)


class SmtpFactory(MailFactory):
    """The SMTP service: its sessions share the store, the portal and the rate limit."""

    protocol = SmtpSession  # type: ignore[assignment]
    settings: SmtpSettings

    def __init__(
        self, settings: SmtpSettings, events: EventLog, clock: IReactorTime,
        portal: Any, store: MailStore,
    ) -> None:
        super().__init__(settings, events, clock, portal)
        self.store = store
        self.rates = RateLimiter(
            settings.messages_per_minute / 60, settings.messages_per_minute, MAX_SOURCES,
            clock.seconds,
        )

    def configure(self, settings: SmtpSettings) -> None:  # type: ignore[override]
        super().configure(settings)
        self.rates.rate = settings.messages_per_minute / 60
        self.rates.burst = float(settings.messages_per_minute)
        self.store.configure(quotas(settings))

    def refusal_line(self, reason: str) -> str:
        return f"421 {self.settings.hostname} {reason}"

    def stored_counts(self) -> None:
        """
        What the store holds now, as gauges among the service's counters,
        so the dashboard and C{/metrics} show them with the rest.
        """
        messages, size, mailboxes = self.store.counts()
        extra = self.counters.extra
        extra["messages_stored"], extra["bytes_stored"], extra["mailboxes"] = (
            messages, size, mailboxes,
        )

    def dropped(self, dropped: Dropped) -> None:
        """A quota took a message out of a mailbox: counted and logged."""
        self.count("quota_dropped")
        self.events.emit(
            MAIL, self.name, None, LogLevel.warn,
            what=f"mailbox {dropped.mailbox} is {dropped.why}: dropped its oldest message "
                 f"{dropped.message.uid} ({dropped.message.size} bytes)",
        )


__all__ = ["MailDelivery", "MailMessage", "SmtpFactory", "SmtpSession", "quotas"]
