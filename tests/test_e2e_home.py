"""The Home tab end to end: what an end user, an engineer and an approver see, one-click runs
through the one run path, decisions with the channel's own buttons, and refreshes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.console.localslack import View
from bot.console.world import World
from bot.sandbox.catalogue import PAUSING_WORKFLOW_ID
from handlers import ids
from handlers.wait_views import decision_action_id
from tests.support.e2e import executes, last_answer, text_of, world_at
from tests.support.outcomes import FOLLOW, block_ids, eventually, home_of, home_text, reads

POLICY = """
roles:
  engineers:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space", "reimage_device", "unlock_account"]
workflows:
  restart_teams:
    alias: fix-teams
    params:
      mode: {allowed: ["soft", "hard"], default: "soft"}
  reimage_device:
    params:
      reason: {required: true}
  unlock_account:
    approval: {channel: "C0APPROVALS", approvers: ["@it-leads"]}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY, overrides=FOLLOW) as w:
        yield w


async def open_home(world: World, user_id: str) -> View:
    """Open the Home tab and wait for the bot to publish it."""
    assert world.driver is not None
    response = await world.driver.app_home_opened(user_id)
    assert response.status == 200
    await world.settle()
    return home_of(world, user_id)


def run_buttons(view: View) -> dict[str, dict[str, Any]]:
    """Workflow id → its Run button."""
    return {
        str(b["accessory"]["value"]): b["accessory"]
        for b in view.view["blocks"]
        if (b.get("accessory") or {}).get("action_id") == ids.HOME_RUN
    }


async def test_an_end_user_sees_one_click_runs_for_themselves(world: World) -> None:
    """Alice's Home offers the workflows she may run on herself, each confirmed before it runs,
    no decisions section, and no recent requests yet."""
    view = await open_home(world, "U0ALICE")
    buttons = run_buttons(view)
    # reimage_device needs a value she must type, and unlock_account is not hers to skip
    assert set(buttons) == {"restart_teams", "clear_disk_space", "unlock_account"}
    confirm = buttons["restart_teams"]["confirm"]
    assert confirm["title"]["text"] == "Run Restart Teams?"
    assert "alice@example.com" in confirm["text"]["text"]
    assert "mode=soft" in confirm["text"]["text"]
    assert {confirm["confirm"]["text"], confirm["deny"]["text"]} == {"Run", "Cancel"}
    text = home_text(world, "U0ALICE")
    assert "Your recent requests" in text
    assert "None yet" in text
    assert "Waiting for your decision" not in text
    assert "someone else's" not in text


async def test_a_home_run_is_the_command_run_and_answers_by_direct_message(world: World) -> None:
    """Run on the Home sends what `/nexthink run restart_teams` sends, answers in a DM that the
    outcome then updates, and the Home lists the request with its outcome."""
    assert world.driver is not None
    view = await open_home(world, "U0ALICE")
    response = await world.driver.click("U0ALICE", view, ids.HOME_RUN, "restart_teams")
    assert response.status == 200
    await world.settle()
    await world.driver.command("U0ALICE", "run restart_teams", channel_id="C0GENERAL")
    await world.settle()
    first, second = executes(world)
    assert (
        first
        == second
        == {
            "workflowId": "restart_teams",
            "users": [{"upn": "alice@example.com"}],
            "devices": [],
            "params": {"mode": "soft"},
        }
    )
    dm = world.slack.dm_channel("U0ALICE")
    [reply] = world.slack.messages_in(dm)
    assert reads(reply, "sent to Nexthink")
    await eventually(lambda: reads(reply, "*Outcome:* 1 succeeded"))
    assert reply.updated  # chat.update, in place
    await _home_shows(world, "U0ALICE", "*Restart Teams*: 1 succeeded")


async def _home_shows(world: World, user_id: str, needle: str) -> bool:
    await eventually(lambda: needle in home_text(world, user_id), what=f"Home shows {needle!r}")
    return True


async def test_a_home_run_goes_through_the_same_policy(world: World) -> None:
    """A forged Home click for a workflow the person may not run is refused; nothing is sent."""
    assert world.driver is not None
    view = await open_home(world, "U0ALICE")
    payload = world.driver.click_payload("U0ALICE", view, ids.HOME_RUN, "restart_teams")
    payload["actions"][0]["value"] = "license_reclamation"
    response = await world.driver.post_interactive(payload)
    assert response.status == 200
    await world.settle()
    assert executes(world) == []
    refusal = last_answer(world, "U0ALICE")
    assert "no workflow `license_reclamation` that you may run" in text_of(refusal)


async def test_a_home_run_of_a_workflow_with_approval_asks_for_it(world: World) -> None:
    """A one-click run of a workflow that needs approval asks the approvers, as the command does."""
    assert world.driver is not None
    view = await open_home(world, "U0ALICE")
    await world.driver.click("U0ALICE", view, ids.HOME_RUN, "unlock_account")
    await world.settle()
    assert executes(world) == []
    [asked] = world.slack.messages_in("C0APPROVALS")
    assert "asks to run" in text_of(asked)
    assert "needs approval" in text_of(last_answer(world, "U0ALICE"))
    await _home_shows(world, "U0ALICE", "waiting for approval")


