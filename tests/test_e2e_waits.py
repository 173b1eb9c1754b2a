"""Paused executions end to end: Nexthink's webhook in, the question in Slack, clicks, one trigger out.

Every test drives the real bot over loopback (``World``): the sandbox posts (or the test posts) the
wait question to ``POST /nexthink/waits``, people click the buttons through signed ``block_actions``
requests, and the sandbox's journal shows what reached Nexthink.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import waits
from bot.console.localslack import LocalSlack, Message
from bot.console.world import WEBHOOK_TOKEN, World
from bot.sandbox import Execution, ExecutionStatus, JournalEntry, Sandbox
from handlers.wait_views import decision_action_id
from tests.support.e2e import PatientWorld
from tests.support.openapi import validate_request, validate_response
from tests.support.sandbox_helpers import Caller

WORKFLOW_UUID = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"  # the sandbox's pausing request_software
BOT_SOURCE = "slack-chatops"  # the Source header the bot sends (tests' own calls send another)

POLICY = """\
roles:
  engineers:
    members: ["U0BOB"]
    workflows: ["*"]
    targets: any
    resume: true
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: self
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with PatientWorld(database_url=f"sqlite:///{tmp_path}/bot.db", execution_delay=0.05) as w:
        yield w


# -- helpers ------------------------------------------------------------------------------


async def post(
    world: World,
    body: Any = None,
    *,
    authorization: str | None = f"Bearer {WEBHOOK_TOKEN}",
    content: Any = None,
) -> httpx.Response:
    """POST to the bot's waits webhook as a Service/API thinklet would."""
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with httpx.AsyncClient(timeout=15) as client:
        if content is not None:
            return await client.post(
                f"{world.url}/nexthink/waits", content=content, headers=headers
            )
        return await client.post(f"{world.url}/nexthink/waits", json=body, headers=headers)


async def paused(world: World, upn: str = "alice@example.com") -> Execution:
    """A request_software execution waiting for a trigger, whose question the test posts itself."""
    sandbox = world.sandbox
    assert sandbox is not None
    webhook_url, sandbox.webhook_url = sandbox.webhook_url, None
    try:
        async with httpx.AsyncClient(base_url=sandbox.url) as client:
            caller = Caller(client)
            await caller.get_token(sandbox.client_id, sandbox.client_secret)
            response = await caller.execute_v2(
                {
                    "workflowId": "request_software",
                    "users": [{"upn": upn}],
                    "devices": [],
                    "params": {"software": "Firefox"},
                }
            )
    finally:
        sandbox.webhook_url = webhook_url
    (execution_uuid,) = response.json()["executionsUuids"]
    execution = sandbox.executions[execution_uuid]
    assert execution.status is ExecutionStatus.WAITING
    return execution


def question(execution: Execution, **changes: Any) -> dict[str, Any]:
    """The execution's webhook body, asking in #it-support, with some fields changed (None removes
    a field)."""
    assert execution.question is not None
    body = dict(execution.question) | {"channel": "C0SUPPORT", "user": None} | changes
    return {k: v for k, v in body.items() if v is not None}


async def ask(world: World, body: dict[str, Any]) -> Message:
    """Post a question and return the Slack message the bot made of it."""
    response = await post(world, body)
    assert response.status_code == 201, response.text
    answer = response.json()
    message = world.slack.find_message(answer["channel"], answer["ts"])
    assert message is not None
    return message


async def run_pausing_workflow(world: World, params: str) -> Message:
    """Alice runs request_software through the bot; the sandbox posts its question to the bot."""
    assert world.driver is not None
    assert world.sandbox is not None
    response = await world.driver.command(
        "U0ALICE", f"run request_software software=Firefox {params}", channel_id="C0GENERAL"
    )
    assert response.status == 200
    await world.settle()
    (delivery,) = world.sandbox.webhooks
    assert delivery.status == 201, delivery.response
    message = world.slack.find_message(delivery.response["channel"], delivery.response["ts"])
    assert message is not None
    return message


