"""Bot-side approvals end to end: a run the policy guards becomes an approval request in Slack, and
runs (one V2 execute) only once enough distinct approvers, never the requester, said yes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import approvals
from bot.console.localslack import LocalSlack, Message, View
from bot.console.world import WEBHOOK_TOKEN, World
from bot.sandbox import Sandbox
from handlers import ids
from tests.support.e2e import PatientWorld
from tests.support.openapi import validate_request, validate_response
from tests.support.outcomes import eventually

POLICY = """\
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: any
workflows:
  reimage_device:
    approval: {{channel: C0APPROVALS, approvers: ["@it-leads"], count: {count}}}
"""
RUN = "run reimage_device device:LAPTOP-BOB reason=broken"


async def _world(tmp_path: Path, count: int) -> World:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(count=count))
    return PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db", policy_file=policy, execution_delay=0.05
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with await _world(tmp_path, count=1) as w:
        yield w


@pytest.fixture
async def world2(tmp_path: Path) -> AsyncIterator[World]:
    """A world whose policy needs two approvals for reimage_device."""
    async with await _world(tmp_path, count=2) as w:
        yield w


# -- helpers ------------------------------------------------------------------------------


async def request(world: World, requester: str = "U0BOB") -> Message:
    """``requester`` runs reimage_device from #it-support; returns the approval request posted."""
    assert world.driver is not None
    response = await world.driver.command(requester, RUN, channel_id="C0SUPPORT")
    assert response.status == 200
    await world.settle()
    (message,) = [m for m in world.slack.messages_in("C0APPROVALS") if not m.ephemeral]
    return message


async def click(world: World, user_id: str, message: Message, action_id: str) -> None:
    assert world.driver is not None
    response = await world.driver.click(user_id, message, action_id)
    assert response.status == 200
    await world.settle()


def executes(world: World) -> list[dict[str, object]]:
    assert world.sandbox is not None
    return [e.body for e in world.sandbox.requests("execute_v2")]


def shown(message: Message) -> str:
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


def told(slack: LocalSlack, user_id: str) -> list[str]:
    """What the bot showed only to ``user_id`` (ephemerals and DMs), oldest first, acks left out."""
    dm = slack.dm_channel(user_id)
    messages = [
        m
        for ms in slack.messages.values()
        for m in ms
        if m.via != "ack"
        and ((m.ephemeral and m.user == user_id) or (m.channel == dm and not m.ephemeral))
    ]
    return [m.text for m in sorted(messages, key=lambda m: float(m.ts))]


def buttons(message: Message) -> list[str]:
    return [
        str(e["text"]["text"])
        for b in message.blocks or []
        if b.get("type") == "actions"
        for e in b["elements"]
    ]


def deny_modal(slack: LocalSlack, user_id: str) -> View:
    (view,) = [
        v
        for v in slack.views.values()
        if v.user_id == user_id and v.callback_id == ids.DENY_REASON_MODAL
    ]
    return view


# -- asking ---------------------------------------------------------------------------------


async def test_a_guarded_run_posts_an_approval_request_instead_of_executing(world: World) -> None:
    """The requester's `run` posts Approve/Deny in the approval channel, tells them, and executes nothing."""
    message = await request(world)
    assert executes(world) == []
    assert buttons(message) == ["Approve", "Deny"]
    text = shown(message)
    assert "<@U0BOB> asks to run *Reimage device* (`reimage_device`)." in text
    assert "LAPTOP-BOB" in text
    assert "`reason=broken`" in text
    assert "0 of 1" in text
    assert "`@it-leads`" in text
    (reply,) = told(world.slack, "U0BOB")
    assert "needs approval" in reply
    assert "<#C0APPROVALS>" in reply
    assert "Nothing was sent to Nexthink yet." in reply


async def test_the_requester_cannot_approve_their_own_request(world: World) -> None:
    """An approver who asked for the run is refused on their own request; nothing is executed."""
    message = await request(world, requester="U0CAROL")
    await click(world, "U0CAROL", message, ids.APPROVAL_APPROVE)
    assert told(world.slack, "U0CAROL")[-1] == "You cannot approve your own request."
    assert executes(world) == []
    assert buttons(message) == ["Approve", "Deny"]
    assert "0 of 1" in shown(message)


@pytest.mark.parametrize("action_id", [ids.APPROVAL_APPROVE, ids.APPROVAL_DENY])
async def test_a_non_approver_is_refused(world: World, action_id: str) -> None:
    """Someone outside the approvers can neither approve nor deny (no reason modal opens)."""
    message = await request(world)
    await click(world, "U0ALICE", message, action_id)
    assert told(world.slack, "U0ALICE") == ["Only @it-leads may decide this."]
    assert world.slack.calls_to("views.open") == []
    assert executes(world) == []
    assert buttons(message) == ["Approve", "Deny"]


# -- approving ------------------------------------------------------------------------------


