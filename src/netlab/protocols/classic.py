"""
The classic inetd services, over TCP and UDP: discard (RFC 863), daytime
(RFC 867), time (RFC 868), chargen (RFC 864) and quote of the day (RFC 865).

What each service says comes from small pure functions (L{daytime_text},
L{time_value}, L{chargen_lines}, L{QuoteBook}) that tests call without
sockets; the protocols only deliver it.  The time always comes from the
clock the service is given, so tests pin it with a C{task.Clock}.

Chargen is an endless stream, so its TCP protocol is a pull producer: it
writes one bounded chunk each time the transport's buffer has drained, and
nothing otherwise.  A client that stops reading therefore costs the server
at most one chunk of memory, until the idle timeout drops it.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import ClassVar, cast

from twisted.internet.interfaces import IConsumer, IPullProducer, IReactorTime
from zope.interface import implementer

from netlab.core.events import EventLog
from netlab.core.kinds import BuildContext, BuiltService, Fail, ServiceKind
from netlab.core.limits import DatagramGuard
from netlab.core.settings import (
    LOOPBACK,
    DatagramGuardSettings,
    PayloadLogging,
    StreamSettings,
    setting,
)
from netlab.protocols.base import StreamFactory, StreamProtocol
from netlab.protocols.echo_shapes import session_end
from netlab.protocols.lines import TelnetFilter
from netlab.protocols.udp import GuardedDatagramProtocol

NAMES = ("discard", "daytime", "time", "chargen", "qotd")

# Unprivileged ports that echo the classic numbers (13 -> 7013), loopback only.
DEFAULT_PORTS = {"discard": 7009, "daytime": 7013, "time": 7037, "chargen": 7019, "qotd": 7017}

DEFAULT_QUOTES = (
    "The network is reliable. -- the first fallacy of distributed computing",
    "Be conservative in what you send, liberal in what you accept. -- RFC 760",
    "There is no place like 127.0.0.1.",
    "It's always DNS.",
)


@dataclass(frozen=True, kw_only=True)
class ClassicSettings(StreamSettings, DatagramGuardSettings, PayloadLogging):
    """
    One classic inetd service; C{listen} mixes stream and C{udp:} strings.
    """

    enabled: bool = setting(False)
    listen: tuple[str, ...] = setting((), endpoints="any")
    quotes: tuple[str, ...] = setting(())
    # Discard over TCP only (the course's sink server); the others ignore them.
    quit: str = setting("")
    close_on_empty_line: bool = setting(False)

# RFC 868 counts seconds from 1900-01-01, Unix from 1970-01-01.
SECONDS_1900_TO_1970 = 2_208_988_800

# RFC 864: lines of 72 of the 95 printable ASCII characters, each line
# starting one character further on.
CHARGEN_CHARACTERS = bytes(range(32, 127))
CHARGEN_WIDTH = 72
CHARGEN_LINE_SIZE = CHARGEN_WIDTH + 2

# RFC 865 wants a quote under 512 characters and RFC 864 at most 512 bytes
# per datagram; the whole reply, CRLF included, is kept to this many bytes.
MAX_REPLY = 512


_WEEKDAYS = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)


def daytime_text(seconds: float) -> str:
    """
    The RFC 867 answer for a Unix time, in the RFC's own example style:
    C{Saturday, November 21, 2026 10:30:00-UTC}.  English names are spelled
    out here rather than taken from C{strftime}, which follows the locale.
    """
    moment = datetime.fromtimestamp(math.floor(seconds), UTC)
    return (
        f"{_WEEKDAYS[moment.weekday()]}, {_MONTHS[moment.month - 1]} "
        f"{moment.day}, {moment.year} {moment:%H:%M:%S}-UTC"
    )


def time_value(seconds: float) -> bytes:
    """
    The RFC 868 answer for a Unix time: seconds since 1900 as 4 big-endian
    bytes, wrapping in 2036 as the 32-bit field does.
    """
    return struct.pack("!I", (math.floor(seconds) + SECONDS_1900_TO_1970) % 2**32)


def chargen_line(number: int) -> bytes:
    """Line C{number} of the chargen pattern, CRLF included."""
    start = number % len(CHARGEN_CHARACTERS)
    doubled = CHARGEN_CHARACTERS + CHARGEN_CHARACTERS
    return doubled[start:start + CHARGEN_WIDTH] + b"\r\n"


def chargen_lines(first: int, count: int) -> bytes:
    """C{count} consecutive chargen lines, starting with line C{first}."""
    return b"".join(chargen_line(first + i) for i in range(count))


# One full turn of the pattern (95 lines), and the TCP chunk: whole turns,
# so every chunk starts where the previous one stopped (at line 0) and the
# same bytes object is written every time.
CHARGEN_CYCLE = chargen_lines(0, len(CHARGEN_CHARACTERS))
CHARGEN_CHUNK = CHARGEN_CYCLE * 9  # 63,270 bytes
CHARGEN_DATAGRAM_LINES = MAX_REPLY // CHARGEN_LINE_SIZE  # 6 lines, 444 bytes


def quote_reply(quote: str) -> bytes:
    """
    A quote as sent: lines ended by CRLF, cut (at a character boundary) so
    that the reply with its final CRLF is at most L{MAX_REPLY} bytes.
    """
    encoded = "\r\n".join(quote.splitlines()).encode("utf-8")
    limit = MAX_REPLY - 2
    if len(encoded) > limit:
        encoded = encoded[:limit].decode("utf-8", "ignore").encode("utf-8")
    return encoded.rstrip(b"\r\n") + b"\r\n"


class QuoteBook:
    """
    The quotes of one listener, handed out in turn, so that a client (or a
    test) knows which comes next.  No quotes configured means the defaults.
    """

    def __init__(self, quotes: tuple[str, ...]) -> None:
        self.replies = [quote_reply(q) for q in quotes or DEFAULT_QUOTES]
        self.index = 0

    def next_reply(self) -> bytes:
        """The next quote, ready to send."""
        reply = self.replies[self.index]
        self.index = (self.index + 1) % len(self.replies)
        return reply


# -- TCP -----------------------------------------------------------------------


class ClassicProtocol(StreamProtocol):
    """What the classic stream services share: input is counted, then ignored."""

    factory: ClassicFactory

    def dataReceived(self, data: bytes) -> None:
        self.received(data)


class ClassicFactory(StreamFactory):
    """Base of the classic services' factories: typed for L{ClassicSettings}."""

    protocol: type[ClassicProtocol]
    settings: ClassicSettings

    def __init__(
        self, settings: ClassicSettings, events: EventLog, clock: IReactorTime
    ) -> None:
        super().__init__(settings, events, clock)


