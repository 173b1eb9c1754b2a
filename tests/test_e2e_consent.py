"""Consent of the person on the other end, end to end: a run of a workflow with ``consent:`` on
someone else asks them by direct message (Allow / Not now), and Nexthink is called for them only
after their Allow, once, whoever else clicks and however often.

Each test runs the real bot over loopback: LocalSlack, the Nexthink sandbox, a SQLite file.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import consent
from bot.console.localslack import Message
from bot.console.world import World
from bot.deciders import LOOKUP_FAILED
from handlers import ids
from tests.support.e2e import answers, executes, text_of, world_at

POLICY = """
schedule: {allowed: true, max_days: 14}
roles:
  support:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
    targets: self
workflows:
  restart_teams:
    consent: {required: true, expires_in_minutes: 30}
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["@it-leads"], count: 1}
    consent: {expires_in_minutes: 30}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY) as w:
        yield w


async def command(world: World, user_id: str, text: str, channel_id: str = "C0SUPPORT") -> None:
    assert world.driver is not None
    response = await world.driver.command(user_id, text, channel_id=channel_id)
    assert response.status == 200
    await world.settle()


async def click(world: World, user_id: str, message: Message, action_id: str) -> None:
    assert world.driver is not None
    response = await world.driver.click(user_id, message, action_id)
    assert response.status == 200
    await world.settle()


def question(world: World, user_id: str) -> Message:
    """The one request for consent the bot sent ``user_id`` by direct message."""
    dm = world.slack.dm_channel(user_id)
    found = [
        m
        for m in world.slack.messages_in(dm)
        if not m.ephemeral and "asks to run" in text_of(m) and m.author == world.slack.bot_user_id
    ]
    assert len(found) == 1, [text_of(m) for m in world.slack.messages_in(dm)]
    return found[0]


def buttons(message: Message) -> list[str]:
    return [
        str(e["text"]["text"])
        for b in message.blocks or []
        if b.get("type") == "actions"
        for e in b["elements"]
    ]


def told(world: World, user_id: str) -> str:
    """Everything the bot told ``user_id`` after the acknowledgements, as one text."""
    return "\n".join(text_of(m) for m in answers(world, user_id))


ALICE_ONLY = {
    "workflowId": "restart_teams",
    "users": [{"upn": "alice@example.com"}],
    "devices": [],
    "params": {"mode": "soft"},
}


async def test_nothing_is_executed_before_the_person_allows_it(world: World) -> None:
    """Bob's run on Alice asks Alice (who asks, workflow, parameters, expiry) and sends nothing;
    her Allow sends exactly one V2 execute for her, and Bob gets the run's reply."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft")
    assert executes(world) == []
    ask = question(world, "U0ALICE")
    shown = text_of(ask)
    assert "<@U0BOB> asks to run *Restart Teams* (`restart_teams`) on you." in shown
    assert "`mode=soft`" in shown
    assert "<!date^" in shown  # when it expires
    assert buttons(ask) == ["Allow", "Not now"]
    reply = told(world, "U0BOB")
    assert "<@U0ALICE>" in reply
    assert "asked by direct message" in reply
    assert "Nothing is sent to Nexthink for anyone before they allow it" in reply

    await click(world, "U0ALICE", ask, ids.CONSENT_ALLOW)
    assert executes(world) == [ALICE_ONLY]
    assert buttons(ask) == []
    assert "You allowed it; sent to Nexthink" in text_of(ask)
    assert world.sandbox is not None
    (entry,) = world.sandbox.requests("execute_v2")
    assert entry.response["requestUuid"] in told(world, "U0BOB")


async def test_the_form_waits_for_consent_too(world: World) -> None:
    """The run form goes the same way: choosing Alice in the form asks her; nothing runs."""
    assert world.driver is not None
    await command(world, "U0BOB", "")
    (view,) = [v for v in world.slack.views.values() if v.user_id == "U0BOB"]
    await world.driver.click("U0BOB", view, ids.MODAL_WORKFLOW, "restart_teams")
    await world.settle()
    response = await world.driver.submit_view(
        "U0BOB", view.id, {ids.MODAL_USERS_BLOCK: {ids.MODAL_USERS: ["U0ALICE"]}}
    )
    assert response.status == 200
    await world.settle()
    assert executes(world) == []
    ask = question(world, "U0ALICE")
    await click(world, "U0ALICE", ask, ids.CONSENT_ALLOW)
    assert [e["users"] for e in executes(world)] == [[{"upn": "alice@example.com"}]]


async def test_double_clicks_on_allow_execute_once(world: World) -> None:
    """Ten Allow clicks at once by the person asked send one execute; later clicks are told."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft")
    ask = question(world, "U0ALICE")
    assert world.driver is not None
    clicks = [
        world.driver.click("U0ALICE", dataclasses.replace(ask), ids.CONSENT_ALLOW)
        for _ in range(10)
    ]
    assert {r.status for r in await asyncio.gather(*clicks)} == {200}
    await world.settle()
    assert executes(world) == [ALICE_ONLY]
    refusals = [m.text for m in answers(world, "U0ALICE") if "already answered" in m.text]
    assert refusals == ["This request for consent was already answered."] * 9


