"""Approvals that don't die unseen, end to end: reminders with a working link, escalation,
stand-ins, required reasons and comments (PRODUCT.md, "Approvals that don't die unseen").

Each test drives the real bot over loopback (LocalSlack, the Nexthink sandbox, a SQLite file).
Time is never waited out: the reminder sweep is called with the moment to judge (``now=``), as
the expiry tests do, except in the tests of the sweep loop itself, which wait for the reminder
(or escalation) to arrive in Slack with ``SWEEP_SECONDS`` and minutes of a fraction.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bot import approvals, reminders
from bot.console.localslack import LocalSlack, Message
from bot.console.world import World
from handlers import ids
from tests.support.e2e import PATIENCE, executes, text_of, world_at
from tests.test_e2e_waits import ask, paused, post, question

ROLES = """\
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: any
"""
RUN = "run reimage_device device:LAPTOP-BOB reason=broken"
LINK = re.compile(r"<(https?://[^|>]+)\|Open the request>")


def policy(approval: str, *, more: str = "") -> str:
    return ROLES + f"workflows:\n  reimage_device:\n    approval: {approval}\n" + more


# -- helpers ------------------------------------------------------------------------------


async def command(world: World, user_id: str, text: str) -> None:
    assert world.driver is not None
    response = await world.driver.command(user_id, text, channel_id="C0SUPPORT")
    assert response.status == 200
    await world.settle()


async def request(world: World, requester: str = "U0BOB", text: str = RUN) -> Message:
    """``requester`` runs a guarded workflow; returns the approval request it posted."""

    def posted() -> list[Message]:
        return [m for m in world.slack.messages_in("C0APPROVALS") if not m.ephemeral]

    before = len(posted())
    await command(world, requester, text)
    found = posted()
    assert len(found) == before + 1, "the approval request was not posted"
    return found[-1]


async def click(world: World, user_id: str, message: Message, action_id: str) -> None:
    assert world.driver is not None
    response = await world.driver.click(user_id, message, action_id)
    assert response.status == 200
    await world.settle()


def approval_id(message: Message) -> str:
    for block in message.blocks or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == ids.APPROVAL_APPROVE:
                return str(element["value"])
    raise AssertionError("the message has no Approve button")


def dms(slack: LocalSlack, user_id: str) -> list[Message]:
    """The bot's direct messages to ``user_id``, oldest first."""
    return [
        m
        for m in slack.messages_in(slack.dm_channel(user_id))
        if not m.ephemeral and m.author == slack.bot_user_id
    ]


def reminders_to(slack: LocalSlack, user_id: str) -> list[Message]:
    return [m for m in dms(slack, user_id) if m.text.startswith(("Reminder", "A request was"))]


def told(slack: LocalSlack, user_id: str) -> list[str]:
    """Everything shown to ``user_id`` alone (ephemerals and DMs), oldest first."""
    dm = slack.dm_channel(user_id)
    found = [
        m
        for ms in slack.messages.values()
        for m in ms
        if m.via != "ack" and ((m.ephemeral and m.user == user_id) or m.channel == dm)
    ]
    return [text_of(m) for m in sorted(found, key=lambda m: float(m.ts))]


def buttons(message: Message) -> list[str]:
    return [
        str(e["text"]["text"])
        for b in message.blocks or []
        if b.get("type") == "actions"
        for e in b["elements"]
    ]


async def follow(message: Message) -> dict[str, Any]:
    """Follow the link a reminder carries; returns what it opens (LocalSlack's permalink)."""
    found = LINK.search(text_of(message))
    assert found, f"no link in {text_of(message)!r}"
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(found.group(1))
    assert response.status_code == 200, response.text
    opened: dict[str, Any] = response.json()
    return opened


async def arrives(
    slack: LocalSlack, queue: asyncio.Queue[Any], matches: Callable[[Message], bool]
) -> Message:
    """Wait for the bot to post or update a message that ``matches`` (an event, not the clock)."""
    async with asyncio.timeout(PATIENCE):
        while True:
            event = await queue.get()
            message = event.message
            if message is not None and message.author == slack.bot_user_id and matches(message):
                return message


async def created_at(world: World, message: Message) -> datetime:
    assert world.bot is not None
    approval = await world.bot.store.get_approval(approval_id(message))
    assert approval is not None
    return approval.created_at


# -- reminders ------------------------------------------------------------------------------


