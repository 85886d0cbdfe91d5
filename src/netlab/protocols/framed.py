"""
Length-prefixed echo: the course's exercise in framing messages.

Every usual header shape (see L{netlab.protocols.framing}): C{int32} (a
4-byte big-endian length, as before), C{binary} (1, 2, 4 or 8 bytes, big-
or little-endian), C{digits} (N ASCII digits, zero- or space-padded) and
C{netstring} (C{LEN:DATA,}).  Each frame is echoed in the framing it came
in.  A bad header, or a length over C{max_frame}, gets one error frame in
the connection's own framing (C{ERROR ...}, so the client's reader shows
it) and the connection closes: the stream cannot be resynchronised after a
bad header, and a bare text line would be read as a length.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from netlab.core.events import EventLog
from netlab.core.kinds import BuildContext, BuiltService, Fail, ServiceKind
from netlab.core.settings import LOOPBACK, PayloadLogging, StreamSettings, setting
from netlab.protocols.base import StreamFactory, StreamProtocol
from netlab.protocols.framing import BINARY_WIDTHS, Header, header_for

FRAMINGS = ("int32", "netstring", "binary", "digits")
BYTE_ORDERS = ("big", "little")


@dataclass(frozen=True, kw_only=True)
class FramedEchoSettings(StreamSettings, PayloadLogging):
    """One C{[[framed_echo]]} listener."""

    framing: str = setting("int32", choices=FRAMINGS)
    length_bytes: int = setting(4, lo=1, hi=8)
    byte_order: str = setting("big", choices=BYTE_ORDERS)
    digits: int = setting(10, lo=1, hi=20)
    max_frame: int = setting(65_536, lo=1, hi=16_777_216)


class FramedEcho(StreamProtocol):
    """Echoes each frame back in the framing it came in."""

    factory: FramedEchoFactory
    has_lines = False  # errors go out as a frame, never as a bare line

    def connectionMade(self) -> None:
        super().connectionMade()
        self._buffer = b""
        self.header: Header = new_header(self.factory.settings)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.received(data)
        buffer = self._buffer + data if self._buffer else data
        parse = self.header.parse
        frames: list[bytes] = []
        start = 0
        while True:
            result = parse(buffer, start)
            if result is None:
                break
            if isinstance(result, str):
                self._fail(frames, result)
                break
            frames.append(buffer[start:result])
            start = result
        self._buffer = buffer[start:] if self.close_reason is None else b""
        if frames:
            self.send(b"".join(frames))
        if self.close_reason is not None and self.transport is not None:
            self.transport.loseConnection()

    def _fail(self, frames: list[bytes], reason: str) -> None:
        frames.append(self.frame(f"ERROR {reason}".encode()))
        self.reject("a frame", reason)
        self.close_reason = reason
        self.setTimeout(None)
        self.transport.unregisterProducer()  # type: ignore[union-attr]

    def frame(self, payload: bytes) -> bytes:
        """C{payload} in this connection's framing."""
        return self.header.frame(payload)


def new_header(settings: FramedEchoSettings) -> Header:
    """A header parser for one connection of C{settings}."""
    return header_for(
        settings.framing, settings.length_bytes, settings.byte_order,
        settings.digits, settings.max_frame,
    )


class FramedEchoFactory(StreamFactory):
    """One C{[[framed_echo]]} listener's factory."""

    protocol = FramedEcho
    settings: FramedEchoSettings

    def __init__(
        self, settings: FramedEchoSettings, events: EventLog, clock: IReactorTime
    ) -> None:
        super().__init__(settings, events, clock)


def build_framed_echo(settings: FramedEchoSettings, context: BuildContext) -> BuiltService:
    """A framed echo listener's factory."""
    return BuiltService(
        stream=FramedEchoFactory(settings, context.events, context.reactor)
    )


def check_framed_echo(settings: FramedEchoSettings, config: object, fail: Fail) -> None:
    """
    A header width is a whole struct size, and a header key another framing
    ignores keeps its default: C{length_bytes = 2} under C{framing =
    "int32"} is a forgotten C{framing = "binary"}, not a wish to be ignored.
    """
    if settings.length_bytes not in BINARY_WIDTHS:
        raise fail("length_bytes", settings.length_bytes, "must be one of 1, 2, 4, 8")
    defaults = FramedEchoSettings()
    users = {"length_bytes": "binary", "byte_order": "binary", "digits": "digits"}
    for key, framing in users.items():
        value = getattr(settings, key)
        if settings.framing != framing and value != getattr(defaults, key):
            raise fail(
                key, value,
                f'only used with framing = "{framing}" (this listener\'s framing is '
                f'"{settings.framing}")',
            )


KIND = ServiceKind(
    section="framed_echo",
    settings=FramedEchoSettings,
    many=True,
    default_listen=(f"tcp:7008:interface={LOOPBACK}",),
    build=build_framed_echo,
    check=check_framed_echo,
    restart_keys=frozenset({"framing", "length_bytes", "byte_order", "digits"}),
)