async def test_not_now_reaches_the_requester_and_runs_nothing(world: World) -> None:
    """Not now closes the question, runs nothing, and tells Bob who said it."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft")
    ask = question(world, "U0ALICE")
    before = dataclasses.replace(ask)
    await click(world, "U0ALICE", ask, ids.CONSENT_NOT_NOW)
    assert executes(world) == []
    assert buttons(ask) == []
    assert "You said Not now" in text_of(ask)
    assert "<@U0ALICE> (alice@example.com): :no_entry_sign: said *Not now*" in told(world, "U0BOB")
    await click(world, "U0ALICE", before, ids.CONSENT_ALLOW)  # a change of mind comes too late
    assert executes(world) == []
    assert "This request for consent was already answered." in told(world, "U0ALICE")
    assert ("consent_refused", "U0ALICE", "not_now") in await audit_events(world)


async def test_expiry_reaches_the_requester_and_a_late_allow_runs_nothing(world: World) -> None:
    """The sweep closes an unanswered question at its expiry and tells Bob; Allow then does nothing."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft")
    ask = question(world, "U0ALICE")
    before = dataclasses.replace(ask)
    assert world.bot is not None
    later = datetime.now(UTC) + timedelta(minutes=31)
    assert await consent.sweep_expired(world.bot, now=later) == 1
    assert await consent.sweep_expired(world.bot, now=later) == 0
    assert "<@U0ALICE> (alice@example.com): :hourglass: did not answer in time" in told(
        world, "U0BOB"
    )
    assert buttons(ask) == []
    assert "expired" in text_of(ask)
    await click(world, "U0ALICE", before, ids.CONSENT_ALLOW)
    assert executes(world) == []
    assert "This request for consent has expired; nothing was run." in told(world, "U0ALICE")


async def test_a_strangers_click_does_nothing(world: World) -> None:
    """Carol clicking Allow (or Not now) on Alice's question changes nothing; Alice still decides."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft")
    ask = question(world, "U0ALICE")
    await click(world, "U0CAROL", dataclasses.replace(ask), ids.CONSENT_ALLOW)
    await click(world, "U0CAROL", dataclasses.replace(ask), ids.CONSENT_NOT_NOW)
    await click(world, "U0BOB", dataclasses.replace(ask), ids.CONSENT_ALLOW)  # nor the requester
    assert executes(world) == []
    assert buttons(ask) == ["Allow", "Not now"]
    expected = "This asks <@U0ALICE> for their consent; only they can answer it."
    assert [m.text for m in answers(world, "U0CAROL")] == [expected, expected]
    assert "said *Not now*" not in told(world, "U0BOB")
    assert "no answer yet" in told(world, "U0BOB")
    await click(world, "U0ALICE", ask, ids.CONSENT_ALLOW)
    assert executes(world) == [ALICE_ONLY]


async def test_several_people_each_get_their_own_execute(world: World) -> None:
    """A run on Alice and Carol asks both; each Allow sends one execute for that person alone."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> user:carol@example.com")
    alice, carol = question(world, "U0ALICE"), question(world, "U0CAROL")
    await click(world, "U0CAROL", carol, ids.CONSENT_ALLOW)
    assert [e["users"] for e in executes(world)] == [[{"upn": "carol@example.com"}]]
    await click(world, "U0ALICE", alice, ids.CONSENT_NOT_NOW)
    assert len(executes(world)) == 1
    assert "<@U0ALICE> (alice@example.com): :no_entry_sign: said *Not now*" in told(world, "U0BOB")


async def test_a_run_on_yourself_needs_no_consent(world: World) -> None:
    """Alice running restart_teams on herself runs at once; nobody is asked."""
    await command(world, "U0ALICE", "run restart_teams mode=soft", channel_id="C0GENERAL")
    assert executes(world) == [ALICE_ONLY]
    assert not [
        m
        for m in world.slack.messages_in(world.slack.dm_channel("U0ALICE"))
        if "asks to run" in text_of(m)
    ]


async def test_device_only_targets_of_a_consent_workflow_are_refused(world: World) -> None:
    """Naming a device instead of the person is refused with the reason; nothing is sent."""
    await command(world, "U0BOB", "run restart_teams device:LAPTOP-ALICE")
    assert executes(world) == []
    assert "needs the person's consent" in told(world, "U0BOB")
    assert "`user:`" in told(world, "U0BOB")


