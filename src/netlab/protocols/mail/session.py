"""
What an SMTP and a POP3 session share, around Twisted's protocols: lines
read the way netlab reads them, logins that hold the session's later input
until they are checked, error and timeout limits, and netlab's accounting.

Twisted's C{LineOnlyReceiver} keeps an over-long line in its buffer (a
client can grow it without end) and splits only on CR LF; here a line ends
at LF, with or without CR (C{nc} sends LF), and one longer than
C{max_line} is answered once and dropped as it comes, so a session never
buffers more than a line and a read.  Commands are handled strictly in
order: while a password is checked (a thread, for a scrypt hash), what the
client sent after it waits, so pipelined commands never overtake their
login.  After C{STARTTLS} or C{STLS}, whatever came in the clear behind the
command is dropped, not read as if it had come over TLS.
"""

from __future__ import annotations

from typing import Any

from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTime, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from netlab.core.events import LOGIN, MAIL, EventLog
from netlab.core.settings import StreamSettings
from netlab.protocols.base import (
    SHUTDOWN_GRACE,
    RefusedProtocol,
    StreamFactory,
    StreamProtocol,
)
from netlab.protocols.mail.tls import load_tls

# What each kind of credentials is called in the log.
MECHANISMS = {
    "PLAINCredentials": "AUTH PLAIN",
    "LOGINCredentials": "AUTH LOGIN",
    "APOPCredentials": "APOP",
    "UsernamePassword": "USER/PASS",
}


class MailRefused(RefusedProtocol):
    """A client past a cap is told in its protocol's words (C{421 ...}, C{-ERR ...})."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.reason.encode("utf-8") + b"\r\n")
        self.transport.loseConnection()


class WatchedPortal:
    """The service's portal, telling the session of each login it starts."""

    def __init__(self, portal: Portal, session: MailSession) -> None:
        self.portal = portal
        self.session = session

    def login(self, credentials: Any, mind: Any, *interfaces: Any) -> Deferred[Any]:
        d = self.portal.login(credentials, mind, *interfaces)
        self.session.login_started(credentials, d)
        return d


class MailFactory(StreamFactory):
    """What both mail factories share: the portal, the TLS context, refusals."""

    settings: Any  # SmtpSettings or Pop3Settings

    def __init__(
        self, settings: Any, events: EventLog, clock: IReactorTime, portal: Portal
    ) -> None:
        super().__init__(settings, events, clock)
        self.portal = portal
        self.tls = load_tls(settings.tls_certificate, settings.tls_key)

    def configure(self, settings: StreamSettings) -> None:
        before = self.settings
        super().configure(settings)
        files = ("tls_certificate", "tls_key")
        if any(getattr(before, f) != getattr(settings, f) for f in files):
            self.tls = load_tls(getattr(settings, "tls_certificate"), getattr(settings, "tls_key"))  # noqa: B009

    def refusal_line(self, reason: str) -> str:
        """What a refused client is told, in the protocol's words."""
        raise NotImplementedError

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        protocol = super().buildProtocol(addr)
        if isinstance(protocol, RefusedProtocol):
            return MailRefused(self.refusal_line(protocol.reason))
        return protocol

    def count(self, what: str) -> None:
        """Bump one of the service's own counters (messages, logins, refusals...)."""
        extra = self.counters.extra
        extra[what] = extra.get(what, 0) + 1


