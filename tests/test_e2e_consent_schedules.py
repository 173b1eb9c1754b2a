"""Consent for a run asked for later: scheduling it asks each person at once (their question says
when it runs); an Allow records consent and sends nothing; at its time the run is sent once for
those who allowed, never for those who said Not now, and whoever has not answered is expired and
reported. Cancelling it closes the questions.

Real sockets: LocalSlack, the Nexthink sandbox, a SQLite file; the schedule loop runs as in
production. The tests wait for events, and where a run's time must pass, until the clock has
passed it (``tests/test_e2e_schedules.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.console.localslack import Message
from bot.console.world import World
from handlers import ids
from tests.support.e2e import answers, executes, text_of, world_at
from tests.test_e2e_consent import ALICE_ONLY, POLICY, buttons, click, question
from tests.test_e2e_schedules import in_state, schedule, stored, told, until_past

HEAD = "it runs on someone only if they allow it before then"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY) as w:
        yield w


def the_reply(world: World) -> Message:
    """Bob's one message about the people asked (a direct message: the scheduled run's own reply
    answers through the command's URL)."""
    found = [m for m in answers(world, "U0BOB") if HEAD in text_of(m)]
    assert len(found) == 1, [text_of(m) for m in answers(world, "U0BOB")]
    return found[0]


def line_of(world: World, user_id: str) -> str:
    return next(line for line in text_of(the_reply(world)).splitlines() if f"<@{user_id}>" in line)


async def test_an_allow_before_its_time_runs_it_once_at_its_time(world: World) -> None:
    """Alice is asked when Bob schedules the run; her Allow sends nothing; at its time one V2
    execute is sent for her, and Bob's reply shows it sent with Nexthink's request id."""
    code = await schedule(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft in 15s")
    asked = await stored(world, code)
    assert asked.state == "scheduled"
    ask = question(world, "U0ALICE")
    assert f"<!date^{int(asked.run_at.timestamp())}^" in text_of(ask)  # when it runs
    assert "Runs at" in text_of(ask)
    assert buttons(ask) == ["Allow", "Not now"]
    assert "they are asked now" in "\n".join(text_of(m) for m in answers(world, "U0BOB"))
    assert "asked by direct message" in line_of(world, "U0ALICE")

    await click(world, "U0ALICE", ask, ids.CONSENT_ALLOW)
    assert executes(world) == []  # consent recorded, nothing sent before its time
    assert "it runs on you at its time" in text_of(ask)
    assert buttons(ask) == []
    assert "allowed; it runs for them at its time" in line_of(world, "U0ALICE")

    await in_state(world, code, "ran")
    assert world.sandbox is not None
    (execute,) = world.sandbox.requests("execute_v2")
    assert execute.at >= asked.run_at
    assert executes(world) == [ALICE_ONLY]
    uuid = execute.response["requestUuid"]
    await told(world, "U0BOB", uuid)
    assert uuid in line_of(world, "U0ALICE")
    assert "allowed; sent to Nexthink" in line_of(world, "U0ALICE")
    assert "You allowed it; sent to Nexthink" in text_of(ask)
    await world.settle()
    assert len(world.sandbox.requests("execute_v2")) == 1


async def test_not_now_and_no_answer_run_nothing_and_are_reported(world: World) -> None:
    """Alice says Not now, Carol never answers: at its time nothing is sent; Carol's question
    expires and Bob's reply shows Not now and expired; a late Allow changes nothing."""
    code = await schedule(
        world, "U0BOB", "run restart_teams user:<@U0ALICE> user:<@U0CAROL> mode=soft in 5s"
    )
    asked = await stored(world, code)
    await click(world, "U0ALICE", question(world, "U0ALICE"), ids.CONSENT_NOT_NOW)
    carol = question(world, "U0CAROL")
    late = dataclasses.replace(carol)
    assert "said *Not now*" in line_of(world, "U0ALICE")

    done = await in_state(world, code, "closed", "ran")
    await until_past(asked.run_at)
    await world.settle()
    assert done.state == "closed"
    assert executes(world) == []
    assert "did not answer in time (expired)" in line_of(world, "U0CAROL")
    assert "said *Not now*" in line_of(world, "U0ALICE")
    assert buttons(carol) == []
    assert "expired" in text_of(carol)
    await click(world, "U0CAROL", late, ids.CONSENT_ALLOW)
    assert executes(world) == []
    assert "This request for consent has expired; nothing was run." in "\n".join(
        text_of(m) for m in answers(world, "U0CAROL")
    )


async def test_cancelling_the_run_closes_its_questions(world: World) -> None:
    """Bob cancels before its time: Alice's question says it was cancelled, an Allow (before or
    after) sends nothing, and nothing runs at its time."""
    code = await schedule(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft in 10s")
    asked = await stored(world, code)
    ask = question(world, "U0ALICE")
    before = dataclasses.replace(ask)
    await click(world, "U0ALICE", ask, ids.CONSENT_ALLOW)
    assert world.driver is not None
    response = await world.driver.command("U0BOB", f"cancel {code}", channel_id="C0SUPPORT")
    assert response.status == 200
    await world.settle()
    assert (await stored(world, code)).state == "cancelled"
    assert "The scheduled run was cancelled; nothing runs on you." in text_of(ask)
    assert "cancelled" in line_of(world, "U0ALICE")
    await click(world, "U0ALICE", before, ids.CONSENT_ALLOW)
    expected = "The run this asked about was cancelled; nothing runs on you."
    assert expected in [m.text for m in answers(world, "U0ALICE")]
    await until_past(asked.run_at)
    await world.settle()
    assert executes(world) == []


async def test_with_approval_the_people_are_asked_once_it_is_approved(world: World) -> None:
    """A scheduled run of a workflow with approval and consent: the approver approves, then Alice
    is asked (her question says when it runs); her Allow runs it once at its time."""
    code = await schedule(world, "U0BOB", "run reimage_device user:<@U0ALICE> reason=broken in 15s")
    asked = await stored(world, code)
    dm = world.slack.dm_channel("U0ALICE")
    assert not [m for m in world.slack.messages_in(dm) if "asks to run" in text_of(m)]
    (approval,) = [m for m in world.slack.messages_in("C0APPROVALS") if not m.ephemeral]
    await click(world, "U0DAVE", approval, ids.APPROVAL_APPROVE)
    ask = question(world, "U0ALICE")
    assert f"<!date^{int(asked.run_at.timestamp())}^" in text_of(ask)
    await click(world, "U0ALICE", ask, ids.CONSENT_ALLOW)
    assert executes(world) == []
    await in_state(world, code, "ran")
    assert world.sandbox is not None
    (execute,) = world.sandbox.requests("execute_v2")
    assert execute.at >= asked.run_at
    assert [e["users"] for e in executes(world)] == [[{"upn": "alice@example.com"}]]