async def click(world: World, user_id: str, message: Message, index: int = 0) -> None:
    """``user_id`` clicks option ``index`` of the question as ``message`` shows it."""
    assert world.driver is not None
    response = await world.driver.click(user_id, message, decision_action_id(index))
    assert response.status == 200
    await world.settle()


def bot_triggers(sandbox: Sandbox | None) -> list[JournalEntry]:
    """The trigger requests the bot (not the test) sent to the sandbox."""
    assert sandbox is not None
    return [e for e in sandbox.requests("trigger") if e.headers.get("Source") == BOT_SOURCE]


def ephemeral_messages(slack: LocalSlack, user_id: str) -> list[Message]:
    """What the bot showed only to ``user_id``, everywhere, oldest first (acks left out)."""
    messages = [
        m
        for ms in slack.messages.values()
        for m in ms
        if m.ephemeral and m.user == user_id and m.via != "ack"
    ]
    return sorted(messages, key=lambda m: float(m.ts))


def ephemerals(slack: LocalSlack, user_id: str) -> list[str]:
    """The texts of ``ephemeral_messages``."""
    return [m.text for m in ephemeral_messages(slack, user_id)]


def shown(message: Message) -> str:
    """What a person reads in the message: its blocks' texts (else its text)."""
    if not message.blocks:
        return message.text
    parts = []
    for block in message.blocks:
        for item in [block.get("text"), *(block.get("fields") or [])]:
            if isinstance(item, dict):
                parts.append(str(item.get("text", "")))
        for element in block.get("elements") or []:
            parts.append(str(element.get("text", "")))
    return "\n".join(parts)


def buttons(message: Message) -> list[str]:
    return [
        str(e["text"]["text"])
        for b in message.blocks or []
        if b.get("type") == "actions"
        for e in b["elements"]
    ]


# -- the webhook: authentication, validation, answers ---------------------------------------


