"""Consent across two bot replicas on one PostgreSQL database: a person's Allow, clicked again and
again through both replicas at once, sends exactly one V2 execute.

The replicas share one Nexthink sandbox, one LocalSlack and a PostgreSQL schema of their own
(the fixtures of ``tests/test_e2e_replicas.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import consent
from bot.console.driver import DriverResponse
from bot.console.localslack import LocalSlack, Message
from bot.console.world import World
from bot.sandbox import Sandbox
from handlers import ids
from tests.support.e2e import PatientWorld, text_of
from tests.test_e2e_replicas import database_url, settle, shared  # noqa: F401 - fixtures

pytestmark = pytest.mark.postgres

POLICY = """\
schedule: {allowed: true, max_days: 14}
roles:
  support:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
workflows:
  restart_teams:
    consent: {required: true, expires_in_minutes: 30}
"""


@pytest.fixture
async def replicas(
    database_url: str,  # noqa: F811 - the fixture imported above
    shared: tuple[Sandbox, LocalSlack],  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[tuple[World, World]]:
    sandbox, slack = shared
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    common = {"sandbox": sandbox, "slack": slack, "policy_file": policy}
    async with (
        PatientWorld(database_url=database_url, **common) as first,
        PatientWorld(database_url=database_url, **common) as second,
    ):
        yield first, second


async def ask_alice(world: World) -> Message:
    """Bob runs restart_teams on Alice through ``world``; returns the question Alice got."""
    assert world.driver is not None
    response = await world.driver.command(
        "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft", channel_id="C0SUPPORT"
    )
    assert response.status == 200
    await world.settle()
    dm = world.slack.dm_channel("U0ALICE")
    (message,) = [m for m in world.slack.messages_in(dm) if "asks to run" in text_of(m)]
    return message


def executes(world: World) -> list[object]:
    assert world.sandbox is not None
    return [e.body for e in world.sandbox.requests("execute_v2")]


async def test_allow_clicked_through_two_replicas_executes_once(
    replicas: tuple[World, World],
) -> None:
    """Twenty Allow clicks by the person asked, split across two replicas, send one execute."""
    first, second = replicas
    message = await ask_alice(first)
    assert executes(first) == []
    assert first.driver is not None
    assert second.driver is not None
    drivers = (first.driver, second.driver)
    clicks: list[Awaitable[DriverResponse]] = [
        drivers[i % 2].click("U0ALICE", dataclasses.replace(message), ids.CONSENT_ALLOW)
        for i in range(20)
    ]
    assert {r.status for r in await asyncio.gather(*clicks)} == {200}
    await settle(first, second)
    assert executes(first) == [
        {
            "workflowId": "restart_teams",
            "users": [{"upn": "alice@example.com"}],
            "devices": [],
            "params": {"mode": "soft"},
        }
    ]
    dm = first.slack.dm_channel("U0ALICE")
    refused = [m for m in first.slack.messages_in(dm) if "already answered" in m.text]
    assert len(refused) == 19
    assert "You allowed it; sent to Nexthink" in text_of(message)


async def test_a_question_asked_by_one_replica_is_allowed_through_the_other(
    replicas: tuple[World, World],
) -> None:
    """The question is in the shared store: the other replica's Allow runs it."""
    first, second = replicas
    message = await ask_alice(first)
    assert second.driver is not None
    await second.driver.click("U0ALICE", message, ids.CONSENT_ALLOW)
    await settle(first, second)
    assert len(executes(first)) == 1


async def test_both_replicas_sweeping_expire_a_question_once(
    replicas: tuple[World, World],
) -> None:
    """Both replicas' sweeps at once expire the question once and tell Bob once."""
    first, second = replicas
    message = await ask_alice(first)
    assert first.bot is not None
    assert second.bot is not None
    later = datetime.now(UTC) + timedelta(minutes=31)
    swept = await asyncio.gather(
        consent.sweep_expired(first.bot, now=later), consent.sweep_expired(second.bot, now=later)
    )
    assert sorted(swept) == [0, 1]
    await settle(first, second)
    bob = first.slack.dm_channel("U0BOB")
    told = [
        m
        for ms in first.slack.messages.values()
        for m in ms
        if "did not answer in time" in text_of(m) and (m.user == "U0BOB" or m.channel == bob)
    ]
    assert len(told) == 1
    assert "expired" in text_of(message)
    assert executes(first) == []


async def test_two_people_answering_through_two_replicas_at_once_both_show(
    replicas: tuple[World, World],
) -> None:
    """Alice allows through one replica while Carol says Not now through the other, at once: Bob's
    one reply ends showing both (each replica re-reads the round after its change)."""
    first, second = replicas
    assert first.driver is not None
    assert second.driver is not None
    response = await first.driver.command(
        "U0BOB",
        "run restart_teams user:<@U0ALICE> user:<@U0CAROL> mode=soft",
        channel_id="C0SUPPORT",
    )
    assert response.status == 200
    await first.settle()

    def asked(user_id: str) -> Message:
        dm = first.slack.dm_channel(user_id)
        (message,) = [m for m in first.slack.messages_in(dm) if "asks to run" in text_of(m)]
        return message

    clicks = await asyncio.gather(
        first.driver.click("U0ALICE", asked("U0ALICE"), ids.CONSENT_ALLOW),
        second.driver.click("U0CAROL", asked("U0CAROL"), ids.CONSENT_NOT_NOW),
    )
    assert {r.status for r in clicks} == {200}
    await settle(first, second)
    replies = [
        m
        for ms in first.slack.messages.values()
        for m in ms
        if "runs on someone only after" in text_of(m) and m.user == "U0BOB"
    ]
    assert len(replies) == 1
    lines = text_of(replies[0]).splitlines()
    assert first.sandbox is not None
    (entry,) = first.sandbox.requests("execute_v2")
    uuid = entry.response["requestUuid"]
    assert any("<@U0ALICE>" in line and uuid in line for line in lines), lines
    assert any("<@U0CAROL>" in line and "said *Not now*" in line for line in lines), lines


async def test_a_scheduled_run_allowed_through_the_other_replica_runs_once(
    replicas: tuple[World, World],
) -> None:
    """Scheduled through one replica, allowed through the other, both loops running: at its time
    exactly one execute is sent for Alice."""
    from tests.test_e2e_schedules import in_state, schedule

    first, second = replicas
    code = await schedule(first, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft in 10s")
    dm = first.slack.dm_channel("U0ALICE")
    (message,) = [m for m in first.slack.messages_in(dm) if "asks to run" in text_of(m)]
    assert second.driver is not None
    await second.driver.click("U0ALICE", message, ids.CONSENT_ALLOW)
    await settle(first, second)
    assert executes(first) == []
    await in_state(first, code, "ran")
    await settle(first, second)
    assert executes(first) == [
        {
            "workflowId": "restart_teams",
            "users": [{"upn": "alice@example.com"}],
            "devices": [],
            "params": {"mode": "soft"},
        }
    ]