async def test_a_reminder_reaches_each_undecided_approver_once_per_interval_with_a_link(
    tmp_path: Path,
) -> None:
    """After each interval, every approver who has not decided (and nobody else) gets one direct
    message whose link opens the approval request; nothing more within the interval."""
    rule = '{channel: C0APPROVALS, approvers: ["@it-leads"], count: 2, remind_after_minutes: 60}'
    async with world_at(tmp_path, policy(rule)) as world:
        assert world.bot is not None
        message = await request(world)
        await click(world, "U0DAVE", message, ids.APPROVAL_APPROVE)  # 1 of 2: Carol is left
        start = await created_at(world, message)
        everyone = ("U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN")

        assert await reminders.sweep(world.bot, now=start + timedelta(minutes=59)) == 0
        assert all(reminders_to(world.slack, u) == [] for u in everyone)

        assert await reminders.sweep(world.bot, now=start + timedelta(minutes=61)) == 1
        (first,) = reminders_to(world.slack, "U0CAROL")
        assert "<@U0BOB>'s request to run *Reimage device*" in text_of(first)
        assert "waits on your decision" in text_of(first)
        opened = await follow(first)
        assert opened["channel"] == "C0APPROVALS"
        assert opened["message"]["ts"] == message.ts
        assert all(reminders_to(world.slack, u) == [] for u in everyone if u != "U0CAROL")

        assert await reminders.sweep(world.bot, now=start + timedelta(minutes=61)) == 0
        assert await reminders.sweep(world.bot, now=start + timedelta(minutes=119)) == 0
        assert len(reminders_to(world.slack, "U0CAROL")) == 1

        assert await reminders.sweep(world.bot, now=start + timedelta(minutes=121)) == 1
        assert len(reminders_to(world.slack, "U0CAROL")) == 2
        assert all(reminders_to(world.slack, u) == [] for u in everyone if u != "U0CAROL")

        await click(world, "U0CAROL", message, ids.APPROVAL_APPROVE)  # settled: no more
        assert len(executes(world)) == 1
        assert await reminders.sweep(world.bot, now=start + timedelta(minutes=181)) == 0
        assert len(reminders_to(world.slack, "U0CAROL")) == 2


async def test_a_question_from_nexthink_reminds_its_approvers_but_not_its_requester(
    tmp_path: Path,
) -> None:
    """``remindAfterMinutes`` on the webhook: each approver but the requester gets a reminder whose
    link opens the question."""
    async with world_at(tmp_path, ROLES) as world:
        assert world.bot is not None
        execution = await paused(world)
        body = question(
            execution,
            approvers=["@it-leads", "alice@example.com"],
            requester="alice@example.com",
            remindAfterMinutes=30,
        )
        message = await ask(world, body)
        (wait,) = await world.bot.store.pending_waits()
        assert await reminders.sweep(world.bot, now=wait.created_at + timedelta(minutes=31)) == 2
        for approver in ("U0CAROL", "U0DAVE"):
            (reminder,) = reminders_to(world.slack, approver)
            assert "a question from Nexthink" in text_of(reminder)
            opened = await follow(reminder)
            assert opened["message"]["ts"] == message.ts
        assert reminders_to(world.slack, "U0ALICE") == []
        assert reminders_to(world.slack, "U0BOB") == []


async def test_the_sweep_loop_reminds_within_seconds(tmp_path: Path) -> None:
    """With ``SWEEP_SECONDS=0.5`` and ``remind_after_minutes: 0.05`` the bot's own sweep loop sends
    the approver a reminder with a working link, and the requester's reply named whom it waits on."""
    rule = '{channel: C0APPROVALS, approvers: ["U0CAROL"], remind_after_minutes: 0.05}'
    async with world_at(tmp_path, policy(rule), overrides={"sweep_seconds": 0.5}) as world:
        queue = world.slack.subscribe()
        dm = world.slack.dm_channel("U0CAROL")
        message = await request(world)
        assert "It waits on <@U0CAROL>." in told(world.slack, "U0BOB")[-1]
        reminder = await arrives(world.slack, queue, lambda m: m.channel == dm)
        assert reminder.text.startswith("Reminder")
        assert (await follow(reminder))["message"]["ts"] == message.ts


# -- escalation -----------------------------------------------------------------------------


