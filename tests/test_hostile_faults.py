"""Faults, end to end: every failure class of the Nexthink client gives the documented behaviour
in Slack, with the exact number of requests Nexthink received; Slack's own 429s are waited out;
a store that goes away is answered clearly and recovered from.

The sandbox's fault switches (``Fault``) make Nexthink misbehave; a stopped sandbox refuses
connections; ``LocalSlack.fail`` makes the Web API answer 429 with Retry-After; a TCP relay in
front of PostgreSQL is cut and restored to take the database away and bring it back. The 500 and
read-timeout cases of an execute are in ``test_e2e_commands`` and not repeated here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from bot.console.localslack import Message
from bot.console.world import WEBHOOK_TOKEN, World
from bot.sandbox import Fault
from handlers import ids
from handlers.wait_views import decision_action_id
from tests.support.e2e import PatientWorld, answers, text_of, world_at
from tests.support.relay import Relay
from tests.support.secret_scan import leaks_in, remember

ALICE = "U0ALICE"
WORKFLOW_UUID = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"
APPROVAL_POLICY = """\
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: self
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["U0CAROL"], count: 1}
"""
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path) as w:
        yield w


async def run(world: World, text: str = "run restart_teams") -> str:
    """Alice types ``/nexthink <text>``; what she reads afterwards."""
    assert world.driver is not None
    before = len(answers(world, ALICE))
    response = await world.driver.command(ALICE, text)
    assert response.status == 200
    await world.settle()
    replies = answers(world, ALICE)[before:]
    assert replies, "no answer"
    return "\n".join(text_of(m) for m in replies)


def sent(world: World, endpoint: str) -> int:
    assert world.sandbox is not None
    return len(world.sandbox.requests(endpoint))


# -- Nexthink's faults ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "503"])
async def test_throttling_within_the_retries_is_waited_out_and_the_run_succeeds(
    world: World, kind: str
) -> None:
    """Two 429s (or 503s) with Retry-After on the execute are waited out: three executes reach
    Nexthink, one execution runs, and Alice is told it was sent."""
    assert world.sandbox is not None
    world.sandbox.faults.add(Fault(endpoint="execute_v2", kind=kind, times=2, retry_after=0.2))  # type: ignore[arg-type]
    started = time.monotonic()
    shown = await run(world)
    assert time.monotonic() - started >= 0.4  # Retry-After was honoured, twice
    assert "sent to Nexthink" in shown
    assert sent(world, "execute_v2") == 3
    assert len(world.sandbox.executions) == 1


async def test_throttling_beyond_the_retries_says_busy_try_again_and_nothing_ran(
    world: World,
) -> None:
    """Three 429s in a row: the execute is tried three times, nothing runs, and Alice reads that
    Nexthink is busy, nothing was sent, and when to try again."""
    assert world.sandbox is not None
    world.sandbox.faults.add(Fault(endpoint="execute_v2", kind="429", times=3, retry_after=0.1))
    shown = await run(world)
    assert "Nexthink is busy" in shown
    assert "was not sent" in shown
    assert "Try again in 1 s" in shown
    assert sent(world, "execute_v2") == 3
    assert world.sandbox.executions == {}


async def test_an_expired_token_is_refreshed_once_and_the_run_succeeds(world: World) -> None:
    """A 401 on the execute gets one new token and one retry: two tokens, two executes, one
    execution."""
    assert world.sandbox is not None
    await run(world, "list")  # the bot holds a token and the catalogue
    assert sent(world, "token") == 1
    world.sandbox.faults.add(Fault(endpoint="execute_v2", kind="401"))
    shown = await run(world)
    assert "sent to Nexthink" in shown
    assert sent(world, "token") == 2
    assert sent(world, "execute_v2") == 2
    assert len(world.sandbox.executions) == 1


async def test_a_401_that_persists_after_the_refresh_is_a_credentials_problem(world: World) -> None:
    """When the new token is refused too, the bot stops after one refresh and says its
    credentials were not accepted and nothing was sent."""
    assert world.sandbox is not None
    await run(world, "list")
    world.sandbox.faults.add(Fault(endpoint="execute_v2", kind="401", times=2))
    shown = await run(world)
    assert "credentials were not accepted" in shown
    assert "nothing was sent" in shown
    assert sent(world, "token") == 2
    assert sent(world, "execute_v2") == 2
    assert world.sandbox.executions == {}


@pytest.mark.parametrize("kind", ["reset", "500", "timeout"])
async def test_an_execute_lost_after_sending_is_never_repeated(tmp_path: Path, kind: str) -> None:
    """A reset connection, a 500 or no answer after a processed execute: exactly one execute,
    one execution, and Alice is told it may or may not have run."""
    async with world_at(tmp_path, overrides={"nexthink_read_timeout": 1.0}) as world:
        assert world.sandbox is not None
        world.sandbox.faults.add(
            Fault(endpoint="execute_v2", kind=kind, processed=True, delay=3.0)  # type: ignore[arg-type]
        )
        shown = await run(world)
        assert "may or may not have run" in shown
        assert sent(world, "execute_v2") == 1
        assert len(world.sandbox.executions) == 1
        assert world.bot is not None
        (record,) = await world.bot.store.history(ALICE)
        assert record.state == "unknown"


async def test_a_stopped_nexthink_is_unavailable_nothing_runs_and_the_bot_recovers(
    world: World,
) -> None:
    """With the sandbox stopped (connection refused) Alice reads that Nexthink is unavailable and
    nothing was run; once it is back on the same port, the same command runs."""
    sandbox = world.sandbox
    assert sandbox is not None
    await run(world, "list")
    port = int(sandbox.url.rsplit(":", 1)[1])
    journal = len(sandbox.journal)
    await sandbox.stop()
    try:
        shown = await run(world)
        assert "Nexthink is unavailable" in shown
        assert "Nothing was run" in shown
        assert "nothing was sent" in shown
        assert world.bot is not None
        (record,) = await world.bot.store.history(ALICE)
        assert record.state == "failed"
    finally:
        await sandbox.start(port=port)
    assert len(sandbox.journal) == journal  # nothing arrived while it was down
    shown = await run(world)
    assert "sent to Nexthink" in shown
    assert sent(world, "execute_v2") == 1
    assert len(sandbox.executions) == 1


# -- Slack's 429 ----------------------------------------------------------------------------


async def post_question(world: World) -> httpx.Response:
    body = {
        "workflowUuid": WORKFLOW_UUID,
        "executionUuid": str(uuid.uuid4()),
        "channel": "C0SUPPORT",
        "text": "Reinstall Office?",
    }
    async with httpx.AsyncClient(timeout=15) as client:
        return await client.post(
            f"{world.url}/nexthink/waits",
            json=body,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )


async def test_a_slack_429_on_chat_post_message_is_waited_out(world: World) -> None:
    """When Slack answers chat.postMessage with 429 and Retry-After: 1, the bot waits a second,
    posts again, and the question appears exactly once."""
    world.slack.fail("chat.postMessage", "ratelimited", times=1, retry_after=1)
    started = time.monotonic()
    response = await post_question(world)
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 1.0
    calls = world.slack.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert len(world.slack.messages_in("C0SUPPORT")) == 1


async def test_a_slack_429_on_the_reply_to_a_click_is_waited_out(world: World) -> None:
    """A refusal to a click goes out as an ephemeral; a 429 on it is waited out and the clicker
    still reads it once."""
    assert world.driver is not None
    response = await post_question(world)
    answer = response.json()
    question = world.slack.find_message(answer["channel"], answer["ts"])
    assert question is not None
    stale = dataclasses.replace(question)  # Carol's screen still shows the buttons
    await world.driver.click("U0BOB", question, decision_action_id(0))
    await world.settle()
    world.slack.fail("chat.postEphemeral", "ratelimited", times=1, retry_after=1)
    await world.driver.click("U0CAROL", stale, decision_action_id(1))
    await world.settle()
    told = [m for m in answers(world, "U0CAROL") if m.ephemeral]
    assert len(told) == 1
    assert "already answered by <@U0BOB>" in told[0].text
    assert [c.status for c in world.slack.calls_to("chat.postEphemeral")] == [429, 200]


# -- the store goes away --------------------------------------------------------------------


@pytest.fixture
async def relayed_database() -> AsyncIterator[tuple[str, Relay]]:
    """A PostgreSQL role and schema of their own, reached through a ``Relay``."""
    plain = make_url(PG_URL).set(drivername="postgresql")
    try:
        admin = await asyncpg.connect(plain.render_as_string(hide_password=False), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(f"PostgreSQL is unreachable ({type(exc).__name__}: {exc})")
    name = f"hostile_{secrets.token_hex(6)}"
    password = secrets.token_hex(16)
    remember(password)  # a database password is a secret too
    await admin.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
    await admin.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
    await admin.execute(f'ALTER ROLE "{name}" SET search_path = "{name}"')
    relay = Relay(plain.host or "127.0.0.1", plain.port or 5432)
    port = await relay.start()
    url = plain.set(username=name, password=password, host="127.0.0.1", port=port)
    try:
        yield url.render_as_string(hide_password=False), relay
    finally:
        await relay.stop()
        await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        await admin.execute(f'DROP ROLE "{name}"')
        await admin.close()


async def readyz(world: World) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as client:
        return await client.get(f"{world.url}/readyz")


def _question_of(world: World, response: httpx.Response) -> Message:
    answer = response.json()
    message = world.slack.find_message(answer["channel"], answer["ts"])
    assert message is not None
    return message


@pytest.mark.postgres
async def test_a_database_that_goes_away_is_answered_clearly_and_recovered_from(
    relayed_database: tuple[str, Relay], tmp_path: Path
) -> None:
    """With PostgreSQL cut off, a run, a history, a click on a question, an approval and a
    webhook each get a clear answer, nothing reaches Nexthink, the Home tab fails quietly and
    /readyz says the store is down; once the database is back, /readyz is ready again and the
    same actions work, each once."""
    url, relay = relayed_database
    policy = tmp_path / "policy.yaml"
    policy.write_text(APPROVAL_POLICY)
    async with PatientWorld(database_url=url, execution_delay=0.05, policy_file=policy) as world:
        assert world.driver is not None
        assert world.bot is not None
        assert world.sandbox is not None
        assert "sent to Nexthink" in await run(world)
        question = _question_of(world, await post_question(world))
        assert "needs approval" in await run(world, "run reimage_device")
        (approval,) = world.slack.messages_in("C0APPROVALS")
        assert (await readyz(world)).status_code == 200

        await relay.cut()
        shown = await run(world)
        assert "database" in shown
        assert "nothing was sent to Nexthink" in shown
        assert "database" in await run(world, "history")
        await world.driver.click("U0BOB", question, decision_action_id(0))
        await world.settle()
        told = [m for m in answers(world, "U0BOB") if m.ephemeral]
        assert len(told) == 1
        assert "database" in told[0].text
        await world.driver.click("U0CAROL", approval, ids.APPROVAL_APPROVE)
        await world.settle()
        told = [m for m in answers(world, "U0CAROL") if m.ephemeral]
        assert len(told) == 1
        assert "database" in told[0].text
        home = await world.driver.app_home_opened(ALICE)
        assert home.status == 200
        await world.settle()
        webhook = await post_question(world)
        assert webhook.status_code == 503
        assert "database" in webhook.json()["error"]
        ready = await readyz(world)
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["store"] != "ok"
        assert checks["slack"] == "ok"
        assert leaks_in(ready.text) == []
        assert sent(world, "execute_v2") == 1
        assert sent(world, "trigger") == 0
        assert world.bot.tasks.failures == 0

        await relay.start()
        ready = await readyz(world)
        assert ready.status_code == 200, ready.text
        assert "sent to Nexthink" in await run(world)
        await world.driver.click("U0BOB", question, decision_action_id(0))
        await world.driver.click("U0CAROL", approval, ids.APPROVAL_APPROVE)
        await world.settle()
        assert sent(world, "trigger") == 1
        assert sent(world, "execute_v2") == 3
        everything = json.dumps(
            [m.text for ms in world.slack.messages.values() for m in ms] + [ready.text]
        )
        assert leaks_in(everything) == []
        assert world.bot.tasks.failures == 0
