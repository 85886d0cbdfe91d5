"""
Text from users made safe to show on other users' terminals.

Anything relayed (messages, nicks, topics, reasons) passes L{clean}: ANSI
escape sequences and control characters are removed so that nobody can
clear, move or recolour another user's screen, and every invisible
character is removed so that nobody can disguise what they wrote: format
characters (bidi overrides and marks, zero-width spaces and joiners, the
soft hyphen, tag characters, interlinear annotations), line and paragraph
separators, surrogates, code points not assigned (in this Python's Unicode
version: they may be next year's invisible ones), and the Hangul fillers,
letters that show as nothing.

Private-use characters (Co) stay: they cannot move the cursor or reorder
text, a terminal shows them as a glyph or a box, and students' terminal
fonts use them for icons.
"""

from __future__ import annotations

import re
import unicodedata

# ESC and what follows it: CSI (ESC [ ... final), OSC/DCS/PM/APC strings
# (up to BEL or ESC \), or a two-byte sequence.  Also the one-byte C1 CSI.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
)
# Controls, format characters, separators, surrogates, unassigned.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def _visible(c: str) -> bool:
    return unicodedata.category(c) not in _INVISIBLE_CATEGORIES and c not in _BLANK_LETTERS


def clean(text: str) -> str:
    """C{text} without escape sequences or invisible characters; tabs become spaces."""
    # isprintable() is false for every category removed here (and for
    # spaces other than " ", and private use): most text is done at once.
    if text.isprintable() and _BLANK_LETTERS.isdisjoint(text):
        return text
    text = _ESCAPES.sub("", text.replace("\t", " "))
    return "".join(filter(_visible, text))


def decode(line: bytes) -> str:
    """A line from a client as text: UTF-8, anything undecodable replaced."""
    return line.decode("utf-8", "replace")


def is_safe(text: str) -> bool:
    """Whether C{text} holds nothing L{clean} would remove."""
    return clean(text) == text


class PrivateText(str):
    """
    A line for one user's eyes (a private message): the same text to show
    them, and C{shown}, what a payload sample or log may say of it instead.
    """

    shown: str

    def __new__(cls, text: str, shown: str) -> PrivateText:
        line = super().__new__(cls, text)
        line.shown = shown
        return line
