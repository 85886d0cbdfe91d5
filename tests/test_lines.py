"""Tests for netlab.protocols.lines: telnet filtering and line splitting."""

from __future__ import annotations

from netlab.protocols.lines import LineSplitter, TelnetFilter


def test_plain_data_passes_unchanged() -> None:
    """Data without IAC bytes comes out exactly as it went in."""
    assert TelnetFilter().feed(b"hello\r\n") == b"hello\r\n"


def test_negotiation_removed() -> None:
    """WILL/WONT/DO/DONT sequences and two-byte commands are removed."""
    data = b"\xff\xfd\x18a\xff\xfb\x01b\xff\xf4c"
    assert TelnetFilter().feed(data) == b"abc"


def test_subnegotiation_removed() -> None:
    """Everything from IAC SB to IAC SE is removed, including IAC IAC inside."""
    data = b"x\xff\xfa\x18\x00XTERM\xff\xff\xff\xf0y"
    assert TelnetFilter().feed(data) == b"xy"


def test_sequence_split_across_reads() -> None:
    """A command split over several reads is still removed."""
    f = TelnetFilter()
    out = b"".join(f.feed(bytes([b])) for b in b"a\xff\xfd\x01b\xff\xfa\x01\xff\xf0c")
    assert out == b"abc"


def test_escaped_iac_dropped() -> None:
    """IAC IAC, an escaped 0xFF data byte, never reaches anyone."""
    assert TelnetFilter().feed(b"a\xff\xffb") == b"ab"


def test_both_line_endings() -> None:
    """netcat's LF and telnet's CRLF both end a line, and the ending is kept apart."""
    s = LineSplitter(100)
    assert s.feed(b"one\ntwo\r\nthr") == [(b"one", b"\n"), (b"two", b"\r\n")]
    assert s.feed(b"ee\n") == [(b"three", b"\n")]


def test_long_line_reported_once_and_dropped() -> None:
    """A complete over-long line is reported once; the next line still counts."""
    s = LineSplitter(4)
    assert s.feed(b"12345\nok\n") == [(None, b"\n"), (b"ok", b"\n")]


def test_long_unfinished_line_reported_early() -> None:
    """An over-long line is reported before it ends, then discarded to its end."""
    s = LineSplitter(4)
    assert s.feed(b"123456789") == [(None, b"\r\n")]
    assert s.feed(b"more junk") == []
    assert s.feed(b"tail\nnext\n") == [(b"next", b"\n")]


def test_line_at_limit_accepted() -> None:
    """A line of exactly max_line bytes, CR included or not, is a line."""
    s = LineSplitter(4)
    assert s.feed(b"1234\r\n1234\n") == [(b"1234", b"\r\n"), (b"1234", b"\n")]
