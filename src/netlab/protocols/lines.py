"""
Byte streams to lines, for clients that are people at a terminal.

netcat ends lines with C{\\n}, telnet with C{\\r\\n} and mixes in IAC
negotiation.  Twisted's C{LineReceiver} closes the connection (or loses the
rest of its buffer) on an over-long line; a lab server instead tells the
user and carries on with the next line, hence this small splitter.
"""

from __future__ import annotations

IAC = 0xFF
SB = 0xFA
SE = 0xF0
WILL, WONT, DO, DONT = 0xFB, 0xFC, 0xFD, 0xFE

_DATA, _COMMAND, _OPTION, _SUB, _SUB_IAC = range(5)


class TelnetFilter:
    """
    Removes telnet commands (IAC sequences, subnegotiations) from a stream,
    also when a sequence is split across reads.  An escaped 0xFF byte
    (IAC IAC) is dropped too: no terminal should ever be sent a raw IAC.
    """

    def __init__(self) -> None:
        self._state = _DATA

    def feed(self, data: bytes) -> bytes:
        """The data with every telnet command removed."""
        if self._state == _DATA and IAC not in data:
            return data
        out = bytearray()
        state = self._state
        for byte in data:
            if state == _DATA:
                if byte == IAC:
                    state = _COMMAND
                else:
                    out.append(byte)
            elif state == _COMMAND:
                if byte in (WILL, WONT, DO, DONT):
                    state = _OPTION
                elif byte == SB:
                    state = _SUB
                else:
                    state = _DATA
            elif state == _OPTION:
                state = _DATA
            elif state == _SUB:
                if byte == IAC:
                    state = _SUB_IAC
            else:  # _SUB_IAC
                state = _DATA if byte == SE else _SUB
        self._state = state
        return bytes(out)


class LineSplitter:
    """
    Splits a byte stream into lines ending in C{\\n} or C{\\r\\n}.

    L{feed} returns C{(line, ending)} pairs.  A line longer than C{max_line}
    bytes comes out once as C{(None, ending)} and is otherwise dropped up to
    its end, so the user can be told and the next line still counts.
    """

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = b""
        self._discarding = False

    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes]]:
        """The complete lines in C{data} and what came before it."""
        buffer = self._buffer + data if self._buffer else data
        lines: list[tuple[bytes | None, bytes]] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            crlf = line.endswith(b"\r")
            if crlf:
                line = line[:-1]
            ending = b"\r\n" if crlf else b"\n"
            if self._discarding:
                self._discarding = False
            elif len(line) > self.max_line:
                lines.append((None, ending))
            else:
                lines.append((line, ending))
        rest = buffer[start:]
        if self._discarding:
            rest = b""
        elif len(rest) > self.max_line + 1:
            # Say so now rather than when the line finally ends (if ever).
            lines.append((None, b"\r\n"))
            self._discarding = True
            rest = b""
        self._buffer = rest
        return lines

    @property
    def partial(self) -> bytes:
        """What has come of the unfinished line so far (less a line being dropped)."""
        return self._buffer

    def flush(self) -> bytes | None:
        """The unfinished last line, at the end of input (C{None} if none)."""
        rest, self._buffer = self._buffer, b""
        if self._discarding or not rest:
            return None
        return rest[:-1] if rest.endswith(b"\r") else rest
