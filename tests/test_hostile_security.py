"""Security, end to end: requests Slack did not sign are refused and do nothing; button values
cannot be forged into resuming another question or widening a run; a self-service person cannot
reach anyone else's user or device by any path; the waits webhook needs its token; and no secret
(client secret, signing secret, bot token, webhook token, any access token Nexthink issued)
shows in a log line, a Slack message, ``/readyz`` or ``/metrics``.

The session-wide log scan is ``tests/support/secret_scan.py``; the last test here also checks,
in the test itself, everything a busy session with faults put in the logs and in Slack.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.console.driver import SlackDriver
from bot.console.localslack import LocalSlack, Message
from bot.console.world import SIGNING_SECRET, WEBHOOK_TOKEN, World
from bot.sandbox import Fault, Sandbox
from handlers import ids
from handlers.wait_views import decision_action_id
from tests.support.e2e import PatientWorld, answers, executes, text_of, world_at
from tests.support.secret_scan import captured_lines, leaks_in, remember

ALICE = "U0ALICE"
WORKFLOW_UUID = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"
APPROVAL_POLICY = """
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: self
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["U0CAROL"], count: 1}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path) as w:
        yield w


async def ask(world: World, channel: str = "C0SUPPORT", **extra: Any) -> Message:
    """Post a question through the waits webhook and return its Slack message."""
    body = {
        "workflowUuid": WORKFLOW_UUID,
        "executionUuid": str(uuid.uuid4()),
        "channel": channel,
        "text": "Reinstall Office?",
        **extra,
    }
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(
            f"{world.url}/nexthink/waits",
            json=body,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
    assert response.status_code == 201, response.text
    answer = response.json()
    message = world.slack.find_message(answer["channel"], answer["ts"])
    assert message is not None
    return message


def nothing_happened(world: World, messages_before: int) -> None:
    """No execute, no trigger, and no new message anywhere in Slack."""
    assert world.sandbox is not None
    assert executes(world) == []
    assert world.sandbox.requests("trigger") == []
    assert sum(len(m) for m in world.slack.messages.values()) == messages_before


def messages(world: World) -> int:
    return sum(len(m) for m in world.slack.messages.values())


# -- requests Slack did not sign ------------------------------------------------------------


def _command_body(world: World) -> bytes:
    assert world.driver is not None
    return urlencode(world.driver.command_payload(ALICE, "run restart_teams")).encode()


async def _raw_post(world: World, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as client:
        return await client.post(
            f"{world.url}/slack/events",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        )


@pytest.mark.parametrize(
    "how",
    ["unsigned", "other-secret", "six-minutes-old", "from-the-future", "tampered", "odd-headers"],
)
async def test_requests_not_signed_by_slack_now_are_refused_and_do_nothing(
    world: World, how: str
) -> None:
    """A command without a signature, signed with another secret, replayed 6 minutes later,
    dated 6 minutes ahead, altered after signing, or with a malformed timestamp gets 401 and
    runs nothing."""
    assert world.driver is not None
    before = messages(world)
    body = _command_body(world)
    now = int(time.time())
    headers: dict[str, str]
    if how == "unsigned":
        headers = {}
    elif how == "other-secret":
        other = SlackDriver(world.driver.events_url, "another-signing-secret", world.slack)
        headers = other.sign(body, now)
        await other.aclose()
    elif how == "six-minutes-old":
        headers = world.driver.sign(body, now - 6 * 60)
    elif how == "from-the-future":
        headers = world.driver.sign(body, now + 6 * 60)
    elif how == "tampered":
        headers = world.driver.sign(body, now)
        body = body.replace(b"restart_teams", b"restart_teamz")
    else:
        headers = {"x-slack-request-timestamp": "soon", "x-slack-signature": "v0=zz"}
    response = await _raw_post(world, body, headers)
    assert response.status_code == 401, response.text
    await world.settle()
    nothing_happened(world, before)


async def test_a_replayed_click_is_refused_and_resumes_nothing(world: World) -> None:
    """A genuine click captured and replayed six minutes later is refused: the question stays
    open and nothing is triggered."""
    assert world.driver is not None
    question = await ask(world)
    payload = world.driver.click_payload("U0BOB", question, decision_action_id(0))
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = world.driver.sign(body, int(time.time()) - 6 * 60)
    response = await _raw_post(world, body, headers)
    assert response.status_code == 401
    await world.settle()
    assert world.sandbox is not None
    assert world.sandbox.requests("trigger") == []
    current = world.slack.find_message(question.channel, question.ts)
    assert current is not None
    assert current.updated == 0


@pytest.mark.parametrize(
    "body",
    [
        b"payload=notjson",
        b"payload=%5B1%5D",
        b"{not json",
        b"\xff\xfe",
        b"payload=" + b"%5B" * 5000,
    ],
    ids=["payload-not-json", "payload-array", "json-broken", "not-utf8", "deeply-nested"],
)
async def test_unreadable_bodies_are_401_unsigned_and_400_signed_never_500(
    world: World, body: bytes
) -> None:
    """Bodies Bolt cannot parse get 401 when unsigned (as any unsigned request) and 400 when
    signed, never a 500 and a stack trace for whoever reaches the port."""
    assert world.driver is not None
    unsigned = await _raw_post(world, body, {})
    assert unsigned.status_code == 401
    signed = await world.driver.post(body)
    assert signed.status == 400, signed.body
    assert not any("Traceback" in line for line in captured_lines())


# -- forged button values ---------------------------------------------------------------------


def _with_value(payload: dict[str, Any], value: str) -> dict[str, Any]:
    forged = json.loads(json.dumps(payload))
    forged["actions"][0]["value"] = value
    return forged


@pytest.mark.parametrize(
    "forge", ["other-question", "index-out-of-range", "negative-index", "not-an-index", "no-id"]
)
async def test_a_forged_decision_value_resumes_nothing(world: World, forge: str) -> None:
    """A click whose value names the question of another message, an option that does not exist,
    or no question at all resumes nothing: both questions stay open and the clicker is told the
    button is not the bot's."""
    assert world.driver is not None
    first = await ask(world)
    second = await ask(world)
    second_id = second.blocks[-2]["block_id"].removeprefix("wait:")  # type: ignore[index]
    first_id = first.blocks[-2]["block_id"].removeprefix("wait:")  # type: ignore[index]
    value = {
        "other-question": f"{second_id}:0",
        "index-out-of-range": f"{first_id}:7",
        "negative-index": f"{first_id}:-1",
        "not-an-index": f"{first_id}:x",
        "no-id": ":0",
    }[forge]
    payload = world.driver.click_payload("U0BOB", first, decision_action_id(0))
    response = await world.driver.post_interactive(_with_value(payload, value))
    assert response.status == 200
    await world.settle()
    assert world.sandbox is not None
    assert world.sandbox.requests("trigger") == []
    for question in (first, second):
        current = world.slack.find_message(question.channel, question.ts)
        assert current is not None
        assert current.updated == 0
    told = [m for m in answers(world, "U0BOB") if m.ephemeral]
    assert [m.text for m in told] == ["This button does not belong to a question the bot knows."]
    assert world.bot is not None
    assert world.bot.tasks.failures == 0


async def test_a_home_run_button_cannot_carry_targets(world: World) -> None:
    """A Home *Run* click whose value is forged into `restart_teams user:<@U0BOB>` or a device
    runs nothing on anyone else: the value is only ever a workflow id."""
    assert world.driver is not None
    question = await ask(world)
    payload = world.driver.click_payload("U0BOB", question, decision_action_id(0))
    payload["actions"][0]["action_id"] = ids.HOME_RUN
    for value in ("restart_teams user:<@U0ALICE>", "restart_teams device:LAPTOP-42"):
        response = await world.driver.post_interactive(_with_value(payload, value))
        assert response.status == 200
    await world.settle()
    assert executes(world) == []


async def test_approval_buttons_cannot_be_forged_into_a_decision(tmp_path: Path) -> None:
    """Approve clicks by the requester, by someone who is not an approver, or naming an approval
    that does not exist run nothing; the named approver's click runs it once, on the requester."""
    async with world_at(tmp_path, APPROVAL_POLICY) as world:
        assert world.driver is not None
        await world.driver.command(ALICE, "run reimage_device")
        await world.settle()
        (approval,) = world.slack.messages_in("C0APPROVALS")
        for clicker in (ALICE, "U0BOB"):
            await world.driver.click(clicker, dataclasses.replace(approval), ids.APPROVAL_APPROVE)
        payload = world.driver.click_payload("U0CAROL", approval, ids.APPROVAL_APPROVE)
        await world.driver.post_interactive(_with_value(payload, str(uuid.uuid4())))
        await world.settle()
        assert executes(world) == []
        assert "cannot approve your own request" in answers(world, ALICE)[-1].text
        await world.driver.click("U0CAROL", approval, ids.APPROVAL_APPROVE)
        await world.settle()
        (sent,) = executes(world)
        assert sent["users"] == [{"upn": "alice@example.com"}]
        assert sent["devices"] == []


# -- a self-service person reaches only themselves --------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "run restart_teams user:<@U0BOB>",
        "run restart_teams <@U0BOB|bob>",
        "run restart_teams user:bob@example.com",
        "run restart_teams user:S-1-5-21-1004336348-1177238915-682003330-1001",
        "run restart_teams device:LAPTOP-42",
        "run restart_teams device:3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "run restart_teams user:<@U0ALICE> device:LAPTOP-42",
        "run restart_teams user:<@U0ALICE> user:<@U0BOB>",
        f"resume {WORKFLOW_UUID} {uuid.UUID(int=1)} decision=approved",
    ],
)
async def test_a_self_service_command_cannot_name_anyone_else(world: World, text: str) -> None:
    """Under the default policy every way of writing another user, a SID or a device, alone or
    next to oneself, and `resume`, is refused with nothing sent to Nexthink."""
    assert world.driver is not None
    response = await world.driver.command(ALICE, text)
    assert response.status == 200
    await world.settle()
    shown = text_of(answers(world, ALICE)[-1])
    assert "yourself" in shown or "resume" in shown.lower()
    assert executes(world) == []
    assert world.sandbox is not None
    assert world.sandbox.requests("trigger") == []


