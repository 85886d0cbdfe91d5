"""
The chat's telnet/netcat front-end: bytes to sanitised lines for the
L{ChatHub}, and the hub's lines back out with C{\\r\\n}.

Lines to a user are gathered while the reactor handles one batch of reads
and written as one piece after it (L{ChatFactory.send_soon}): with many
senders, a room member gets one C{send} system call per reactor pass, not
one per line, and nobody waits longer than that pass.

Output is watched through the producer interface: while the transport says
its buffer is full, every byte written on top is counted, and a client whose
unsent output passes C{max_output} is dropped, so one reader that stopped
reading cannot hold the server's memory or slow everyone else.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime, ITCPTransport
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from netlab.core.events import EventLog
from netlab.core.settings import payload_level
from netlab.protocols.base import StreamFactory, StreamProtocol
from netlab.protocols.chat.commands import PASSWORD, loggable
from netlab.protocols.chat.hub import (
    CHATTING,
    CHECKING,
    CLOSED,
    CLOSING,
    ChatHub,
    Session,
    idle_warning,
)
from netlab.protocols.chat.hub import (
    PASSWORD as ANSWERING_PASSWORD,
)
from netlab.protocols.chat.settings import ChatSettings
from netlab.protocols.chat.text import PrivateText, decode
from netlab.protocols.lines import LineSplitter, TelnetFilter

_last_text: str | None = None
_last_line = b""
# Whatever a session in these states types is a password, or may be one.
SECRET_STATES = frozenset({ANSWERING_PASSWORD, CHECKING, CLOSING, CLOSED})


@implementer(IPushProducer)
class ChatLine(StreamProtocol):
    """One telnet or netcat user of the chat."""

    factory: ChatFactory
    # Input is paced by flood control; the producer slot watches output.
    self_producer = False

    def connectionMade(self) -> None:
        super().connectionMade()
        settings = self.factory.settings
        self.telnet = TelnetFilter()
        self.lines = LineSplitter(settings.max_line)
        self.start_output()
        self._arm_idle()
        self.session: Session = self.factory.hub.connect(self)

    def start_output(self) -> None:
        """Gather and watch output (an IRC user's too: see L{flush} and L{_write})."""
        self.output_paused = False
        self.unsent_over_buffer = 0
        self.idle_warned = False
        # Lines waiting for the end of this reactor pass; None once closing,
        # when lines go out at once so they precede the close.
        self.pending: list[bytes] | None = []
        # What samples show instead of the pending lines that are private, by index.
        self.pending_private: dict[int, bytes] = {}
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        # Chat lines are small and many: Nagle's algorithm would hold each
        # behind the previous one's ACK, adding tens of milliseconds.
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)

    # -- IPushProducer: the transport tells us when its buffer is full -------

    def pauseProducing(self) -> None:
        self.output_paused = True

    def resumeProducing(self) -> None:
        self.output_paused = False
        self.unsent_over_buffer = 0

    def stopProducing(self) -> None:
        self.output_paused = False

    # -- input -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        # Once logged in, any byte is activity (a slow typist is not idle);
        # before, only the hub's login deadline counts, which nothing resets.
        logged_in = self.session.state == CHATTING
        if logged_in:
            if self.idle_warned:
                self._arm_idle()
            else:
                self.resetTimeout()
        sampled = payload_level(self.factory.log_payload, self.events.debug_enabled) is not None
        # The lines of this read as a sample may show them: None while none
        # of them holds a secret (the read is shown as it came, then).
        shown: list[bytes] | None = None
        lines = self.lines.feed(self.telnet.feed(data))
        for i, (line, ending) in enumerate(lines):
            if sampled:
                secret = self._secret(line)
                if secret is not None and shown is None:
                    shown = [self._public(earlier) + end for earlier, end in lines[:i]]
                if shown is not None:
                    shown.append((secret if secret is not None else line or b"") + ending)
            if self.close_reason is not None:
                continue
            if line is None:
                limit = self.factory.settings.max_line
                self.send_line(f"ERROR line longer than {limit} bytes, dropped")
                self.reject("a line", f"longer than max_line ({limit})")
            else:
                self.session.line(decode(line))
        if sampled:
            # The start of the next line, judged as it will be when it ends.
            partial = self.lines.partial
            secret = self._secret(partial) if partial else None
            if secret is not None and shown is None:
                shown = [self._public(line) + ending for line, ending in lines]
            if shown is not None:
                shown.append(secret if secret is not None else partial)
        self.received(data, None if shown is None else b"".join(shown))
        if not logged_in and self.session.state == CHATTING:
            self._arm_idle()

    def _secret(self, line: bytes | None) -> bytes | None:
        """
        What a sample shows of C{line} (whole or begun), the session's next,
        if it must not show the line itself: an answer to C{Password:}, a
        private message, a password-bearing command, a dropped long line.
        """
        if line is None:
            return b"[line too long]"
        if self.session.state in SECRET_STATES:
            return PASSWORD.encode() if line else None
        shown = loggable(decode(line))
        return None if shown is None else shown.encode("utf-8")

    @staticmethod
    def _public(line: bytes | None) -> bytes:
        return b"[line too long]" if line is None else line

    def end_of_input(self) -> None:
        line = self.lines.flush()
        if line is not None and self.close_reason is None:
            self.session.line(decode(line))

    # -- output ------------------------------------------------------------

    def send_line(self, text: str) -> None:
        """One line to this user, after this reactor pass's other lines."""
        if self.close_reason is not None or self.transport is None:
            return
        global _last_text, _last_line
        # A room line is the same str object for every member: encode it once.
        if text is _last_text:
            data = _last_line
        else:
            data = _last_line = text.encode("utf-8") + b"\r\n"
            _last_text = text
        pending = self.pending
        if pending is None:
            self._write(data, text.shown.encode("utf-8") + b"\r\n"
                        if isinstance(text, PrivateText) else None)
            return
        if isinstance(text, PrivateText):
            self.pending_private[len(pending)] = text.shown.encode("utf-8") + b"\r\n"
        pending.append(data)
        if len(pending) == 1:
            self.factory.send_soon(self)

    def flush(self) -> None:
        """Write the lines gathered so far as one piece."""
        pending = self.pending
        if pending:
            self.pending = []
            private, self.pending_private = self.pending_private, {}
            if self.close_reason is None and self.transport is not None:
                shown = None
                if private:
                    shown = b"".join(private.get(i, data) for i, data in enumerate(pending))
                self._write(b"".join(pending), shown)

    def _write(self, data: bytes, shown: bytes | None = None) -> None:
        """Write C{data} (sampled as C{shown}); drops the user if their backlog grows too big."""
        self.send(data, shown)
        if self.output_paused:
            self.unsent_over_buffer += len(data)
            buffer_size = getattr(self.transport, "bufferSize", 65536)
            if self.unsent_over_buffer + buffer_size > self.factory.settings.max_output:
                self.slow_consumer()

    def slow_consumer(self) -> None:
        """Too much unsent output: drop now, without waiting for it to drain."""
        self.close_reason = "too slow: output backlog over max_output"
        self.factory.hub.count("slow_consumers")
        self.counters.dropped += 1
        self.events.emit(
            "dropped", self.factory.name, self.peer, LogLevel.warn,
            what="a slow reader", reason=self.close_reason, suppressed="",
        )
        self.abort()
        # The room hears of it now: the connection is lost only on the next
        # reactor pass, after lines read in between would reach the room.
        self.session.lost(self.close_reason)

    def end(self, reason: str) -> None:
        """The hub ends this session for C{reason}."""
        self.close(reason)

    # -- idle --------------------------------------------------------------

    def _arm_idle(self) -> None:
        settings = self.factory.settings
        if not settings.idle_timeout:
            return
        self.idle_warned = False
        self.setTimeout(settings.idle_timeout - settings.idle_warning or settings.idle_timeout)

    def timeoutConnection(self) -> None:
        settings = self.factory.settings
        if settings.idle_warning and not self.idle_warned:
            self.idle_warned = True
            self.send_line(idle_warning(settings))
            self.setTimeout(settings.idle_warning)
            return
        super().timeoutConnection()

    # -- lifecycle ---------------------------------------------------------

    def close(self, reason: str, message: str | None = None) -> None:
        # What was said before the close goes out before its goodbye.
        self.flush()
        self.pending = None
        super().close(reason, message)

    def shutdown(self, reason: str) -> None:
        # The hub has already said "* server shutting down".
        self.close(reason)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        why = self.close_reason or "connection lost"
        # The room hears of it first: closing the books may complete the
        # daemon's shutdown, whose stop must be the last thing logged.
        self.session.lost(why)
        super().connectionLost(reason)