async def test_webhook_answers_503_while_no_token_is_configured(tmp_path: Path) -> None:
    """Without NEXTHINK_WEBHOOK_TOKEN the webhook is off: 503 with an error naming the setting."""
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        execution_delay=0.05,
        overrides={"nexthink_webhook_token": None},
    ) as world:
        response = await post(world, {"anything": True})
        assert response.status_code == 503
        assert "NEXTHINK_WEBHOOK_TOKEN" in response.json()["error"]
        assert world.slack.calls_to("chat.postMessage") == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        "Bearer",
        "Basic " + base64.b64encode(b"nexthink:wrong-token").decode(),
        f"Token {WEBHOOK_TOKEN}",
    ],
    ids=["missing", "wrong-bearer", "empty-bearer", "wrong-basic", "other-scheme"],
)
async def test_webhook_answers_401_for_a_missing_or_wrong_credential(
    world: World, authorization: str | None
) -> None:
    """A request without the webhook token gets 401 and a JSON error, and nothing is posted."""
    execution = await paused(world)
    response = await post(world, question(execution), authorization=authorization)
    assert response.status_code == 401
    assert response.json() == {
        "error": "missing or wrong credential: send Authorization: Bearer <NEXTHINK_WEBHOOK_TOKEN>"
    }
    assert world.slack.calls_to("chat.postMessage") == []


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'{"workflowUuid": ', "malformed JSON: Expecting value at line 1 column 18"),
        (b"", "malformed JSON: Expecting value at line 1 column 1"),
        (b'{"text": "\xff"}', "malformed JSON: the body is not UTF-8"),
        (b'["a list"]', "the body must be a JSON object"),
    ],
    ids=["truncated", "empty", "not-utf8", "not-an-object"],
)
async def test_webhook_answers_400_for_malformed_json(
    world: World, content: bytes, error: str
) -> None:
    """A body that is not a JSON object gets 400 with an error saying what is wrong and where."""
    response = await post(world, content=content)
    assert response.status_code == 400
    assert response.json() == {"error": error}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"workflowUuid": None}, "workflowUuid: Field required"),
        ({"executionUuid": "LAPTOP-42"}, "executionUuid: must be a UUID such as"),
        (
            {"channel": None, "user": None},
            "one of channel (a Slack channel id) or user (a UPN) is required",
        ),
        ({"user": "alice"}, "user: must be a UPN such as alice@example.com"),
        ({"text": ""}, "text: String should have at least 1 character"),
        (
            {"options": [{"label": "Yes", "parameters": {"decision": ""}}]},
            "options[0].parameters.decision: String should have at least 1 character",
        ),
        (
            {"options": [{"label": "Yes"}, {"label": "No", "colour": "red"}]},
            "options[1].colour: Extra inputs are not permitted",
        ),
        ({"options": []}, "options: List should have at least 1 item after validation, not 0"),
        (
            {"approvers": ["it-leads"]},
            "approvers[0]: must be a Slack user id (U0123456789), a UPN or a user-group handle (@it-leads)",
        ),
        (
            {"expiresInMinutes": 0},
            "expiresInMinutes: Input should be greater than or equal to 0.05",
        ),
        ({"requester": 42}, "requester: Input should be a valid string"),
    ],
    ids=[
        "no-workflow",
        "bad-execution",
        "nowhere-to-ask",
        "user-not-a-upn",
        "empty-text",
        "empty-parameter",
        "unknown-option-field",
        "no-options",
        "group-without-at",
        "expiry-zero",
        "requester-not-text",
    ],
)
async def test_webhook_answers_400_naming_the_field_that_breaks_the_schema(
    world: World, changes: dict[str, Any], error: str
) -> None:
    """A field that breaks the schema gets 400 with ``{"error": "<where>: <what>"}``; nothing is posted."""
    execution = await paused(world)
    response = await post(world, question(execution, **changes))
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"].startswith(error), body["error"]
    assert world.slack.calls_to("chat.postMessage") == []
    assert world.bot is not None
    assert await world.bot.store.pending_waits() == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_webhook_answers_413_for_a_body_over_64_kib(world: World, chunked: bool) -> None:
    """A body over 64 KiB is refused with 413, whether or not it announces its length."""
    execution = await paused(world)
    body = question(execution, text="x" * 100)
    raw = httpx.Request("POST", "http://x", json=body).content
    raw = raw[:-1] + b', "padding": "' + b"p" * (64 * 1024) + b'"}'

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 8192):
            yield raw[start : start + 8192]

    response = await post(world, content=pieces() if chunked else raw)
    assert response.status_code == 413
    assert response.json() == {"error": "the body is over 64 KiB"}
    assert world.slack.calls_to("chat.postMessage") == []


async def test_webhook_reads_a_body_that_arrives_in_pieces(world: World) -> None:
    """A valid body under 64 KiB sent in several chunks is read whole and answered 201."""
    execution = await paused(world)
    raw = httpx.Request("POST", "http://x", json=question(execution, text="y" * 2800)).content
    raw = raw[:-1] + b', "padding": "' + b"p" * (40 * 1024) + b'"}'

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 4096):
            yield raw[start : start + 4096]
            await asyncio.sleep(0.001)

    response = await post(world, content=pieces())
    assert response.status_code == 201, response.text
    assert len(world.slack.calls_to("chat.postMessage")) == 1


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {WEBHOOK_TOKEN}",
        "Basic " + base64.b64encode(f"nexthink:{WEBHOOK_TOKEN}".encode()).decode(),
    ],
    ids=["bearer", "basic"],
)
async def test_webhook_posts_the_question_and_answers_201(world: World, authorization: str) -> None:
    """A valid question is posted with one button per option and answered 201 {id, channel, ts}."""
    execution = await paused(world)
    response = await post(
        world, question(execution, channel="C0SUPPORT"), authorization=authorization
    )
    assert response.status_code == 201
    answer = response.json()
    assert set(answer) == {"id", "channel", "ts"}
    assert answer["channel"] == "C0SUPPORT"
    message = world.slack.find_message("C0SUPPORT", answer["ts"])
    assert message is not None
    assert buttons(message) == ["Approve", "Deny"]
    assert "Alice Martin asks to install Firefox on LAPTOP-ALICE. Approve?" in shown(message)
    assert execution.uuid in shown(message)
    assert bot_triggers(world.sandbox) == []


