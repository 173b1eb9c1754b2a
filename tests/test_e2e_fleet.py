"""Fleet runs end to end: ``/nexthink run <workflow> query:#id`` over LocalSlack and the sandbox.

The bot first shows the count and a sample with Run and Cancel; nothing runs before Run, only the
requester may press it, and it starts once; roles without ``query_targets`` are refused before
any query is sent; an answer of 1,000 rows is refused (it may be cut short); approvals apply; a
big run's outcome is one summary, followed with one NQL call per poll whatever its size. Every
execute the sandbox receives is checked against the OpenAPI document (``executes``).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from pathlib import Path
from typing import Any

from bot.console.localslack import Message
from bot.console.world import World
from bot.sandbox import Sandbox
from handlers import ids
from tests.support.e2e import answers, executes, last_answer, seen_by, text_of, world_at
from tests.support.openapi import validate_request
from tests.support.outcomes import FOLLOW, QUERY_ID, eventually, reads
from tests.support.sandbox_helpers import check_nql_answer

POLICY = """
roles:
  fleet:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
    query_targets: true
  engineers:
    members: ["carol@example.com"]
    workflows: ["*"]
    targets: any
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["@it-leads"], count: 1}
limits:
  runs_per_user_per_minute: 100
"""
LOW_DISK = "run clear_disk_space query:#low_disk_devices"


def _buttons(message: Message) -> list[str]:
    return [
        str(e.get("action_id"))
        for b in message.blocks or []
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    ]


async def _preview(world: World, text: str = LOW_DISK, user: str = "U0BOB") -> Message:
    assert world.driver is not None
    ack = await world.driver.command(user, text, channel_id="C0SUPPORT")
    assert ack.status == 200
    await world.settle()
    return last_answer(world, user)


async def _click(world: World, user: str, message: Message, action: str) -> None:
    assert world.driver is not None
    response = await world.driver.click(user, message, action)
    assert response.status == 200
    await world.settle()


def _target_queries(world: World) -> list[dict[str, Any]]:
    """The NQL executes that read a fleet's targets (not the status follow-up)."""
    assert world.sandbox is not None
    found = []
    for entry in world.sandbox.requests("nql"):
        if entry.body.get("queryId") != QUERY_ID:
            assert entry.body["parameters"] == {}
            if entry.status == 200:
                check_nql_answer(entry.response)
            found.append(entry.body)
    return found


async def test_the_preview_shows_count_and_sample_and_runs_once_on_run(tmp_path: Path) -> None:
    """Nothing runs before Run; someone else's Run is refused; two Run clicks at once start one
    execute, on exactly the devices the query returned, and its reply replaces the preview."""
    async with world_at(tmp_path, POLICY) as world:
        preview = await _preview(world)
        assert reads(
            preview,
            "will run on 3 devices",
            "#low_disk_devices",
            "LAPTOP-BOB, LAPTOP-CAROL, KIOSK-LOBBY",
            "Nothing runs until you press Run",
        )
        assert _buttons(preview) == [ids.FLEET_RUN, ids.FLEET_CANCEL]
        assert _target_queries(world) == [{"queryId": "#low_disk_devices", "parameters": {}}]
        assert executes(world) == []

        await _click(world, "U0ALICE", preview, ids.FLEET_RUN)
        assert "Only <@U0BOB>, who asked for this run" in text_of(last_answer(world, "U0ALICE"))
        assert executes(world) == []

        assert world.driver is not None
        clicks = [world.driver.click("U0BOB", preview, ids.FLEET_RUN) for _ in range(2)]
        assert {r.status for r in await asyncio.gather(*clicks)} == {200}
        await world.settle()
        [body] = executes(world)
        assert world.sandbox is not None
        wanted = {
            d.collector_uid
            for d in world.sandbox.catalogue.devices
            if d.name in {"LAPTOP-BOB", "LAPTOP-CAROL", "KIOSK-LOBBY"}
        }
        assert {d["collectorUid"] for d in body["devices"]} == wanted
        assert all(set(d) == {"collectorUid"} for d in body["devices"])
        assert body["users"] == []
        shown = [text_of(m) for m in answers(world, "U0BOB")]
        assert sum("sent to Nexthink" in t for t in shown) == 1
        assert sum("already started" in t for t in shown) == 1
        replaced = world.slack.find_message(preview.channel, preview.ts)
        assert replaced is not None
        assert "sent to Nexthink" in text_of(replaced)
        assert _buttons(replaced) == []
        assert world.bot is not None
        [record] = await world.bot.store.history("U0BOB")
        assert record.state == "sent"
        assert len(record.targets) == 3