class MailSession(StreamProtocol):
    """
    Base of the SMTP and POP3 sessions (mixed in before Twisted's protocol).

    @ivar errors: refused commands so far; past C{max_errors} the session ends.
    @ivar tls: whether the session is encrypted (implicit TLS, or started).
    """

    factory: MailFactory
    self_producer = False
    has_lines = False
    portal: Any

    def connectionMade(self) -> None:
        StreamProtocol.connectionMade(self)
        self.pending: Deferred[Any] | None = None
        self.pending_credentials: Any = None
        self.holding = False
        self.draining = False
        self.buffer = b""
        self.overlong = False
        self.drop_rest = False
        self.errors = 0
        self.announced = False
        self.tls = ISSLTransport.providedBy(self.transport)
        self.portal = WatchedPortal(self.factory.portal, self)

    # -- lines ---------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.received(data)
        self.buffer += data
        self.drain()

    def drain(self) -> None:
        """Handle the complete lines received, in order, until one must wait."""
        self.draining = True
        try:
            self.handle_lines()
        finally:
            self.draining = False

    def handle_lines(self) -> None:
        limit = self.factory.settings.max_line
        while not self.holding and self.close_reason is None:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > limit:
                    self.overlong, self.buffer = True, b""
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 1:]
            if line.endswith(b"\r"):
                line = line[:-1]
            if self.overlong or len(line) > limit:
                self.overlong = False
                self.line_too_long(line[:limit])
            else:
                self.lineReceived(line)
            if self.drop_rest:
                self.drop_rest, self.buffer = False, b""
            self.hold_for_login()
            if self.errors > self.factory.settings.max_errors:
                self.count("closed_for_errors")
                self.goodbye(f"too many errors ({self.errors}); closing", "too many errors")

    def lineReceived(self, line: bytes) -> None:
        """One complete line, for Twisted's protocol."""
        raise NotImplementedError

    def line_too_long(self, start: bytes) -> None:
        """A line over C{max_line} came; C{start} is its beginning."""
        raise NotImplementedError

    def sendLine(self, line: bytes) -> None:
        self.send(line + b"\r\n")

    def start_tls(self) -> None:
        """Switch to TLS now; what came behind the command in the clear is dropped."""
        assert self.factory.tls is not None
        self.transport.startTLS(self.factory.tls)  # type: ignore[union-attr]
        self.tls = True
        self.drop_rest = True

    # -- logins ----------------------------------------------------------------------

    def login_started(self, credentials: Any, d: Deferred[Any]) -> None:
        """The protocol asked the portal: hold later input until it answers."""
        self.pending_credentials = credentials
        self.pending = d
        self.announced = False

    def hold_for_login(self) -> None:
        d, self.pending = self.pending, None
        if d is None:
            return
        # Added after the protocol's own callbacks: by the time this runs,
        # the client has been answered.
        self.holding = True
        d.addBoth(self.login_done)

    def login_done(self, result: object) -> None:
        credentials, self.pending_credentials = self.pending_credentials, None
        name = credentials.username
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        mechanism = MECHANISMS.get(type(credentials).__name__, "login")
        if self.logged_in():
            self.factory.count("logins")
            self.events.emit(LOGIN, self.factory.name, self.peer, user=name[:64],
                             what=f"logged in ({mechanism})")
        else:
            self.factory.count("login_failures")
            self.events.emit(LOGIN, self.factory.name, self.peer, LogLevel.warn,
                             user=name[:64], what=f"failed to log in ({mechanism})")
        self.holding = False
        if not self.draining and self.connected:
            self.drain()
        if isinstance(result, Failure):
            result.trap(Exception)

    def logged_in(self) -> bool:
        """Whether the session is logged in now."""
        raise NotImplementedError

    # -- limits ------------------------------------------------------------------------

    def count(self, what: str) -> None:
        self.factory.count(what)

    def refused(self, limit: str, what: str, reason: str) -> None:
        """
        A limit refused something: one counted, logged event (the refusal
        the client is then sent is not logged again).
        """
        self.count(f"refused_{limit}")
        if what == "a message":
            # One total beside the per-limit counts, for the dashboard's card.
            self.count("messages_refused")
        self.reject(what, reason)
        self.announced = True

    def bad_input(self, answer: str) -> None:
        """
        The client is being told no: an error toward C{max_errors}, and one
        logged event, unless a limit or a login already narrates it.
        """
        self.errors += 1
        if not self.announced and self.pending_credentials is None:
            self.reject("a command", answer)
        self.announced = False

    def goodbye(self, text: str, reason: str) -> None:
        """Tell the client why, in the protocol's words, and close."""
        raise NotImplementedError

    def timeoutConnection(self) -> None:
        timeout = self.factory.settings.idle_timeout
        self.goodbye(f"no complete command in {timeout:g} seconds; closing", "command timeout")
        # A client that stopped reading never lets the goodbye drain.
        self._linger = self.callLater(SHUTDOWN_GRACE, self.abort)

    def shutdown(self, reason: str) -> None:
        self.goodbye("netlab is shutting down", reason)

    def mail_event(self, what: str, level: LogLevel = LogLevel.info, **fields: Any) -> None:
        """One mail event of this session (a message stored, a quota drop)."""
        self.events.emit(MAIL, self.factory.name, self.peer, level, what=what, **fields)


__all__ = ["MailFactory", "MailRefused", "MailSession", "WatchedPortal"]
