"""
The login service's telnet/netcat front-end: the identification question,
C{login: } and C{Password: }, registration, and the shell, one line at a
time.

Lines are handled strictly in order.  A client may type ahead (the course's
telnetlib example writes C{ls} and C{exit} right after its password, before
any prompt): while a password is checked in a thread, or a failure's delay
runs, the lines already read wait in a queue and the transport stops
reading, so nothing is lost, nothing is answered out of order, and a client
cannot pile up input meanwhile.

Passwords never reach the log: until the user is logged in, the debug
samples of what was received say only how many bytes came, and the line
that carries a new token is sent with a redacted sample.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from netlab.core.events import RECEIVED, SENT, EventLog
from netlab.core.fastwrite import write_now
from netlab.protocols.base import StreamFactory, StreamProtocol
from netlab.protocols.lines import IAC, LineSplitter, TelnetFilter
from netlab.protocols.login import prompts, shell
from netlab.protocols.login.auth import DUMMY_HASH, LoginService
from netlab.protocols.login.prompts import (
    BUSY,
    IDENTIFY,
    LOGIN,
    NEW_PASSWORD,
    PASSWORD,
    PROMPTS,
    RETYPE,
    SHELL,
)
from netlab.protocols.login.settings import USER_NAME, LoginSettings


class LoginLine(StreamProtocol):
    """One telnet, netcat or telnetlib client of the login service."""

    factory: LoginFactory

    def connectionMade(self) -> None:
        super().connectionMade()
        settings = self.factory.settings
        self.service = self.factory.service
        self.telnet = TelnetFilter()
        self.lines = LineSplitter(settings.max_line)
        self.queue: deque[tuple[bytes | None, bytes]] = deque()
        self.state = LOGIN
        self.gone = False
        self.speaks_telnet = False
        self.hidden = False
        self.after_cr = False
        self.user = ""
        self.new_password = ""
        self.failures = 0
        self.waiting: IDelayedCall | None = None
        self.deadline: IDelayedCall | None = self.callLater(
            settings.login_timeout, self.too_slow
        )
        self.greet()

    # -- input -------------------------------------------------------------------

    def received(self, data: bytes, shown: bytes | None = None) -> None:
        """Count C{data}; sample it only once logged in, when it holds no password."""
        if self.state == SHELL:
            super().received(data, shown)
            return
        self.bytes_in += len(data)
        self.counters.bytes_in += len(data)
        if self.events.debug_enabled:
            self.events.emit(
                RECEIVED, self.factory.name, self.peer, LogLevel.debug,
                nbytes=len(data), sample=" (before login: not shown)",
            )

    def dataReceived(self, data: bytes) -> None:
        self.received(data)
        self.resetTimeout()
        if IAC in data:
            self.speaks_telnet = True
        text = self.telnet.feed(data)
        # telnet in character mode may end a line with CR NUL, not CR LF.
        if self.after_cr and text.startswith(b"\0"):
            text = b"\n" + text[1:]
        self.after_cr = text.endswith(b"\r")
        self.queue.extend(self.lines.feed(text.replace(b"\r\0", b"\r\n")))
        self.drain()

    def end_of_input(self) -> None:
        line = self.lines.flush()
        if line is not None:
            self.queue.append((line, b""))
        self.drain()

    def drain(self) -> None:
        """Handle the queued lines until one has to wait (a check, a delay)."""
        while self.queue and self.state != BUSY and not self.closing:
            line, ending = self.queue.popleft()
            if line is None:
                limit = self.factory.settings.max_line
                self.reject("a line", f"longer than max_line ({limit})")
                self.send_line(f"Line longer than {limit} bytes, ignored.")
                self.reprompt()
            else:
                self.handle(line.decode("utf-8", "replace"), ending)

    @property
    def closing(self) -> bool:
        return self.gone or self.close_reason is not None

    def busy(self) -> None:
        """Wait for a check or a delay: stop reading, keep what was read."""
        self.state = BUSY
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def ready(self, state: str) -> None:
        """The wait is over: read again, and go on with the queued lines."""
        self.state = state
        if self.closing:
            return
        self.transport.resumeProducing()  # type: ignore[union-attr]
        if state in PROMPTS:
            self.send(PROMPTS[state].encode())
        elif state == SHELL:
            self.send(shell.prompt(self.user).encode())
        self.drain()

    def handle(self, raw: str, ending: bytes) -> None:
        text = prompts.clean(raw)
        if self.state == IDENTIFY:
            self.identified(text[:prompts.MAX_NAME])
        elif self.state == LOGIN:
            self.login(text, crlf=ending == b"\r\n")
        elif self.state == PASSWORD:
            self.reveal()
            self.password(raw.strip("\r\n"))
        elif self.state == NEW_PASSWORD:
            self.choose(raw.strip("\r\n"))
        elif self.state == RETYPE:
            self.reveal()
            self.retyped(raw.strip("\r\n"))
        elif self.state == SHELL:
            self.command(text)

    # -- identification ------------------------------------------------------------

    def greet(self) -> None:
        """A known address is greeted by name; in "ask" mode an unknown one is asked."""
        mode = self.factory.settings.identify
        name = self.service.store.name_of(self.peer_host) if mode != "off" else None
        if name is not None:
            self.send_line(f"Hello, {name}.")
            self.service.event("greeted", self.peer, name, LogLevel.debug)
        elif mode == "ask":
            self.state = IDENTIFY
            self.send(PROMPTS[IDENTIFY].encode())
            return
        self.prompt_login()

    def identified(self, name: str) -> None:
        if not name:
            self.send(PROMPTS[IDENTIFY].encode())
            return
        self.remember(name)
        self.send_line(f"Nice to meet you, {name}.")
        self.prompt_login()

    def remember(self, name: str) -> None:
        service = self.service
        service.store.remember(self.peer_host, name, self.clock_now())
        service.count("names")
        service.event("named", self.peer, name)

    # -- login ---------------------------------------------------------------------

    def prompt_login(self) -> None:
        self.state = LOGIN
        self.send(PROMPTS[LOGIN].encode())

    def reprompt(self) -> None:
        """After an error line: the prompt of the current stage again."""
        if self.state == SHELL:
            self.send(shell.prompt(self.user).encode())
        elif self.state in (NEW_PASSWORD, RETYPE):
            self.reveal()
            self.prompt_login()
        elif self.state in PROMPTS:
            self.send(PROMPTS[self.state].encode())

    def login(self, name: str, crlf: bool) -> None:
        """The answer to C{login: }."""
        if not name:
            self.prompt_login()
            return
        if not USER_NAME.match(name):
            self.send_line(prompts.BAD_NAME)
            self.prompt_login()
            return
        # telnet ends lines with CR LF; netcat and most scripts with LF alone.
        self.speaks_telnet = self.speaks_telnet or crlf
        service = self.service
        account = service.account(name)
        self.user = account[0] if account else name
        if account is None and service.can_register():
            self.state = NEW_PASSWORD
            self.hide()
            self.send(f"New user {name}. Choose a password: ".encode())
            return
        if account is None and service.settings.registration == "open":
            self.send_line("No more users can register here.")
            self.prompt_login()
            return
        self.state = PASSWORD
        self.hide()
        self.send(PROMPTS[PASSWORD].encode())

    def password(self, text: str) -> None:
        """The answer to C{Password: }: a token of the user's, or their password."""
        service, name = self.service, self.user
        wait = service.wait(self.peer_host, name)
        if wait:
            self.failed(f"Too many failed logins: try again in {wait} seconds.", locked=True)
            return
        account = service.account(name)
        left = service.token_left(name, text) if account else None
        if left is not None:
            self.logged_in("token", left)
            return
        self.busy()

        def checked(ok: bool) -> None:
            if self.closing:
                return
            if ok and account is not None:
                self.logged_in("password")
            else:
                self.failed("Login incorrect")

        # An unknown name costs a check too, so timing does not tell it apart.
        service.check_password(text, account[1] if account else DUMMY_HASH).addCallback(checked)

    def failed(self, message: str, locked: bool = False) -> None:
        """
        A wrong answer: count it (per connection, address and user), and
        after C{attempt_delay} say so and ask again, or close after the last.
        """
        service, settings = self.service, self.factory.settings
        self.failures += 1
        service.count("failures")
        service.event(
            "login failed", self.peer, self.user, LogLevel.warn,
            detail=f"attempt {self.failures} of {settings.max_attempts}"
            + (" (locked out)" if locked else ""),
        )
        if not locked and service.failed(self.peer_host, self.user):
            service.count("lockouts")
            service.event(
                "locked out", self.peer, self.user, LogLevel.warn,
                detail=f"too many failures for {settings.failure_window:g}s",
            )
        self.busy()
        self.waiting = self.callLater(settings.attempt_delay, self.after_failure, message)

    def after_failure(self, message: str) -> None:
        self.waiting = None
        self.send_line(message)
        if self.failures >= self.factory.settings.max_attempts:
            self.close("too many failed logins", "Too many failed logins: goodbye.")
            return
        self.ready(LOGIN)

    # -- registration ----------------------------------------------------------------

    def choose(self, text: str) -> None:
        least = self.factory.settings.min_password
        if len(text) < least:
            self.reveal()
            self.send_line(f"Use a password of at least {least} characters.")
            self.prompt_login()
            return
        self.new_password = text
        self.state = RETYPE
        # The Enter of a hidden answer was not echoed: end its line here.
        self.send((b"\r\n" if self.hidden else b"") + PROMPTS[RETYPE].encode())

    def retyped(self, text: str) -> None:
        chosen, self.new_password = self.new_password, ""
        if text != chosen:
            self.send_line("Passwords do not match.")
            self.prompt_login()
            return
        self.busy()

        def hashed(encoded: str) -> None:
            if self.closing:
                return
            service = self.service
            if service.account(self.user) is not None:  # taken while we hashed
                self.send_line(f"The name {self.user} was just taken.")
                self.ready(LOGIN)
                return
            service.register(self.user, encoded)
            service.count("registrations")
            service.event("registered", self.peer, self.user)
            self.logged_in("registration")

        self.service.new_hash(chosen).addCallback(hashed)

    # -- logged in ---------------------------------------------------------------------

    def logged_in(self, how: str, token_left: float | None = None) -> None:
        """Past the login: identification, a token, then the shell prompt."""
        service = self.service
        self._cancel_deadline()
        service.count("logins")
        service.count(f"logins_{how}")
        service.event("logged in", self.peer, self.user, detail=f"with a {how}")
        if self.factory.settings.identify == "login":
            known = service.store.name_of(self.peer_host)
            if known is None:
                self.send_line(f"Nice to meet you, {self.user}.")
            if known != self.user:
                self.remember(self.user)
        if token_left is not None:
            self.send_line(f"Token accepted (valid {token_left / 60:.0f} more min).")
        else:
            token = service.issue_token(self.user)
            if token is not None:
                minutes = self.factory.settings.token_ttl / 60
                self.send_secret(
                    f"Your token: {token} (valid {minutes:g} min)\r\n".encode(),
                    "Your token: (not shown)",
                )
        self.send_line(f"Welcome to netlab, {self.user}. Type help for the commands.")
        self.ready(SHELL)

    def command(self, text: str) -> None:
        reply = shell.run(text, self.user, self.clock_now(), self.service.zone)
        for line in reply.lines:
            self.send_line(line)
        if reply.done:
            self.service.event("logged out", self.peer, self.user, LogLevel.debug)
            self.close("logout")
            return
        self.send(shell.prompt(self.user).encode())

    # -- telnet echo ---------------------------------------------------------------------

    def hide(self) -> None:
        """Ask a telnet client not to echo what is typed next (the password)."""
        mode = self.factory.settings.hide_password
        if mode == "always" or (mode == "telnet" and self.speaks_telnet):
            self.hidden = True
            self.send(prompts.WILL_ECHO)

    def reveal(self) -> None:
        """Echo is the client's again; end the line its Enter did not show."""
        if self.hidden:
            self.hidden = False
            self.send(prompts.WONT_ECHO + b"\r\n")

    # -- output and time ---------------------------------------------------------------------

    def send_secret(self, data: bytes, shown: str) -> None:
        """Like C{send}, but the debug sample is C{shown}, never C{data}."""
        self.bytes_out += len(data)
        self.counters.bytes_out += len(data)
        write_now(self.transport, data)
        if self.events.debug_enabled:
            self.events.emit(
                SENT, self.factory.name, self.peer, LogLevel.debug,
                nbytes=len(data), sample=f": {shown}",
            )

    def clock_now(self) -> float:
        return self.factory.clock.seconds()

    def too_slow(self) -> None:
        """The login deadline passed before a login."""
        self.deadline = None
        timeout = self.factory.settings.login_timeout
        self.service.event("login timeout", self.peer, self.user or None, LogLevel.debug)
        self.close("login timeout", f"Login timed out after {timeout:g} seconds.")

    def _cancel_deadline(self) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.deadline = None

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.gone = True
        self._cancel_deadline()
        if self.waiting is not None and self.waiting.active():
            self.waiting.cancel()
        self.waiting = None
        super().connectionLost(reason)


class LoginFactory(StreamFactory):
    """The login service's listener factory; its connections share one L{LoginService}."""

    protocol = LoginLine
    settings: LoginSettings

    def __init__(
        self, settings: LoginSettings, events: EventLog, clock: IReactorTime,
        service: LoginService,
    ) -> None:
        super().__init__(settings, events, clock)
        self.service = service