async def test_webhook_for_a_upn_asks_by_direct_message(world: World) -> None:
    """With only ``user``, the bot finds the Slack user by email and asks them in a DM."""
    execution = await paused(world)
    response = await post(world, question(execution, channel=None, user="bob@example.com"))
    assert response.status_code == 201
    answer = response.json()
    lookups = world.slack.calls_to("users.lookupByEmail")
    assert [c.params.get("email") for c in lookups] == ["bob@example.com"]
    assert answer["channel"] == world.slack.dm_channel("U0BOB")
    message = world.slack.find_message(answer["channel"], answer["ts"])
    assert message is not None
    assert buttons(message) == ["Approve", "Deny"]


async def test_webhook_for_an_unknown_upn_answers_400(world: World) -> None:
    """A ``user`` no Slack profile has, and no channel, is refused with a 400 naming the UPN."""
    execution = await paused(world)
    response = await post(world, question(execution, channel=None, user="nobody@example.com"))
    assert response.status_code == 400
    assert response.json() == {"error": "user: no Slack user has the email nobody@example.com"}
    assert world.slack.calls_to("chat.postMessage") == []


async def test_channel_wins_over_user_and_the_user_is_mentioned(world: World) -> None:
    """With both ``channel`` and ``user``, the question goes to the channel and mentions the user."""
    execution = await paused(world)
    response = await post(world, question(execution, channel="C0SUPPORT", user="bob@example.com"))
    assert response.status_code == 201
    answer = response.json()
    assert answer["channel"] == "C0SUPPORT"
    message = world.slack.find_message("C0SUPPORT", answer["ts"])
    assert message is not None
    assert "<@U0BOB>" in shown(message)
    assert world.slack.messages_in(world.slack.dm_channel("U0BOB")) == []


async def test_a_question_slack_refuses_is_answered_400_and_posted_on_the_repeat(
    world: World,
) -> None:
    """Slack refusing the message gives Nexthink a 400 saying why; the repeated webhook posts it."""
    execution = await paused(world)
    body = question(execution)
    world.slack.fail("chat.postMessage", "not_in_channel")
    refused = await post(world, body)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "Slack refused the message: not_in_channel (invite the bot to the channel)"
    }
    repeated = await post(world, body)
    assert repeated.status_code == 201
    message = world.slack.find_message(repeated.json()["channel"], repeated.json()["ts"])
    assert message is not None
    assert buttons(message) == ["Approve", "Deny"]


async def test_a_repeated_webhook_does_not_post_twice(world: World) -> None:
    """Nexthink repeating the webhook of one execution gets the same answer; one message is posted."""
    execution = await paused(world)
    body = question(execution)
    first = await post(world, body)
    second = await post(world, body)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(world.slack.calls_to("chat.postMessage")) == 1


async def test_concurrent_repeats_of_a_webhook_post_once(world: World) -> None:
    """Several copies of one execution's webhook arriving at once still post a single message."""
    execution = await paused(world)
    body = question(execution)
    answers = await asyncio.gather(*(post(world, body) for _ in range(5)))
    assert {a.status_code for a in answers} == {201}
    assert len({(a.json()["id"], a.json()["ts"]) for a in answers}) == 1
    assert len(world.slack.calls_to("chat.postMessage")) == 1


# -- clicks ---------------------------------------------------------------------------------


