"""
The TCP echo's chunk unit and reply shapes (prefix, reply, close_after),
in memory: each read the client's bytes make is one L{MemoryTCP.peer_write},
so what a chunk is stays exact.  The real daemon and the course's own
blocking clients are in test_echo_course.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from memory import MemoryTCP, serve
from netlab.core.events import DISCONNECTED
from netlab.protocols.echo import (
    ChunkEcho,
    EchoFactory,
    EchoSettings,
    LineEcho,
    PlainEcho,
    protocol_for,
)
from netlab.protocols.echo_shapes import Shape, Upper, line_ending, session_end


def echo(events: Any, clock: Clock, **settings: Any) -> tuple[EchoFactory, MemoryTCP]:
    factory = EchoFactory(EchoSettings(name="echo", **settings), events, clock)
    _, transport = serve(factory, clock)
    return factory, transport


def closed_because(events: Any, clock: Clock, transport: MemoryTCP) -> str:
    """Let the close happen; the reason the disconnect event gives."""
    clock.advance(0)
    assert transport.lost_reason is not None, "still connected"
    return str(events.kinds(DISCONNECTED)[-1]["reason"])


# -- the pure parts ------------------------------------------------------------


def test_upper_keeps_a_split_character_for_the_next_chunk() -> None:
    """A character split across reads is upper-cased whole, never as two U+FFFD."""
    upper = Upper()
    data = "straße é".encode()
    cut = data.index("ß".encode()) + 1
    assert upper.feed(data[:cut]) == b"STRA"
    assert upper.feed(data[cut:]) == "SSE É".encode()
    assert upper.feed(b"\xc3") == b""
    assert upper.feed(b"", final=True) == "\ufffd".encode()
    assert upper.feed(b"\xff ok") == "\ufffd OK".encode()


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"exit", (0, "quit")),
        (b"exit\n", (0, "quit")),
        (b"exit\r\n", (0, "quit")),
        (b"  exit \r\n", (0, "quit")),
        (b"hello\nexit\nmore\n", (6, "quit")),
        (b"exiting\n", None),
        (b"hello exit\n", None),
        (b"hello", None),
    ],
)
def test_session_end_quit_word(data: bytes, end: tuple[int, str] | None) -> None:
    """The quit word ends a session as a whole read or a line of its own, never inside a line."""
    assert session_end(data, b"exit") == end


@pytest.mark.parametrize(
    ("data", "at_line_start", "end"),
    [
        (b"\n", True, (0, "empty line")),
        (b"\r\n", True, (0, "empty line")),
        (b"\n", False, None),  # the end of a line the previous read began
        (b"one\n\ntwo\n", True, (4, "empty line")),
        (b"one\ntwo\n", True, None),
        (b"", True, None),
        (b"one", True, None),
    ],
)
def test_session_end_empty_line(
    data: bytes, at_line_start: bool, end: tuple[int, str] | None
) -> None:
    """An empty line ends a session only when a newline ends it and it starts a line."""
    assert session_end(data, b"", empty_line=True, at_line_start=at_line_start) == end


def test_shapes() -> None:
    """ok is the OK... prefix; a reply replaces the data, keeps the prefix and the ending."""
    assert Shape.of("ok", "", "").answer(b"hi\n", b"") == b"OK...hi\n"
    assert Shape.of("plain", "Your data: ", "").answer(b"x", b"") == b"Your data: x"
    thanks = Shape.of("upper", "", "Thank you for the data")
    assert thanks.answer(b"ignored", b"\r\n") == b"Thank you for the data\r\n"
    assert Shape.of("plain", "> ", "fixed").answer(b"x", b"") == b"> fixed"
    assert [line_ending(d) for d in (b"a\r\n", b"a\n", b"a", b"")] == [b"\r\n", b"\n", b"", b""]


def test_protocol_for_each_shape() -> None:
    """Plain without shapes keeps the byte-exact fast path; everything else is chunked or lined."""
    assert protocol_for(EchoSettings()) is PlainEcho
    assert protocol_for(EchoSettings(unit="line")) is PlainEcho
    assert protocol_for(EchoSettings(mode="ok", unit="line")) is LineEcho
    assert protocol_for(EchoSettings(prefix="> ", unit="line")) is LineEcho
    assert protocol_for(EchoSettings(mode="upper")) is ChunkEcho
    assert protocol_for(EchoSettings(prefix="> ")) is ChunkEcho
    assert protocol_for(EchoSettings(reply="thanks")) is ChunkEcho
    assert protocol_for(EchoSettings(close_after=1)) is ChunkEcho
    assert protocol_for(EchoSettings(close_after=0, unit="line")) is LineEcho


# -- unit = "chunk" -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "answer"), [("upper", b"HELLO, WORLD!"), ("ok", b"OK...hello, world!")]
)
def test_chunk_without_newline_answered_at_once(
    events: Any, clock: Clock, mode: str, answer: bytes
) -> None:
    """The course's client sends no newline and waits: it is answered at once, per chunk."""
    _, transport = echo(events, clock, mode=mode)
    transport.peer_write(b"hello, world!")
    assert transport.peer_read() == answer
    transport.peer_write(b"again")
    assert transport.peer_read() == answer.replace(b"hello, world!", b"again").replace(
        b"HELLO, WORLD!", b"AGAIN"
    )


