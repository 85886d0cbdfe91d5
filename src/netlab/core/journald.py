"""
A twistd log observer for systemd's journal:

    twistd --logger=netlab.core.journald.observer -n netlab ...

When systemd runs the daemon (C{$JOURNAL_STREAM} is set), each line starts
with the syslog priority in angle brackets (C{<6>} for info, C{<4>} for
warnings...), which journald turns into the entry's priority, so
C{journalctl -p warning -u netlab} filters by level; journald adds its own
timestamps.  In a terminal it writes the usual timestamped text.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogLevel,
    formatEvent,
)

from netlab.core._twisted import is_port_chatter
from netlab.core.textlog import text_observer

PRIORITIES = {
    LogLevel.debug: 7,
    LogLevel.info: 6,
    LogLevel.warn: 4,
    LogLevel.error: 3,
    LogLevel.critical: 2,
}


def journal_line(event: Mapping[str, Any]) -> str | None:
    """C{<priority>[namespace] message}, one line per event line, for journald."""
    if is_port_chatter(event):
        return None  # Twisted's own line for a listener netlab logs itself
    text = formatEvent(dict(event))
    if "log_failure" in event:
        text = f"{text}\n{event['log_failure'].getTraceback()}".rstrip("\n")
    if not text:
        return None
    priority = PRIORITIES.get(event.get("log_level", LogLevel.info), 6)
    namespace = event.get("log_namespace") or "-"
    return "".join(f"<{priority}>[{namespace}] {line}\n" for line in text.splitlines())


def observer(
    out: TextIO | None = None, environ: Mapping[str, str] = os.environ
) -> ILogObserver:
    """The observer twistd's C{--logger} asks for: journal lines under systemd."""
    stream = sys.stdout if out is None else out
    if environ.get("JOURNAL_STREAM"):
        return FileLogObserver(stream, journal_line)
    return text_observer(stream)

