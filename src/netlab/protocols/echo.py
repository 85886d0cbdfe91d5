"""
TCP echo, the first server of every socket course.

Three modes say what comes back: C{plain} the data as it came, C{upper} the
data upper-cased, C{ok} the data after C{OK...}.  C{unit} says when:
C{chunk} (the default) answers each read at once, as the course's servers
answer each C{recv}, so a client that sends C{hello} with no newline and
waits is answered; C{line} answers each complete line (netcat's C{\\n} or
telnet's C{\\r\\n}).  C{upper} and C{ok} drop telnet negotiation either way.
The course's one-shot servers are shapes on top (L{echo_shapes}): a
C{prefix}, a fixed C{reply}, C{close_after} N answers.  A banner greets the
client, a quit word ends the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from netlab.core.events import EventLog
from netlab.core.fastwrite import write_now
from netlab.core.kinds import BuildContext, BuiltService, Fail, ServiceKind
from netlab.core.settings import LOOPBACK, PayloadLogging, StreamSettings, setting
from netlab.protocols.base import StreamFactory, StreamProtocol
from netlab.protocols.echo_shapes import Shape, Upper, line_ending, session_end, upper_line
from netlab.protocols.lines import LineSplitter, TelnetFilter

# How much a streaming client is read at a time (asyncio's and the C
# reference's read size; Twisted's is 64 KiB).
BULK_READ = 1 << 18


ECHO_MODES = ("plain", "upper", "ok")
ECHO_UNITS = ("chunk", "line")

# close_after's "never".
NEVER = -1


@dataclass(frozen=True, kw_only=True)
class EchoSettings(StreamSettings, PayloadLogging):
    """One C{[[echo]]} listener."""

    mode: str = setting("plain", choices=ECHO_MODES)
    unit: str = setting("chunk", choices=ECHO_UNITS)
    banner: str = setting("")
    quit: str = setting("")
    goodbye: str = setting("Bye.")
    max_line: int = setting(4096, lo=16, hi=1_048_576)
    prefix: str = setting("")
    reply: str = setting("")
    close_after: int = setting(NEVER, lo=NEVER, hi=1_000_000)


class EchoProtocol(StreamProtocol):
    """What every echo protocol shares: the greeting and counting answers."""

    factory: EchoFactory
    answers_left = NEVER

    def connectionMade(self) -> None:
        super().connectionMade()
        settings = self.factory.settings
        self.quit_word = settings.quit.encode("utf-8")
        self.answers_left = settings.close_after
        if settings.banner:
            self.send_line(settings.banner)
        if self.answers_left == 0:
            # The course's "accept and close" server: the banner is all.
            self.close(_done(0))

    def answered(self, count: int = 1) -> None:
        """C{count} answers went out: close once close_after of them have."""
        if self.answers_left > 0:
            self.answers_left = max(self.answers_left - count, 0)
            if self.answers_left == 0:
                self.close(_done(self.factory.settings.close_after))

    def quit(self) -> None:
        """The quit word came: say goodbye and close."""
        self.close("quit", self.factory.settings.goodbye)


def _done(close_after: int) -> str:
    return f"close_after = {close_after} reached"


class PlainEcho(EchoProtocol):
    """Echoes every byte back unchanged (mode plain, no reply shape)."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self._tail = b""

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        if len(data) >= getattr(self.transport, "bufferSize", BULK_READ):
            self._read_more(self.transport)
        if self.factory.log_payload or self.events.debug_enabled:
            self.received(data)
            self.send(data)
        else:
            # received() and send() without their narration: this is the
            # echo benchmark's whole path, and each call costs.
            size = len(data)
            self.bytes_in += size
            self.bytes_out += size
            counters = self.counters
            counters.bytes_in += size
            counters.bytes_out += size
            write_now(self.transport, data)
        if self.quit_word:
            self._look_for_quit(data)

    def shutdown(self, reason: str) -> None:
        """
        The daemon is stopping: a byte-exact echo never injects bytes, so it
        closes without a goodbye line, unless its banner made it a text
        service already.
        """
        if self.factory.settings.banner:
            super().shutdown(reason)
        else:
            self.close(reason)

    def _read_more(self, transport: Any) -> None:
        """
        A read filled Twisted's 64 KiB buffer: the client is streaming, so
        read up to 256 KiB at a time, as asyncio and the C reference do;
        bulk echo took four reads where they take one.  (The same size also
        bounds what the transport buffers before it stops reading.)
        """
        if transport.bufferSize < BULK_READ:
            transport.bufferSize = BULK_READ

    def _look_for_quit(self, data: bytes) -> None:
        """Close after echoing a line that is just the quit word."""
        text = self._tail + data
        lines = text.split(b"\n")
        # Only the unfinished last line can still become the quit line, and
        # only its first few bytes matter for that.
        self._tail = lines.pop()[: len(self.quit_word) + 2]
        if any(line.rstrip(b"\r").strip() == self.quit_word for line in lines):
            self.quit()