async def test_an_approver_approves_and_the_request_runs_once(world: World) -> None:
    """An approver's Approve sends exactly one valid V2 execute, updates the request and tells the requester."""
    message = await request(world)
    before = dataclasses.replace(message)
    await click(world, "U0DAVE", message, ids.APPROVAL_APPROVE)
    assert world.sandbox is not None
    (entry,) = world.sandbox.requests("execute_v2")
    assert entry.body == {
        "workflowId": "reimage_device",
        "users": [],
        "devices": [{"name": "LAPTOP-BOB"}],
        "params": {"reason": "broken"},
    }
    validate_request("POST", entry.path, headers=entry.headers, body=entry.body)
    validate_response("POST", entry.path, entry.status or 0, entry.response)
    request_uuid = entry.response["requestUuid"]

    assert buttons(message) == []
    assert f"Approved by <@U0DAVE>; Nexthink request `{request_uuid}`" in shown(message)
    outcome = told(world.slack, "U0BOB")[-1]
    assert "Reimage device" in outcome
    assert request_uuid in outcome
    assert told(world.slack, "U0DAVE") == []

    await click(world, "U0CAROL", before, ids.APPROVAL_APPROVE)
    assert told(world.slack, "U0CAROL") == ["This approval request was already settled."]
    assert len(executes(world)) == 1


async def test_an_approval_message_slack_does_not_update_in_time_still_runs_once_and_tells(
    world: World,
) -> None:
    """Slack answering the approval message's "sending" update only after the bot's client gave
    up (10 s) neither stops the approved run nor leaves it waiting: it is sent once, the
    approval is settled and the requester is told the outcome."""
    message = await request(world)
    world.slack.slow("chat.update", 12)  # the first update, "sending": done, but answered late
    await click(world, "U0DAVE", message, ids.APPROVAL_APPROVE)
    (entry,) = world.sandbox.requests("execute_v2") if world.sandbox else ()
    request_uuid = entry.response["requestUuid"]
    assert world.bot is not None
    assert await world.bot.store.pending_approvals() == []
    (record,) = await world.bot.store.history("U0BOB")
    assert record.state == "sent"
    assert request_uuid in told(world.slack, "U0BOB")[-1]
    assert f"Nexthink request `{request_uuid}`" in shown(message)  # the next update got through


async def test_two_approvals_need_two_distinct_approvers(world2: World) -> None:
    """With ``count: 2`` one approver's vote counts once, and the second approver's vote runs it once."""
    world = world2
    message = await request(world)
    before = dataclasses.replace(message)
    await click(world, "U0CAROL", message, ids.APPROVAL_APPROVE)
    assert told(world.slack, "U0CAROL") == ["Your approval was counted (1 of 2)."]
    assert "1 of 2 — <@U0CAROL>" in shown(message)
    assert buttons(message) == ["Approve", "Deny"]

    await click(world, "U0CAROL", before, ids.APPROVAL_APPROVE)
    assert told(world.slack, "U0CAROL")[-1] == (
        "You already approved this request; another approver is needed."
    )
    assert executes(world) == []

    await click(world, "U0DAVE", message, ids.APPROVAL_APPROVE)
    assert len(executes(world)) == 1
    assert "Approved by <@U0CAROL>, <@U0DAVE>" in shown(message)


async def test_concurrent_approvals_run_the_request_once(world: World) -> None:
    """Ten Approve clicks at once by two approvers send exactly one V2 execute."""
    message = await request(world)
    assert world.driver is not None
    clicks = [
        world.driver.click(
            ("U0CAROL", "U0DAVE")[i % 2], dataclasses.replace(message), ids.APPROVAL_APPROVE
        )
        for i in range(10)
    ]
    assert {r.status for r in await asyncio.gather(*clicks)} == {200}
    await world.settle()
    assert len(executes(world)) == 1
    refusals = told(world.slack, "U0CAROL") + told(world.slack, "U0DAVE")
    assert len(refusals) == 9
    assert set(refusals) <= {
        "This approval request was already settled.",
        "You already approved this request; another approver is needed.",
    }


