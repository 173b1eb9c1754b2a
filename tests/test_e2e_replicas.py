"""Two bot replicas on one PostgreSQL database: decisions still have exactly one winner.

Each test starts two ``World`` bots (two ``Bot`` objects, two HTTP servers) that share one Nexthink
sandbox, one local Slack and one PostgreSQL database, and sends clicks through both at once.

The bot has no setting for a PostgreSQL schema, so each test gets a login role of its own whose
``search_path`` is a fresh schema (``DATABASE_URL=postgresql://<role>:<pw>@host/test``), the way an
operator would isolate two deployments in one database; role and schema are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from bot import waits
from bot.console.driver import DriverResponse
from bot.console.localslack import LocalSlack, Message
from bot.console.world import WEBHOOK_TOKEN, World
from bot.sandbox import Sandbox
from handlers import ids
from handlers.wait_views import decision_action_id
from tests.support.e2e import PatientWorld

pytestmark = pytest.mark.postgres

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
POLICY = """\
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: any
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["@it-leads"], count: 1}
"""


def _plain(url: Any) -> str:
    return str(
        make_url(str(url)).set(drivername="postgresql").render_as_string(hide_password=False)
    )


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A ``postgresql://`` URL whose tables land in a schema of their own, dropped afterwards."""
    try:
        admin = await asyncpg.connect(_plain(PG_URL), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        where = make_url(PG_URL).render_as_string(hide_password=True)
        pytest.fail(f"PostgreSQL at {where} is unreachable ({type(exc).__name__}: {exc})")
    name = f"e2e_replicas_{secrets.token_hex(6)}"
    password = secrets.token_hex(12)
    await admin.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
    await admin.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
    await admin.execute(f'ALTER ROLE "{name}" SET search_path = "{name}"')
    url = make_url(PG_URL).set(username=name, password=password)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        await admin.execute(f'DROP ROLE "{name}"')
        await admin.close()


@pytest.fixture
async def shared() -> AsyncIterator[tuple[Sandbox, LocalSlack]]:
    async with (
        Sandbox(execution_delay=0.05, webhook_token=WEBHOOK_TOKEN) as sandbox,
        LocalSlack() as slack,
    ):
        yield sandbox, slack


async def _replicas(
    database_url: str, shared: tuple[Sandbox, LocalSlack], policy: Path | None = None
) -> AsyncIterator[tuple[World, World]]:
    sandbox, slack = shared
    common: dict[str, Any] = {"sandbox": sandbox, "slack": slack, "policy_file": policy}
    async with (
        PatientWorld(database_url=database_url, **common) as first,
        PatientWorld(database_url=database_url, **common) as second,
    ):
        yield first, second


@pytest.fixture
async def replicas(
    database_url: str, shared: tuple[Sandbox, LocalSlack]
) -> AsyncIterator[tuple[World, World]]:
    async for pair in _replicas(database_url, shared):
        yield pair


@pytest.fixture
async def guarded(
    database_url: str, shared: tuple[Sandbox, LocalSlack], tmp_path: Path
) -> AsyncIterator[tuple[World, World]]:
    """Two replicas whose policy needs one @it-leads approval for reimage_device."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async for pair in _replicas(database_url, shared, policy):
        yield pair


async def settle(*worlds: World) -> None:
    for world in worlds:
        await world.settle()
    for world in worlds:
        await world.settle()


async def pause(world: World) -> tuple[Message, dict[str, Any]]:
    """Alice runs the pausing workflow through ``world``; returns the question's message and body."""
    assert world.driver is not None
    assert world.sandbox is not None
    world.sandbox.webhook_url = f"{world.url}/nexthink/waits"
    response = await world.driver.command(
        "U0ALICE",
        "run request_software software=Firefox channel=C0SUPPORT approvers=@it-leads",
        channel_id="C0GENERAL",
    )
    assert response.status == 200
    await world.settle()
    delivery = world.sandbox.webhooks[-1]
    assert delivery.status == 201, delivery.response
    message = world.slack.find_message(delivery.response["channel"], delivery.response["ts"])
    assert message is not None
    return message, delivery.payload


def refusals(slack: LocalSlack, *users: str) -> list[str]:
    return [m.text for ms in slack.messages.values() for m in ms if m.ephemeral and m.user in users]


def bot_triggers(sandbox: Sandbox) -> list[Any]:
    return [e for e in sandbox.requests("trigger") if e.headers.get("Source") == "slack-chatops"]


async def test_concurrent_clicks_through_two_replicas_resume_once(
    replicas: tuple[World, World],
) -> None:
    """Twenty clicks split across two replicas sharing PostgreSQL send exactly one trigger."""
    first, second = replicas
    message, _ = await pause(first)
    assert first.driver is not None
    assert second.driver is not None
    drivers = (first.driver, second.driver)
    clicks: list[Awaitable[DriverResponse]] = [
        drivers[i % 2].click(
            ("U0CAROL", "U0DAVE")[i // 2 % 2], dataclasses.replace(message), decision_action_id(0)
        )
        for i in range(20)
    ]
    assert {r.status for r in await asyncio.gather(*clicks)} == {200}
    await settle(first, second)
    sandbox = first.sandbox
    assert sandbox is not None
    (trigger,) = bot_triggers(sandbox)
    assert trigger.status == 200
    assert trigger.body["parameters"]["decision"] == "approved"
    assert len(refusals(first.slack, "U0CAROL", "U0DAVE")) == 19
    assert not any(b.get("type") == "actions" for b in message.blocks or [])
    assert "decided by <@U0" in message.text


async def test_a_question_posted_by_one_replica_is_decided_through_the_other(
    replicas: tuple[World, World],
) -> None:
    """A repeated webhook at the other replica finds the stored question, and a click there resumes it."""
    first, second = replicas
    message, body = await pause(first)
    async with httpx.AsyncClient() as client:
        repeat = await client.post(
            f"{second.url}/nexthink/waits",
            json=body,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
    assert repeat.status_code == 201
    assert (repeat.json()["channel"], repeat.json()["ts"]) == (message.channel, message.ts)
    assert len(first.slack.calls_to("chat.postMessage")) == 1  # the question, once
    assert second.driver is not None
    await second.driver.click("U0DAVE", message, decision_action_id(1))
    await settle(first, second)
    assert first.sandbox is not None
    (trigger,) = bot_triggers(first.sandbox)
    assert trigger.body == {"parameters": {"decision": "denied", "approver": "dave@example.com"}}


async def test_concurrent_sweeps_close_an_expired_question_once(
    replicas: tuple[World, World],
) -> None:
    """Both replicas sweeping at once expire a question once between them."""
    first, second = replicas
    message, _ = await pause(first)
    assert first.bot is not None
    assert second.bot is not None
    later = datetime.now(UTC) + timedelta(days=2)
    swept = await asyncio.gather(
        waits.sweep_expired(first.bot, now=later), waits.sweep_expired(second.bot, now=later)
    )
    assert sorted(swept) == [0, 1]
    assert not any(b.get("type") == "actions" for b in message.blocks or [])
    assert "expired" in message.text


async def test_concurrent_approvals_through_two_replicas_run_once(
    guarded: tuple[World, World],
) -> None:
    """Approve clicks split across two replicas run the guarded request with exactly one V2 execute."""
    first, second = guarded
    assert first.driver is not None
    assert second.driver is not None
    await first.driver.command(
        "U0BOB", "run reimage_device device:LAPTOP-BOB reason=broken", channel_id="C0SUPPORT"
    )
    await settle(first)
    (message,) = [m for m in first.slack.messages_in("C0APPROVALS") if not m.ephemeral]
    drivers = (first.driver, second.driver)
    clicks = [
        drivers[i % 2].click(
            ("U0CAROL", "U0DAVE")[i // 2 % 2],
            dataclasses.replace(message),
            ids.APPROVAL_APPROVE,
        )
        for i in range(10)
    ]
    assert {r.status for r in await asyncio.gather(*clicks)} == {200}
    await settle(first, second)
    assert first.sandbox is not None
    assert len(first.sandbox.requests("execute_v2")) == 1
    assert "Approved by" in message.text
