"""
Discard as the course's sink server: it reads and logs everything, answers
nothing, and closes on a line that is the quit word or, if configured, on
an empty line.  In memory, each peer_write is one read; a real client over
loopback at the end.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from helpers import connect, listen
from memory import MemoryTCP, serve
from netlab.core.events import DISCONNECTED, RECEIVED
from netlab.protocols.classic import ClassicSettings, stream_factory


def sink(events: Any, clock: Clock, **settings: Any) -> MemoryTCP:
    factory = stream_factory(
        "discard", ClassicSettings(name="discard", **settings), events, clock
    )
    return serve(factory, clock)[1]


def reason(events: Any, clock: Clock, transport: MemoryTCP) -> str | None:
    """Why the sink closed, or None while it is still open."""
    clock.advance(0)
    if transport.lost_reason is None:
        return None
    return str(events.kinds(DISCONNECTED)[-1]["reason"])


def test_default_never_closes(events: Any, clock: Clock) -> None:
    """By default discard is RFC 863: no quit word, no empty line, it just reads."""
    transport = sink(events, clock)
    for data in (b"exit\n", b"\n", b"quit\r\n", b"\r\n"):
        transport.peer_write(data)
    assert reason(events, clock, transport) is None
    assert transport.value() == b""


@pytest.mark.parametrize(
    "reads",
    [
        [b"exit"],
        [b"exit\n"],
        [b"one\n", b"two\r\n", b"exit\r\n"],
        [b"hello", b"exit"],
        [b"one\nexit\nafter\n"],
        [b"\xff\xfd\x01exit\xff\xf4\r\n"],
    ],
    ids=["bare", "nc", "telnet-lines", "two-sends", "inside-a-read", "telnet-iac"],
)
def test_quit_word_closes(events: Any, clock: Clock, reads: list[bytes]) -> None:
    """The quit word closes the sink silently, however the client sends it."""
    transport = sink(events, clock, quit="exit")
    for data in reads:
        transport.peer_write(data)
    assert reason(events, clock, transport) == "quit"
    assert transport.read_by_peer == b""


def test_quit_word_inside_a_line_does_not_close(events: Any, clock: Clock) -> None:
    """Only a line that is just the word counts; an empty line does not without its key."""
    transport = sink(events, clock, quit="exit")
    for data in (b"exiting\n", b"please exit now\n", b"\n", b"\r\n"):
        transport.peer_write(data)
    assert reason(events, clock, transport) is None


@pytest.mark.parametrize(
    ("reads", "closes"),
    [
        ([b"one\n", b"\n"], True),
        ([b"one\r\n", b"\r\n"], True),
        ([b"one\n\ntwo\n"], True),
        ([b"\n"], True),
        ([b"one", b"\n"], False),  # that newline ends "one", it is no empty line
        ([b"one\n", b"two\n"], False),
    ],
)
def test_empty_line_closes_if_configured(
    events: Any, clock: Clock, reads: list[bytes], closes: bool
) -> None:
    """close_on_empty_line: an empty line ends the session, a line's own newline does not."""
    transport = sink(events, clock, close_on_empty_line=True)
    for data in reads:
        transport.peer_write(data)
    assert reason(events, clock, transport) == ("empty line" if closes else None)


def test_everything_before_the_end_is_logged(events: Any, clock: Clock) -> None:
    """The sink logs every read it gets, the last one included."""
    transport = sink(events, clock, quit="exit", close_on_empty_line=True)
    transport.peer_write(b"first line\n")
    transport.peer_write(b"second line\nexit\n")
    assert reason(events, clock, transport) == "quit"
    samples = [e["sample"] for e in events.kinds(RECEIVED)]
    assert len(samples) == 2
    assert "first line" in samples[0] and "second line" in samples[1]
    assert events.kinds(DISCONNECTED)[-1]["bytes_in"] == 11 + 17


@pytest_twisted.inlineCallbacks
def test_sink_over_loopback(events: Any, clock: Clock) -> Any:
    """A real client's empty line closes its connection; the sink keeps listening."""
    factory = stream_factory(
        "discard", ClassicSettings(name="discard", quit="exit", close_on_empty_line=True),
        events, clock,
    )
    port = listen(factory)
    for ending in (b"line one\nline two\n\n", b"line one\nexit"):
        client = yield connect(port)
        client.send(ending)
        yield client.closed
        assert client.data == b""
    yield factory.when_idle()
    yield port.stopListening()
    assert [e["reason"] for e in events.kinds(DISCONNECTED)] == ["empty line", "quit"]
