"""Tickets and auditors' history end to end, over LocalSlack and the Nexthink sandbox: the
refusals, the ticket in the reply, the approval request, `history`, the Home tab, the run form and
the V2 execute (under the policy's ``param``), and in the audit trail; `history` of others only
for roles with ``audit: true``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.console.localslack import Message, View
from bot.console.world import World
from handlers import ids
from tests.support.e2e import answers, executes, last_answer, text_of, world_at
from tests.support.outcomes import FOLLOW, eventually, home_text
from tests.test_audit_cli import _run

pytestmark = pytest.mark.slow

PATTERN = "^(INC|CHG|RITM)[0-9]{7}$"
POLICY = f"""
roles:
  engineers:
    members: ["U0BOB"]
    workflows: ["*"]
    targets: any
    ticket: {{required: true}}
  auditors:
    members: ["U0DAVE"]
    workflows: ["restart_teams"]
    audit: true
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: any
limits:
  runs_per_user_per_minute: 100
workflows:
  reimage_device:
    ticket: {{required: true, pattern: "{PATTERN}", param: "ticket"}}
    approval: {{channel: C0APPROVALS, approvers: ["U0CAROL"], count: 1}}
"""
TICKET = "CHG0012345"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY, overrides=FOLLOW) as w:
        yield w


async def command(world: World, user_id: str, text: str, channel_id: str = "C0SUPPORT") -> str:
    """What the bot answered ``user_id`` (after the acknowledgement) to ``text``."""
    assert world.driver is not None
    before = len(answers(world, user_id))
    response = await world.driver.command(user_id, text, channel_id=channel_id)
    assert response.status == 200
    await world.settle()
    found = answers(world, user_id)
    assert len(found) > before, f"no answer to {text!r}"
    return text_of(found[-1])


def approval_request(world: World) -> Message:
    (message,) = [m for m in world.slack.messages_in("C0APPROVALS") if not m.ephemeral]
    return message


async def audit(world: World, *args: str) -> list[dict[str, Any]]:
    done = await asyncio.to_thread(_run, world.database_url, *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_a_required_ticket_is_asked_for_checked_shown_sent_and_audited(world: World) -> None:
    """Without a ticket, and with one of the wrong shape, reimage_device is refused with how to
    fix it; with one it shows in the approval request and the reply, reaches Nexthink as the
    `ticket` parameter, and every event of the run carries it (`audit --ticket`)."""
    assert world.driver is not None
    run = "run reimage_device device:LAPTOP-ALICE"
    missing = await command(world, "U0ALICE", run)
    assert (
        f"`reimage_device` needs a ticket: add `ticket:INC…` (the incident, change or request it "
        f"is for; it must look like `{PATTERN}`)." in missing
    )
    wrong = await command(world, "U0ALICE", f"{run} ticket:abc")
    assert f"`ticket:abc` does not look like `{PATTERN}`." in wrong
    assert executes(world) == []

    pending = await command(world, "U0ALICE", f'{run} ticket:"{TICKET}" reason=slow')
    assert f"`reimage_device` (ticket `{TICKET}`) needs approval" in pending
    request = approval_request(world)
    assert f"*Ticket*\n`{TICKET}`" in text_of(request)
    response = await world.driver.click("U0CAROL", request, ids.APPROVAL_APPROVE)
    assert response.status == 200
    await world.settle()
    (sent,) = executes(world)
    assert sent["params"] == {"reason": "slow", "ticket": TICKET}
    reply = last_answer(world, "U0ALICE")
    assert f"*Ticket*\n`{TICKET}`" in text_of(reply)
    assert TICKET in text_of(approval_request(world))  # the settled request keeps it

    history = await command(world, "U0ALICE", "history")
    assert f"ticket `{TICKET}`" in history

    await eventually(lambda: "Outcome" in text_of(reply), what="the outcome in the reply")
    records = await audit(world, "--ticket", TICKET)
    assert [r["event"] for r in records][:4] == [
        "run_requested", "approval_requested", "approval_vote", "executed",
    ]  # fmt: skip
    assert all(r["ticket"] == TICKET for r in records)
    refused = await audit(world, "--user", "U0ALICE", "--until", records[0]["time"])
    assert [(r["event"], r["ticket"]) for r in refused] == [
        ("run_refused", None),
        ("run_refused", "abc"),
    ]
    assert "needs a ticket" in refused[0]["detail"]


async def test_a_roles_ticket_rule_adds_to_the_workflows(world: World) -> None:
    """Bob's role requires a ticket on every run (any shape); Alice runs the same without one."""
    refused = await command(world, "U0BOB", "run restart_teams")
    assert "`restart_teams` needs a ticket: add `ticket:INC…`" in refused
    assert "must look like" not in refused
    await command(world, "U0BOB", "run restart_teams ticket:JIRA-42")
    await command(world, "U0ALICE", "run restart_teams", "C0GENERAL")
    assert [e["workflowId"] for e in executes(world)] == ["restart_teams", "restart_teams"]
    assert all("ticket" not in e["params"] for e in executes(world))  # no `param` configured


