"""Tests for netlab.core.textlog: twistd's own console lines, and when twistd uses them."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import LogLevel, formatEventAsClassicLogText, formatTime, timeFormatRFC3339
from twisted.python.failure import Failure
from twisted.scripts.twistd import ServerOptions

from netlab.core.textlog import CachedTime, ClassicText, console_observer, text_observer


def twistd_line(event: dict[str, Any]) -> str | None:
    """What twistd's own textFileLogObserver writes for C{event}."""
    return formatEventAsClassicLogText(event, lambda when: formatTime(when, timeFormatRFC3339))


@given(st.lists(st.floats(min_value=0, max_value=4e9), min_size=1, max_size=20))
def test_cached_time_is_twisted_time(moments: list[float]) -> None:
    """Whatever order timestamps come in, each is the text Twisted's formatTime gives."""
    cached = CachedTime()
    for when in moments:
        assert cached(when) == formatTime(when, timeFormatRFC3339)


def test_cached_time_edges() -> None:
    """A time a hair before the next second, and no time at all, match Twisted too."""
    cached = CachedTime()
    for when in (1700000000.0, 1700000000.9999996, 1700000000.5, None, 1700000001.0):
        assert cached(when) == formatTime(when, timeFormatRFC3339)


def test_classic_text_is_twistds_line() -> None:
    """Text, namespace, level, several lines and a traceback come out as twistd writes them."""
    now = time.time()
    try:
        raise ValueError("bad value")
    except ValueError:
        failure = Failure()
    events = [
        {"log_format": "{who} connected", "who": "127.0.0.1:5", "log_time": now,
         "log_namespace": "netlab.echo", "log_level": LogLevel.info},
        {"log_format": "two\nlines", "log_time": now + 1.5, "log_system": "sys"},
        {"log_format": "failed", "log_time": now, "log_failure": failure,
         "log_level": LogLevel.error, "log_namespace": "netlab"},
        {"log_format": "", "log_time": now},
        {"log_text": "{not a field}", "log_format": "{log_text}", "log_time": None},
        {"log_text": "made by EventLog", "log_format": "{log_text}", "log_time": now,
         "log_namespace": "netlab.http", "log_level": LogLevel.info},
        {"log_text": "two\nlines", "log_format": "{log_text}", "log_time": now + 0.25,
         "log_namespace": "netlab"},
        {"log_text": "no namespace", "log_format": "{log_text}", "log_time": now,
         "log_level": LogLevel.warn},
        {"log_text": "", "log_format": "{log_text}", "log_time": now},
        {"log_text": "legacy", "log_format": "{log_text}", "log_time": now, "log_system": "-"},
        {"log_text": "flat", "log_format": "{log_text}", "log_time": now,
         "log_flattened": {"log_text!:": "flattened"}},
    ]
    text = ClassicText()
    for event in events:
        assert text(event) == twistd_line(event)


def test_text_observer_writes_lines() -> None:
    """The observer writes each event as one classic line."""
    out = io.StringIO()
    observer = text_observer(out)
    observer({"log_format": "hello {x}", "x": 1, "log_time": 0.0, "log_namespace": "n",
              "log_level": LogLevel.warn})
    assert out.getvalue() == formatTime(0.0) + " [n#warn] hello 1\n"


@pytest.mark.parametrize(
    ("argv", "ours"),
    [
        (["-n", "netlab"], True),
        (["-n", "--logfile=-", "netlab"], True),
        (["-n", "--logfile=twistd.log", "netlab"], False),
        (["netlab"], False),
        (["-n", "--syslog", "netlab"], False),
        (["-n", "--logger=netlab.core.journald.observer", "netlab"], False),
    ],
)
def test_twistd_console_logger(argv: list[str], ours: bool) -> None:
    """twistd -n netlab logs to the terminal through ClassicText, unless told otherwise."""
    options = ServerOptions()
    options.parseOptions(argv)
    assert (options["logger"] is console_observer) == ours
