"""
Length-prefixed echo: the course's exercise in framing messages.

C{int32} frames carry a 4-byte big-endian length header, C{netstring}
frames are C{LEN:DATA,}.  Each frame is echoed in the same framing; a frame
longer than C{max_frame} gets one error frame and the connection closes,
since the stream cannot be resynchronised after a bad header.
"""

from __future__ import annotations

import struct

from twisted.internet.interfaces import IReactorTime

from netlab.daemon.config import FramedEchoSettings
from netlab.daemon.events import EventLog
from netlab.protocols.base import StreamFactory, StreamProtocol


class FramedEcho(StreamProtocol):
    """Echoes each frame back in the framing it came in."""

    factory: FramedEchoFactory

    def connectionMade(self) -> None:
        super().connectionMade()
        self.has_lines = False
        self._buffer = b""
        self.netstring = self.factory.settings.framing == "netstring"

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.received(data)
        buffer = self._buffer + data if self._buffer else data
        limit = self.factory.settings.max_frame
        out = []
        start = 0
        while self.close_reason is None:
            if self.netstring:
                colon = buffer.find(b":", start, start + 9)
                if colon < 0:
                    if len(buffer) - start > 8 or not buffer[start:].isdigit():
                        if len(buffer) - start > 0 and not buffer[start:].isdigit():
                            self._fail(out, "bad netstring length")
                        elif len(buffer) - start > 8:
                            self._fail(out, f"frame longer than max_frame ({limit})")
                    break
                digits = buffer[start:colon]
                if not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0"):
                    self._fail(out, "bad netstring length")
                    break
                size = int(digits)
                if size > limit:
                    self._fail(out, f"frame of {size} bytes is longer than max_frame ({limit})")
                    break
                end = colon + 1 + size
                if len(buffer) < end + 1:
                    break
                if buffer[end:end + 1] != b",":
                    self._fail(out, "netstring not terminated by a comma")
                    break
                out.append(buffer[start:end + 1])
                start = end + 1
            else:
                if len(buffer) - start < 4:
                    break
                (size,) = struct.unpack_from("!I", buffer, start)
                if size > limit:
                    self._fail(out, f"frame of {size} bytes is longer than max_frame ({limit})")
                    break
                end = start + 4 + size
                if len(buffer) < end:
                    break
                out.append(buffer[start:end])
                start = end
        self._buffer = buffer[start:] if self.close_reason is None else b""
        if out:
            self.send(b"".join(out))
        if self.close_reason is not None and self.transport is not None:
            self.transport.loseConnection()

    def _fail(self, out: list[bytes], reason: str) -> None:
        message = f"ERROR {reason}".encode()
        out.append(self.frame(message))
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
