"""The rate limit kept in the store, on a real SQLite file and the real PostgreSQL (a schema of its
own per test, see ``test_store``): exact under concurrency, across two engines (as two replicas
have), sliding, cleaned up; and which backend keeps it by default.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.ratelimit import RateLimiter
from bot.store import Store
from bot.store.schema import rate_limits
from tests.test_store import Backend, backend, pg_backend  # noqa: F401 - the fixtures

T0 = 1_900_000_000.0


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:  # noqa: F811 - the imported fixture
    opened = await backend.open()
    yield opened
    await opened.close()


@pytest.fixture
async def other(backend: Backend) -> AsyncIterator[Store]:  # noqa: F811 - the imported fixture
    """A second store on the same database: another engine, as another replica has."""
    opened = await backend.open()
    yield opened
    await opened.close()


async def test_many_concurrent_checks_on_two_engines_allow_exactly_the_limit(
    store: Store, other: Store
) -> None:
    """60 checks at once for one user, through two engines: exactly 7 pass, and the others are
    told to wait the minute until those leave the window."""
    checks = [
        (store if i % 2 else other).rate_hit("runs:U1", now=T0, limit=7, window=60)
        for i in range(60)
    ]
    answers = await asyncio.gather(*checks)
    assert sum(1 for a in answers if a is None) == 7
    refused = [a for a in answers if a is not None]
    assert len(refused) == 53
    assert refused == [pytest.approx(60.0)] * 53
    async with store._read() as conn:
        (hits,) = (await conn.execute(select(rate_limits.c.hits))).scalars()
    assert len(hits) == 7


async def test_the_window_slides_and_refusals_do_not_count(store: Store) -> None:
    """At most the limit in any 60 s: a slot frees exactly when the oldest hit is a minute old,
    and retrying while refused does not push it further away."""

    async def hit(at: float) -> float | None:
        return await store.rate_hit("runs:U1", now=T0 + at, limit=2, window=60)

    assert await hit(0) is None
    assert await hit(30) is None
    assert await hit(59.5) == pytest.approx(0.5)
    assert await hit(59.9) == pytest.approx(0.1)
    assert await hit(60) is None  # the hit at 0 has left
    assert await hit(61) == pytest.approx(29.0)
    assert await hit(90.5) is None


async def test_keys_are_independent(store: Store) -> None:
    """One user's runs do not count against another's."""
    assert await store.rate_hit("runs:U1", now=T0, limit=1, window=60) is None
    assert await store.rate_hit("runs:U2", now=T0, limit=1, window=60) is None
    assert await store.rate_hit("runs:U1", now=T0 + 1, limit=1, window=60) is not None


async def test_sweep_deletes_only_keys_whose_hits_all_left_the_window(store: Store) -> None:
    """Old rows go in one statement; a key with a recent hit stays (and keeps its count)."""
    for i in range(20):
        await store.rate_hit(f"runs:U{i}", now=T0, limit=3, window=60)
    await store.rate_hit("runs:U0", now=T0 + 50, limit=3, window=60)
    assert await store.sweep_rate_limits(T0 + 100 - 60) == 19
    async with store._read() as conn:
        keys = (await conn.execute(select(rate_limits.c.key))).scalars().all()
    assert keys == ["runs:U0"]
    assert await store.rate_hit("runs:U0", now=T0 + 55, limit=2, window=60) is not None


async def test_the_limiter_sweeps_as_it_goes(store: Store) -> None:
    """Through the limiter, dead rows are deleted every 512 checks: the table follows active users."""
    clock = iter(T0 + i for i in range(2000))
    limiter = RateLimiter(5, lambda: next(clock), store=store, shared=True)
    for i in range(511):
        assert await limiter.hit(f"U{i}") is None
    async with store._read() as conn:
        before = (await conn.execute(select(func.count()).select_from(rate_limits))).scalar()
    assert before == 511
    assert await limiter.hit("U-last") is None  # check 512, at T0 + 511: U0..U450 are dead
    async with store._read() as conn:
        after = (await conn.execute(select(func.count()).select_from(rate_limits))).scalar()
    assert after == 61  # U451..U510 and U-last: hit within the last 60 s


async def test_limiter_many_concurrent_hits_allow_exactly_the_limit(
    store: Store, other: Store
) -> None:
    """Two limiters on one database (two replicas): 40 hits at once, exactly 10 pass."""
    one = RateLimiter(10, store=store, shared=True)
    two = RateLimiter(10, store=other, shared=True)
    answers = await asyncio.gather(*((one if i % 2 else two).hit("U1") for i in range(40)))
    assert sum(1 for a in answers if a is None) == 10


async def test_where_the_count_is_kept_by_default(store: Store, backend: Backend) -> None:  # noqa: F811
    """PostgreSQL (replicas): in the store. SQLite (one process): in memory. No store: in memory."""
    expected = "store" if backend.name == "postgresql" else "process"
    assert RateLimiter(10, store=store).kept_in == expected
    assert RateLimiter(10).kept_in == "process"
    with pytest.raises(ValueError, match="needs a store"):
        RateLimiter(10, shared=True)


async def test_a_failing_store_falls_back_to_the_process_count(backend: Backend) -> None:  # noqa: F811
    """When the store cannot answer, the limit still holds in this process (and is logged)."""
    opened = await backend.open()
    limiter = RateLimiter(2, store=opened, shared=True)
    assert await limiter.hit("U1") is None
    await opened.close()
    assert await limiter.hit("U1") is None
    assert await limiter.hit("U1") is None
    assert await limiter.hit("U1") is not None