async def test_cancel_runs_nothing_and_run_afterwards_is_refused(tmp_path: Path) -> None:
    """Someone else's Cancel does nothing; the requester's replaces the preview; a Run pressed
    afterwards (on a client still showing the preview) is refused."""
    async with world_at(tmp_path, POLICY) as world:
        preview = await _preview(world)
        stale = dataclasses.replace(preview, blocks=copy.deepcopy(preview.blocks))
        await _click(world, "U0CAROL", preview, ids.FLEET_CANCEL)
        assert "Only <@U0BOB>" in text_of(last_answer(world, "U0CAROL"))
        await _click(world, "U0BOB", preview, ids.FLEET_CANCEL)
        cancelled = world.slack.find_message(preview.channel, preview.ts)
        assert cancelled is not None
        assert reads(cancelled, "Cancelled", "nothing was sent to Nexthink")
        await _click(world, "U0BOB", stale, ids.FLEET_RUN)
        assert "already cancelled" in text_of(last_answer(world, "U0BOB"))
        assert executes(world) == []
        assert world.bot is not None
        assert await world.bot.store.history("U0BOB") == []


async def test_a_role_without_query_targets_is_refused_before_any_query(tmp_path: Path) -> None:
    """Carol may target anyone, but not what a query returns: refused, and no NQL is sent."""
    async with world_at(tmp_path, POLICY) as world:
        refusal = await _preview(world, user="U0CAROL")
        assert reads(refusal, "query_targets: true", "#low_disk_devices")
        assert _buttons(refusal) == []
        assert _target_queries(world) == []
        assert executes(world) == []
        assert world.bot is not None
        store = world.bot.store

        async def refused() -> list[Any]:
            return [r async for r in store.iter_audit() if r.event == "run_refused"]

        found: list[Any] = []

        async def check() -> bool:
            found[:] = await refused()
            return bool(found)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not await check():
            assert loop.time() < deadline, "no run_refused in the audit trail"
            await asyncio.sleep(0.05)
        assert found[0].actor == "U0CAROL"
        assert {"kind": "query", "query_id": "#low_disk_devices"} in found[0].targets


async def test_an_answer_of_1000_rows_is_refused_and_999_is_offered(tmp_path: Path) -> None:
    """The sandbox cuts 1,500 rows to 1,000, as NQL does: the bot refuses rather than run on
    part of the fleet. 999 rows are offered with their count."""
    async with world_at(tmp_path, POLICY) as world:
        assert world.sandbox is not None
        world.sandbox.add_fleet("#everything", 1500)
        world.sandbox.add_fleet("#fleet_999", 999)
        refusal = await _preview(world, "run clear_disk_space query:#everything")
        assert reads(refusal, "returned 1,000 rows", "may be cut short", "Narrow the query")
        assert _buttons(refusal) == []
        [cut] = [e for e in world.sandbox.requests("nql") if e.body["queryId"] == "#everything"]
        assert len(cut.response["data"]) == 1000
        preview = await _preview(world, "run clear_disk_space query:#fleet_999")
        assert reads(preview, "will run on 999 devices", "FLEET-01501", "and 989 more")
        assert _buttons(preview) == [ids.FLEET_RUN, ids.FLEET_CANCEL]
        assert executes(world) == []


async def test_a_query_nexthink_refuses_and_a_query_without_targets(tmp_path: Path) -> None:
    """An id the tenant has not saved (the sandbox answers 400) and rows the bot cannot read."""
    async with world_at(tmp_path, POLICY) as world:
        refused = await _preview(world, "run clear_disk_space query:#not_saved")
        assert reads(refused, "Nexthink refused reading the targets of the query")
        assert world.sandbox is not None
        world.sandbox.queries.add("#counts", [{"device.count": "3", "os": "Windows"}])
        unreadable = await _preview(world, "run clear_disk_space query:#counts")
        assert reads(unreadable, "no device or user the bot can read", "device.count")
        assert executes(world) == []


async def test_approval_applies_to_a_fleet_run(tmp_path: Path) -> None:
    """Run on a workflow behind approval asks for it; the approver's click runs it once."""
    async with world_at(tmp_path, POLICY) as world:
        preview = await _preview(world, "run reimage_device query:#low_disk_devices reason=disk")
        assert reads(preview, "It needs approval")
        await _click(world, "U0BOB", preview, ids.FLEET_RUN)
        assert executes(world) == []
        [request] = [m for m in world.slack.messages_in("C0APPROVALS") if not m.ephemeral]
        assert reads(request, "LAPTOP-BOB")
        await _click(world, "U0CAROL", request, ids.APPROVAL_APPROVE)
        [body] = executes(world)
        assert len(body["devices"]) == 3
        assert body["params"] == {"reason": "disk"}


async def test_a_visible_fleet_run_posts_in_the_channel(tmp_path: Path) -> None:
    async with world_at(tmp_path, POLICY) as world:
        preview = await _preview(world, LOW_DISK + " visible")
        await _click(world, "U0BOB", preview, ids.FLEET_RUN)
        started = world.slack.find_message(preview.channel, preview.ts)
        assert started is not None
        assert reads(started, "its reply follows in the channel")
        posted = [m for m in world.slack.messages_in("C0SUPPORT") if not m.ephemeral]
        assert len(posted) == 1
        assert reads(posted[0], "sent to Nexthink")
        assert len(executes(world)) == 1


