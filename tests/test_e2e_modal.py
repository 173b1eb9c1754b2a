"""The run modal end to end: `/nexthink` opens it, choosing a workflow refreshes it, submitting it
runs the same path as `/nexthink run`, and mistakes are shown inline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.console.localslack import View
from bot.console.world import World
from handlers import ids
from tests.support.e2e import ack_problems, executes, last_answer, text_of, world_at

POLICY = """
roles:
  engineers:
    members: ["@it-support"]
    workflows: ["unlock_account", "clear_disk_space"]
    targets: any
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
    targets: self
workflows:
  restart_teams:
    alias: fix-teams
    params:
      mode: {allowed: ["soft", "hard"], default: "soft"}
      note: {}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY) as w:
        yield w


async def open_modal(world: World, user_id: str, channel_id: str = "C0SUPPORT") -> View:
    """Type `/nexthink` and wait until the modal is filled in."""
    assert world.driver is not None
    response = await world.driver.command(user_id, "", channel_id=channel_id)
    assert response.status == 200
    assert response.body in ("", None)
    await world.settle()
    (view,) = [v for v in world.slack.views.values() if v.user_id == user_id]
    assert view.callback_id == ids.RUN_MODAL
    return view


def block_ids(view: View) -> list[str]:
    return [str(b.get("block_id")) for b in view.view.get("blocks") or []]


def workflow_options(view: View) -> list[str]:
    (block,) = [b for b in view.view["blocks"] if b.get("block_id") == ids.MODAL_WORKFLOW_BLOCK]
    return [o["value"] for o in block["element"]["options"]]


async def choose(world: World, user_id: str, view: View, workflow: str) -> View:
    """Pick a workflow in the select, as a person does, and wait for the refreshed form."""
    assert world.driver is not None
    response = await world.driver.click(user_id, view, ids.MODAL_WORKFLOW, workflow)
    assert response.status == 200
    assert not ack_problems(response)
    await world.settle()
    return world.slack.views[view.id]


async def submit(
    world: World, user_id: str, view: View, values: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Submit the modal; returns the acknowledgement's body (``{}`` when it just closes)."""
    assert world.driver is not None
    response = await world.driver.submit_view(user_id, view.id, values)
    assert response.status == 200, ack_problems(response)
    assert not ack_problems(response)
    await world.settle()
    return response.body if isinstance(response.body, dict) else {}


async def test_open_choose_submit_runs_the_workflow(world: World) -> None:
    """`/nexthink` opens the form; choosing and submitting sends the V2 execute and replies."""
    view = await open_modal(world, "U0ALICE", channel_id="C0GENERAL")
    assert workflow_options(view) == ["clear_disk_space", "restart_teams"]
    assert ids.MODAL_USERS_BLOCK not in block_ids(view)  # Alice may only run on herself
    view = await choose(world, "U0ALICE", view, "restart_teams")
    assert f"{ids.MODAL_PARAM_PREFIX}mode" in block_ids(view)
    answer = await submit(
        world,
        "U0ALICE",
        view,
        {
            f"{ids.MODAL_PARAM_PREFIX}mode": {ids.MODAL_PARAMS: "hard"},
            f"{ids.MODAL_PARAM_PREFIX}note": {ids.MODAL_PARAMS: "disk <full> & slow"},
        },
    )
    assert answer.get("response_action") in (None, "clear")
    assert view.id not in world.slack.views  # closed
    assert executes(world) == [
        {
            "workflowId": "restart_teams",
            "users": [{"upn": "alice@example.com"}],
            "devices": [],
            "params": {"mode": "hard", "note": "disk <full> & slow"},
        }
    ]
    reply = last_answer(world, "U0ALICE")
    assert reply.ephemeral
    assert reply.channel == "C0GENERAL"
    assert "sent to Nexthink" in reply.text


async def test_an_engineer_runs_on_people_and_devices_from_the_form(world: World) -> None:
    """An engineer's form has people and device fields, and both reach Nexthink."""
    view = await open_modal(world, "U0BOB")
    view = await choose(world, "U0BOB", view, "clear_disk_space")
    assert ids.MODAL_USERS_BLOCK in block_ids(view)
    await submit(
        world,
        "U0BOB",
        view,
        {
            ids.MODAL_USERS_BLOCK: {ids.MODAL_USERS: ["U0ALICE", "U0CAROL"]},
            ids.MODAL_DEVICES_BLOCK: {
                ids.MODAL_DEVICES: "LAPTOP-BOB\n\n 6B3C8F2E-1D4A-4C5B-9E7F-0A1B2C3D4E5F \n"
            },
        },
    )
    assert executes(world) == [
        {
            "workflowId": "clear_disk_space",
            "users": [{"upn": "alice@example.com"}, {"upn": "carol@example.com"}],
            "devices": [
                {"name": "LAPTOP-BOB"},
                {"collectorUid": "6b3c8f2e-1d4a-4c5b-9e7f-0a1b2c3d4e5f"},
            ],
            "params": {},
        }
    ]


async def test_a_malformed_parameter_line_is_shown_inline(world: World) -> None:
    """A line without `=` in "Other parameters" is an inline error; nothing is sent."""
    view = await open_modal(world, "U0ALICE")
    view = await choose(world, "U0ALICE", view, "clear_disk_space")  # no parameters declared
    answer = await submit(
        world, "U0ALICE", view, {ids.MODAL_PARAMS_BLOCK: {ids.MODAL_PARAMS: "note=ok\nbroken"}}
    )
    assert answer["response_action"] == "errors"
    assert "Line 2" in answer["errors"][ids.MODAL_PARAMS_BLOCK]
    assert view.id in world.slack.views  # still open, to be corrected
    assert executes(world) == []


async def test_a_parameter_the_policy_refuses_is_shown_inline(world: World) -> None:
    """The form offers no "Other parameters" for a workflow whose parameters the policy lists;
    a submission that carries the field anyway is refused inline, naming the parameter."""
    assert world.driver is not None
    view = await open_modal(world, "U0ALICE")
    view = await choose(world, "U0ALICE", view, "restart_teams")
    assert ids.MODAL_PARAMS_BLOCK not in block_ids(view)
    payload = world.driver.view_submission_payload("U0ALICE", view.id, {})
    payload["view"]["state"]["values"][ids.MODAL_PARAMS_BLOCK] = {
        ids.MODAL_PARAMS: {"type": "plain_text_input", "value": "colour=red"}
    }
    response = await world.driver.post_interactive(payload)
    assert response.status == 200
    answer = response.body
    assert answer["response_action"] == "errors"
    (message,) = answer["errors"].values()
    assert "colour" in message
    assert executes(world) == []


async def test_targets_self_refuses_other_people_chosen_in_the_form(world: World) -> None:
    """Someone who may target others for one workflow only cannot pick people for another."""
    view = await open_modal(world, "U0BOB")
    assert ids.MODAL_USERS_BLOCK in block_ids(view)  # some of Bob's workflows allow targets
    answer = await submit(
        world,
        "U0BOB",
        view,  # submitted before the form refreshed for the chosen workflow
        {
            ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "restart_teams"},
            ids.MODAL_USERS_BLOCK: {ids.MODAL_USERS: ["U0ALICE"]},
        },
    )
    assert answer["response_action"] == "errors"
    assert "on yourself" in answer["errors"][ids.MODAL_USERS_BLOCK]
    assert executes(world) == []


