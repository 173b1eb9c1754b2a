"""A scheduled run that Nexthink throttles past the client's retries is given back untouched
(its end is not written with the answer) and sent once after Nexthink's ``Retry-After``."""

from __future__ import annotations

from pathlib import Path

from tests.support.e2e import PatientWorld
from tests.test_e2e_schedules import events, eventually, in_state, policy_file, schedule, stored


async def test_a_throttled_scheduled_run_is_given_back_then_runs_once(tmp_path: Path) -> None:
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy_file(tmp_path),
        execution_delay=0.05,
    ) as world:
        assert world.sandbox is not None
        assert world.bot is not None
        # the client's three attempts (two retries) all answered 429: the run is given back
        world.sandbox.faults.add("execute_v2:429:times=3:retry_after=1")
        code = await schedule(world, "U0BOB", "run restart_teams in 3s")

        async def throttled() -> bool:
            return len(world.sandbox.requests("execute_v2")) >= 3  # type: ignore[union-attr]

        await eventually(throttled, "three throttled executes")
        done = await in_state(world, code, "ran")
        answered = [e.status for e in world.sandbox.requests("execute_v2")]
        assert answered.count(200) == 1
        assert answered.count(429) == 3
        record = await world.bot.store.get_request(done.request_id)
        assert record is not None
        assert record.state == "sent"
        assert len(record.nexthink_request_uuids) == 1
        assert (await stored(world, code)).claim_token is None
        trail = await events(world)
        assert trail.count("executed") == 1
        assert trail.count("execute_failed") == 1  # the throttled attempt, given back after it
