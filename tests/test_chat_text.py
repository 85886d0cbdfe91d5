"""Property tests for the chat's sanitiser and line parsing: no input crashes them,
and no output ever carries a control byte, an ESC or a raw 0xFF."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from helpers import make_hub
from netlab.protocols.chat.text import clean, decode
from netlab.protocols.lines import LineSplitter, TelnetFilter

# Bytes no relayed line may contain once encoded: C0 controls, DEL, ESC, 0xFF;
# and C1 controls, which UTF-8 encodes as C2 80..C2 9F.
FORBIDDEN = re.compile(rb"[\x00-\x1f\x7f\xff]|\xc2[\x80-\x9f]")

# Arbitrary text, with escape-sequence pieces made common.
nasty_text = st.lists(
    st.one_of(
        st.text(),
        st.sampled_from(["\x1b", "\x1b[", "\x1b]", "\x07", "\x9b", "\r", "\n", "\t", "\u202e"]),
    )
).map("".join)


@given(nasty_text)
def test_clean_leaves_no_control_characters(text: str) -> None:
    """Whatever goes in, what comes out encodes without control bytes or ESC."""
    assert not FORBIDDEN.search(clean(text).encode("utf-8", "surrogatepass"))


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