def test_chunk_upper_utf8_split_across_reads(events: Any, clock: Clock) -> None:
    """A character split across two reads is answered whole with the second."""
    _, transport = echo(events, clock, mode="upper")
    data = "straße\n".encode()
    cut = data.index("ß".encode()) + 1
    transport.peer_write(data[:cut])
    assert transport.peer_read() == b"STRA"
    transport.peer_write(data[cut:])
    assert transport.peer_read() == b"SSE\n"


def test_chunk_split_character_at_half_close(events: Any, clock: Clock) -> None:
    """A client that half-closes in the middle of a character gets U+FFFD, not silence."""
    factory, transport = echo(events, clock, mode="upper")
    transport.peer_write(b"ok \xc3")
    server = next(iter(factory.open_protocols))
    server.readConnectionLost()
    assert transport.peer_read() == "OK \ufffd".encode()
    assert closed_because(events, clock, transport) == "closed by client"


def test_chunk_telnet_negotiation_dropped(events: Any, clock: Clock) -> None:
    """IAC sequences never show up, also split across reads; a read of only IAC gets no answer."""
    _, transport = echo(events, clock, mode="ok")
    transport.peer_write(b"\xff\xfd\x01\xff\xfb")
    transport.peer_write(b"\x03")
    assert transport.peer_read() == b""
    transport.peer_write(b"a\xff\xf4b\r\n")
    assert transport.peer_read() == b"OK...ab\r\n"


@pytest.mark.parametrize("quit_read", [b"exit", b"exit\n", b"exit\r\n"])
def test_chunk_quit_word(events: Any, clock: Clock, quit_read: bytes) -> None:
    """The quit word as a chunk or a line: not answered, goodbye, close."""
    _, transport = echo(events, clock, mode="upper", quit="exit", goodbye="See you.")
    transport.peer_write(b"hello")
    transport.peer_write(quit_read)
    assert transport.peer_read() == b"HELLOSee you.\r\n"
    assert closed_because(events, clock, transport) == "quit"


def test_chunk_quit_line_inside_a_read(events: Any, clock: Clock) -> None:
    """What came before the quit line in the same read is answered; what came after is not."""
    _, transport = echo(events, clock, mode="ok", quit="exit")
    transport.peer_write(b"one\nexit\r\nnot answered\n")
    assert transport.peer_read() == b"OK...one\nBye.\r\n"
    assert closed_because(events, clock, transport) == "quit"


def test_chunk_prefix_and_reply(events: Any, clock: Clock) -> None:
    """A prefix goes before each chunk; a reply replaces it and keeps the chunk's newline."""
    _, transport = echo(events, clock, prefix="Your data: ")
    transport.peer_write(b"\xff\x00binary")
    assert transport.peer_read() == b"Your data: \xff\x00binary"
    _, transport = echo(events, clock, mode="upper", prefix="> ", reply="Thank you")
    transport.peer_write(b"abc")
    transport.peer_write(b"def\r\n")
    assert transport.peer_read() == b"> Thank you> Thank you\r\n"


# -- close_after -----------------------------------------------------------------


def test_close_after_zero_banner_then_close(events: Any, clock: Clock) -> None:
    """close_after = 0: the banner, then the close, with no goodbye line."""
    _, transport = echo(events, clock, banner="Thank you for the connection", close_after=0)
    assert transport.peer_read() == b"Thank you for the connection\r\n"
    assert closed_because(events, clock, transport) == "close_after = 0 reached"