async def test_auditors_read_others_history_and_others_are_refused(world: World) -> None:
    """Dave (`audit: true`) sees Bob's requests, a workflow's and a ticket's, with who asked;
    Alice asking for Bob's gets the refusal and her own history."""
    await command(world, "U0BOB", "run restart_teams ticket:INC0000001 device:LAPTOP-BOB")
    await command(world, "U0BOB", "run clear_disk_space ticket:INC0000002 device:LAPTOP-BOB")
    await command(world, "U0ALICE", "run restart_teams", "C0GENERAL")

    of_bob = await command(world, "U0DAVE", "history <@U0BOB|bob>")
    assert "The last 2 requests of <@U0BOB>" in of_bob
    assert "by <@U0BOB>" in of_bob
    assert "`INC0000001`" in of_bob
    assert "`INC0000002`" in of_bob
    by_upn = await command(world, "U0DAVE", "history user:BOB@example.com")
    assert "The last 2 requests of `BOB@example.com`" in by_upn
    of_teams = await command(world, "U0DAVE", "history workflow:Restart_Teams")
    assert "The last 2 requests of workflow `Restart_Teams`" in of_teams
    assert "by <@U0BOB>" in of_teams
    assert "by <@U0ALICE>" in of_teams
    assert "clear_disk_space" not in of_teams
    of_ticket = await command(world, "U0DAVE", "history ticket:INC0000002")
    assert "The last 1 request for ticket `INC0000002`" in of_ticket
    assert "clear_disk_space" in of_ticket
    assert "restart_teams" not in of_ticket.split("\n", 1)[1]
    none = await command(world, "U0DAVE", "history ticket:INC9999999")
    assert "No requests for ticket `INC9999999`." in none

    refused = await command(world, "U0ALICE", "history <@U0BOB>")
    assert (
        "Only roles with `audit: true` in the bot's policy may look at other people's requests. "
        "Here are your own." in refused
    )
    assert "Your last 1 request" in refused
    assert "by <@U0BOB>" not in refused
    assert "INC0000001" not in refused


async def open_form(world: World, user_id: str, workflow: str) -> View:
    assert world.driver is not None
    response = await world.driver.command(user_id, "", channel_id="C0SUPPORT")
    assert response.status == 200
    await world.settle()
    (view,) = [v for v in world.slack.views.values() if v.user_id == user_id]
    response = await world.driver.click(user_id, view, ids.MODAL_WORKFLOW, workflow)
    assert response.status == 200
    await world.settle()
    return world.slack.views[view.id]


def ticket_block(view: View) -> dict[str, Any] | None:
    found = [b for b in view.view["blocks"] if b.get("block_id") == ids.MODAL_TICKET_BLOCK]
    return found[0] if found else None


async def test_the_run_form_has_a_ticket_field_when_one_is_asked_for(world: World) -> None:
    """The form shows a required Ticket field for reimage_device (with its shape), none for
    restart_teams; a malformed ticket is an inline error there, a good one goes through; the Home
    tab lists the request with its ticket."""
    assert world.driver is not None
    view = await open_form(world, "U0ALICE", "restart_teams")
    assert ticket_block(view) is None
    view = await open_form(world, "U0CAROL", "reimage_device")
    block = ticket_block(view)
    assert block is not None
    assert block["optional"] is False
    assert PATTERN in block["hint"]["text"]
    values = {
        ids.MODAL_DEVICES_BLOCK: {ids.MODAL_DEVICES: "LAPTOP-CAROL"},
        ids.MODAL_TICKET_BLOCK: {ids.MODAL_TICKET: "nope"},
    }
    response = await world.driver.submit_view("U0CAROL", view.id, values)
    assert response.status == 200
    assert isinstance(response.body, dict)
    assert response.body["response_action"] == "errors"
    assert "does not look like" in response.body["errors"][ids.MODAL_TICKET_BLOCK]
    values[ids.MODAL_TICKET_BLOCK] = {ids.MODAL_TICKET: "RITM0000007"}
    response = await world.driver.submit_view("U0CAROL", view.id, values)
    assert response.status == 200
    await world.settle()
    assert "`RITM0000007`" in text_of(approval_request(world))
    await world.driver.app_home_opened("U0CAROL")
    await world.settle()
    await eventually(lambda: "ticket `RITM0000007`" in home_text(world, "U0CAROL"))


async def test_a_scheduled_runs_ticket_is_kept_until_it_runs(tmp_path: Path) -> None:
    """`ticket:` on a run asked `in 3s`: kept with the scheduled run, sent to Nexthink under the
    policy's ``param`` at its time, and on its `scheduled` and `executed` audit records."""
    policy = POLICY.replace("limits:\n", "schedule: {allowed: true}\nlimits:\n")
    async with world_at(tmp_path, policy) as world:
        assert world.sandbox is not None
        asked = await command(
            world, "U0ALICE", f"run reimage_device device:LAPTOP-ALICE ticket:{TICKET} in 3s"
        )
        assert "needs approval" in asked
        request = approval_request(world)
        assert world.driver is not None
        response = await world.driver.click("U0CAROL", request, ids.APPROVAL_APPROVE)
        assert response.status == 200
        await world.settle()
        await eventually(
            lambda: bool(world.sandbox and world.sandbox.requests("execute_v2")),
            what="the scheduled run's execute",
        )
        assert [b["params"] for b in executes(world)] == [{"ticket": TICKET}]
        records = await audit(world, "--ticket", TICKET)
        events = [r["event"] for r in records]
        assert "scheduled" in events, events
        assert "executed" in events, events
        assert all(r["ticket"] == TICKET for r in records)