async def test_an_engineer_sees_every_workflow_and_where_to_target_others(world: World) -> None:
    """Bob (an engineer) gets all his workflows and a pointer to the form for other targets."""
    view = await open_home(world, "U0BOB")
    assert {"restart_teams", "clear_disk_space", "unlock_account", PAUSING_WORKFLOW_ID} <= set(
        run_buttons(view)
    )
    assert "reimage_device" not in run_buttons(view)
    text = home_text(world, "U0BOB")
    assert "someone else's user or devices" in text
    assert "Waiting for your decision" not in text


async def test_the_open_form_button_opens_the_run_modal(world: World) -> None:
    """*Open the run form* opens the same run modal as `/nexthink`."""
    assert world.driver is not None
    view = await open_home(world, "U0BOB")
    await world.driver.click("U0BOB", view, ids.HOME_OPEN_MODAL)
    await world.settle()
    [modal] = [v for v in world.slack.views.values() if v.type == "modal"]
    assert modal.callback_id == ids.RUN_MODAL
    assert ids.MODAL_WORKFLOW_BLOCK in block_ids(modal)


async def test_an_approver_decides_an_approval_from_the_home_tab(world: World) -> None:
    """Carol's Home lists Alice's approval with Approve/Deny; approving there runs it, updates the
    channel's message, tells Alice and takes it off Carol's Home."""
    assert world.driver is not None
    await world.driver.command("U0ALICE", "run unlock_account", channel_id="C0GENERAL")
    await world.settle()
    view = await open_home(world, "U0CAROL")
    text = home_text(world, "U0CAROL")
    assert "Waiting for your decision" in text
    assert "<@U0ALICE> asks to run *Unlock account*" in text
    await world.driver.click("U0CAROL", view, ids.APPROVAL_APPROVE)
    await world.settle()
    assert len(executes(world)) == 1
    [asked] = world.slack.messages_in("C0APPROVALS")
    assert "Approved by <@U0CAROL>" in text_of(asked)
    result = last_answer(world, "U0ALICE")
    assert "sent to Nexthink" in text_of(result)
    await _home_shows(world, "U0CAROL", "Nothing waits for you right now.")
    await eventually(lambda: reads(result, "*Outcome:* 1 succeeded"))  # approved runs are followed


async def test_an_approver_cannot_approve_their_own_request_from_home(world: World) -> None:
    """Carol's own request is not offered to her, and a forged click is refused by the same rules."""
    assert world.driver is not None
    await world.driver.command("U0CAROL", "run unlock_account", channel_id="C0GENERAL")
    await world.settle()
    view = await open_home(world, "U0CAROL")
    assert "Nothing waits for you right now." in home_text(world, "U0CAROL")
    [asked] = world.slack.messages_in("C0APPROVALS")
    approval_id = next(
        e["value"]
        for b in asked.blocks or []
        for e in b.get("elements") or []
        if e.get("action_id") == ids.APPROVAL_APPROVE
    )
    payload = world.driver.click_payload("U0CAROL", view, ids.HOME_OPEN_MODAL)
    payload["actions"][0].update(action_id=ids.APPROVAL_APPROVE, value=approval_id)
    await world.driver.post_interactive(payload)
    await world.settle()
    assert executes(world) == []
    assert "own request" in text_of(last_answer(world, "U0CAROL"))


async def test_an_approver_resumes_a_paused_execution_from_the_home_tab(world: World) -> None:
    """A wait naming @it-leads shows on Carol's Home with its options; her click resumes it."""
    assert world.driver is not None
    assert world.sandbox is not None
    await world.driver.command(
        "U0BOB",
        f"run {PAUSING_WORKFLOW_ID} software=Zoom approvers=@it-leads channel=C0APPROVALS",
    )
    await world.settle()
    view = await open_home(world, "U0CAROL")
    assert "asks to install Zoom" in home_text(world, "U0CAROL")
    await world.driver.click("U0CAROL", view, decision_action_id(0))
    await world.settle()
    [trigger] = world.sandbox.requests("trigger")
    assert trigger.body == {"parameters": {"decision": "approved", "approver": "carol@example.com"}}
    await _home_shows(world, "U0CAROL", "Nothing waits for you right now.")
    # Alice is no approver: her Home has no decisions section
    await open_home(world, "U0ALICE")
    assert "Waiting for your decision" not in home_text(world, "U0ALICE")


async def test_a_decision_made_in_the_channel_refreshes_an_open_home(world: World) -> None:
    """Dave approves in the channel; Carol's open Home drops the approval by itself."""
    assert world.driver is not None
    await world.driver.command("U0ALICE", "run unlock_account", channel_id="C0GENERAL")
    await world.settle()
    await open_home(world, "U0CAROL")
    assert "<@U0ALICE> asks to run" in home_text(world, "U0CAROL")
    [asked] = world.slack.messages_in("C0APPROVALS")
    await world.driver.click("U0DAVE", asked, ids.APPROVAL_APPROVE)
    await world.settle()
    await _home_shows(world, "U0CAROL", "Nothing waits for you right now.")


async def test_someone_without_an_email_is_told_why_nothing_can_run(world: World) -> None:
    """Erin's profile has no email: her Home explains it instead of offering buttons."""
    view = await open_home(world, "U0ERIN")
    assert run_buttons(view) == {}
    assert "no email address" in home_text(world, "U0ERIN")


async def test_the_messages_tab_publishes_nothing(world: World) -> None:
    """Opening the Messages tab does not publish a Home."""
    assert world.driver is not None
    await world.driver.app_home_opened("U0ALICE", tab="messages")
    await world.settle()
    assert world.slack.home("U0ALICE") is None
