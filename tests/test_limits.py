"""Tests for netlab.daemon.limits: connection caps and token buckets."""

from __future__ import annotations

from twisted.internet.task import Clock

from netlab.daemon.limits import ConnectionLimits, RateLimiter


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