async def test_approval_comes_first_then_consent(world: World) -> None:
    """A workflow with approval and consent: the approver approves, then Alice is asked, then
    her Allow runs it once."""
    await command(world, "U0BOB", "run reimage_device user:<@U0ALICE> reason=broken")
    (approval,) = [m for m in world.slack.messages_in("C0APPROVALS") if not m.ephemeral]
    assert not [
        m
        for m in world.slack.messages_in(world.slack.dm_channel("U0ALICE"))
        if "asks to run" in text_of(m)
    ]
    await click(world, "U0DAVE", approval, ids.APPROVAL_APPROVE)
    assert executes(world) == []
    assert "waiting for the consent" in text_of(approval)
    ask = question(world, "U0ALICE")
    await click(world, "U0ALICE", ask, ids.CONSENT_ALLOW)
    assert executes(world) == [
        {
            "workflowId": "reimage_device",
            "users": [{"upn": "alice@example.com"}],
            "devices": [],
            "params": {"reason": "broken"},
        }
    ]


async def audit_events(world: World) -> list[tuple[str, str | None, str | None]]:
    assert world.bot is not None
    return [(r.event, r.actor, r.result) async for r in world.bot.store.iter_audit()]


async def test_the_audit_trail_keeps_asked_given_and_refused(world: World) -> None:
    """consent_asked (by the requester), consent_given (by the person asked) before executed,
    and consent_refused for Not now and for expiry (by nobody)."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> user:<@U0CAROL> mode=soft")
    await click(world, "U0ALICE", question(world, "U0ALICE"), ids.CONSENT_ALLOW)
    assert world.bot is not None
    later = datetime.now(UTC) + timedelta(minutes=31)
    assert await consent.sweep_expired(world.bot, now=later) == 1
    trail = [e for e in await audit_events(world) if e[0] != "run_requested"]
    assert trail == [
        ("consent_asked", "U0BOB", "asked"),
        ("consent_asked", "U0BOB", "asked"),
        ("consent_given", "U0ALICE", "allowed"),
        ("executed", "U0BOB", "sent"),
        ("consent_refused", None, "expired"),
    ]


async def test_the_sweep_loop_expires_an_unanswered_question(tmp_path: Path) -> None:
    """With a short expiry, the bot's own sweep loop (``SWEEP_SECONDS``) closes the question and
    tells the requester, with no help from the test."""
    short = POLICY.replace("expires_in_minutes: 30}", "expires_in_minutes: 0.05}", 1)
    async with world_at(tmp_path, short, overrides={"sweep_seconds": 0.5}) as world:
        await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft")
        ask = question(world, "U0ALICE")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120  # bounds a hung test; the expiry itself is 3 s
        while "did not answer in time (expired)" not in told(world, "U0BOB"):
            assert loop.time() < deadline, "the sweep did not expire the question"
            await asyncio.sleep(0.05)
        assert buttons(ask) == []
        assert executes(world) == []


async def test_a_click_by_someone_the_bot_cannot_establish_does_nothing(tmp_path: Path) -> None:
    """The person asked clicks Allow while Slack cannot tell who they are: it fails closed
    (``bot.deciders.person``), nothing is sent and the question stays; once Slack answers
    again, their Allow runs it once."""
    async with world_at(tmp_path, POLICY, overrides={"profile_cache_seconds": 0}) as world:
        await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft")
        ask = question(world, "U0ALICE")
        world.slack.fail("users.info", "internal_error", times=20)
        await click(world, "U0ALICE", dataclasses.replace(ask), ids.CONSENT_ALLOW)
        assert executes(world) == []
        assert LOOKUP_FAILED in [m.text for m in answers(world, "U0ALICE")]
        assert buttons(ask) == ["Allow", "Not now"]
        world.slack._failures.clear()  # Slack answers again
        await click(world, "U0ALICE", ask, ids.CONSENT_ALLOW)
        assert executes(world) == [ALICE_ONLY]


async def test_the_home_tab_of_the_person_asked_lists_it_with_allow_and_not_now(
    world: World,
) -> None:
    """Alice's Home lists Bob's run waiting on her consent, with Allow and Not now; her Allow
    there runs it once, like the question's, and the Home no longer lists it. Bob's Home does
    not list it."""
    from tests.support.outcomes import home_text
    from tests.test_e2e_home import open_home

    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft")
    await open_home(world, "U0BOB")
    assert "Waiting for your consent" not in home_text(world, "U0BOB")
    view = await open_home(world, "U0ALICE")
    text = home_text(world, "U0ALICE")
    assert "Waiting for your consent" in text
    assert "<@U0BOB> asks to run *Restart Teams* (`restart_teams`) on you with `mode=soft`" in text
    assert world.driver is not None
    await world.driver.click("U0ALICE", view, ids.CONSENT_ALLOW)
    await world.settle()
    assert executes(world) == [ALICE_ONLY]
    assert "You allowed it; sent to Nexthink" in text_of(question(world, "U0ALICE"))
    assert "Waiting for your consent" not in home_text(world, "U0ALICE")
