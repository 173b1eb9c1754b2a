"""Reminders and stand-ins on two bot replicas sharing PostgreSQL: one reminder per person and
interval, not two, and a stand-in named through one replica decides through the other.

The replicas are two ``World`` bots (two ``Bot`` objects, two HTTP servers) sharing one Nexthink
sandbox, one local Slack and one PostgreSQL schema (the fixtures of ``test_e2e_replicas``). Their
sweeps are run at once, many times, with the moment to judge (``now=``): the clock is never
waited out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import reminders
from bot.console.localslack import LocalSlack
from bot.console.world import World
from bot.sandbox import Sandbox
from handlers import ids
from tests.support.e2e import PatientWorld, text_of
from tests.test_e2e_reminders import approval_id, buttons, click, command, reminders_to, request
from tests.test_e2e_replicas import _replicas, database_url, settle, shared  # noqa: F401

pytestmark = pytest.mark.postgres

POLICY = """\
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: any
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["@it-leads"], count: 2, remind_after_minutes: 30}
"""


@pytest.fixture
async def reminding(
    database_url: str,  # noqa: F811 - the fixture
    shared: tuple[Sandbox, LocalSlack],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> AsyncIterator[tuple[World, World]]:
    """Two replicas whose policy reminds @it-leads every 30 minutes about reimage_device."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async for pair in _replicas(database_url, shared, policy):
        yield pair


async def test_two_replicas_send_one_reminder_not_two(
    reminding: tuple[World, World],
    database_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """Ten sweeps at once, five per replica, send each undecided approver one reminder per
    interval; a replica started afterwards on the same database sends none again."""
    first, second = reminding
    assert first.bot is not None
    assert second.bot is not None
    message = await request(first)
    approval = await first.bot.store.get_approval(approval_id(message))
    assert approval is not None
    bots = (first.bot, second.bot)

    async def sweep_everywhere(minutes: float) -> int:
        moment = approval.created_at + timedelta(minutes=minutes)
        sent = await asyncio.gather(*(reminders.sweep(b, now=moment) for b in bots * 5))
        return sum(sent)

    assert await sweep_everywhere(31) == 2
    assert len(reminders_to(first.slack, "U0CAROL")) == 1
    assert len(reminders_to(first.slack, "U0DAVE")) == 1
    assert reminders_to(first.slack, "U0BOB") == []

    await click(second, "U0DAVE", message, ids.APPROVAL_APPROVE)  # Dave decided: Carol is left
    await settle(first, second)
    assert await sweep_everywhere(61) == 1
    assert len(reminders_to(first.slack, "U0CAROL")) == 2
    assert len(reminders_to(first.slack, "U0DAVE")) == 1

    policy = tmp_path / "policy.yaml"
    async with PatientWorld(
        database_url=database_url,
        sandbox=first.sandbox,
        slack=first.slack,
        policy_file=policy,
    ) as restarted:
        assert restarted.bot is not None
        moment = approval.created_at + timedelta(minutes=61)
        assert await reminders.sweep(restarted.bot, now=moment) == 0
    assert len(reminders_to(first.slack, "U0CAROL")) == 2
    assert await first.bot.store.nudges_sent(approval.id) == [
        ("U0CAROL", 1),
        ("U0DAVE", 1),
        ("U0CAROL", 2),
    ]


async def test_a_stand_in_named_on_one_replica_decides_on_the_other(
    reminding: tuple[World, World],
) -> None:
    """Carol names Alice through one replica; Alice's Approve through the other counts for Carol,
    and the reminder goes to Alice, once, whichever replica sweeps."""
    first, second = reminding
    assert first.bot is not None
    assert second.bot is not None
    until = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    await command(first, "U0CAROL", f"delegate <@U0ALICE> until {until}")
    message = await request(second)
    approval = await second.bot.store.get_approval(approval_id(message))
    assert approval is not None
    moment = approval.created_at + timedelta(minutes=31)
    sent = await asyncio.gather(
        reminders.sweep(first.bot, now=moment), reminders.sweep(second.bot, now=moment)
    )
    assert sum(sent) == 2  # Alice for Carol, and Dave
    (reminder,) = reminders_to(first.slack, "U0ALICE")
    assert "as the stand-in of <@U0CAROL>" in text_of(reminder)
    assert reminders_to(first.slack, "U0CAROL") == []

    await click(second, "U0ALICE", message, ids.APPROVAL_APPROVE)
    await click(first, "U0DAVE", message, ids.APPROVAL_APPROVE)
    await settle(first, second)
    assert buttons(message) == []
    assert "<@U0ALICE> for <@U0CAROL>" in text_of(message)
    assert first.sandbox is not None
    assert len(first.sandbox.requests("execute_v2")) == 1
