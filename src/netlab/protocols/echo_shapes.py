"""
What an echo says back, apart from how it reads: the answer shapes of the
course's small servers, and where a session ends.

The course's servers answer each C{recv} with C{data.upper()},
C{b"OK..." + data}, C{b"Your data: " + data} or a fixed C{b"Thank you for
the data"}; L{Shape} is that choice, made once from an echo's settings.
Its clients send C{hello, world!} with no newline and block in C{recv}, so
the answer cannot wait for a line: L{Upper} upper-cases a chunk at once
while keeping back the first bytes of a UTF-8 character split across two
reads.  L{session_end} finds the quit word (and, for the sink server, an
empty line) in what a read brought.  Plain Python, tested without sockets;
the discard service shares L{session_end}.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

OK_PREFIX = "OK..."


@dataclass(frozen=True)
class Shape:
    """
    How one answer is made: C{prefix} then the body, where the body is the
    fixed C{reply} when there is one, else the (transformed) data.

    @ivar prefix: put before every answer, a reply included.
    @ivar reply: answered instead of the data (C{None}: answer the data).
    """

    prefix: bytes = b""
    reply: bytes | None = None

    @classmethod
    def of(cls, mode: str, prefix: str, reply: str) -> Shape:
        """The shape an echo's C{mode}, C{prefix} and C{reply} settings ask for."""
        text = OK_PREFIX if mode == "ok" else prefix
        return cls(text.encode("utf-8"), reply.encode("utf-8") if reply else None)

    def answer(self, body: bytes, ending: bytes) -> bytes:
        """
        The answer to C{body} (the data, its line ending already inside it
        or given as C{ending}).  A fixed reply is followed by C{ending} so a
        telnet or netcat user gets their line back, and a client that sent
        no newline gets none.
        """
        if self.reply is not None:
            return self.prefix + self.reply + ending
        return self.prefix + body + ending if self.prefix else body + ending


def line_ending(data: bytes) -> bytes:
    """The newline C{data} ends with (C{\\r\\n}, C{\\n}) or C{b""}."""
    if data.endswith(b"\r\n"):
        return b"\r\n"
    if data.endswith(b"\n"):
        return b"\n"
    return b""


class Upper:
    """
    Upper-cases UTF-8 text that arrives in arbitrary chunks.  A character
    whose bytes straddle two reads is kept back until its last byte comes,
    rather than answered as two U+FFFD; bytes that are not UTF-8 at all are
    answered as U+FFFD.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes, final: bool = False) -> bytes:
        """C{data} upper-cased, less an unfinished last character (unless C{final})."""
        return self._decoder.decode(data, final).upper().encode("utf-8")


def upper_line(line: bytes) -> bytes:
    """One complete line upper-cased (a line unit's transform)."""
    return line.decode("utf-8", "replace").upper().encode("utf-8")


QUIT = "quit"
EMPTY_LINE = "empty line"


def session_end(
    data: bytes, quit_word: bytes, empty_line: bool = False, at_line_start: bool = True
) -> tuple[int, str] | None:
    """
    Where in C{data} (one read, telnet commands already removed) the
    session ends, and why: the first line that is just the quit word
    (spaces and C{\\r} around it ignored), whether a newline ends it or the
    read does, since the course's clients send C{exit} with no newline; or,
    with C{empty_line}, the first empty line that a newline ends.

    Each read is taken as a message of its own, as the course's clients
    send them: C{hello} then C{exit} in two reads quits, C{ex} then C{it}
    does not.  C{at_line_start} says whether the previous read ended with a
    newline, so a read that is only the C{\\n} ending a longer line is not
    an empty line.

    @return: C{(offset, reason)}: the line starts at C{offset}, and it and
        what follows it are not to be answered; C{None}: no end here.
    """
    if not quit_word and not empty_line:
        return None
    if quit_word and quit_word not in data and not (empty_line and b"\n" in data):
        return None
    start = 0
    while True:
        end = data.find(b"\n", start)
        line = data[start:] if end < 0 else data[start:end]
        if quit_word and line.strip() == quit_word:
            return start, QUIT
        if end < 0:
            return None
        if empty_line and line in (b"", b"\r") and (start or at_line_start):
            return start, EMPTY_LINE
        start = end + 1


__all__ = [
    "EMPTY_LINE",
    "OK_PREFIX",
    "QUIT",
    "Shape",
    "Upper",
    "line_ending",
    "session_end",
    "upper_line",
]