async def test_a_question_is_decided_once_by_an_allowed_approver(world: World) -> None:
    """Post, a click by a non-approver (refused), a click by the approver: one valid trigger, message updated."""
    message = await run_pausing_workflow(world, "channel=C0SUPPORT approvers=U0CAROL")
    before = dataclasses.replace(message)
    assert buttons(message) == ["Approve", "Deny"]

    await click(world, "U0BOB", message)
    assert ephemerals(world.slack, "U0BOB") == ["Only <@U0CAROL> may decide this."]
    assert bot_triggers(world.sandbox) == []
    assert buttons(message) == ["Approve", "Deny"]

    await click(world, "U0CAROL", message)
    (trigger,) = bot_triggers(world.sandbox)
    path = f"/api/v1/workflows/workflows/{WORKFLOW_UUID}/execution/{trigger.path.split('/')[-2]}/trigger"
    assert trigger.path == path
    assert trigger.body == {"parameters": {"decision": "approved", "approver": "carol@example.com"}}
    validate_request("POST", trigger.path, headers=trigger.headers, body=trigger.body)
    validate_response("POST", trigger.path, trigger.status or 0, trigger.response)
    request_uuid = trigger.response[0]["requestUuid"]

    assert buttons(message) == []
    text = shown(message)
    assert "decided by <@U0CAROL>" in text
    assert "<!date^" in text
    assert request_uuid in text
    assert ephemerals(world.slack, "U0CAROL") == []

    assert world.sandbox is not None
    await world.sandbox.settle()
    (execution,) = [e for e in world.sandbox.executions.values() if e.trigger_parameters]
    assert execution.status is ExecutionStatus.SUCCESS
    assert execution.outcome is not None
    assert "approved by carol@example.com" in execution.outcome

    await click(world, "U0CAROL", before, index=1)
    assert len(bot_triggers(world.sandbox)) == 1
    (later,) = ephemerals(world.slack, "U0CAROL")
    assert later.startswith("This was already decided by <@U0CAROL>")


@pytest.mark.parametrize(
    ("approver_parameter", "index", "expected"),
    [
        (None, 0, {"decision": "approved"}),
        (None, 1, {"decision": "denied"}),
        ("decidedBy", 1, {"decision": "denied", "decidedBy": "dave@example.com"}),
    ],
    ids=["approve-plain", "deny-plain", "deny-with-approver-parameter"],
)
async def test_the_trigger_carries_the_option_and_the_approver_parameter(
    world: World, approver_parameter: str | None, index: int, expected: dict[str, str]
) -> None:
    """The trigger sends the clicked option's parameters, plus the clicker's UPN under ``approverParameter``."""
    execution = await paused(world)
    message = await ask(world, question(execution, approverParameter=approver_parameter))
    await click(world, "U0DAVE", message, index)
    (trigger,) = bot_triggers(world.sandbox)
    assert trigger.body == {"parameters": expected}
    validate_request("POST", trigger.path, headers=trigger.headers, body=trigger.body)


@pytest.mark.parametrize(
    ("requester", "approvers"),
    [
        ("alice@example.com", ["U0ALICE", "U0CAROL"]),
        ("ALICE@Example.com", None),
        ("alice@example.com", ["alice@example.com"]),
    ],
    ids=["listed-as-approver", "no-approvers-any-case", "listed-by-upn"],
)
async def test_the_requester_may_never_decide(
    world: World, requester: str, approvers: list[str] | None
) -> None:
    """The ``requester`` is refused even when listed among the approvers; nothing reaches Nexthink."""
    execution = await paused(world)
    message = await ask(world, question(execution, requester=requester, approvers=approvers))
    await click(world, "U0ALICE", message)
    assert ephemerals(world.slack, "U0ALICE") == [
        "You made this request, so someone else has to decide it."
    ]
    assert bot_triggers(world.sandbox) == []
    assert buttons(message) == ["Approve", "Deny"]


async def test_without_approvers_anyone_but_the_requester_may_decide(world: World) -> None:
    """A question naming no approvers may be decided by anyone (default policy) except its requester."""
    execution = await paused(world)
    message = await ask(world, question(execution, approvers=None))
    await click(world, "U0BOB", message)
    assert len(bot_triggers(world.sandbox)) == 1
    assert "decided by <@U0BOB>" in shown(message)


