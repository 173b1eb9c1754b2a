"""Claiming due scheduled runs in batches: one statement per batch, each run to one claimer.

``claim_due_runs`` moves up to ``limit`` due runs to ``running`` with one ``UPDATE`` (its CTE
takes them ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and reads their requests in the same
transaction; a run's end is written with its request's answer (``ScheduleDone``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store import ScheduleDone, Store
from tests.test_e2e_replicas import database_url

__all__ = ["database_url"]  # the fixture: a fresh role and schema per test

RUNS = 60


async def _fill(store: Store, at: datetime, runs: int = RUNS) -> dict[str, str]:
    """``runs`` scheduled runs due at ``at`` (spread over the last minute); schedule → request."""
    made: dict[str, str] = {}
    for i in range(runs):
        record = await store.create_request(kind="run", user_id="U1", state="scheduled")
        schedule = await store.create_schedule(
            request_id=record.id,
            user_id="U1",
            workflow="w",
            ask={},
            run_at=at - timedelta(seconds=i),
        )
        made[schedule.id] = record.id
    return made


async def _claim_concurrently(
    first: Store, second: Store, at: datetime, made: dict[str, str]
) -> None:
    """Both stores claim batches of at most 7 at once, again and again: every run exactly once,
    no batch over its limit, each with its own request record."""
    batches = await asyncio.gather(
        *(s.claim_due_runs(at, limit=7) for _ in range(12) for s in (first, second))
    )
    assert all(len(batch) <= 7 for batch in batches)
    ids = [schedule.id for batch in batches for schedule, _ in batch]
    assert len(ids) == len(set(ids)) == len(made)
    for batch in batches:
        for schedule, request in batch:
            assert schedule.state == "running"
            assert schedule.claim_token is not None
            assert request is not None
            assert request.id == made[schedule.id] == schedule.request_id
    assert await first.claim_due_runs(at) == []
    assert await second.claim_due_schedules(at) == []


@pytest.fixture
async def postgres_pair(database_url: str) -> AsyncIterator[tuple[Store, Store]]:
    first = await Store.open(database_url)
    second = await Store.open(database_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_two_stores_on_postgresql_claim_disjoint_batches(
    postgres_pair: tuple[Store, Store],
) -> None:
    first, second = postgres_pair
    at = datetime.now(UTC)
    made = await _fill(first, at)
    await _claim_concurrently(first, second, at, made)


@pytest.mark.postgres
async def test_a_batch_on_postgresql_never_claims_more_than_its_limit(
    postgres_pair: tuple[Store, Store],
) -> None:
    """One claimer alone: the limit holds however the plan runs the statement (a subquery
    ``IN (… LIMIT n FOR UPDATE)`` can be run again by PostgreSQL and claim more than ``n``)."""
    first, _ = postgres_pair
    at = datetime.now(UTC)
    await _fill(first, at, runs=10)
    sizes = [len(await first.claim_due_runs(at, limit=4)) for _ in range(4)]
    assert sizes == [4, 4, 2, 0]


async def test_two_stores_on_one_sqlite_file_claim_disjoint_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    first = await Store.open(url)
    second = await Store.open(url)
    try:
        at = datetime.now(UTC)
        made = await _fill(first, at)
        await _claim_concurrently(first, second, at, made)
    finally:
        await first.close()
        await second.close()


async def test_a_batch_is_claimed_oldest_first_and_only_when_due(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/bot.db")
    try:
        at = datetime.now(UTC)
        made = await _fill(store, at, runs=5)
        later = await store.create_request(kind="run", user_id="U1", state="scheduled")
        await store.create_schedule(
            request_id=later.id, user_id="U1", workflow="w", ask={}, run_at=at + timedelta(hours=1)
        )
        claimed = await store.claim_due_runs(at, limit=3)
        assert [s.run_at for s, _ in claimed] == sorted(s.run_at for s, _ in claimed)
        assert claimed[0][0].run_at == at - timedelta(seconds=4)  # the most overdue first
        rest = await store.claim_due_runs(at, limit=10)
        assert len(rest) == 2
        assert {s.id for s, _ in claimed + rest} == set(made)
    finally:
        await store.close()


async def test_a_runs_end_is_written_with_its_requests_answer_while_held(tmp_path: Path) -> None:
    """``ScheduleDone`` in ``update_request``'s transaction ends the run only for the claim
    that holds it; the request's answer is written either way."""
    store = await Store.open(f"sqlite:///{tmp_path}/bot.db")
    try:
        at = datetime.now(UTC)
        await _fill(store, at, runs=2)
        (held, request), (lost, lost_request) = await store.claim_due_runs(at, limit=2)
        assert request is not None
        assert lost_request is not None
        assert held.claim_token is not None
        assert await store.mark_schedule_sending(held.id, held.claim_token)
        done = ScheduleDone(held.id, held.claim_token)
        record = await store.update_request(request.id, state="sent", also=[done])
        assert record.state == "sent"
        ran = await store.get_schedule(held.id)
        assert ran is not None
        assert (ran.state, ran.claim_token) == ("ran", None)
        assert ran.finished_at is not None
        stranger = ScheduleDone(lost.id, "not-the-claim")
        await store.update_request(lost_request.id, state="sent", also=[stranger])
        still = await store.get_schedule(lost.id)
        assert still is not None
        assert (still.state, still.finished_at) == ("running", None)
    finally:
        await store.close()
