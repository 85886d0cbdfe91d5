"""
Length headers for the framed echo: pure parsers, no transport.

The course's framing exercise leaves the header to the student: a binary
length of 1, 2, 4 or 8 bytes in either byte order (C{struct.pack('<H',
len(m))}), N ASCII digits zero-padded (C{'%010d' % len(m)}) or
space-padded on either side (C{'%10d'}, C{f'{n:<10}'}), or a netstring.
Each header kind here finds where the frame at a given offset ends, or says
why the stream cannot be read, and writes a payload in the framing the
client used, so that even an error reaches the client in a shape its own
code can read.

Twisted's C{IntNStringReceiver} family covers the binary shapes and
C{NetstringReceiver} the netstring, but not ASCII digit headers, and on a
bad or over-long header they drop the connection without a word
(C{lengthLimitExceeded}, C{NetstringParseError}), where a lab server tells
the student what was wrong; and they write once per frame, where the echo
answers a whole read with one write.  Hence these small parsers.
"""

from __future__ import annotations

import re
import struct
from typing import Protocol

BINARY_WIDTHS = (1, 2, 4, 8)
_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}

# Where the frame at an offset ends (its end offset), why the stream is bad
# (a reason), or None: not all of it has arrived yet.
Parsed = int | str | None


class Header(Protocol):
    """One connection's header kind: parses frames, writes error frames."""

    def parse(self, buffer: bytes, start: int) -> Parsed:
        """Where the frame at C{start} ends, why it is bad, or None if incomplete."""

    def frame(self, payload: bytes) -> bytes:
        """C{payload} in this framing (cut to the longest length the header can say)."""


def too_long(size: int, limit: int) -> str:
    """The reason a frame of C{size} bytes is refused."""
    return f"frame of {size} bytes is longer than max_frame ({limit})"


class BinaryHeader:
    """A fixed-width unsigned binary length, big- or little-endian."""

    def __init__(self, width: int, order: str, limit: int) -> None:
        self.width = width
        self.limit = limit
        self.biggest = (1 << (8 * width)) - 1
        self.format = struct.Struct((">" if order == "big" else "<") + _STRUCT_CODES[width])

    def parse(self, buffer: bytes, start: int) -> Parsed:
        if len(buffer) - start < self.width:
            return None
        (size,) = self.format.unpack_from(buffer, start)
        if size > self.limit:
            return too_long(size, self.limit)
        end = start + self.width + size
        return end if len(buffer) >= end else None

    def frame(self, payload: bytes) -> bytes:
        payload = payload[: self.biggest]
        return self.format.pack(len(payload)) + payload


# A complete decimal header: digits, with spaces on either side (padding).
_DIGITS = re.compile(rb" *([0-9]+) *")
# What can still become one: spaces, digits, spaces, in that order.
_DIGITS_PREFIX = re.compile(rb" *[0-9]* *")


class DigitsHeader:
    """
    A fixed-width ASCII decimal length: C{'%010d'} (zeros), C{'%10d'}
    (spaces before) or C{f'{n:<10}'} (spaces after).

    Frames are echoed with their own header bytes, so each answer has its
    request's padding; an error frame takes the padding of the last good
    header (zeros before any).
    """

    def __init__(self, width: int, limit: int) -> None:
        self.width = width
        self.limit = limit
        self.biggest = 10**width - 1
        self.style = "0"  # the format_spec fill/alignment: "0", " >" or " <"

    def parse(self, buffer: bytes, start: int) -> Parsed:
        header = buffer[start:start + self.width]
        if len(header) < self.width:
            if _DIGITS_PREFIX.fullmatch(header) is None:
                return self._bad(header)
            return None
        match = _DIGITS.fullmatch(header)
        if match is None:
            return self._bad(header)
        size = int(match[1])
        if size > self.limit:
            return too_long(size, self.limit)
        if header.startswith(b" "):
            self.style = " >"
        elif header.endswith(b" "):
            self.style = " <"
        else:
            self.style = "0"
        end = start + self.width + size
        return end if len(buffer) >= end else None

    def _bad(self, header: bytes) -> str:
        shown = header.decode("ascii", "backslashreplace")
        return f"bad length header {shown!r}: want {self.width} digits, padded with 0 or spaces"

    def frame(self, payload: bytes) -> bytes:
        payload = payload[: self.biggest]
        spec = f"{self.style}{self.width}d" if self.style == "0" else f"{self.style}{self.width}"
        return format(len(payload), spec).encode() + payload


class NetstringHeader:
    """C{LENGTH:DATA,} (djb's netstrings), lengths without leading zeros."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.digits_max = len(str(limit))

    def parse(self, buffer: bytes, start: int) -> Parsed:
        limit = self.limit
        digits_max = self.digits_max
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
            return too_long(size, limit)
        end = colon + 1 + size
        if len(buffer) <= end:
            return None
        if buffer[end] != ord(","):
            return "netstring not terminated by a comma"
        return end + 1

    def frame(self, payload: bytes) -> bytes:
        return b"%d:%s," % (len(payload), payload)


def header_for(framing: str, length_bytes: int, byte_order: str, digits: int, limit: int) -> Header:
    """A new header parser (one per connection: a digits header remembers padding)."""
    if framing == "netstring":
        return NetstringHeader(limit)
    if framing == "digits":
        return DigitsHeader(digits, limit)
    if framing == "int32":
        return BinaryHeader(4, "big", limit)
    return BinaryHeader(length_bytes, byte_order, limit)


__all__ = [
    "BINARY_WIDTHS",
    "BinaryHeader",
    "DigitsHeader",
    "Header",
    "NetstringHeader",
    "Parsed",
    "header_for",
    "too_long",
]