class Discard(ClassicProtocol):
    """
    RFC 863: reads everything, answers nothing, until idle or closed; or,
    as the course's sink server, until a line that is the C{quit} word or,
    with C{close_on_empty_line}, an empty line.
    """

    # A sink has no conversation to say goodbye in.
    has_lines = False

    def connectionMade(self) -> None:
        super().connectionMade()
        settings = self.factory.settings
        self.quit_word = settings.quit.encode("utf-8")
        self.on_empty_line = settings.close_on_empty_line
        # Lines matter only to a sink that can be told to stop.
        self.telnet = TelnetFilter() if self.quit_word or self.on_empty_line else None
        self.at_line_start = True

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.received(data)
        if self.telnet is None or self.close_reason is not None:
            return
        text = self.telnet.feed(data)
        end = session_end(text, self.quit_word, self.on_empty_line, self.at_line_start)
        if end is not None:
            self.close(end[1])
        elif text:
            self.at_line_start = text.endswith(b"\n")


class OneShot(ClassicProtocol):
    """Says one thing as soon as the client connects, then hangs up."""

    #: Names what was sent, for the disconnect event's reason.
    what: ClassVar[str] = "reply"

    def reply(self) -> bytes:
        """What to send; subclasses say."""
        raise NotImplementedError

    def connectionMade(self) -> None:
        super().connectionMade()
        self.send(self.reply())
        self.close(f"{self.what} sent")