async def test_an_execute_cut_short_by_a_shutdown_is_reported_not_repeated(
    tmp_path: Path,
) -> None:
    """A bot stopped while an approved execute hangs closes the approval as unknown and tells the requester."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(count=1))
    common = {"database_url": f"sqlite:///{tmp_path}/bot.db", "policy_file": policy}
    async with (
        Sandbox(execution_delay=0.05, webhook_token=WEBHOOK_TOKEN) as sandbox,
        LocalSlack() as slack,
    ):
        async with PatientWorld(sandbox=sandbox, slack=slack, **common) as first:
            message = await request(first)
            before = dataclasses.replace(message)
            sandbox.faults.add("execute_v2:timeout:delay=60")
            assert first.driver is not None
            # the approval's execute hangs in the sandbox until the shutdown gives up on it
            await first.driver.click("U0DAVE", message, ids.APPROVAL_APPROVE)
            # stop only once the execute has reached Nexthink (a busy machine may take a while)
            await eventually(lambda: sandbox.requests("execute_v2"), what="the approved execute")
        assert buttons(message) == []
        assert "the bot stopped while sending it to Nexthink: the outcome is unknown" in shown(
            message
        )
        assert "whether it ran is unknown" in told(slack, "U0BOB")[-1]
        async with PatientWorld(sandbox=sandbox, slack=slack, **common) as second:
            await click(second, "U0CAROL", before, ids.APPROVAL_APPROVE)
            assert told(slack, "U0CAROL") == ["This approval request was already settled."]
        assert [e.status for e in sandbox.requests("execute_v2")] == [None]


# -- denying --------------------------------------------------------------------------------


async def test_deny_asks_for_a_reason_and_tells_the_requester(world: World) -> None:
    """Deny opens a reason modal; its submission closes the request and tells the requester why."""
    message = await request(world)
    before = dataclasses.replace(message)
    await click(world, "U0DAVE", message, ids.APPROVAL_DENY)
    assert len(world.slack.calls_to("views.open")) == 1
    view = deny_modal(world.slack, "U0DAVE")
    assert buttons(message) == ["Approve", "Deny"]

    assert world.driver is not None
    response = await world.driver.submit_view(
        "U0DAVE", view.id, {ids.DENY_REASON_BLOCK: {ids.DENY_REASON: "not this week"}}
    )
    assert response.status == 200
    await world.settle()
    assert buttons(message) == []
    assert "Denied by <@U0DAVE> — “not this week”" in shown(message)
    assert told(world.slack, "U0BOB")[-1] == (
        "<@U0DAVE> denied your request to run `reimage_device` — “not this week”. "
        "Nothing was sent to Nexthink."
    )
    await click(world, "U0CAROL", before, ids.APPROVAL_APPROVE)
    assert told(world.slack, "U0CAROL") == ["This approval request was already settled."]
    assert executes(world) == []


# -- expiry ---------------------------------------------------------------------------------


async def test_an_expired_approval_is_closed_and_the_requester_told(world: World) -> None:
    """The sweep closes a request left unapproved past its expiry; a later Approve runs nothing."""
    assert world.bot is not None
    message = await request(world)
    before = dataclasses.replace(message)
    now = datetime.now(UTC)
    assert await approvals.sweep_expired(world.bot, now=now + timedelta(hours=23)) == 0
    assert buttons(message) == ["Approve", "Deny"]
    assert await approvals.sweep_expired(world.bot, now=now + timedelta(hours=24, minutes=1)) == 1
    assert buttons(message) == []
    assert "Expired without enough approvals; nothing was run." in shown(message)
    assert told(world.slack, "U0BOB")[-1] == (
        "Your request to run `reimage_device` expired before it was approved; "
        "nothing was sent to Nexthink."
    )
    assert await approvals.sweep_expired(world.bot, now=now + timedelta(hours=25)) == 0
    await click(world, "U0DAVE", before, ids.APPROVAL_APPROVE)
    assert told(world.slack, "U0DAVE") == ["This approval request has expired."]
    assert executes(world) == []


async def test_deny_without_a_modal_still_denies(world: World) -> None:
    """When the reason modal cannot open (an expired trigger), Deny denies without a reason."""
    message = await request(world)
    world.slack.fail("views.open", "expired_trigger_id")
    await click(world, "U0DAVE", message, ids.APPROVAL_DENY)
    assert buttons(message) == []
    assert "Denied by <@U0DAVE>" in shown(message)
    assert told(world.slack, "U0BOB")[-1] == (
        "<@U0DAVE> denied your request to run `reimage_device`. Nothing was sent to Nexthink."
    )
    assert executes(world) == []


async def test_the_requester_may_withdraw_their_request(world: World) -> None:
    """The requester's own Deny withdraws the request; it is never run."""
    message = await request(world)
    await click(world, "U0BOB", message, ids.APPROVAL_DENY)
    assert world.driver is not None
    await world.driver.submit_view("U0BOB", deny_modal(world.slack, "U0BOB").id, {})
    await world.settle()
    assert buttons(message) == []
    assert "Withdrawn by <@U0BOB>" in shown(message)
    assert executes(world) == []


async def test_an_approval_request_slack_refuses_is_reported_to_the_requester(
    world: World,
) -> None:
    """If the approval channel refuses the post, the requester is told why at once and nothing stays pending."""
    assert world.driver is not None
    assert world.bot is not None
    world.slack.fail("chat.postMessage", "not_in_channel")
    await world.driver.command("U0BOB", RUN, channel_id="C0SUPPORT")
    await world.settle()
    (reply,) = told(world.slack, "U0BOB")
    assert reply == (
        "`reimage_device` needs approval, but the request could not be posted in <#C0APPROVALS> "
        "(Slack answered `not_in_channel`). Nothing was sent to Nexthink."
    )
    assert executes(world) == []
    assert await world.bot.store.pending_approvals() == []
    later = datetime.now(UTC) + timedelta(days=2)
    assert await approvals.sweep_expired(world.bot, now=later) == 0
