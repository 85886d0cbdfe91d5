"""Tests for IdleTimeout: TimeoutMixin's interface, with a lazy resetTimeout."""

from __future__ import annotations

from twisted.internet.task import Clock

from netlab.protocols.base import IdleTimeout


class Idle(IdleTimeout):
    """Records when it timed out, on a task.Clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.callLater = clock.callLater
        self.seconds = clock.seconds
        self.timed_out: list[float] = []

    def timeoutConnection(self) -> None:
        self.timed_out.append(self.clock.seconds())


def test_times_out_after_the_period_without_input() -> None:
    """With no input the timeout comes exactly one period after it was set."""
    clock = Clock()
    idle = Idle(clock)
    idle.setTimeout(10)
    clock.advance(9.9)
    assert idle.timed_out == []
    clock.advance(0.1)
    assert idle.timed_out == [10.0]
    assert clock.getDelayedCalls() == []


def test_input_starts_the_period_again() -> None:
    """The timeout comes one period after the last input, however late in the period it came."""
    clock = Clock()
    idle = Idle(clock)
    idle.setTimeout(10)
    for moment in (3.0, 9.5, 12.0):
        clock.advance(moment - clock.seconds())
        idle.resetTimeout()
    clock.advance(21.9 - clock.seconds())
    assert idle.timed_out == []
    clock.advance(0.1)
    assert idle.timed_out == [22.0]


def test_set_timeout_none_cancels_and_a_new_period_replaces() -> None:
    """setTimeout(None) stops the timer; a new period counts from when it is set."""
    clock = Clock()
    idle = Idle(clock)
    assert idle.setTimeout(10) is None
    clock.advance(5)
    assert idle.setTimeout(None) == 10
    assert clock.getDelayedCalls() == []
    idle.resetTimeout()  # no timer: nothing to do
    clock.advance(100)
    assert idle.timed_out == []
    idle.setTimeout(3)
    clock.advance(2)
    idle.setTimeout(4)
    clock.advance(3.9)
    assert idle.timed_out == []
    clock.advance(0.1)
    assert idle.timed_out == [111.0]