async def test_escalation_lets_the_new_approvers_decide_and_says_so(tmp_path: Path) -> None:
    """Before the escalation only the approvers may decide, and the message says when others
    may; once it comes, the message says so, the new approver is told directly and their
    Approve runs the request."""
    later = '{channel: C0APPROVALS, approvers: ["U0CAROL"], escalate_after_minutes: 600, escalate_to: ["U0DAVE"]}'
    soon = '{channel: C0APPROVALS, approvers: ["U0CAROL"], escalate_after_minutes: 0.05, escalate_to: ["U0DAVE"]}'
    more = f"  unlock_account:\n    approval: {soon}\n"
    async with world_at(
        tmp_path, policy(later, more=more), overrides={"sweep_seconds": 0.5}
    ) as world:
        waiting = await request(world)
        assert "If nobody decides by" in text_of(waiting)
        assert "<@U0DAVE> may decide too" in text_of(waiting)
        await click(world, "U0DAVE", waiting, ids.APPROVAL_APPROVE)
        assert "Only <@U0CAROL> may decide this." in told(world.slack, "U0DAVE")[-1]
        assert executes(world) == []

        queue = world.slack.subscribe()
        escalated = await request(world, text="run unlock_account")
        dm = world.slack.dm_channel("U0DAVE")
        notice = await arrives(world.slack, queue, lambda m: m.channel == dm)
        assert "it was escalated, and you may now decide it" in text_of(notice)
        assert (await follow(notice))["message"]["ts"] == escalated.ts
        shown = world.slack.find_message(escalated.channel, escalated.ts)
        assert shown is not None
        assert "*Escalated*" in text_of(shown)
        assert "<@U0DAVE> may decide too" in text_of(shown)

        await click(world, "U0DAVE", shown, ids.APPROVAL_APPROVE)
        (body,) = executes(world)
        assert body["workflowId"] == "unlock_account"
        assert "Approved by <@U0DAVE>" in text_of(shown)
        assert buttons(world.slack.find_message(waiting.channel, waiting.ts) or waiting) == [
            "Approve",
            "Deny",
        ]


# -- stand-ins ------------------------------------------------------------------------------


async def test_a_stand_in_decides_for_the_approver_and_not_for_themselves(tmp_path: Path) -> None:
    """Carol names Alice her stand-in: Alice is reminded in her place and her Approve counts for
    Carol ("for @carol"); Alice can never approve her own request; ``delegate off`` ends it."""
    rule = '{channel: C0APPROVALS, approvers: ["U0CAROL"], remind_after_minutes: 60}'
    async with world_at(tmp_path, policy(rule)) as world:
        assert world.bot is not None
        until = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
        await command(world, "U0CAROL", f"delegate <@U0ALICE> until {until}")
        assert "<@U0ALICE> stands in for you until" in told(world.slack, "U0CAROL")[-1]
        assert "<@U0CAROL> named you their stand-in until" in told(world.slack, "U0ALICE")[-1]
        await command(world, "U0CAROL", "delegate")
        assert "<@U0ALICE> stands in for you until" in told(world.slack, "U0CAROL")[-1]

        message = await request(world)
        assert "It waits on <@U0ALICE> (for <@U0CAROL>)." in told(world.slack, "U0BOB")[-1]
        start = await created_at(world, message)
        assert await reminders.sweep(world.bot, now=start + timedelta(minutes=61)) == 1
        (reminder,) = reminders_to(world.slack, "U0ALICE")
        assert "as the stand-in of <@U0CAROL>" in text_of(reminder)
        assert reminders_to(world.slack, "U0CAROL") == []

        await click(world, "U0ALICE", message, ids.APPROVAL_APPROVE)
        assert len(executes(world)) == 1
        assert "Approved by <@U0ALICE> for <@U0CAROL>" in text_of(message)

        own = await request(world, requester="U0ALICE")
        await click(world, "U0ALICE", own, ids.APPROVAL_APPROVE)
        assert "You cannot approve your own request." in told(world.slack, "U0ALICE")[-1]
        assert len(executes(world)) == 1
        assert buttons(own) == ["Approve", "Deny"]

        await command(world, "U0CAROL", "delegate off")
        assert "<@U0ALICE> no longer stands in for you." in told(world.slack, "U0CAROL")[-1]
        again = await request(world)
        await click(world, "U0ALICE", again, ids.APPROVAL_APPROVE)
        assert "Only <@U0CAROL> may decide this." in told(world.slack, "U0ALICE")[-1]
        assert len(executes(world)) == 1