def test_close_after_zero_without_banner_says_nothing(events: Any, clock: Clock) -> None:
    """Accept and close: nothing at all is sent."""
    _, transport = echo(events, clock, close_after=0)
    clock.advance(0)
    assert transport.read_by_peer == b"" and transport.lost_reason is not None


def test_close_after_one_answer(events: Any, clock: Clock) -> None:
    """Banner, one answer, close: what the client sends after is never answered."""
    _, transport = echo(events, clock, banner="Hello!", prefix="Your data: ", close_after=1)
    assert transport.peer_read() == b"Hello!\r\n"
    transport.peer_write(b"hi")
    transport.peer_write(b"more")
    assert transport.peer_read() == b"Your data: hi"
    assert closed_because(events, clock, transport) == "close_after = 1 reached"


def test_plain_close_after_is_byte_exact(events: Any, clock: Clock) -> None:
    """Echo once then close stays binary-safe: telnet bytes are plain's data too."""
    _, transport = echo(events, clock, close_after=2)
    transport.peer_write(b"\xff\xfd\x01")
    transport.peer_write(b"two")
    transport.peer_write(b"three")
    assert transport.peer_read() == b"\xff\xfd\x01two"
    assert closed_because(events, clock, transport) == "close_after = 2 reached"


def test_split_character_is_not_an_answer(events: Any, clock: Clock) -> None:
    """A read that is only the start of a character answers nothing, so it does not count."""
    _, transport = echo(events, clock, mode="upper", close_after=1)
    transport.peer_write(b"\xc3")
    transport.peer_write(b"\xa9")
    assert transport.peer_read() == "É".encode()
    assert closed_because(events, clock, transport) == "close_after = 1 reached"


# -- unit = "line" -------------------------------------------------------------


def test_line_unit_waits_for_the_line(events: Any, clock: Clock) -> None:
    """unit line keeps today's behaviour: nothing until the newline."""
    _, transport = echo(events, clock, mode="upper", unit="line")
    transport.peer_write(b"hello, ")
    assert transport.peer_read() == b""
    transport.peer_write(b"world!\r\n")
    assert transport.peer_read() == b"HELLO, WORLD!\r\n"


def test_line_unit_shapes_and_close_after(events: Any, clock: Clock) -> None:
    """Per line: prefix, then reply with the line's ending; close after N lines in one read."""
    _, transport = echo(events, clock, unit="line", prefix="> ", close_after=2)
    transport.peer_write(b"one\ntwo\r\nthree\n")
    assert transport.peer_read() == b"> one\n> two\r\n"
    assert closed_because(events, clock, transport) == "close_after = 2 reached"
    _, transport = echo(events, clock, unit="line", reply="Thank you", close_after=1)
    transport.peer_write(b"data\r\n")
    assert transport.peer_read() == b"Thank you\r\n"


def test_line_unit_error_lines_do_not_count(events: Any, clock: Clock) -> None:
    """A refused long line gets its ERROR line and does not use up close_after."""
    _, transport = echo(events, clock, mode="ok", unit="line", max_line=16, close_after=1)
    transport.peer_write(b"x" * 40 + b"\nshort\n")
    assert transport.peer_read() == (
        b"ERROR line longer than 16 bytes, not echoed\nOK...short\n"
    )
    assert closed_because(events, clock, transport) == "close_after = 1 reached"


def test_line_unit_quit_before_close_after(events: Any, clock: Clock) -> None:
    """The quit word still ends a one-shot line session, with the goodbye."""
    _, transport = echo(events, clock, unit="line", quit="exit", close_after=5)
    transport.peer_write(b"a\nexit\n")
    assert transport.peer_read() == b"a\nBye.\r\n"
    assert closed_because(events, clock, transport) == "quit"


# -- reload ----------------------------------------------------------------------


def test_reload_applies_shapes_to_new_connections(events: Any, clock: Clock) -> None:
    """A reload's new prefix and unit apply to the next connection; the open one keeps its own."""
    factory, old = echo(events, clock)
    factory.configure(EchoSettings(name="echo", prefix="new: "))
    _, new = serve(factory, clock, port=40001)
    old.peer_write(b"a")
    new.peer_write(b"b")
    assert (old.peer_read(), new.peer_read()) == (b"a", b"new: b")
    factory.configure(EchoSettings(name="echo", mode="upper", unit="line"))
    _, lined = serve(factory, clock, port=40002)
    lined.peer_write(b"c")
    assert lined.peer_read() == b""