async def test_no_workflow_chosen_is_an_inline_error(world: World) -> None:
    """Submitting without a workflow is refused by Slack's client as a required field."""
    assert world.driver is not None
    view = await open_modal(world, "U0ALICE")
    response = await world.driver.submit_view("U0ALICE", view.id, {})
    assert response.status == 0  # Slack's client does not send it
    assert ids.MODAL_WORKFLOW_BLOCK in response.body["errors"]
    assert executes(world) == []


async def test_a_profile_without_email_gets_a_form_that_says_so(world: World) -> None:
    """The modal of someone whose profile has no email explains why nothing can run."""
    view = await open_modal(world, "U0ERIN")
    assert "no email address" in "\n".join(
        str(b.get("text", {}).get("text")) for b in view.view["blocks"]
    )
    assert ids.MODAL_WORKFLOW_BLOCK not in block_ids(view)
    assert executes(world) == []


async def test_modal_runs_count_towards_the_rate_limit(tmp_path: Path) -> None:
    """A modal run beyond `runs_per_user_per_minute` is refused inline and not sent."""
    policy = POLICY + "limits:\n  runs_per_user_per_minute: 1\n"
    async with world_at(tmp_path, policy) as world:
        assert world.driver is not None
        await world.driver.command("U0ALICE", "run restart_teams")
        await world.settle()
        view = await open_modal(world, "U0ALICE")
        answer = await submit(
            world,
            "U0ALICE",
            view,
            {ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "clear_disk_space"}},
        )
        assert answer["response_action"] == "errors"
        assert "Try again in" in next(iter(answer["errors"].values()))
        assert len(executes(world)) == 1
        assert "sent to Nexthink" in text_of(last_answer(world, "U0ALICE"))


async def test_checks_slower_than_two_seconds_close_the_form_and_answer_by_message(
    world: World,
) -> None:
    """When the checks outlast the inline wait, the form closes and the outcome arrives as a
    message through the command's response URL."""
    assert world.bot is not None
    assert world.sandbox is not None
    view = await open_modal(world, "U0ALICE", channel_id="C0GENERAL")
    world.bot.catalogue.invalidate()
    world.sandbox.faults.add("list:latency:delay=2.5:times=4")
    answer = await submit(
        world, "U0ALICE", view, {ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "restart_teams"}}
    )
    assert answer.get("response_action") is None
    assert view.id not in world.slack.views
    assert len(executes(world)) == 1
    reply = last_answer(world, "U0ALICE")
    assert reply.via == "response_url"
    assert "sent to Nexthink" in reply.text
