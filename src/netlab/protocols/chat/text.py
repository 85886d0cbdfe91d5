"""
Text from users made safe to show on other users' terminals.

Anything relayed (messages, nicks, topics, reasons) passes L{clean}: ANSI
escape sequences and control characters are removed so that nobody can
clear, move or recolour another user's screen, and bidirectional overrides
are removed so that nobody can disguise what they wrote.
"""

from __future__ import annotations

import re

# ESC and what follows it: CSI (ESC [ ... final), OSC/DCS/PM/APC strings
# (up to BEL or ESC \), or a two-byte sequence.  Also the one-byte C1 CSI.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
)
# C0 and C1 controls, DEL, and the Unicode controls that reorder or hide text.
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def clean(text: str) -> str:
    """C{text} without escape sequences or control characters; tabs become spaces."""
    if text.isprintable():
        return text
    text = _ESCAPES.sub("", text.replace("\t", " "))
    return _CONTROLS.sub("", text)


def decode(line: bytes) -> str:
    """A line from a client as text: UTF-8, anything undecodable replaced."""
    return line.decode("utf-8", "replace")


def is_safe(text: str) -> bool:
    """Whether C{text} holds nothing L{clean} would remove."""
    return clean(text) == text
