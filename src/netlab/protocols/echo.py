"""
TCP echo, the first server of every socket course.

Three modes: C{plain} echoes bytes exactly as they came, however chunked;
C{upper} and C{ok} work on lines (netcat's C{\\n} or telnet's C{\\r\\n},
telnet negotiation removed) and answer each one upper-cased or as
C{OK...<line>}.  A banner greets the client, a quit word ends the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from netlab.core.events import EventLog
from netlab.core.fastwrite import write_now
from netlab.core.kinds import BuildContext, BuiltService, Fail, ServiceKind
from netlab.core.settings import LOOPBACK, StreamSettings, setting
from netlab.protocols.base import StreamFactory, StreamProtocol
from netlab.protocols.lines import LineSplitter, TelnetFilter

# How much a streaming client is read at a time (asyncio's and the C
# reference's read size; Twisted's is 64 KiB).
BULK_READ = 1 << 18


ECHO_MODES = ("plain", "upper", "ok")


@dataclass(frozen=True, kw_only=True)
class EchoSettings(StreamSettings):
    """One C{[[echo]]} listener."""

    mode: str = setting("plain", choices=ECHO_MODES)
    banner: str = setting("")
    quit: str = setting("")
    goodbye: str = setting("Bye.")
    max_line: int = setting(4096, lo=16, hi=1_048_576)


class PlainEcho(StreamProtocol):
    """Echoes every byte back unchanged."""

    factory: EchoFactory

    def connectionMade(self) -> None:
        super().connectionMade()
        settings = self.factory.settings
        self.quit_word = settings.quit.encode("utf-8")
        self._tail = b""
        if settings.banner:
            self.send_line(settings.banner)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        if len(data) >= getattr(self.transport, "bufferSize", BULK_READ):
            self._read_more(self.transport)
        if self.events.debug_enabled:
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
            self.close("quit", self.factory.settings.goodbye)


class LineEcho(StreamProtocol):
    """Answers each line, upper-cased or as C{OK...<line>}."""

    factory: EchoFactory

    def connectionMade(self) -> None:
        super().connectionMade()
        settings = self.factory.settings
        self.telnet = TelnetFilter()
        self.lines = LineSplitter(settings.max_line)
        self.quit_word = settings.quit.encode("utf-8")
        self.transform = _upper if settings.mode == "upper" else _ok
        if settings.banner:
            self.send_line(settings.banner)

    def end_of_input(self) -> None:
        line = self.lines.flush()
        if line is not None:
            self._answer([(line, b"\n")])

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.received(data)
        self._answer(self.lines.feed(self.telnet.feed(data)))

    def _answer(self, lines: list[tuple[bytes | None, bytes]]) -> None:
        answers = []
        for line, ending in lines:
            if line is None:
                limit = self.factory.settings.max_line
                answers.append(
                    f"ERROR line longer than {limit} bytes, not echoed".encode() + ending
                )
                self.reject("a line", f"longer than max_line ({limit})")
            elif self.quit_word and line.strip() == self.quit_word:
                if answers:
                    self.send(b"".join(answers))
                self.close("quit", self.factory.settings.goodbye)
                return
            else:
                answers.append(self.transform(line) + ending)
        if answers:
            self.send(b"".join(answers))


def _upper(line: bytes) -> bytes:
    return line.decode("utf-8", "replace").upper().encode("utf-8")


def _ok(line: bytes) -> bytes:
    return b"OK..." + line


class EchoFactory(StreamFactory):
    """One C{[[echo]]} listener's factory."""

    settings: EchoSettings

    def __init__(
        self, settings: EchoSettings, events: EventLog, clock: IReactorTime
    ) -> None:
        super().__init__(settings, events, clock)
        self.protocol = PlainEcho if settings.mode == "plain" else LineEcho


def check_echo(settings: EchoSettings, config: object, fail: Fail) -> None:
    """What the echo says is sent as one line each."""
    for key in ("banner", "quit", "goodbye"):
        text = getattr(settings, key)
        if "\n" in text or "\r" in text:
            raise fail(key, text, "must be a single line")


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
