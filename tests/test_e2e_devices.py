"""Which computer, end to end: with ``NEXTHINK_DEVICES_QUERY_ID`` the bot asks Nexthink (NQL) for
a person's devices; the chosen device reaches the V2 execute as its ``collectorUid`` or ``name``;
a self-service user may name their own devices and no one else's, on the command and the form.

The sandbox answers the devices query for its seeded people: alice has LAPTOP-ALICE (seen last)
and DESKTOP-ALICE; LAPTOP-BOB is bob's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.console.localslack import View
from bot.console.world import World
from handlers import ids
from tests.support.e2e import answers, executes, text_of, world_at

POLICY = """
roles:
  support:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
  everyone:
    members: ["*"]
    workflows: ["clear_disk_space", "restart_teams"]
    targets: self
"""
QUERY = "#chatops_user_devices"
DESKTOP_ALICE = "c61cf08b-7744-4026-a3e2-2fc4078b8831"
LAPTOP_BOB = "11148096-8a4a-4958-9977-07c847d66ab5"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY, overrides={"nexthink_devices_query_id": QUERY}) as w:
        yield w


async def command(world: World, user_id: str, text: str) -> str:
    """Type ``/nexthink text`` in #general; returns what the bot answered, as one text."""
    assert world.driver is not None
    before = len(answers(world, user_id))
    response = await world.driver.command(user_id, text, channel_id="C0GENERAL")
    assert response.status == 200
    await world.settle()
    return "\n".join(text_of(m) for m in answers(world, user_id)[before:])


def devices_queries(world: World) -> list[dict[str, Any]]:
    assert world.sandbox is not None
    return [e.body for e in world.sandbox.requests("nql")]


async def open_form(world: World, user_id: str, workflow: str) -> View:
    assert world.driver is not None
    await world.driver.command(user_id, "", channel_id="C0GENERAL")
    await world.settle()
    (view,) = [v for v in world.slack.views.values() if v.user_id == user_id]
    await world.driver.click(user_id, view, ids.MODAL_WORKFLOW, workflow)
    await world.settle()
    return world.slack.views[view.id]


def menu(view: View) -> list[tuple[str, str]]:
    (block,) = [b for b in view.view["blocks"] if b.get("block_id") == ids.MODAL_MY_DEVICE_BLOCK]
    return [(o["text"]["text"], o["value"]) for o in block["element"]["options"]]


async def test_a_named_device_of_ones_own_reaches_nexthink_as_its_collector_uid(
    world: World,
) -> None:
    """Alice (``targets: self``) names her desktop: the query is asked with her UPN and the
    execute carries exactly that device's Collector UUID, not a name two devices might share."""
    reply = await command(world, "U0ALICE", "run clear_disk_space device:DESKTOP-ALICE")
    assert devices_queries(world) == [
        {"queryId": QUERY, "parameters": {"upn": "alice@example.com"}}
    ]
    assert executes(world) == [
        {
            "workflowId": "clear_disk_space",
            "users": [],
            "devices": [{"collectorUid": DESKTOP_ALICE}],
            "params": {},
        }
    ]
    assert "sent to Nexthink" in reply
    assert "DESKTOP-ALICE" in reply


async def test_an_engineers_device_name_reaches_nexthink_as_the_name(world: World) -> None:
    """For a role with ``targets: any`` the device goes as typed: ``name``, no query needed."""
    await command(world, "U0BOB", "run clear_disk_space device:LAPTOP-BOB")
    assert executes(world) == [
        {
            "workflowId": "clear_disk_space",
            "users": [],
            "devices": [{"name": "LAPTOP-BOB"}],
            "params": {},
        }
    ]


async def test_a_self_service_user_cannot_name_someone_elses_device(world: World) -> None:
    """Bob's laptop, by name or by Collector UUID, is refused for Alice with her own devices
    listed; nothing is sent to Nexthink."""
    for named in ("LAPTOP-BOB", LAPTOP_BOB, "KIOSK-LOBBY"):
        reply = await command(world, "U0ALICE", f"run clear_disk_space device:{named}")
        assert "is not one of your devices" in reply
        assert "`device:LAPTOP-ALICE`" in reply
        assert "`device:DESKTOP-ALICE`" in reply
    assert executes(world) == []


async def test_the_reply_says_which_device_was_used_and_how_to_pick_another(world: World) -> None:
    """A run on herself tells Alice it runs on LAPTOP-ALICE, seen last, and how to pick the
    desktop; the request stays Nexthink's own choice (her UPN, no device)."""
    reply = await command(world, "U0ALICE", "run clear_disk_space")
    assert "your most recently seen device, LAPTOP-ALICE" in reply
    assert "`device:DESKTOP-ALICE`" in reply
    assert executes(world) == [
        {
            "workflowId": "clear_disk_space",
            "users": [{"upn": "alice@example.com"}],
            "devices": [],
            "params": {},
        }
    ]


async def test_the_form_offers_ones_devices_and_sends_the_chosen_one(world: World) -> None:
    """Alice's form has a device menu (most recently seen first); her choice reaches Nexthink
    as the device's Collector UUID."""
    assert world.driver is not None
    view = await open_form(world, "U0ALICE", "clear_disk_space")
    options = menu(view)
    assert [label.split(" · ")[0] for label, _ in options] == ["LAPTOP-ALICE", "DESKTOP-ALICE"]
    response = await world.driver.submit_view(
        "U0ALICE",
        view.id,
        {ids.MODAL_MY_DEVICE_BLOCK: {ids.MODAL_MY_DEVICE: DESKTOP_ALICE}},
    )
    assert response.status == 200
    await world.settle()
    assert executes(world) == [
        {
            "workflowId": "clear_disk_space",
            "users": [],
            "devices": [{"collectorUid": DESKTOP_ALICE}],
            "params": {},
        }
    ]


async def test_a_forged_device_in_the_form_is_refused(world: World) -> None:
    """A submission carrying Bob's laptop in Alice's device menu is refused inline: the check is
    the core's, not the menu's."""
    assert world.driver is not None
    view = await open_form(world, "U0ALICE", "clear_disk_space")
    payload = world.driver.view_submission_payload(
        "U0ALICE", view.id, {ids.MODAL_MY_DEVICE_BLOCK: {ids.MODAL_MY_DEVICE: DESKTOP_ALICE}}
    )
    state = payload["view"]["state"]["values"][ids.MODAL_MY_DEVICE_BLOCK][ids.MODAL_MY_DEVICE]
    state["selected_option"] = {"text": {"type": "plain_text", "text": "x"}, "value": LAPTOP_BOB}
    response = await world.driver.post_interactive(payload)
    assert response.status == 200
    await world.settle()
    body = response.body if isinstance(response.body, dict) else {}
    shown = str(body.get("errors")) + "\n".join(text_of(m) for m in answers(world, "U0ALICE"))
    assert "is not one of your devices" in shown
    assert executes(world) == []


async def test_a_failing_devices_query_falls_back_with_a_note(world: World) -> None:
    """When the query fails, a run on oneself still goes (Nexthink's choice) with a note, and a
    named device is refused because it cannot be checked."""
    assert world.sandbox is not None
    world.sandbox.faults.add("nql:403:times=always")
    reply = await command(world, "U0ALICE", "run clear_disk_space")
    assert "could not list your devices" in reply
    assert len(executes(world)) == 1
    reply = await command(world, "U0ALICE", "run clear_disk_space device:DESKTOP-ALICE")
    assert "could not check which devices are yours" in reply
    assert len(executes(world)) == 1