class Daytime(OneShot):
    """RFC 867: one line with the date and time in UTC."""

    what = "daytime"

    def reply(self) -> bytes:
        return daytime_text(self.factory.clock.seconds()).encode("ascii") + b"\r\n"


class Time(OneShot):
    """RFC 868: the time as 4 binary bytes."""

    what = "time"
    has_lines = False

    def reply(self) -> bytes:
        return time_value(self.factory.clock.seconds())


class Qotd(OneShot):
    """RFC 865: the next quote from the factory's L{QuoteBook}."""

    what = "quote"
    factory: QotdFactory

    def reply(self) -> bytes:
        return self.factory.quotes.next_reply()


@implementer(IPullProducer)
class Chargen(ClassicProtocol):
    """
    RFC 864: chargen lines until the client goes away.

    A pull producer on its own transport, which asks for one chunk each time
    its buffer empties; pausing is simply not being asked.  The idle timeout
    restarts with each chunk asked for, so it measures how long the client
    has not been reading.
    """

    self_producer = False
    has_lines = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self.producing = True
        # A pull producer is asked for its first chunk right away.
        self._consumer().registerProducer(self, False)

    def _consumer(self) -> IConsumer:
        return cast(IConsumer, self.transport)

    def resumeProducing(self) -> None:
        if not self.producing:
            return
        self.resetTimeout()
        self.send(CHARGEN_CHUNK)

    def stopProducing(self) -> None:
        self.producing = False

    def close(self, reason: str, message: str | None = None) -> None:
        # The base unregisters this producer; stop answering its requests too.
        self.producing = False
        super().close(reason, message)

    def timeoutConnection(self) -> None:
        """
        Drop a client that has stopped reading: a graceful close would wait
        forever behind the data it does not read, holding its slot.
        """
        self.close("idle timeout")
        self.abort()


class DiscardFactory(ClassicFactory):
    """A discard listener's factory."""

    protocol = Discard


class DaytimeFactory(ClassicFactory):
    """A daytime listener's factory."""

    protocol = Daytime


class TimeFactory(ClassicFactory):
    """A time listener's factory."""

    protocol = Time


class ChargenFactory(ClassicFactory):
    """A chargen listener's factory."""

    protocol = Chargen


class QotdFactory(ClassicFactory):
    """A qotd listener's factory; it owns the turn of the quotes."""

    protocol = Qotd

    def __init__(
        self, settings: ClassicSettings, events: EventLog, clock: IReactorTime
    ) -> None:
        super().__init__(settings, events, clock)
        self.quotes = QuoteBook(settings.quotes)


# -- UDP -----------------------------------------------------------------------


class ClassicDatagram(GuardedDatagramProtocol):
    """Base of the classic UDP services: the guard admits, L{answer} replies."""

    def __init__(
        self,
        settings: ClassicSettings,
        guard: DatagramGuard,
        events: EventLog,
        clock: IReactorTime,
    ) -> None:
        super().__init__(settings.name, guard, events)
        self.settings = settings
        self.clock = clock


class DiscardDatagram(ClassicDatagram):
    """RFC 863 over UDP: counted by the guard, never answered."""

    def answer(self, data: bytes) -> None:
        return None


class DaytimeDatagram(ClassicDatagram):
    """RFC 867 over UDP: the daytime line as the reply."""

    def answer(self, data: bytes) -> bytes:
        return daytime_text(self.clock.seconds()).encode("ascii") + b"\r\n"


class TimeDatagram(ClassicDatagram):
    """RFC 868 over UDP: the 4 time bytes as the reply."""

    def answer(self, data: bytes) -> bytes:
        return time_value(self.clock.seconds())