async def test_user_group_approvers_are_resolved_through_slack(world: World) -> None:
    """``@it-leads`` lets a member of that Slack user group decide and refuses others."""
    execution = await paused(world)
    message = await ask(world, question(execution, approvers=["@it-leads"]))
    await click(world, "U0BOB", message)
    assert ephemerals(world.slack, "U0BOB") == ["Only @it-leads may decide this."]
    await click(world, "U0DAVE", message)
    assert len(bot_triggers(world.sandbox)) == 1
    assert "decided by <@U0DAVE>" in shown(message)


async def test_twenty_concurrent_clicks_resume_the_execution_once(world: World) -> None:
    """Twenty clicks at once by three approvers send exactly one trigger; the others are told why."""
    execution = await paused(world)
    message = await ask(world, question(execution, approvers=["U0BOB", "@it-leads"]))
    assert world.driver is not None
    people = ["U0BOB", "U0CAROL", "U0DAVE"]
    clicks = [
        world.driver.click(people[i % 3], dataclasses.replace(message), decision_action_id(i % 2))
        for i in range(20)
    ]
    responses = await asyncio.gather(*clicks)
    assert {r.status for r in responses} == {200}
    await world.settle()
    (trigger,) = bot_triggers(world.sandbox)
    validate_request("POST", trigger.path, headers=trigger.headers, body=trigger.body)
    refusals = [text for p in people for text in ephemerals(world.slack, p)]
    assert len(refusals) == 19
    assert all(
        t.endswith("is deciding this right now.") or t.startswith("This was already decided by")
        for t in refusals
    ), refusals
    assert buttons(message) == []
    assert len(world.slack.calls_to("chat.postMessage")) == 1


async def test_a_question_survives_a_restart_of_the_bot(tmp_path: Path) -> None:
    """Stopping the bot after the question was posted and starting a new one on the same database still resumes once."""
    database_url = f"sqlite:///{tmp_path}/bot.db"
    async with (
        Sandbox(execution_delay=0.05, webhook_token=WEBHOOK_TOKEN) as sandbox,
        LocalSlack() as slack,
    ):
        async with PatientWorld(database_url=database_url, sandbox=sandbox, slack=slack) as first:
            message = await run_pausing_workflow(first, "channel=C0SUPPORT approvers=@it-leads")
            before = dataclasses.replace(message)
        async with PatientWorld(database_url=database_url, sandbox=sandbox, slack=slack) as second:
            assert second.url != first.url
            await click(second, "U0BOB", message)
            assert ephemerals(slack, "U0BOB") == ["Only @it-leads may decide this."]
            await click(second, "U0CAROL", message)
            await click(second, "U0DAVE", before)
            (trigger,) = bot_triggers(sandbox)
            assert trigger.body == {
                "parameters": {"decision": "approved", "approver": "carol@example.com"}
            }
            assert "decided by <@U0CAROL>" in shown(message)


async def test_a_trigger_cut_short_by_a_shutdown_can_be_retried_after_the_restart(
    tmp_path: Path,
) -> None:
    """A bot stopped while its trigger hangs gives the question back; the next bot resumes it once."""
    database_url = f"sqlite:///{tmp_path}/bot.db"
    async with (
        Sandbox(execution_delay=0.05, webhook_token=WEBHOOK_TOKEN) as sandbox,
        LocalSlack() as slack,
    ):
        async with PatientWorld(database_url=database_url, sandbox=sandbox, slack=slack) as first:
            message = await run_pausing_workflow(first, "channel=C0SUPPORT")
            sandbox.faults.add("trigger:timeout:delay=60")
            assert first.driver is not None
            # the click's trigger hangs in the sandbox until the shutdown gives up on it
            await first.driver.click("U0CAROL", message, decision_action_id(0))
        assert buttons(message) == ["Approve", "Deny"]
        assert "The bot restarted while sending <@U0CAROL>'s *Approve*" in shown(message)
        async with PatientWorld(database_url=database_url, sandbox=sandbox, slack=slack) as second:
            await click(second, "U0DAVE", message)
            triggers = bot_triggers(sandbox)
            assert [t.status for t in triggers] == [None, 200]
            assert "decided by <@U0DAVE>" in shown(message)