class ChatFactory(StreamFactory):
    """The line chat's listener factory; every connection joins the shared hub."""

    protocol = ChatLine
    settings: ChatSettings

    def __init__(
        self, settings: ChatSettings, events: EventLog, clock: IReactorTime, hub: ChatHub
    ) -> None:
        super().__init__(settings, events, clock)
        self.hub = hub
        self._outbox: list[ChatLine] = []
        self._flushing: IDelayedCall | None = None

    def send_soon(self, line: ChatLine) -> None:
        """
        Write C{line}'s gathered lines once the reactor has handled the reads
        of this pass: C{callLater(0)} on the reactor that owns the socket
        (not C{self.clock}, which tests replace) runs right after them.
        """
        self._outbox.append(line)
        if self._flushing is None:
            reactor = getattr(line.transport, "reactor", None)
            if reactor is None:  # a transport without a reactor: no pass to wait for
                self._flush_outbox()
                return
            self._flushing = reactor.callLater(0, self._flush_outbox)

    def _flush_outbox(self) -> None:
        self._flushing = None
        outbox, self._outbox = self._outbox, []
        for line in outbox:
            line.flush()

    def shutdown(self, reason: str = "server shutdown") -> Deferred[None]:
        """Everyone hears "* server shutting down" before their connection closes."""
        self.hub.shutdown()
        return super().shutdown(reason)