class ChargenDatagram(ClassicDatagram):
    """
    RFC 864 over UDP: whole chargen lines, at most 512 bytes, each reply
    going on where the previous one stopped.
    """

    # Where the next reply starts; each instance moves its own on.
    next_line = 0

    def answer(self, data: bytes) -> bytes:
        first = self.next_line
        self.next_line = (first + CHARGEN_DATAGRAM_LINES) % len(CHARGEN_CHARACTERS)
        return chargen_lines(first, CHARGEN_DATAGRAM_LINES)


class QotdDatagram(ClassicDatagram):
    """RFC 865 over UDP: the next quote as the reply."""

    @cached_property
    def quotes(self) -> QuoteBook:
        """This listener's own turn of the quotes."""
        return QuoteBook(self.settings.quotes)

    def answer(self, data: bytes) -> bytes:
        return self.quotes.next_reply()


STREAM_FACTORIES: dict[str, type[ClassicFactory]] = {
    "discard": DiscardFactory,
    "daytime": DaytimeFactory,
    "time": TimeFactory,
    "chargen": ChargenFactory,
    "qotd": QotdFactory,
}

DATAGRAM_PROTOCOLS: dict[str, type[ClassicDatagram]] = {
    "discard": DiscardDatagram,
    "daytime": DaytimeDatagram,
    "time": TimeDatagram,
    "chargen": ChargenDatagram,
    "qotd": QotdDatagram,
}


def _unknown(kind: str) -> ValueError:
    return ValueError(f"unknown classic service {kind!r} (known: {', '.join(NAMES)})")


def stream_factory(
    kind: str, settings: ClassicSettings, events: EventLog, clock: IReactorTime
) -> StreamFactory:
    """The TCP (or any stream) factory of the classic service C{kind}."""
    try:
        factory_class = STREAM_FACTORIES[kind]
    except KeyError:
        raise _unknown(kind) from None
    return factory_class(settings, events, clock)


def datagram_protocol(
    kind: str,
    settings: ClassicSettings,
    guard: DatagramGuard,
    events: EventLog,
    clock: IReactorTime,
) -> GuardedDatagramProtocol:
    """
    The UDP protocol of the classic service C{kind}, for one port; the
    service's ports share C{guard}.
    """
    try:
        protocol_class = DATAGRAM_PROTOCOLS[kind]
    except KeyError:
        raise _unknown(kind) from None
    return protocol_class(settings, guard, events, clock)


def _builder(name: str) -> Callable[[ClassicSettings, BuildContext], BuiltService]:
    def build(settings: ClassicSettings, context: BuildContext) -> BuiltService:
        events, clock = context.events, context.reactor
        return BuiltService(
            stream=stream_factory(name, settings, events, clock),
            datagram=lambda guard: datagram_protocol(name, settings, guard, events, clock),
        )

    build.__doc__ = f"The {name} service's TCP factory and UDP protocols."
    return build


def _check_discard(settings: ClassicSettings, config: object, fail: Fail) -> None:
    """The sink's quit word is a line of its own."""
    if "\n" in settings.quit or "\r" in settings.quit:
        raise fail("quit", settings.quit, "must be a single line")


def _with_quotes(settings: ClassicSettings) -> ClassicSettings:
    """Quote of the day says the built-in quotes unless the file gives some."""
    if settings.quotes:
        return settings
    return dataclasses.replace(settings, quotes=DEFAULT_QUOTES)


SERVICE_KINDS = [
    ServiceKind(
        section=name,
        settings=ClassicSettings,
        default_listen=(
            f"tcp:{DEFAULT_PORTS[name]}:interface={LOOPBACK}",
            f"udp:{DEFAULT_PORTS[name]}:interface={LOOPBACK}",
        ),
        build=_builder(name),
        finish=_with_quotes if name == "qotd" else None,
        check=_check_discard if name == "discard" else None,
    )
    for name in NAMES
]


__all__ = [
    "NAMES",
    "SERVICE_KINDS",
    "QuoteBook",
    "chargen_line",
    "chargen_lines",
    "datagram_protocol",
    "daytime_text",
    "quote_reply",
    "stream_factory",
    "time_value",
]
