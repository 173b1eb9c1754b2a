"""Two bot replicas on one PostgreSQL database run each scheduled run exactly once.

Both replicas' schedule loops claim due runs at the same time (``SELECT … FOR UPDATE SKIP
LOCKED``, then a conditional update); twenty runs falling due together, asked through both,
give exactly twenty V2 executes, one per run.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.console.localslack import LocalSlack
from bot.console.world import World
from bot.sandbox import Sandbox
from tests.support.e2e import PatientWorld
from tests.test_e2e_replicas import database_url
from tests.test_e2e_schedules import POLICY, eventually, policy_file, stored

pytestmark = pytest.mark.postgres

__all__ = ["database_url"]  # the fixture: a fresh role and schema per test

RUNS = 20


@pytest.fixture
async def replicas(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[World, World]]:
    policy = policy_file(tmp_path, POLICY)
    async with (
        Sandbox(execution_delay=0.05) as sandbox,
        LocalSlack() as slack,
    ):
        common: dict[str, Any] = {"sandbox": sandbox, "slack": slack, "policy_file": policy}
        async with (
            PatientWorld(database_url=database_url, **common) as first,
            PatientWorld(database_url=database_url, **common) as second,
        ):
            yield first, second


async def test_two_replicas_on_postgresql_run_each_scheduled_run_once(
    replicas: tuple[World, World],
) -> None:
    """Twenty runs due within a second, asked through both replicas: twenty executes, each
    schedule's request sent once."""
    first, second = replicas
    assert first.driver is not None
    assert second.driver is not None
    drivers = (first.driver, second.driver)
    answers = await asyncio.gather(
        *(
            drivers[i % 2].command(
                "U0BOB", f"run restart_teams n={i} in 6s", channel_id="C0SUPPORT"
            )
            for i in range(RUNS)
        )
    )
    assert {a.status for a in answers} == {200}
    await first.settle()
    await second.settle()
    assert first.bot is not None
    codes = [s.code for s in await first.bot.store.open_schedules()]
    assert len(codes) == RUNS

    async def all_ran() -> bool:
        states = [(await stored(first, code)).state for code in codes]
        return all(state == "ran" for state in states)

    await eventually(all_ran, "every scheduled run to have run")
    sandbox = first.sandbox
    assert sandbox is not None
    sent = collections.Counter(e.body["params"]["n"] for e in sandbox.requests("execute_v2"))
    assert sent == {str(i): 1 for i in range(RUNS)}
    assert first.bot is not None
    assert second.bot is not None
    assert first.bot.schedule_loop is not None
    assert second.bot.schedule_loop is not None
    ran = [w.bot.schedule_loop.counts.get("ran", 0) for w in (first, second)]  # type: ignore[union-attr]
    assert sum(ran) == RUNS  # between them, each run once (which replica took it is chance)
    for code in codes:
        record = await first.bot.store.get_request((await stored(first, code)).request_id)
        assert record is not None
        assert record.state == "sent"
        assert len(record.nexthink_request_uuids) == 1
