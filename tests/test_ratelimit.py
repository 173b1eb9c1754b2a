"""The per-user sliding-window rate limit, kept in this process (the store-backed one:
``test_ratelimit_store.py``)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_allows_up_to_the_limit_then_says_how_long_to_wait() -> None:
    """``per_minute`` hits pass; the next is refused with the seconds until a slot frees."""
    clock = Clock()
    limiter = RateLimiter(3, clock)
    for step in range(3):
        assert await limiter.hit("U1") is None
        clock.now += 10 * (step < 2)
    assert await limiter.hit("U1") == pytest.approx(40.0)


async def test_window_slides() -> None:
    """A slot frees exactly when the oldest hit is 60 seconds old."""
    clock = Clock()
    limiter = RateLimiter(2, clock)
    assert await limiter.hit("U1") is None
    clock.now += 30
    assert await limiter.hit("U1") is None
    clock.now += 29.5
    assert await limiter.hit("U1") == pytest.approx(0.5)
    clock.now += 0.5
    assert await limiter.hit("U1") is None
    assert await limiter.hit("U1") == pytest.approx(30.0)


async def test_refused_hits_are_not_counted() -> None:
    """Retrying while refused does not push the next slot further away."""
    clock = Clock()
    limiter = RateLimiter(1, clock)
    assert await limiter.hit("U1") is None
    for _ in range(5):
        clock.now += 10
        assert await limiter.hit("U1") is not None
    clock.now += 10
    assert await limiter.hit("U1") is None


async def test_keys_are_independent() -> None:
    """One user's runs do not count against another's."""
    limiter = RateLimiter(1, Clock())
    assert await limiter.hit("U1") is None
    assert await limiter.hit("U2") is None
    assert await limiter.hit("U1") is not None


async def test_idle_keys_are_forgotten() -> None:
    """Keys with no hit in the window are dropped, so memory follows active users only."""
    clock = Clock()
    limiter = RateLimiter(5, clock)
    for i in range(1023):
        await limiter.hit(f"U{i}")
    assert len(limiter) == 1023
    clock.now += 61
    await limiter.hit("last")
    assert len(limiter) == 1


@pytest.mark.parametrize("per_minute", [0, -1], ids=["zero", "negative"])
def test_limit_must_be_positive(per_minute: int) -> None:
    """A limit below one is a programming error, refused at once."""
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(per_minute)


@given(
    per_minute=st.integers(1, 5),
    gaps=st.lists(st.floats(0, 90, allow_nan=False), min_size=1, max_size=60),
)
def test_never_more_than_the_limit_in_any_window(per_minute: int, gaps: list[float]) -> None:
    """Whatever the timing, no 60-second window holds more accepted hits than the limit, and a
    refusal's wait is exactly when the next hit would pass."""
    clock = Clock()
    limiter = RateLimiter(per_minute, clock)
    accepted: list[float] = []

    async def hits() -> list[tuple[float, float | None]]:
        answers: list[tuple[float, float | None]] = []
        for gap in gaps:
            clock.now += gap
            answers.append((clock.now, await limiter.hit("U1")))
        return answers

    for now, wait in asyncio.run(hits()):
        clock.now = now
        if wait is None:
            accepted.append(clock.now)
        else:
            assert 0 < wait <= 60
            recent = [t for t in accepted if t > clock.now - 60]
            assert len(recent) == per_minute
            assert wait == pytest.approx(min(recent) + 60 - clock.now)
    for i, start in enumerate(accepted):
        assert sum(1 for t in accepted[i:] if t < start + 60) <= per_minute
