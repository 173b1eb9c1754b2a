"""Visible runs: one message in the channel per request, whose thread carries the outcome and
any approval decision; the `visible` word of `/nexthink run` asks for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.console.localslack import Message
from bot.console.world import World
from handlers import ids
from handlers.grammar import GrammarError, Run, parse
from tests.support.e2e import answers, executes, text_of, world_at
from tests.support.outcomes import FOLLOW, eventually, reads

POLICY = """
roles:
  engineers:
    members: ["@it-support"]
    channels: ["C0SUPPORT"]
    workflows: ["*"]
    targets: any
    visible: true
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
workflows:
  unlock_account:
    approval: {channel: "C0APPROVALS", approvers: ["@it-leads"]}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY, overrides=FOLLOW) as w:
        yield w


def root_in(world: World, channel: str) -> Message:
    """The bot's one visible message in ``channel`` (not a thread reply)."""
    [root] = [
        m
        for m in world.slack.messages_in(channel)
        if not m.ephemeral and m.author == world.slack.bot_user_id and m.thread_ts is None
    ]
    return root


def thread_of(world: World, root: Message) -> list[Message]:
    return [m for m in world.slack.messages_in(root.channel) if m.thread_ts == root.ts]


@pytest.mark.parametrize(
    ("text", "visible"),
    [
        pytest.param("run restart_teams visible", True, id="word"),
        pytest.param("run restart_teams --Visible mode=hard", True, id="double-dash-any-case"),
        pytest.param("run restart_teams —visible", True, id="dash-slack-made"),
        pytest.param("run restart_teams note=visible", False, id="a-value"),
        pytest.param("run restart_teams", False, id="absent"),
    ],
)
def test_the_visible_word(text: str, visible: bool) -> None:
    """`visible` (or `--visible`) anywhere after the workflow makes the run visible."""
    command = parse(text)
    assert isinstance(command, Run)
    assert command.visible is visible
    assert command.workflow == "restart_teams"


def test_a_quoted_visible_is_not_the_flag() -> None:
    """A quoted "visible" is text, and `run` refuses a stray word."""
    with pytest.raises(GrammarError, match="Unexpected `visible`"):
        parse('run restart_teams "visible"')


async def test_the_visible_word_posts_one_entry_whose_thread_gets_the_outcome(
    world: World,
) -> None:
    """Alice's `run … visible` is one channel message for everyone; it is updated in place and
    its thread says how it ended."""
    assert world.driver is not None
    await world.driver.command("U0ALICE", "run restart_teams visible", channel_id="C0GENERAL")
    await world.settle()
    root = root_in(world, "C0GENERAL")
    assert root in answers(world, "U0BOB")  # everyone in the channel sees it
    assert reads(root, "sent to Nexthink", "alice@example.com — in progress")
    await eventually(lambda: reads(root, "*Outcome:* 1 succeeded"))
    await eventually(
        lambda: any(reads(m, "*Finished:* 1 succeeded") for m in thread_of(world, root))
    )
    [note] = thread_of(world, root)
    assert reads(note, ":white_check_mark: alice@example.com — success")
    assert [m for m in world.slack.messages_in("C0GENERAL") if m.thread_ts is None] == [root]


async def test_a_visible_role_threads_each_target_outcome(world: World) -> None:
    """An engineer's run in #it-support (a visible role) carries per-target outcomes in its thread."""
    assert world.driver is not None
    await world.driver.command(
        "U0BOB", "run clear_disk_space device:LAPTOP-BOB device:GONE-PC", channel_id="C0SUPPORT"
    )
    await world.settle()
    root = root_in(world, "C0SUPPORT")
    await eventually(lambda: reads(root, "*Outcome:* 1 succeeded, 1 failed"))
    lines = (
        ":x: device GONE-PC — failed: not found",
        ":white_check_mark: device LAPTOP-BOB — success",
        "*Finished:* 1 succeeded, 1 failed",
    )

    def thread() -> str:
        return "\n".join(text_of(m) for m in thread_of(world, root))

    # the entry and its thread are updated one after the other: wait for the thread too
    await eventually(lambda: all(line in thread() for line in lines), what=f"{lines} in the thread")


async def test_an_approval_decision_lands_in_the_runs_thread(world: World) -> None:
    """A visible run that needs approval posts its entry at once; the approval, the run and its
    outcome then follow in that entry's thread."""
    assert world.driver is not None
    await world.driver.command(
        "U0BOB", "run unlock_account user:<@U0ALICE|alice>", channel_id="C0SUPPORT"
    )
    await world.settle()
    root = root_in(world, "C0SUPPORT")
    assert reads(
        root, "<@U0BOB> asked to run *Unlock account*", "Waiting for approval in <#C0APPROVALS>"
    )
    assert executes(world) == []
    [asked] = world.slack.messages_in("C0APPROVALS")
    await world.driver.click("U0CAROL", asked, ids.APPROVAL_APPROVE)
    await world.settle()
    assert len(executes(world)) == 1
    assert reads(root, "sent to Nexthink")
    await eventually(lambda: reads(root, "*Outcome:* 1 succeeded"))
    thread = [text_of(m) for m in thread_of(world, root)]
    assert "Approved by <@U0CAROL>; sent to Nexthink" in thread[0]
    await eventually(
        lambda: any("*Finished:* 1 succeeded" in text_of(m) for m in thread_of(world, root))
    )
    assert [m for m in answers(world, "U0BOB") if m.ephemeral and m.channel == "C0SUPPORT"] == []


async def test_a_denial_lands_in_the_runs_thread(world: World) -> None:
    """A denied visible run says so in its thread, and its entry shows it was denied."""
    assert world.driver is not None
    await world.driver.command(
        "U0BOB", "run unlock_account user:<@U0ALICE|alice>", channel_id="C0SUPPORT"
    )
    await world.settle()
    root = root_in(world, "C0SUPPORT")
    [asked] = world.slack.messages_in("C0APPROVALS")
    world.slack.fail("views.open", "expired_trigger_id")  # no reason form: denied at once
    await world.driver.click("U0CAROL", asked, ids.APPROVAL_DENY)
    await world.settle()
    assert reads(root, "Denied; nothing was sent to Nexthink")
    [note] = thread_of(world, root)
    assert reads(note, "<@U0CAROL> denied your request")
    assert executes(world) == []