async def test_delegation_false_turns_stand_ins_off(tmp_path: Path) -> None:
    """Policy ``delegation: false``: naming a stand-in is refused and nothing is stored."""
    rule = '{channel: C0APPROVALS, approvers: ["U0CAROL"]}'
    async with world_at(tmp_path, policy(rule, more="delegation: false\n")) as world:
        assert world.bot is not None
        await command(world, "U0CAROL", "delegate <@U0ALICE>")
        assert "Stand-ins are turned off" in told(world.slack, "U0CAROL")[-1]
        assert await world.bot.store.delegation_of("U0CAROL") is None
        message = await request(world)
        await click(world, "U0ALICE", message, ids.APPROVAL_APPROVE)
        assert "Only <@U0CAROL> may decide this." in told(world.slack, "U0ALICE")[-1]
        assert executes(world) == []


async def test_a_stand_in_decides_a_question_for_the_approver(tmp_path: Path) -> None:
    """A question from Nexthink naming Carol is decided by her stand-in: "decided by @alice for
    @carol", one trigger; a question Alice asked herself she cannot decide."""
    async with world_at(tmp_path, ROLES) as world:
        assert world.sandbox is not None
        await command(world, "U0CAROL", "delegate alice@example.com")
        execution = await paused(world, upn="bob@example.com")
        message = await ask(world, question(execution, approvers=["U0CAROL"]))
        await click(world, "U0ALICE", message, f"{ids.WAIT_DECISION}:0")
        assert len(world.sandbox.requests("trigger")) == 1
        assert "decided by <@U0ALICE> for <@U0CAROL>" in text_of(message)

        mine = await paused(world)
        asked = await ask(
            world, question(mine, approvers=["U0CAROL"], requester="alice@example.com")
        )
        await click(world, "U0ALICE", asked, f"{ids.WAIT_DECISION}:0")
        assert len(world.sandbox.requests("trigger")) == 1
        assert "someone else has to decide it" in told(world.slack, "U0ALICE")[-1]


# -- reasons and comments -------------------------------------------------------------------


async def test_a_required_reason_cannot_be_skipped(tmp_path: Path) -> None:
    """``deny_reason: required``: the form's reason is mandatory, a blank one is refused in the
    form, a denial without a form denies nothing, and the reason given reaches the requester."""
    rule = '{channel: C0APPROVALS, approvers: ["@it-leads"], deny_reason: required}'
    async with world_at(tmp_path, policy(rule)) as world:
        assert world.bot is not None
        assert world.driver is not None
        message = await request(world)
        await click(world, "U0DAVE", message, ids.APPROVAL_DENY)
        (view,) = [v for v in world.slack.views.values() if v.callback_id == ids.DENY_REASON_MODAL]
        (field,) = view.view["blocks"]
        assert field["optional"] is False

        response = await world.driver.submit_view(
            "U0DAVE", view.id, {ids.DENY_REASON_BLOCK: {ids.DENY_REASON: "   "}}
        )
        assert response.body["response_action"] == "errors"
        assert ids.DENY_REASON_BLOCK in response.body["errors"]
        await world.settle()
        assert buttons(message) == ["Approve", "Deny"]

        answer = await approvals.deny(world.bot, approval_id(message), "U0DAVE", None)
        assert answer is not None
        assert answer.reason == "reason_required"

        world.slack.fail("views.open", "expired_trigger_id")
        await click(world, "U0DAVE", message, ids.APPROVAL_DENY)
        assert "A reason is required to deny this request" in told(world.slack, "U0DAVE")[-1]
        assert buttons(message) == ["Approve", "Deny"]

        await click(world, "U0DAVE", message, ids.APPROVAL_DENY)
        view = [v for v in world.slack.views.values() if v.callback_id == ids.DENY_REASON_MODAL][-1]
        response = await world.driver.submit_view(
            "U0DAVE", view.id, {ids.DENY_REASON_BLOCK: {ids.DENY_REASON: "no backup yet"}}
        )
        assert response.status == 200
        await world.settle()
        assert buttons(message) == []
        assert "Denied by <@U0DAVE> — “no backup yet”" in text_of(message)
        assert (
            "<@U0DAVE> denied your request to run `reimage_device` — “no backup yet”"
            in (told(world.slack, "U0BOB")[-1])
        )
        assert executes(world) == []


