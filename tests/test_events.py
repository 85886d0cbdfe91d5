"""Tests for netlab.core.events: the shared EventLog."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import LogLevel

from netlab.core.events import CONNECTED, RECEIVED, EventLog, format_peer, sample
from netlab.core.settings import LogSettings


def test_level_filter_skips_lower_events() -> None:
    """Events below the configured level are neither logged nor kept."""
    seen: list[dict[str, object]] = []
    log = EventLog(LogSettings(level="info"), observer=seen.append)
    assert not log.debug_enabled
    log.emit(RECEIVED, "echo", "p", LogLevel.debug, nbytes=1, sample="")
    log.emit(CONNECTED, "echo", "p", open=1)
    assert [e["netlab_event"] for e in seen] == [CONNECTED]
    assert len(log.recent) == 1


def test_recent_ring_is_bounded() -> None:
    """Only the last recent_events events are kept."""
    log = EventLog(LogSettings(recent_events=3), observer=lambda e: None)
    for i in range(10):
        log.emit(CONNECTED, "echo", f"peer{i}", open=i)
    assert [e["peer"] for e in log.recent] == ["peer7", "peer8", "peer9"]


def test_subscribers_see_events_until_unsubscribed() -> None:
    """A subscriber gets each recorded event until it unsubscribes."""
    log = EventLog(LogSettings(), observer=lambda e: None)
    got: list[str] = []
    unsubscribe = log.subscribe(lambda e: got.append(e["peer"]))
    log.emit(CONNECTED, "echo", "a", open=1)
    unsubscribe()
    log.emit(CONNECTED, "echo", "b", open=1)
    assert got == ["a"]


def test_counters_shared_per_service() -> None:
    """counters_for gives every caller the same counters for one service."""
    log = EventLog(LogSettings())
    log.counters_for("echo").bytes_in += 5
    assert log.counters_for("echo").bytes_in == 5
    assert log.counters["echo"].snapshot()["bytes_in"] == 5
    assert log.counters_for("udp").bytes_in == 0


def test_text_file(tmp_path: Path) -> None:
    """With a file and text format, each event is one readable line in the file."""
    path = tmp_path / "netlab.log"
    log = EventLog(LogSettings(file=str(path)))
    log.startService()
    log.emit(CONNECTED, "echo", "127.0.0.1:5000", open=1)
    log.stopService()
    text = path.read_text()
    assert "[netlab.echo#info] echo: 127.0.0.1:5000 connected (1 open)" in text


def test_json_file(tmp_path: Path) -> None:
    """With format json, each event is one JSON object per line with its fields."""
    path = tmp_path / "netlab.jsonl"
    log = EventLog(LogSettings(file=str(path), format="json"))
    log.startService()
    log.emit(CONNECTED, "echo", "127.0.0.1:5000", open=1)
    log.emit(CONNECTED, "echo", "127.0.0.1:5001", open=2)
    log.stopService()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["netlab_event"], e["peer"], e["open"]) for e in events] == [
        ("connected", "127.0.0.1:5000", 1),
        ("connected", "127.0.0.1:5001", 2),
    ]


def test_peer_and_sample_formatting() -> None:
    """IPv6 peers are bracketed; payload samples show CR, LF and IAC escaped."""
    assert format_peer("::1", 7) == "[::1]:7"
    assert format_peer("127.0.0.1", 7) == "127.0.0.1:7"
    assert sample(b"a\r\n\xff") == ": a\\r\\n\\xff"
    assert sample(b"x" * 100, limit=4) == ": xxxx..."


def test_samples_show_utf8_as_text() -> None:
    """UTF-8 reads as text; controls, non-UTF-8 bytes and backslashes are escaped."""
    assert sample("Мир, привет\n".encode()) == ": Мир, привет\\n"
    assert sample(b"\x1b[2J\x07") == ": \\x1b[2J\\x07"
    assert sample(b"a\\b") == ": a\\\\b"
    assert sample(b"\xd0\x9c\xd0") == ": \u041c\\xd0"  # a broken sequence, shown as bytes
    assert sample("\u202eevil".encode()) == ": \\u202eevil"
    # The limit falls inside a two-byte character: it is left out, not shown as a byte.
    assert sample("\u041c\u041c".encode(), limit=3) == ": \u041c..."


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=80))
def test_samples_are_one_printable_line(data: bytes, limit: int) -> None:
    """Whatever arrives, a sample is one line of printable text."""
    shown = sample(data, limit)
    assert shown.startswith(": ")
    assert all(c.isprintable() for c in shown), shown