# -- Nexthink's answers to the trigger ------------------------------------------------------


async def test_a_definite_refusal_from_nexthink_closes_the_question(world: World) -> None:
    """A 400 to the trigger ends the wait: the message shows Nexthink's refusal and later clicks send nothing."""
    execution = await paused(world)
    message = await ask(world, question(execution))
    before = dataclasses.replace(message)
    assert world.sandbox is not None
    async with httpx.AsyncClient(base_url=world.sandbox.url) as client:  # resumed elsewhere
        caller = Caller(client)
        await caller.get_token()
        await caller.trigger(WORKFLOW_UUID, execution.uuid, {"decision": "approved"})
    await click(world, "U0CAROL", message)
    (trigger,) = bot_triggers(world.sandbox)
    assert trigger.status == 400
    assert buttons(message) == []
    assert "Nexthink refused it" in shown(message)
    assert "EXECUTION_NOT_WAITING" in shown(message)
    await click(world, "U0DAVE", before)
    assert len(bot_triggers(world.sandbox)) == 1
    (later,) = ephemerals(world.slack, "U0DAVE")
    assert later.startswith("This was already answered by <@U0CAROL>")
    assert later.endswith("and Nexthink refused it.")


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [
        ("trigger:429:times=3:retry_after=0.01", 3),
        ("trigger:503:times=3:retry_after=0.01", 3),
        ("trigger:403", 1),
        ("trigger:500", 1),
        ("trigger:reset", 1),
    ],
    ids=[
        "429-after-retries",
        "503-after-retries",
        "403-no-permission",
        "500-outcome-unknown",
        "reset-outcome-unknown",
    ],
)
async def test_a_failed_trigger_lets_an_approver_try_again(
    world: World, fault: str, attempts: int
) -> None:
    """Throttled, unavailable or unknown: the question stays open with a note, and a second click resumes it."""
    execution = await paused(world)
    message = await ask(world, question(execution, user="alice@example.com"))
    assert world.sandbox is not None
    world.sandbox.faults.add(fault)
    await click(world, "U0CAROL", message)
    assert len(bot_triggers(world.sandbox)) == attempts
    assert buttons(message) == ["Approve", "Deny"]
    assert "An approver may try again" in shown(message)
    assert "<@U0ALICE> Alice Martin asks" in shown(message)
    assert execution.status is ExecutionStatus.WAITING

    await click(world, "U0DAVE", message)
    triggers = bot_triggers(world.sandbox)
    assert len(triggers) == attempts + 1
    assert triggers[-1].status == 200
    assert triggers[-1].body == {
        "parameters": {"decision": "approved", "approver": "dave@example.com"}
    }
    assert buttons(message) == []
    assert "decided by <@U0DAVE>" in shown(message)


async def test_a_retry_after_an_unknown_outcome_that_did_resume_is_refused(world: World) -> None:
    """When the lost trigger did resume the execution, the retry gets Nexthink's refusal and the question closes."""
    execution = await paused(world)
    message = await ask(world, question(execution))
    assert world.sandbox is not None
    world.sandbox.faults.add("trigger:reset:processed=true")
    await click(world, "U0CAROL", message)
    assert buttons(message) == ["Approve", "Deny"]
    await click(world, "U0DAVE", message)
    assert [t.status for t in bot_triggers(world.sandbox)] == [None, 400]
    assert buttons(message) == []
    assert "EXECUTION_NOT_WAITING" in shown(message)


# -- expiry ---------------------------------------------------------------------------------


