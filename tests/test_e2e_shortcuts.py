"""Shortcuts end to end: both open the run modal through the same policy; the global one answers
by direct message, the message one preselects the author for those who may target others. Also:
every callback and event the manifest declares reaches a handler in the Bolt app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.console.localslack import View
from bot.console.world import World
from handlers import ids
from tests.support.e2e import answers, executes, last_answer, world_at
from tests.support.outcomes import FOLLOW, block_ids, eventually, reads
from tests.test_e2e_modal import submit
from tests.test_manifest import load_manifest, manifest_callbacks

POLICY = """
roles:
  engineers:
    members: ["@it-support"]
    channels: ["C0SUPPORT"]
    workflows: ["*"]
    targets: any
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY, overrides=FOLLOW) as w:
        yield w


def the_modal(world: World, user_id: str) -> View:
    [view] = [v for v in world.slack.views.values() if v.user_id == user_id and v.type == "modal"]
    assert view.callback_id == ids.RUN_MODAL
    return view


def users_select(view: View) -> dict[str, object]:
    [block] = [b for b in view.view["blocks"] if b.get("block_id") == ids.MODAL_USERS_BLOCK]
    element: dict[str, object] = block["element"]
    return element


async def test_every_manifest_callback_and_event_reaches_a_handler(world: World) -> None:
    """Each shortcut callback_id and bot event in manifest.yaml is answered by a Bolt listener
    (an unhandled one answers 404)."""
    assert world.driver is not None
    manifest = load_manifest()
    kinds = {s["callback_id"]: s["type"] for s in manifest["features"]["shortcuts"]}
    assert set(kinds) == manifest_callbacks(manifest)
    message = world.slack.add_message("C0SUPPORT", "U0ALICE", "my Teams is frozen")
    for callback_id, kind in kinds.items():
        if kind == "global":
            response = await world.driver.shortcut("U0BOB", callback_id)
        else:
            response = await world.driver.message_shortcut("U0BOB", message, callback_id)
        assert response.status == 200, callback_id
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert events == ["app_home_opened", "app_uninstalled", "tokens_revoked"]
    assert (await world.driver.app_home_opened("U0BOB")).status == 200
    # with SLACK_BOT_TOKEN these two are answered and logged (nothing is stored to remove)
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": []}}
    assert (await world.driver.event(revoked)).status == 200
    assert (await world.driver.event({"type": "app_uninstalled"})).status == 200
    assert (await world.driver.shortcut("U0BOB", "nexthink_not_declared")).status == 404
    await world.settle()
    assert len([v for v in world.slack.views.values() if v.type == "modal"]) == len(kinds)
    assert world.slack.home("U0BOB") is not None


async def test_the_global_shortcut_runs_from_the_modal_and_answers_by_direct_message(
    world: World,
) -> None:
    """The global shortcut opens the run modal; its run answers in a DM, updated with the outcome."""
    assert world.driver is not None
    response = await world.driver.shortcut("U0ALICE")
    assert response.status == 200
    await world.settle()
    view = the_modal(world, "U0ALICE")
    assert ids.MODAL_USERS_BLOCK not in block_ids(view)
    await submit(
        world,
        "U0ALICE",
        view,
        {ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "restart_teams"}},
    )
    assert executes(world) == [
        {
            "workflowId": "restart_teams",
            "users": [{"upn": "alice@example.com"}],
            "devices": [],
            "params": {},
        }
    ]
    [reply] = world.slack.messages_in(world.slack.dm_channel("U0ALICE"))
    assert reply.via == "chat.postMessage"
    await eventually(lambda: reads(reply, "*Outcome:* 1 succeeded"))


async def test_the_message_shortcut_preselects_the_author_for_an_engineer(world: World) -> None:
    """An engineer's "Run for this person" on Alice's message opens the form with Alice chosen;
    the run targets her and is answered privately in that channel."""
    assert world.driver is not None
    message = world.slack.add_message("C0SUPPORT", "U0ALICE", "my Teams is frozen")
    await world.driver.message_shortcut("U0BOB", message)
    await world.settle()
    view = the_modal(world, "U0BOB")
    assert users_select(view)["initial_users"] == ["U0ALICE"]
    await submit(
        world, "U0BOB", view, {ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "restart_teams"}}
    )
    [body] = executes(world)
    assert body["users"] == [{"upn": "alice@example.com"}]
    reply = last_answer(world, "U0BOB")
    assert reply.ephemeral
    assert reply.channel == "C0SUPPORT"
    assert reply.via == "response_url"
    await eventually(lambda: reads(reply, ":white_check_mark: alice@example.com — success"))
    assert answers(world, "U0ALICE") == []


async def test_the_message_shortcut_runs_on_yourself_when_you_may_not_target_others(
    world: World,
) -> None:
    """Alice may only run on herself: the form says so, hides the targets, and runs for her."""
    assert world.driver is not None
    message = world.slack.add_message("C0GENERAL", "U0BOB", "Teams froze for me too")
    await world.driver.message_shortcut("U0ALICE", message)
    await world.settle()
    view = the_modal(world, "U0ALICE")
    assert ids.MODAL_USERS_BLOCK not in block_ids(view)
    assert "so this runs for you, not for <@U0BOB>" in text_of_view(view)
    await submit(
        world, "U0ALICE", view, {ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "restart_teams"}}
    )
    [body] = executes(world)
    assert body["users"] == [{"upn": "alice@example.com"}]


async def test_the_message_shortcut_follows_channel_limited_roles(world: World) -> None:
    """Bob may target others only in #it-support: in #general his form runs on himself."""
    assert world.driver is not None
    message = world.slack.add_message("C0GENERAL", "U0ALICE", "help")
    await world.driver.message_shortcut("U0BOB", message)
    await world.settle()
    view = the_modal(world, "U0BOB")
    assert ids.MODAL_USERS_BLOCK not in block_ids(view)
    assert "not for <@U0ALICE>" in text_of_view(view)


async def test_the_message_shortcut_on_a_bot_message_preselects_nobody(world: World) -> None:
    """A bot's message has no person to run for: the form opens without a preselected target."""
    assert world.driver is not None
    await world.driver.command("U0BOB", "run restart_teams visible", channel_id="C0SUPPORT")
    await world.settle()
    posted = [m for m in world.slack.messages_in("C0SUPPORT") if not m.ephemeral][-1]
    await world.driver.message_shortcut("U0BOB", posted)
    await world.settle()
    view = the_modal(world, "U0BOB")
    assert "initial_users" not in users_select(view)
    assert "not for" not in text_of_view(view)


def text_of_view(view: View) -> str:
    return "\n".join(
        str(e.get("text"))
        for b in view.view["blocks"]
        for e in [*(b.get("elements") or []), b.get("text") or {}]
        if isinstance(e, dict)
    )
