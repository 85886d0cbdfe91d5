"""
The console log: Twisted's classic text lines, made faster.

Twisted formats every event's timestamp from scratch (two time-zone
look-ups and an C{strftime}), which was a tenth of the time of a web request
with its access log on.  The text has one-second resolution, so
L{CachedTime} formats each second once; the lines are the same as twistd's
own C{textFileLogObserver}'s, character for character.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    formatEventAsClassicLogText,
    formatTime,
    timeFormatRFC3339,
)

from netlab.core._twisted import is_port_chatter


class CachedTime:
    """C{twisted.logger.formatTime} with RFC 3339 seconds, each second formatted once."""

    def __init__(self) -> None:
        self._second: int | None = None
        self._text = ""

    def __call__(self, when: float | None) -> str:
        if when is None:
            return formatTime(when, timeFormatRFC3339)
        second = math.floor(when)
        if when - second >= 0.9999995:
            # datetime rounds to the microsecond, which may reach the next second.
            return formatTime(when, timeFormatRFC3339)
        if second != self._second:
            self._text = formatTime(second, timeFormatRFC3339)
            self._second = second
        return self._text


class ClassicText:
    """C{formatEventAsClassicLogText} with a L{CachedTime}: C{2026-... [ns#info] text}."""

    def __init__(self) -> None:
        self._time = CachedTime()

    def __call__(self, event: Any) -> str | None:
        text = event.get("log_text")
        if (
            type(text) is str
            and event.get("log_format") == "{log_text}"
            and "log_system" not in event
            and "log_failure" not in event
            and "log_flattened" not in event
        ):
            # netlab's events (EventLog has made their text): the line
            # Twisted would write, without passing the text through its
            # Python-level Formatter, a third of the cost of a log line.
            if not text:
                return None
            level = event.get("log_level")
            line = (
                f"{self._time(event.get('log_time'))} "
                f"[{event.get('log_namespace', '-')}#{'-' if level is None else level.name}] "
                f"{text}"
            )
            return line.replace("\n", "\n\t") + "\n"
        if is_port_chatter(event):
            # Twisted's own line for a listener netlab logs itself.
            return None
        return formatEventAsClassicLogText(event, formatTime=self._time)


def text_observer(out: TextIO) -> ILogObserver:
    """An observer writing classic text lines to C{out}, as twistd's own does."""
    return FileLogObserver(out, ClassicText())


def console_observer() -> ILogObserver:
    """
    twistd's log to standard output, through L{ClassicText}: the
    C{--logger} that C{twistd -n netlab} uses when none is given (see
    L{netlab.tap.Options}).
    """
    return text_observer(sys.stdout)