async def _open_form(world: World, user_id: str) -> str:
    assert world.driver is not None
    await world.driver.command(user_id, "")
    await world.settle()
    (view,) = [v for v in world.slack.views.values() if v.callback_id == ids.RUN_MODAL]
    return view.id


@pytest.mark.parametrize(
    "forged",
    [
        {
            ids.MODAL_USERS_BLOCK: {
                ids.MODAL_USERS: {"type": "multi_users_select", "selected_users": ["U0BOB"]}
            }
        },
        {
            ids.MODAL_DEVICES_BLOCK: {
                ids.MODAL_DEVICES: {"type": "plain_text_input", "value": "LAPTOP-42"}
            }
        },
    ],
    ids=["users", "devices"],
)
async def test_a_forged_form_submission_cannot_name_anyone_else(
    world: World, forged: dict[str, Any]
) -> None:
    """A run-form submission whose state carries people or devices the form never offered to a
    self-service person is refused inline and runs nothing."""
    assert world.driver is not None
    view_id = await _open_form(world, ALICE)
    payload = world.driver.view_submission_payload(
        ALICE, view_id, {ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "restart_teams"}}
    )
    payload["view"]["state"]["values"].update(forged)
    response = await world.driver.post_interactive(payload)
    assert response.status == 200
    assert response.body["response_action"] == "errors"
    assert "yourself" in json.dumps(response.body["errors"])
    await world.settle()
    assert executes(world) == []