async def test_a_big_run_ends_in_one_summary_within_slacks_limits(tmp_path: Path) -> None:
    """999 devices of which 3 do not exist: one execute; the reply becomes a summary (counts,
    then the failures) within Slack's limits; each follow-up poll is one NQL call."""
    async with world_at(tmp_path, POLICY, overrides=FOLLOW) as world:
        assert world.sandbox is not None
        world.sandbox.add_fleet("#fleet", 996, missing=3)
        preview = await _preview(world, "run clear_disk_space query:#fleet")
        assert reads(preview, "will run on 999 devices")
        await _click(world, "U0BOB", preview, ids.FLEET_RUN)
        [body] = executes(world)
        assert len(body["devices"]) == 999
        reply = world.slack.find_message(preview.channel, preview.ts)
        assert reply is not None

        def final() -> bool:
            current = world.slack.find_message(preview.channel, preview.ts)
            return current is not None and reads(current, "*Outcome:* 996 succeeded, 3 failed")

        await eventually(final, what="the big run's final summary")
        reply = world.slack.find_message(preview.channel, preview.ts)
        assert reply is not None
        assert reads(
            reply,
            "Failures:",
            ":x: GONE-FLEET-00001 — failed: not found",
            ":x: GONE-FLEET-00003 — failed: not found",
        )
        assert "FLEET-00001 — success" not in text_of(reply)  # a summary, not 999 lines
        blocks = reply.blocks or []
        assert len(blocks) <= 50
        assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)
        assert len(text_of(reply)) < 6000
        assert world.bot is not None
        [record] = await world.bot.store.history("U0BOB")
        assert record.state == "failed"
        store = world.bot.store
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        # the reply is updated just before the follow-up is marked done: wait for that too
        while not (followup := (await store.followups_for([record.id]))[0]).done:
            assert loop.time() < deadline, "the follow-up was not finished"
            await asyncio.sleep(0.05)
        polls = [e for e in world.sandbox.requests("nql") if e.body["queryId"] == QUERY_ID]
        assert {e.body["parameters"]["request_id"] for e in polls} == set(
            record.nexthink_request_uuids
        )
        assert len(polls) == followup.attempts + 1  # one NQL call per look, not per target
        hooks = [c for c in world.slack.calls_to("response_url") if c.ok]
        assert len(hooks) <= 5 + 1  # the preview, then the run's reply and its updates
        assert [m.via for m in seen_by(world, "U0BOB")].count("response_url") == 1


async def test_on_an_instance_without_v2_a_fleet_of_collector_uids_goes_through_v1(
    tmp_path: Path,
) -> None:
    """The query's rows carry Collector UUIDs and SIDs, which V1 expresses: sent through V1."""
    async with (
        Sandbox(execution_delay=0.05, without_v2=True) as sandbox,
        world_at(tmp_path, POLICY, sandbox=sandbox) as world,
    ):
        for text in (LOW_DISK, "run unlock_account query:#vip_users"):
            preview = await _preview(world, text)
            await _click(world, "U0BOB", preview, ids.FLEET_RUN)
            assert "sent to Nexthink" in text_of(last_answer(world, "U0BOB"))
        bodies = []
        for entry in sandbox.requests("execute_v1"):
            validate_request("POST", entry.path, headers=dict(entry.headers), body=entry.body)
            bodies.append(entry.body)
        assert [len(b["devices"]) for b in bodies] == [3, 0]
        assert [len(b["users"]) for b in bodies] == [0, 2]


async def test_a_fleet_runs_ticket_is_kept_from_the_preview_to_the_run(tmp_path: Path) -> None:
    """A workflow that asks for a ticket: a fleet run without one is refused before any query;
    with one, the preview shows it, and the Run click sends it to Nexthink as its parameter and
    records it with the run (history, audit trail)."""
    policy = POLICY.replace(
        "workflows:\n",
        "workflows:\n  clear_disk_space:\n"
        '    ticket: {required: true, pattern: "^CHG[0-9]{7}$", param: "ticket"}\n',
    )
    async with world_at(tmp_path, policy) as world:
        refused = await _preview(world)
        assert reads(refused, "needs a ticket")
        assert _target_queries(world) == []

        preview = await _preview(world, LOW_DISK + " ticket:CHG0001234")
        assert reads(preview, "will run on 3 devices", "Ticket: `CHG0001234`")
        assert executes(world) == []
        await _click(world, "U0BOB", preview, ids.FLEET_RUN)
        [body] = executes(world)
        assert body["params"] == {"ticket": "CHG0001234"}
        assert world.bot is not None
        [record] = await world.bot.store.history("U0BOB")
        assert (record.state, record.ticket) == ("sent", "CHG0001234")
        events = [e async for e in world.bot.store.iter_audit()]
        [executed] = [e for e in events if e.event == "executed"]
        assert executed.ticket == "CHG0001234"
