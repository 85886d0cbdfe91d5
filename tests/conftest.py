"""
Fixtures every test shares: an event log that records into a list, a
C{task.Clock}, and a check that no test leaves a DelayedCall or an open
socket behind in the reactor.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from twisted.internet import reactor
from twisted.internet.task import Clock

from netlab.core.events import EventLog
from netlab.core.settings import LogSettings

# A shell that starts the suite in the background (cmd &) ignores SIGINT for
# it, and the daemons the tests start would inherit that: twistd then leaves
# SIGINT ignored, and the tests that stop a daemon with it would hang.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Hypothesis fails an example that takes over 200 ms, and a search that is
# slow to generate: on a busy two-core machine both happen to correct code
# (seen: a chat sanitiser property failing under load).  Properties check
# behaviour, not time.
hypothesis_settings.register_profile(
    "netlab", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("netlab")


class RecordedEvents(EventLog):
    """An EventLog whose observer is a list, for asserting on events."""

    def __init__(self, level: str = "debug") -> None:
        self.seen: list[dict[str, Any]] = []
        super().__init__(LogSettings(level=level), observer=self.seen.append)

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        """The events of one kind, oldest first."""
        return [e for e in self.seen if e["netlab_event"] == kind]


@pytest.fixture
def events() -> RecordedEvents:
    """An event log at debug level that records every event."""
    return RecordedEvents()


@pytest.fixture
def clock() -> Clock:
    """A clock the test advances by hand."""
    return Clock()


def _reactor_state() -> tuple[set[Any], set[Any]]:
    calls = {c for c in reactor.getDelayedCalls() if c.active()}
    # Only sockets count: the reactor's own wakers come and go with it.
    selectables = {
        s for s in set(reactor.getReaders()) | set(reactor.getWriters())
        if hasattr(s, "socket")
    }
    return calls, selectables


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Fail a test that leaves DelayedCalls or sockets in the reactor."""
    calls_before, selectables_before = _reactor_state()
    yield
    calls_after, selectables_after = _reactor_state()
    leaked_calls = calls_after - calls_before
    leaked_sockets = selectables_after - selectables_before
    for call in leaked_calls:
        call.cancel()
    assert not leaked_calls, f"leaked DelayedCalls: {leaked_calls}"
    assert not leaked_sockets, f"leaked sockets: {leaked_sockets}"