async def test_the_run_for_author_shortcut_cannot_reach_the_author_for_self_service(
    world: World,
) -> None:
    """Alice's *run for the author* shortcut on Bob's message prefills Bob, but submitting it
    under the default policy is refused and nothing runs on Bob."""
    assert world.driver is not None
    message = world.slack.add_message("C0SUPPORT", "U0BOB", "Teams is frozen again")
    await world.driver.message_shortcut(ALICE, message)
    await world.settle()
    (view,) = [v for v in world.slack.views.values() if v.callback_id == ids.RUN_MODAL]
    payload = world.driver.view_submission_payload(
        ALICE, view.id, {ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "restart_teams"}}
    )
    payload["view"]["state"]["values"][ids.MODAL_USERS_BLOCK] = {
        ids.MODAL_USERS: {"type": "multi_users_select", "selected_users": ["U0BOB"]}
    }
    response = await world.driver.post_interactive(payload)
    await world.settle()
    assert response.status == 200
    assert response.body["response_action"] == "errors"
    assert "yourself" in json.dumps(response.body["errors"])
    assert executes(world) == []


# -- the waits webhook ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        f"Bearer {WEBHOOK_TOKEN}x",
        f"Bearer {WEBHOOK_TOKEN[:-1]}",
        f"Token {WEBHOOK_TOKEN}",
        WEBHOOK_TOKEN,
        "Basic " + base64.b64encode(f"{WEBHOOK_TOKEN}:".encode()).decode(),
        "Basic " + base64.b64encode(b"nexthink:wrong").decode(),
        "Basic !!!not-base64!!!",
    ],
    ids=[
        "none",
        "empty-bearer",
        "longer",
        "shorter",
        "other-scheme",
        "bare-token",
        "token-as-basic-user",
        "wrong-basic",
        "broken-basic",
    ],
)
async def test_the_webhook_without_its_token_posts_nothing(
    world: World, authorization: str | None
) -> None:
    """Without the token (missing, wrong, truncated, under another scheme, as a Basic user name
    rather than its password) the webhook answers 401 and posts nothing."""
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    body = {
        "workflowUuid": WORKFLOW_UUID,
        "executionUuid": str(uuid.uuid4()),
        "channel": "C0SUPPORT",
        "text": "Reinstall Office?",
    }
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(f"{world.url}/nexthink/waits", json=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]
    assert WEBHOOK_TOKEN not in response.text
    assert world.slack.calls_to("chat.postMessage") == []


