"""Tests for netlab.core.limits: connection caps and token buckets."""

from __future__ import annotations

from twisted.internet.task import Clock

from netlab.core.limits import ConnectionLimits, OpenConnections, RateLimiter


def test_connection_limits_per_peer_and_total() -> None:
    """Slots are counted per host and in total, and given back on release."""
    limits = ConnectionLimits(max_connections=3, max_per_peer=2)
    assert limits.acquire("a") is None
    assert limits.acquire("a") is None
    assert limits.acquire("a") == "too many connections from a (limit 2)"
    assert limits.acquire("b") is None
    assert limits.acquire("c") == "too many connections (limit 3)"
    limits.release("a")
    assert limits.acquire("c") is None
    for host in ("a", "b", "c"):
        limits.release(host)
    assert limits.open == 0
    assert limits.by_peer == {}


def test_token_bucket_refills() -> None:
    """A bucket allows its burst at once, then rate tokens per second."""
    clock = Clock()
    rates = RateLimiter(rate=2.0, burst=4, max_sources=10, now=clock.seconds)
    assert [rates.allow("h") for _ in range(5)] == [True] * 4 + [False]
    clock.advance(0.5)
    assert rates.allow("h")
    assert not rates.allow("h")
    clock.advance(100)
    assert [rates.allow("h") for _ in range(5)] == [True] * 4 + [False]


def test_token_buckets_independent() -> None:
    """One source's flood does not cost another source anything."""
    clock = Clock()
    rates = RateLimiter(rate=1.0, burst=1, max_sources=10, now=clock.seconds)
    assert rates.allow("a")
    assert not rates.allow("a")
    assert rates.allow("b")


def test_open_connections_fire_waiters_when_the_last_closes() -> None:
    """when_empty fires at once with none open, else when the last one is discarded."""
    open_now: OpenConnections[str] = OpenConnections()
    assert open_now.when_empty().called
    open_now.add("a")
    open_now.add("b")
    waiting = open_now.when_empty()
    open_now.discard("a")
    assert not waiting.called and "b" in open_now and len(open_now) == 1
    open_now.discard("b")
    assert waiting.called and list(open_now) == []