async def test_a_click_on_an_expired_question_answers_that_it_expired(world: World) -> None:
    """A question past its expiry sends nothing when clicked: the clicker is told and the message says so."""
    assert world.bot is not None
    execution = await paused(world)
    request = waits.WaitRequest.model_validate(question(execution, expiresInMinutes=5))
    wait, channel, ts = await waits.post_wait(
        world.bot, request, now=datetime.now(UTC) - timedelta(minutes=6)
    )
    message = world.slack.find_message(channel, ts)
    assert message is not None
    assert buttons(message) == ["Approve", "Deny"]
    await click(world, "U0CAROL", message)
    assert ephemerals(world.slack, "U0CAROL") == [
        "This question has expired; nothing was sent to Nexthink."
    ]
    assert bot_triggers(world.sandbox) == []
    assert buttons(message) == []
    assert "expired" in shown(message)
    stored = await world.bot.store.get_wait(wait.id)
    assert stored is not None
    assert stored.state in {"pending", "expired"}


async def test_the_sweep_closes_questions_once_they_expire(world: World) -> None:
    """``sweep_expired`` leaves a question alone before ``expiresInMinutes`` and closes it after."""
    assert world.bot is not None
    execution = await paused(world)
    message = await ask(world, question(execution, expiresInMinutes=30))
    before = dataclasses.replace(message)
    now = datetime.now(UTC)
    assert await waits.sweep_expired(world.bot, now=now + timedelta(minutes=29)) == 0
    assert buttons(message) == ["Approve", "Deny"]
    assert await waits.sweep_expired(world.bot, now=now + timedelta(minutes=31)) == 1
    assert buttons(message) == []
    assert "This question expired without a decision" in shown(message)
    assert await waits.sweep_expired(world.bot, now=now + timedelta(minutes=32)) == 0
    await click(world, "U0CAROL", before)
    assert ephemerals(world.slack, "U0CAROL") == [
        "This question has expired; nothing was sent to Nexthink."
    ]
    assert bot_triggers(world.sandbox) == []


async def test_the_default_expiry_is_a_day(world: World) -> None:
    """A question without ``expiresInMinutes`` is still open after 23 hours and closed after 24."""
    assert world.bot is not None
    execution = await paused(world)
    message = await ask(world, question(execution, expiresInMinutes=None))
    now = datetime.now(UTC)
    assert await waits.sweep_expired(world.bot, now=now + timedelta(hours=23)) == 0
    assert await waits.sweep_expired(world.bot, now=now + timedelta(hours=24, minutes=1)) == 1
    assert buttons(message) == []


# -- /nexthink resume -----------------------------------------------------------------------


async def test_resume_is_for_roles_with_resume(tmp_path: Path) -> None:
    """`/nexthink resume` triggers once for a role with ``resume: true`` and is refused to others."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db", policy_file=policy, execution_delay=0.05
    ) as world:
        assert world.driver is not None
        execution = await paused(world)
        text = f"resume {WORKFLOW_UUID} {execution.uuid} decision=approved"
        await world.driver.command("U0ALICE", text, channel_id="C0SUPPORT")
        await world.settle()
        assert bot_triggers(world.sandbox) == []
        (refusal,) = ephemerals(world.slack, "U0ALICE")
        assert "None of your roles may resume paused executions." in refusal

        await world.driver.command("U0BOB", text, channel_id="C0SUPPORT")
        await world.settle()
        (trigger,) = bot_triggers(world.sandbox)
        assert trigger.body == {"parameters": {"decision": "approved"}}
        validate_request("POST", trigger.path, headers=trigger.headers, body=trigger.body)
        request_uuid = trigger.response[0]["requestUuid"]
        (answer,) = [shown(m) for m in ephemeral_messages(world.slack, "U0BOB")]
        assert "The waiting execution was resumed." in answer
        assert request_uuid in answer


async def test_resume_is_refused_under_the_default_policy(world: World) -> None:
    """Without a policy file nobody may resume, and nothing reaches Nexthink."""
    assert world.driver is not None
    execution = await paused(world)
    await world.driver.command(
        "U0BOB",
        f"resume {WORKFLOW_UUID} {execution.uuid} decision=approved",
        channel_id="C0SUPPORT",
    )
    await world.settle()
    assert bot_triggers(world.sandbox) == []
    (reply,) = ephemerals(world.slack, "U0BOB")
    assert "resume: true" in reply
