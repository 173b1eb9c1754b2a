"""What a crashed replica leaves behind is picked up by the sweeps, never run twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import approvals, waits
from bot.console.world import World
from bot.store import WaitRecord
from handlers.wait_views import decision_action_id
from tests.support.e2e import PatientWorld
from tests.test_e2e_waits import ask, paused, question

APPROVAL_POLICY = """\
roles:
  support:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
  leads:
    members: ["@it-leads"]
    workflows: ["*"]
    targets: any
workflows:
  reimage_device:
    approval: {channel: "C0APPROVALS", approvers: ["@it-leads"], count: 1}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(APPROVAL_POLICY)
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db", policy_file=policy, execution_delay=0.05
    ) as w:
        yield w


async def test_a_claim_abandoned_by_a_crash_returns_to_the_deciders(world: World) -> None:
    """A wait claimed by a process that died is given back with a note, and one click resumes it."""
    assert world.bot is not None
    assert world.driver is not None
    assert world.sandbox is not None
    message = await ask(world, question(await paused(world), approvers=None))
    (wait,) = await world.bot.store.pending_waits()
    long_ago = datetime.now(UTC) - timedelta(minutes=30)
    claimed = await world.bot.store.claim_wait(
        wait.id, "U0DAVE", "dave@example.com", 0, now=long_ago
    )
    assert isinstance(claimed, WaitRecord)  # ... and the process that claimed it died here

    assert await waits.sweep_stale(world.bot) == 1
    shown = world.slack.find_message(message.channel, message.ts)
    assert shown is not None
    assert "may or may not have been resumed" in str(shown.blocks)
    assert decision_action_id(0) in str(shown.blocks)
    assert await waits.sweep_stale(world.bot) == 0

    await world.driver.click("U0CAROL", shown, decision_action_id(0), f"{wait.id}:0")
    await world.settle()
    assert len(world.sandbox.requests("trigger")) == 1
    decided = await world.bot.store.get_wait(wait.id)
    assert decided is not None
    assert decided.state == "decided"


async def test_an_approval_abandoned_mid_execute_is_reported_unknown_not_rerun(
    world: World,
) -> None:
    """An approval left executing by a crash is closed as outcome unknown; nothing is executed."""
    assert world.bot is not None
    assert world.driver is not None
    assert world.sandbox is not None
    await world.driver.command(
        "U0BOB", "run reimage_device device:LAPTOP-ALICE", channel_id="C0SUPPORT"
    )
    await world.settle()
    (approval,) = await world.bot.store.pending_approvals()
    long_ago = datetime.now(UTC) - timedelta(minutes=30)
    vote = await world.bot.store.vote_approval(
        approval.id, "U0CAROL", "carol@example.com", now=long_ago
    )
    assert vote.reached
    assert await world.bot.store.mark_approval(
        approval.id, "executing", expected="approved", now=long_ago
    )
    # ... and the process that was executing it died here

    assert await approvals.sweep_stale(world.bot) == 1
    await world.settle()
    assert world.sandbox.requests("execute_v2") == []
    record = await world.bot.store.get_request(approval.request_id)
    assert record is not None
    assert record.state == "unknown"
    told = [m.text for m in world.slack.messages.get("C0SUPPORT", []) if m.user == "U0BOB"]
    assert any("whether it ran is unknown" in text for text in told)
    assert await approvals.sweep_stale(world.bot) == 0
