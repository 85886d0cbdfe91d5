"""Property tests for the chat's sanitiser and line parsing: no input crashes them,
and no output ever carries a control byte, an ESC or a raw 0xFF."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from helpers import make_hub
from netlab.protocols.chat.text import clean, decode
from netlab.protocols.lines import LineSplitter, TelnetFilter

# Bytes no relayed line may contain once encoded: C0 controls, DEL, ESC, 0xFF;
# and C1 controls, which UTF-8 encodes as C2 80..C2 9F.
FORBIDDEN = re.compile(rb"[\x00-\x1f\x7f\xff]|\xc2[\x80-\x9f]")

# What no relayed text may hold, by Unicode category: controls, format
# characters (bidi marks, soft hyphen, tags, interlinear annotation...),
# line and paragraph separators, surrogates and unassigned code points.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
# Letters that show as nothing (Hangul fillers): as good as invisible in a nick or line.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# The ones the issue tracker found passing, and their neighbours.
INVISIBLE_SAMPLES = [
    "\u2028", "\u2029", "\u061c", "\u180e", "\u00ad", "\ufff9", "\ufffa", "\ufffb",
    "\u200e", "\u200f", "\u202e", "\u2066",
    "\U000e0000", "\U000e0001", "\U000e0020", "\U000e0041", "\U000e007f", "\u0378",
    "\U0010fffe", "\u3164",
]

# Arbitrary text, with escape-sequence pieces and invisible characters made common.
nasty_text = st.lists(
    st.one_of(
        st.text(),
        st.sampled_from(["\x1b", "\x1b[", "\x1b]", "\x07", "\x9b", "\r", "\n", "\t"]),
        st.sampled_from(INVISIBLE_SAMPLES),
        st.characters(categories=["Cf", "Zl", "Zp", "Cn", "Cs"]),
    )
).map("".join)


def invisible(c: str) -> bool:
    return unicodedata.category(c) in INVISIBLE_CATEGORIES or c in BLANK_LETTERS


@given(nasty_text)
def test_clean_leaves_no_control_characters(text: str) -> None:
    """Whatever goes in, what comes out encodes without control bytes or ESC."""
    assert not FORBIDDEN.search(clean(text).encode("utf-8", "surrogatepass"))


@given(nasty_text)
def test_clean_leaves_no_invisible_characters(text: str) -> None:
    """No format, separator, surrogate or unassigned character survives, nor a blank letter."""
    assert not [c for c in clean(text) if invisible(c)]


@pytest.mark.parametrize("c", INVISIBLE_SAMPLES)
def test_each_invisible_character_the_tracker_found_is_removed(c: str) -> None:
    """U+2028, U+061C, U+180E, U+00AD, tags and U+FFF9-FFFB, between visible letters."""
    assert clean(f"a{c}b") == "ab"


@given(st.text(alphabet=st.characters(exclude_categories=["Cc", "Cf", "Zl", "Zp", "Cs", "Cn"])))
def test_clean_keeps_visible_text_of_every_script(text: str) -> None:
    """Letters, marks, symbols, emoji and private-use characters of any script pass unchanged."""
    assert clean(text) == "".join(c for c in text if c not in BLANK_LETTERS)


@given(nasty_text)
def test_clean_is_idempotent(text: str) -> None:
    """Cleaning twice changes nothing more."""
    once = clean(text)
    assert clean(once) == once


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_clean_keeps_printable_ascii(text: str) -> None:
    """Ordinary printable text passes unchanged."""
    assert clean(text) == text


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(16, 200))
def test_line_parsing_never_crashes_and_is_bounded(chunks: list[bytes], max_line: int) -> None:
    """Any bytes, in any chunks, give lines within max_line whose cleaned text is safe."""
    telnet, splitter = TelnetFilter(), LineSplitter(max_line)
    for chunk in chunks:
        for line, ending in splitter.feed(telnet.feed(chunk)):
            assert ending in (b"\n", b"\r\n")
            if line is not None:
                assert len(line) <= max_line
                assert b"\n" not in line
                safe = clean(decode(line)).encode("utf-8", "surrogatepass")
                assert not FORBIDDEN.search(safe)


class Recorder:
    peer_host = "192.0.2.7"
    peer = "192.0.2.7:4000"

    def __init__(self) -> None:
        self.shown: list[str] = []

    def send_line(self, text: str) -> None:
        self.shown.append(text)

    def end(self, reason: str) -> None:
        pass


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=15))
def test_hub_relays_nothing_unsafe(lines: list[bytes]) -> None:
    """Whatever a user sends as nick, commands and messages, others see only safe text."""
    from conftest import RecordedEvents

    clock = Clock()
    hub = make_hub(RecordedEvents("info"), clock, flood_lines=1000)
    watcher = Recorder()
    hub.connect(watcher).line("watcher")
    sender: Any = Recorder()
    session = hub.connect(sender)
    for raw in [b"sender", *lines]:
        session.line(decode(raw))
    for text in watcher.shown:
        assert not FORBIDDEN.search(text.encode("utf-8", "surrogatepass")), text
