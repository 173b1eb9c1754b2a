"""The requester's one reply about the people a run asked: each person's state (asked, sending,
sent with its request id, Not now, expired, …), updated in place as each answers, from the
store.

Each test runs the real bot over loopback: LocalSlack, the Nexthink sandbox, a SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import consent
from bot.console.localslack import Message
from bot.console.world import World
from handlers import ids
from tests.support.e2e import answers, executes, text_of, world_at
from tests.test_e2e_consent import POLICY, click, command, question

HEAD = "runs on someone only after they allow it"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY) as w:
        yield w


def round_replies(world: World, user_id: str = "U0BOB") -> list[Message]:
    """The bot's replies to ``user_id`` about the people asked (there should be one)."""
    return [m for m in answers(world, user_id) if HEAD in text_of(m)]


def the_reply(world: World) -> str:
    found = round_replies(world)
    assert len(found) == 1, [text_of(m) for m in found]
    return text_of(found[0])


async def test_one_reply_shows_each_persons_state_as_they_answer(world: World) -> None:
    """A run on Alice and Carol: Bob's one reply lists both as asked; Alice's Allow turns her
    line into sent (with Nexthink's request id), Carol's Not now turns hers into Not now, in
    the same message."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> user:<@U0CAROL> mode=soft")
    reply = the_reply(world)
    assert reply.count("asked by direct message") == 2
    assert "<@U0ALICE>" in reply
    assert "<@U0CAROL>" in reply

    await click(world, "U0ALICE", question(world, "U0ALICE"), ids.CONSENT_ALLOW)
    assert world.sandbox is not None
    (entry,) = world.sandbox.requests("execute_v2")
    uuid = entry.response["requestUuid"]
    reply = the_reply(world)
    alice = next(line for line in reply.splitlines() if "<@U0ALICE>" in line)
    assert "allowed; sent to Nexthink" in alice
    assert uuid in alice
    carol = next(line for line in reply.splitlines() if "<@U0CAROL>" in line)
    assert "asked by direct message" in carol

    await click(world, "U0CAROL", question(world, "U0CAROL"), ids.CONSENT_NOT_NOW)
    reply = the_reply(world)
    lines = reply.splitlines()
    assert any("<@U0ALICE>" in line and uuid in line for line in lines)
    assert any("<@U0CAROL>" in line and "said *Not now*" in line for line in lines)
    assert "Nothing is sent to Nexthink for anyone before" not in reply  # nobody left to answer
    assert "2 of 2 answered" in reply
    assert len(executes(world)) == 1
    # no separate message per event: Not now is in the one reply only
    assert not [
        m for m in answers(world, "U0BOB") if "Not now" in text_of(m) and HEAD not in text_of(m)
    ]


async def test_expiry_shows_in_the_reply(world: World) -> None:
    """Nobody answers: the sweep's expiry turns the line into expired, in the same reply."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> user:<@U0CAROL> mode=soft")
    await click(world, "U0CAROL", question(world, "U0CAROL"), ids.CONSENT_NOT_NOW)
    assert world.bot is not None
    later = datetime.now(UTC) + timedelta(minutes=31)
    assert await consent.sweep_expired(world.bot, now=later) == 1
    await world.settle()
    lines = the_reply(world).splitlines()
    assert any(
        "<@U0ALICE>" in line and "did not answer in time (expired)" in line for line in lines
    )
    assert any("<@U0CAROL>" in line and "said *Not now*" in line for line in lines)
    assert executes(world) == []


async def test_the_reply_moves_to_a_direct_message_when_slack_stops_taking_its_url(
    world: World,
) -> None:
    """Three people allowing make more updates than a response URL takes (5): the reply then
    continues as a direct message with every state, updated in place."""
    await command(
        world,
        "U0BOB",
        "run restart_teams user:<@U0ALICE> user:<@U0CAROL> user:dave@example.com mode=soft",
    )
    for person in ("U0ALICE", "U0CAROL", "U0DAVE"):
        await click(world, person, question(world, person), ids.CONSENT_ALLOW)
    assert len(executes(world)) == 3
    replies = round_replies(world)
    dm = world.slack.dm_channel("U0BOB")
    moved = [m for m in replies if m.channel == dm and not m.ephemeral]
    assert len(moved) == 1, [(m.channel, m.ephemeral) for m in replies]
    final = text_of(moved[0])
    assert final.count("allowed; sent to Nexthink (request") == 3
    assert "3 of 3 answered" in final


async def test_with_a_part_that_runs_at_once_the_reply_is_a_direct_message(world: World) -> None:
    """Bob's run on Alice and himself: his own part runs at once and its result answers through
    the command's URL; the reply about Alice is a direct message, so her Allow updates it and
    leaves that result alone."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> user:<@U0BOB> mode=soft")
    assert [e["users"] for e in executes(world)] == [[{"upn": "bob@example.com"}]]
    (reply,) = round_replies(world)
    assert reply.channel == world.slack.dm_channel("U0BOB")
    assert "Runs at once on:" in text_of(reply)
    results = [
        m for m in answers(world, "U0BOB") if m is not reply and "sent to Nexthink" in text_of(m)
    ]
    assert len(results) == 1
    await click(world, "U0ALICE", question(world, "U0ALICE"), ids.CONSENT_ALLOW)
    assert len(executes(world)) == 2
    assert "allowed; sent to Nexthink (request" in the_reply(world)
    assert HEAD not in text_of(results[0])  # not replaced by the reply about Alice
    assert "bob@example.com" in text_of(results[0])


async def test_an_allow_whose_process_died_shows_as_interrupted(world: World) -> None:
    """An Allow recorded by a process that died before its execute was answered: the stale sweep
    closes it, and Bob's reply shows it as interrupted (outcome unknown), never sent again."""
    await command(world, "U0BOB", "run restart_teams user:<@U0ALICE> mode=soft")
    assert world.bot is not None
    (waiting,) = await world.bot.store.consents_waiting_on("U0ALICE")
    # what a dying process leaves: the Allow recorded, its execute never answered
    answer = await world.bot.store.decide_consent(waiting.id, "U0ALICE", allow=True)
    assert answer.accepted
    assert await consent.sweep_stale(world.bot, older_than=timedelta(0)) == 1
    await world.settle()
    line = next(line for line in the_reply(world).splitlines() if "<@U0ALICE>" in line)
    assert "the bot stopped while sending it to Nexthink: whether it ran is unknown" in line
    assert executes(world) == []