class ChunkEcho(EchoProtocol):
    """
    Answers each read at once: upper-cased, after C{OK...} or a prefix, or
    with the fixed reply.  C{upper} and C{ok} drop telnet negotiation;
    C{plain} answers the bytes as they came.
    """

    def connectionMade(self) -> None:
        settings = self.factory.settings
        self.shape = Shape.of(settings.mode, settings.prefix, settings.reply)
        self.telnet = TelnetFilter() if settings.mode != "plain" else None
        self.upper = Upper() if settings.mode == "upper" else None
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.received(data)
        if self.close_reason is not None:
            return
        if self.telnet is not None:
            data = self.telnet.feed(data)
        end = session_end(data, self.quit_word)
        if end is None:
            self._answer(data)
        else:
            self._answer(data[: end[0]])
            self.quit()

    def end_of_input(self) -> None:
        """The client half-closed: answer a character it never finished."""
        if self.upper is not None and self.shape.reply is None:
            rest = self.upper.feed(b"", final=True)
            if rest:
                self.send(self.shape.answer(rest, b""))

    def _answer(self, data: bytes) -> None:
        if not data or self.close_reason is not None:
            return
        shape = self.shape
        if shape.reply is not None:
            answer = shape.answer(b"", line_ending(data))
        else:
            body = self.upper.feed(data) if self.upper is not None else data
            if not body:  # only the start of a character, kept for the next read
                return
            answer = shape.answer(body, b"")
        self.send(answer)
        self.answered()


class LineEcho(EchoProtocol):
    """Answers each complete line, upper-cased, after C{OK...} or a prefix, or with the reply."""

    def connectionMade(self) -> None:
        settings = self.factory.settings
        self.shape = Shape.of(settings.mode, settings.prefix, settings.reply)
        self.telnet = TelnetFilter()
        self.lines = LineSplitter(settings.max_line)
        self.transform = upper_line if settings.mode == "upper" else _same
        super().connectionMade()

    def end_of_input(self) -> None:
        line = self.lines.flush()
        if line is not None:
            self._answer([(line, b"\n")])

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.received(data)
        self._answer(self.lines.feed(self.telnet.feed(data)))

    def _answer(self, lines: list[tuple[bytes | None, bytes]]) -> None:
        if self.close_reason is not None:
            return
        answers = []
        count = 0
        left = self.answers_left
        quit = False
        for line, ending in lines:
            if line is None:
                limit = self.factory.settings.max_line
                answers.append(
                    f"ERROR line longer than {limit} bytes, not echoed".encode() + ending
                )
                self.reject("a line", f"longer than max_line ({limit})")
            elif self.quit_word and line.strip() == self.quit_word:
                quit = True
                break
            else:
                answers.append(self.shape.answer(self.transform(line), ending))
                count += 1
                if count == left:
                    break
        if answers:
            self.send(b"".join(answers))
        if count:
            self.answered(count)
        if quit:
            self.quit()


def _same(line: bytes) -> bytes:
    return line


def protocol_for(settings: EchoSettings) -> type[EchoProtocol]:
    """
    Which protocol serves C{settings}: the byte-exact fast path unless a
    line unit or a reply shape needs more.
    """
    if settings.mode == "plain" and not (
        settings.prefix or settings.reply or settings.close_after != NEVER
    ):
        return PlainEcho
    return LineEcho if settings.unit == "line" else ChunkEcho


class EchoFactory(StreamFactory):
    """One C{[[echo]]} listener's factory."""

    settings: EchoSettings
    protocol: type[EchoProtocol]

    def __init__(
        self, settings: EchoSettings, events: EventLog, clock: IReactorTime
    ) -> None:
        super().__init__(settings, events, clock)
        self.protocol = protocol_for(settings)

    def configure(self, settings: StreamSettings) -> None:
        """New settings (a reload): new connections get the protocol they ask for."""
        super().configure(settings)
        assert isinstance(settings, EchoSettings)
        self.protocol = protocol_for(settings)


def check_echo(settings: EchoSettings, config: object, fail: Fail) -> None:
    """What the echo says is sent as one line each; "ok" is its own prefix."""
    for key in ("banner", "quit", "goodbye"):
        text = getattr(settings, key)
        if "\n" in text or "\r" in text:
            raise fail(key, text, "must be a single line")
    if settings.mode == "ok" and settings.prefix:
        raise fail(
            "prefix", settings.prefix,
            'mode "ok" already puts "OK..." before each answer; '
            'use mode "plain" or "upper" with a prefix',
        )


def build_echo(settings: EchoSettings, context: BuildContext) -> BuiltService:
    """An echo listener's factory."""
    return BuiltService(stream=EchoFactory(settings, context.events, context.reactor))


KIND = ServiceKind(
    section="echo",
    settings=EchoSettings,
    many=True,
    present_by_default=True,
    default_listen=(f"tcp:7007:interface={LOOPBACK}",),
    build=build_echo,
    check=check_echo,
    restart_keys=frozenset({"mode"}),
)
