"""
Length-prefixed echo: the course's exercise in framing messages.

C{int32} frames carry a 4-byte big-endian length header, C{netstring}
frames are C{LEN:DATA,}.  Each frame is echoed in the same framing; a frame
longer than C{max_frame} gets one error frame and the connection closes,
since the stream cannot be resynchronised after a bad header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from netlab.core.events import EventLog
from netlab.core.kinds import BuildContext, BuiltService, ServiceKind
from netlab.core.settings import LOOPBACK, StreamSettings, setting
from netlab.protocols.base import StreamFactory, StreamProtocol

FRAMINGS = ("int32", "netstring")


@dataclass(frozen=True, kw_only=True)
class FramedEchoSettings(StreamSettings):
    """One C{[[framed_echo]]} listener."""

    framing: str = setting("int32", choices=FRAMINGS)
    max_frame: int = setting(65_536, lo=1, hi=16_777_216)


class FramedEcho(StreamProtocol):
    """Echoes each frame back in the framing it came in."""

    factory: FramedEchoFactory
    has_lines = False  # errors go out as a frame, never as a bare line

    def connectionMade(self) -> None:
        super().connectionMade()
        self._buffer = b""
        self.netstring = self.factory.settings.framing == "netstring"

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.received(data)
        buffer = self._buffer + data if self._buffer else data
        parse = self._netstring if self.netstring else self._int32
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

    def _int32(self, buffer: bytes, start: int) -> int | str | None:
        """Where the frame at C{start} ends, why it is bad, or None if incomplete."""
        if len(buffer) - start < 4:
            return None
        (size,) = struct.unpack_from("!I", buffer, start)
        limit = self.factory.settings.max_frame
        if size > limit:
            return f"frame of {size} bytes is longer than max_frame ({limit})"
        end = start + 4 + size
        return end if len(buffer) >= end else None

    def _netstring(self, buffer: bytes, start: int) -> int | str | None:
        """Where the netstring at C{start} ends, why it is bad, or None if incomplete."""
        limit = self.factory.settings.max_frame
        digits_max = len(str(limit))
        colon = buffer.find(b":", start, start + digits_max + 1)
        header = buffer[start:colon] if colon >= 0 else buffer[start:start + digits_max + 1]
        if header and not header.isdigit():
            return "bad netstring length"
        if colon < 0:
            if len(header) > digits_max:
                return f"frame longer than max_frame ({limit})"
            return None
        if not header or (len(header) > 1 and header.startswith(b"0")):
            return "bad netstring length"
        size = int(header)
        if size > limit:
            return f"frame of {size} bytes is longer than max_frame ({limit})"
        end = colon + 1 + size
        if len(buffer) <= end:
            return None
        if buffer[end] != ord(","):
            return "netstring not terminated by a comma"
        return end + 1

    def _fail(self, frames: list[bytes], reason: str) -> None:
        frames.append(self.frame(f"ERROR {reason}".encode()))
        self.reject("a frame", reason)
        self.close_reason = reason
        self.setTimeout(None)
        self.transport.unregisterProducer()  # type: ignore[union-attr]

    def frame(self, payload: bytes) -> bytes:
        """C{payload} in this connection's framing."""
        if self.netstring:
            return b"%d:%s," % (len(payload), payload)
        return struct.pack("!I", len(payload)) + payload


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


KIND = ServiceKind(
    section="framed_echo",
    settings=FramedEchoSettings,
    many=True,
    default_listen=(f"tcp:7008:interface={LOOPBACK}",),
    build=build_framed_echo,
    restart_keys=frozenset({"framing"}),
)
