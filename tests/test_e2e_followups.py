"""Outcome follow-up end to end: a run's reply is updated in place as Nexthink's NQL status query
reports each execution, across restarts, in bounded batches, and without the setting."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot import followups
from bot.console.localslack import LocalSlack
from bot.console.world import WEBHOOK_TOKEN, World
from bot.sandbox import Sandbox
from tests.support.e2e import PatientWorld, answers, executes, last_answer, text_of, world_at
from tests.support.outcomes import FOLLOW, QUERY_ID, eventually, reads

ENGINEERS = """
roles:
  engineers:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
limits:
  runs_per_user_per_minute: 100
"""


def _request_uuid(world: World, index: int = -1) -> str:
    assert world.sandbox is not None
    return str(world.sandbox.requests("execute_v2")[index].response["requestUuid"])


async def test_the_ephemeral_reply_is_replaced_with_the_outcome(tmp_path: Path) -> None:
    """The reply goes through the response URL, then is replaced in place once NQL says success."""
    async with world_at(tmp_path, overrides=FOLLOW, execution_delay=0.2) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        await world.driver.command("U0ALICE", "run restart_teams", channel_id="C0GENERAL")
        await world.settle()
        reply = last_answer(world, "U0ALICE")
        assert reply.via == "response_url"
        assert reads(reply, "sent to Nexthink", "alice@example.com — in progress")
        await eventually(lambda: reads(reply, "*Outcome:* 1 succeeded"))
        assert reads(reply, ":white_check_mark: alice@example.com — success")
        assert answers(world, "U0ALICE") == [reply]  # updated in place, nothing new posted
        uuid = _request_uuid(world)
        queries = world.sandbox.requests("nql")
        assert queries
        assert all(
            q.body == {"queryId": QUERY_ID, "parameters": {"request_id": uuid}} for q in queries
        )
        hooks = world.slack.calls_to("response_url")
        assert hooks[0].params.get("replace_original") in (None, False)
        assert all(h.params.get("replace_original") is True for h in hooks[1:])
        assert world.bot is not None
        [record] = await world.bot.store.history("U0ALICE")
        assert record.state == "succeeded"
        await asyncio.sleep(0.2)
        assert len(world.sandbox.requests("nql")) == len(queries)  # finished: no more queries


async def test_each_target_shows_its_own_outcome_with_nexthinks_details(tmp_path: Path) -> None:
    """An engineer's run on three targets shows success for two and Nexthink's "not found" for one."""
    async with world_at(tmp_path, ENGINEERS, overrides=FOLLOW) as world:
        assert world.driver is not None
        await world.driver.command(
            "U0BOB", "run restart_teams user:<@U0ALICE|alice> device:LAPTOP-BOB device:NO-SUCH-PC"
        )
        await world.settle()
        reply = last_answer(world, "U0BOB")
        await eventually(lambda: reads(reply, "*Outcome:*"))
        assert reads(
            reply,
            "2 succeeded, 1 failed",
            ":white_check_mark: alice@example.com — success",
            ":white_check_mark: device LAPTOP-BOB — success",
            ":x: device NO-SUCH-PC — failed: not found",
        )
        assert world.bot is not None
        [record] = await world.bot.store.history("U0BOB")
        assert record.state == "failed"


async def test_a_failed_execution_shows_its_status_details(tmp_path: Path) -> None:
    """A workflow that fails in Nexthink is shown failed, with the status details Nexthink gave."""
    async with world_at(tmp_path, overrides=FOLLOW) as world:
        assert world.driver is not None
        await world.driver.command("U0ALICE", "run restart_teams simulate=failure")
        await world.settle()
        reply = last_answer(world, "U0ALICE")
        await eventually(lambda: reads(reply, "*Outcome:* 1 failed"))
        assert reads(reply, ":x: alice@example.com — failed: simulated failure")


async def test_without_the_setting_the_reply_says_how_to_check_in_nexthink(
    tmp_path: Path,
) -> None:
    """With no NEXTHINK_STATUS_QUERY_ID the reply gives the NQL to paste; no query is ever sent."""
    async with world_at(tmp_path, overrides={"followup_tick_seconds": 0.05}) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        await world.driver.command("U0ALICE", "run restart_teams")
        await world.settle()
        reply = last_answer(world, "U0ALICE")
        uuid = _request_uuid(world)
        assert reads(
            reply,
            "run this NQL in Nexthink",
            f'workflow.executions during past 7d | where request_id == "{uuid}"',
            "| list request_id, execution_id, status, status_details, outcome",
        )
        await asyncio.sleep(0.2)
        assert world.sandbox.requests("nql") == []
        assert world.bot is not None
        [record] = await world.bot.store.history("U0ALICE")
        assert await world.bot.store.followups_for([record.id]) == []


async def test_a_follow_up_survives_a_restart(tmp_path: Path) -> None:
    """A bot stopped before the outcome is known leaves the follow-up in the store; the next bot on
    the same database finishes it and updates the same reply."""
    database = f"sqlite:///{tmp_path}/bot.db"
    async with (
        Sandbox(execution_delay=0.2, webhook_token=WEBHOOK_TOKEN) as sandbox,
        LocalSlack() as slack,
    ):
        idle = {**FOLLOW, "followup_tick_seconds": 300}  # this bot never gets to look
        async with PatientWorld(database, sandbox=sandbox, slack=slack, overrides=idle) as first:
            assert first.driver is not None
            await first.driver.command("U0ALICE", "run restart_teams", channel_id="C0GENERAL")
            await first.settle()
            reply = last_answer(first, "U0ALICE")
            assert reads(reply, "alice@example.com — in progress")
        await sandbox.settle()  # the execution ends while no bot is running
        assert sandbox.requests("nql") == []
        async with PatientWorld(database, sandbox=sandbox, slack=slack, overrides=FOLLOW) as second:
            await eventually(lambda: reads(reply, "*Outcome:* 1 succeeded"))
            assert last_answer(second, "U0ALICE") is reply
            assert len(sandbox.requests("nql")) == 1
            assert second.bot is not None
            [record] = await second.bot.store.history("U0ALICE")
            # the reply is updated first, then the follow-up is marked done
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while not (await second.bot.store.followups_for([record.id]))[0].done:
                assert loop.time() < deadline, "the follow-up was not marked done"
                await asyncio.sleep(0.02)


async def test_a_burst_of_runs_is_polled_in_bounded_batches(tmp_path: Path) -> None:
    """Twelve runs at once: one look takes at most BATCH follow-ups, CONCURRENCY queries at a time."""
    slow = {**FOLLOW, "followup_tick_seconds": 300}  # the test drives the looks itself
    async with world_at(tmp_path, ENGINEERS, overrides=slow) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        assert world.bot is not None
        for _ in range(12):
            await world.driver.command("U0BOB", "run clear_disk_space device:LAPTOP-BOB")
        await world.settle()
        assert len(executes(world)) == 12
        await asyncio.sleep(0.1)  # every follow-up is due
        world.sandbox.faults.add("nql:latency:delay=0.3:times=always")
        # count the queries in flight at once (each still goes over the socket to the sandbox)
        nql = world.bot.nexthink.nql
        in_flight = peak = 0

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await nql(*args, **kwargs)
            finally:
                in_flight -= 1

        world.bot.nexthink.nql = counted  # type: ignore[method-assign]
        try:
            assert await followups.poll_due(world.bot) == followups.BATCH
        finally:
            world.bot.nexthink.nql = nql  # type: ignore[method-assign]
        assert peak == min(followups.CONCURRENCY, followups.BATCH), "queries at a time"
        assert len(world.sandbox.requests("nql")) == followups.BATCH
        world.sandbox.faults.clear()
        assert await followups.poll_due(world.bot) == 12 - followups.BATCH


async def test_a_throttled_query_is_tried_again_later(tmp_path: Path) -> None:
    """A 429 from the NQL API only delays the follow-up."""
    async with world_at(tmp_path, overrides=FOLLOW) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        world.sandbox.faults.add("nql:429:times=3:retry_after=0.05")
        await world.driver.command("U0ALICE", "run restart_teams")
        await world.settle()
        reply = last_answer(world, "U0ALICE")
        await eventually(lambda: reads(reply, "*Outcome:* 1 succeeded"))
        assert [q.status for q in world.sandbox.requests("nql")][:3] == [429, 429, 429]


async def test_a_refused_status_query_ends_the_follow_up_with_the_reason(tmp_path: Path) -> None:
    """When Nexthink refuses the query (403: no NQL API permission) the reply says so and how to
    check by hand, and the bot stops asking."""
    async with world_at(tmp_path, overrides=FOLLOW) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        world.sandbox.faults.add("nql:403:times=always")
        await world.driver.command("U0ALICE", "run restart_teams")
        await world.settle()
        reply = last_answer(world, "U0ALICE")
        await eventually(lambda: reads(reply, "*Outcome:* unknown"))
        assert reads(reply, f"the status query {QUERY_ID} failed", "run this NQL in Nexthink")
        asked = len(world.sandbox.requests("nql"))
        await asyncio.sleep(0.3)
        assert len(world.sandbox.requests("nql")) == asked


async def test_the_bot_stops_following_after_the_bounded_time(tmp_path: Path) -> None:
    """An execution still running at FOLLOWUP_MAX_MINUTES is left to Nexthink, and the reply says so."""
    short = {**FOLLOW, "followup_max_minutes": 0.005}  # 0.3 s
    async with world_at(tmp_path, overrides=short, execution_delay=30) as world:
        assert world.driver is not None
        await world.driver.command("U0ALICE", "run restart_teams")
        await world.settle()
        reply = last_answer(world, "U0ALICE")
        await eventually(lambda: reads(reply, "stopped following it"))
        assert reads(reply, "1 in progress", "Check in Nexthink", "run this NQL in Nexthink")
        assert world.bot is not None
        [record] = await world.bot.store.history("U0ALICE")
        assert record.state == "sent"


async def test_an_ephemeral_that_cannot_be_updated_gets_the_outcome_by_direct_message(
    tmp_path: Path,
) -> None:
    """With the response URL expired the reply is a `chat.postEphemeral`, which Slack cannot
    update: the final outcome arrives as a direct message."""
    async with world_at(tmp_path, overrides=FOLLOW) as world:
        assert world.driver is not None
        world.slack.response_url_ttl = -1.0
        await world.driver.command("U0ALICE", "run restart_teams", channel_id="C0GENERAL")
        await world.settle()
        reply = last_answer(world, "U0ALICE")
        assert reply.via == "chat.postEphemeral"
        dm = world.slack.dm_channel("U0ALICE")
        await eventually(lambda: world.slack.messages_in(dm))
        [outcome] = world.slack.messages_in(dm)
        assert reads(outcome, "*Restart Teams* (`restart_teams`)", "1 succeeded")
        assert "in progress" in text_of(reply)  # the ephemeral itself stays as it was


async def test_a_used_up_response_url_sends_the_final_outcome_by_direct_message(
    tmp_path: Path,
) -> None:
    """When Slack refuses the response URL (used up), the final outcome arrives as a direct message."""
    async with world_at(tmp_path, ENGINEERS, overrides=FOLLOW, execution_delay=0.5) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        world.slack.response_url_uses = 2  # the reply and one update
        world.sandbox.hold_executions()  # LAPTOP-BOB stays in progress until the update is seen
        await world.driver.command("U0BOB", "run restart_teams device:LAPTOP-BOB device:NOPE-1")
        await world.settle()
        reply = last_answer(world, "U0BOB")
        await eventually(lambda: reads(reply, ":x: device NOPE-1 — failed: not found"))
        assert reads(reply, "device LAPTOP-BOB — in progress")
        world.sandbox.release_executions()
        dm = world.slack.dm_channel("U0BOB")
        await eventually(lambda: world.slack.messages_in(dm))
        [outcome] = world.slack.messages_in(dm)
        assert reads(outcome, "1 succeeded, 1 failed", "device LAPTOP-BOB — success")
        hooks = world.slack.calls_to("response_url")
        assert [h.status for h in hooks] == [200, 200, 404]