async def test_deny_reason_none_denies_at_once(tmp_path: Path) -> None:
    """``deny_reason: none``: Deny opens no form and denies at once."""
    rule = '{channel: C0APPROVALS, approvers: ["@it-leads"], deny_reason: none}'
    async with world_at(tmp_path, policy(rule)) as world:
        message = await request(world)
        await click(world, "U0DAVE", message, ids.APPROVAL_DENY)
        assert world.slack.calls_to("views.open") == []
        assert "Denied by <@U0DAVE>" in text_of(message)


async def test_a_comment_reaches_the_requester(tmp_path: Path) -> None:
    """``approve_comment: optional``: Approve opens a form; the comment is shown in the message,
    told to the requester and kept with the vote."""
    rule = '{channel: C0APPROVALS, approvers: ["@it-leads"], approve_comment: optional}'
    async with world_at(tmp_path, policy(rule)) as world:
        assert world.bot is not None
        assert world.driver is not None
        message = await request(world)
        aid = approval_id(message)
        await click(world, "U0DAVE", message, ids.APPROVAL_APPROVE)
        assert executes(world) == []
        (view,) = [
            v for v in world.slack.views.values() if v.callback_id == ids.APPROVE_COMMENT_MODAL
        ]
        response = await world.driver.submit_view(
            "U0DAVE",
            view.id,
            {ids.APPROVE_COMMENT_BLOCK: {ids.APPROVE_COMMENT: "backed up, go ahead"}},
        )
        assert response.status == 200
        await world.settle()
        assert len(executes(world)) == 1
        assert "“backed up, go ahead”" in text_of(message)
        assert any(
            "<@U0DAVE> approved your request to run `reimage_device` and commented: "
            "“backed up, go ahead”" in t
            for t in told(world.slack, "U0BOB")
        )
        approval = await world.bot.store.get_approval(aid)
        assert approval is not None
        assert [(v.user_id, v.comment) for v in approval.votes] == [
            ("U0DAVE", "backed up, go ahead")
        ]


# -- who it waits on --------------------------------------------------------------------------


async def test_a_stand_ins_home_lists_what_waits_on_them_oldest_first(tmp_path: Path) -> None:
    """Alice stands in for Carol: Alice's Home tab lists the two requests waiting on Carol,
    oldest first, with their buttons; Approve there counts for Carol."""
    rule = '{channel: C0APPROVALS, approvers: ["U0CAROL"]}'
    async with world_at(tmp_path, policy(rule)) as world:
        assert world.driver is not None
        await command(world, "U0CAROL", "delegate <@U0ALICE>")
        first = await request(world, text="run reimage_device device:LAPTOP-ONE")
        await request(world, text="run reimage_device device:LAPTOP-TWO")
        response = await world.driver.app_home_opened("U0ALICE")
        assert response.status == 200
        await world.settle()
        home = world.slack.home("U0ALICE")
        assert home is not None
        text = "\n".join(
            str((b.get("text") or {}).get("text", "")) + str(b.get("fields", ""))
            for b in home.view["blocks"]
        )
        assert "Waiting for your decision" in text
        assert 0 <= text.index("LAPTOP-ONE") < text.index("LAPTOP-TWO")
        await world.driver.click("U0ALICE", home, ids.APPROVAL_APPROVE)
        await world.settle()
        (body,) = executes(world)
        assert body["devices"] == [{"name": "LAPTOP-ONE"}]
        assert "Approved by <@U0ALICE> for <@U0CAROL>" in text_of(first)


async def test_the_webhook_refuses_an_escalation_without_its_other_half(tmp_path: Path) -> None:
    """``escalateAfterMinutes`` without ``escalateTo`` (and the reverse), or minutes under 0.05,
    are a 400 naming the field; nothing is posted."""
    async with world_at(tmp_path, ROLES) as world:
        execution = await paused(world)
        for changes, expected in (
            ({"escalateAfterMinutes": 5}, "escalateAfterMinutes needs escalateTo"),
            ({"escalateTo": ["@it-leads"]}, "escalateTo needs escalateAfterMinutes"),
            ({"remindAfterMinutes": 0.01}, "remindAfterMinutes"),
            ({"escalateTo": ["nobody"], "escalateAfterMinutes": 5}, "escalateTo[0]"),
        ):
            response = await post(world, question(execution, **changes))
            assert response.status_code == 400, response.text
            assert expected in response.json()["error"]
        assert world.slack.messages_in("C0SUPPORT") == []