# -- no secret anywhere -----------------------------------------------------------------------


async def test_no_secret_reaches_logs_slack_readyz_or_metrics(tmp_path: Path) -> None:
    """Through runs, token expiry and refresh, throttling, garbage answers, bad webhook tokens,
    forged and unsigned requests and errors, no secret value (client secret, signing secret, bot
    token, webhook token, any access token the sandbox issued) appears in a log line, a Slack
    message, /readyz or /metrics (the root logger is at DEBUG for the whole session)."""
    client_secret = "cs-" + secrets.token_urlsafe(24)
    bot_token = "xoxb-" + secrets.token_hex(12)
    remember(client_secret, bot_token, SIGNING_SECRET, WEBHOOK_TOKEN)
    sandbox = Sandbox(
        client_id="hostile-client",
        client_secret=client_secret,
        execution_delay=0.05,
        webhook_token=WEBHOOK_TOKEN,
        token_lifetime=900,
    )
    async with sandbox, LocalSlack(bot_token=bot_token) as slack:
        world = PatientWorld(
            database_url=f"sqlite:///{tmp_path}/bot.db",
            sandbox=sandbox,
            slack=slack,
            execution_delay=0.05,
        )
        async with world:
            assert world.driver is not None
            driver = world.driver
            await driver.command(ALICE, "run restart_teams")
            await world.settle()
            sandbox.expire_tokens()  # every token answers 401: a refresh follows
            await driver.command(ALICE, "run clear_disk_space")
            sandbox.faults.add(Fault(endpoint="execute_v2", kind="429", times=3, retry_after=0.05))
            await driver.command(ALICE, "run restart_teams")
            await world.settle()
            sandbox.faults.add(Fault(endpoint="list", kind="garbage", times=8))
            world.bot.catalogue.invalidate()  # type: ignore[union-attr]
            await driver.command(ALICE, "list")
            await driver.command(ALICE, "run restart_teams user:<@U0BOB>")
            await driver.command(ALICE, 'run "unterminated')
            question = await ask(world)
            await driver.click("U0BOB", question, decision_action_id(0))
            async with httpx.AsyncClient(timeout=15) as client:
                await client.post(
                    f"{world.url}/nexthink/waits",
                    json={"text": "x"},
                    headers={"Authorization": f"Bearer {client_secret}"},
                )
                await client.post(
                    f"{world.url}/slack/events",
                    content=b"payload=notjson",
                    headers={"x-slack-signature": "v0=" + "0" * 64},
                )
                await world.settle()
                ready = await client.get(f"{world.url}/readyz")
                metrics = await client.get(f"{world.url}/metrics")
            issued = [
                e.response["access_token"]
                for e in sandbox.requests("token")
                if isinstance(e.response, dict) and "access_token" in e.response
            ]
            assert len(issued) >= 2
            remember(*issued)
            shown = json.dumps(
                [(m.text, m.blocks) for ms in slack.messages.values() for m in ms]
                + [v.view for v in slack.views.values()]
            )
            assert leaks_in(shown) == [], "a secret in Slack"
            assert leaks_in(ready.text) == [], "a secret in /readyz"
            assert metrics.status_code == 200
            assert leaks_in(metrics.text) == [], "a secret in /metrics"
            lines = captured_lines()
            assert len(lines) > 100
            assert [line for line in lines if leaks_in(line)] == [], "a secret in the logs"
