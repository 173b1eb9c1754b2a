"""The policy file end to end: roles, groups, channels, targets, visibility, UPN rewrite, limits."""

from __future__ import annotations

from pathlib import Path

from bot.console.world import World
from tests.support.e2e import ack_problems, answers, executes, last_answer, text_of, world_at

TEAMS = "run restart_teams"


async def _run(world: World, user_id: str, text: str, channel_id: str = "C0SUPPORT") -> str:
    """Send a command, wait for the bot, return the text of its last answer to ``user_id``."""
    assert world.driver is not None
    response = await world.driver.command(user_id, text, channel_id=channel_id)
    assert response.status == 200
    assert not ack_problems(response)
    await world.settle()
    return text_of(last_answer(world, user_id))


async def test_someone_in_no_role_may_run_nothing(tmp_path: Path) -> None:
    """With a policy file, a person who matches no role is refused and nothing is sent."""
    policy = """
        roles:
          support:
            members: ["U0BOB"]
            workflows: ["*"]
    """
    async with world_at(tmp_path, policy) as world:
        shown = await _run(world, "U0ALICE", TEAMS)
        assert "restart_teams" in shown
        assert executes(world) == []
        await _run(world, "U0BOB", TEAMS)
        assert len(executes(world)) == 1


async def test_a_workflow_outside_the_callers_roles_is_refused(tmp_path: Path) -> None:
    """A workflow the caller's roles do not cover is treated as unknown to them; nothing is sent."""
    policy = """
        roles:
          everyone:
            members: ["*"]
            workflows: ["clear_*"]
    """
    async with world_at(tmp_path, policy) as world:
        shown = await _run(world, "U0ALICE", TEAMS)
        assert "no workflow `restart_teams` that you may run" in shown
        assert executes(world) == []
        await _run(world, "U0ALICE", "run clear_disk_space")
        assert [e["workflowId"] for e in executes(world)] == ["clear_disk_space"]


async def test_runs_beyond_the_per_minute_limit_are_refused(tmp_path: Path) -> None:
    """`limits.runs_per_user_per_minute` refuses the run after the limit, for that user only."""
    policy = """
        roles:
          everyone:
            members: ["*"]
            workflows: ["*"]
        limits:
          runs_per_user_per_minute: 2
    """
    async with world_at(tmp_path, policy) as world:
        for _ in range(2):
            assert "sent to Nexthink" in await _run(world, "U0ALICE", TEAMS)
        shown = await _run(world, "U0ALICE", TEAMS)
        assert "2 runs in the last minute" in shown
        assert "Try again in" in shown
        assert len(executes(world)) == 2
        assert "sent to Nexthink" in await _run(world, "U0BOB", TEAMS)
        assert len(executes(world)) == 3


async def test_upn_rewrite_applies_to_slack_profiles_but_not_to_typed_upns(tmp_path: Path) -> None:
    """`upn.domains` rewrites the requester's and mentioned users' emails; a typed UPN is kept."""
    policy = """
        roles:
          engineers:
            members: ["bob@corp.example.com"]
            workflows: ["*"]
            targets: any
          everyone:
            members: ["*"]
            workflows: ["restart_teams"]
        upn:
          domains: {"example.com": "corp.example.com"}
    """
    async with world_at(tmp_path, policy) as world:
        await _run(world, "U0ALICE", TEAMS)
        await _run(
            world,
            "U0BOB",
            "run unlock_account user:<@U0CAROL|carol> user:dave@example.com",
        )
        first, second = executes(world)
        assert first["users"] == [{"upn": "alice@corp.example.com"}]
        assert second["users"] == [{"upn": "carol@corp.example.com"}, {"upn": "dave@example.com"}]


async def test_user_group_handles_in_roles_grant_their_members(tmp_path: Path) -> None:
    """A role whose members are `@it-support` lets that group's members target others."""
    policy = """
        roles:
          engineers:
            members: ["@it-support"]
            workflows: ["*"]
            targets: any
          everyone:
            members: ["*"]
            workflows: ["restart_teams"]
            targets: self
    """
    async with world_at(tmp_path, policy) as world:
        assert "sent to Nexthink" in await _run(world, "U0BOB", f"{TEAMS} user:<@U0ALICE>")
        shown = await _run(world, "U0ALICE", f"{TEAMS} user:<@U0BOB>")
        assert "only run `restart_teams` on yourself" in shown
        assert [e["users"] for e in executes(world)] == [[{"upn": "alice@example.com"}]]
        assert len(world.slack.calls_to("usergroups.list")) == 1


async def test_channel_limited_roles_apply_only_in_their_channels(tmp_path: Path) -> None:
    """A role with `channels` grants nothing elsewhere, and the refusal names its channels."""
    policy = """
        roles:
          support:
            members: ["U0BOB"]
            channels: ["C0SUPPORT"]
            workflows: ["unlock_account"]
            targets: any
    """
    async with world_at(tmp_path, policy) as world:
        await _run(world, "U0BOB", "run unlock_account user:<@U0ALICE>", channel_id="C0SUPPORT")
        shown = await _run(
            world, "U0BOB", "run unlock_account user:<@U0ALICE>", channel_id="C0GENERAL"
        )
        assert "only in <#C0SUPPORT>" in shown
        assert len(executes(world)) == 1


async def test_targets_self_refuses_other_users_and_devices(tmp_path: Path) -> None:
    """`targets: self` refuses `user:` naming someone else and any `device:`, but allows oneself."""
    policy = """
        roles:
          everyone:
            members: ["*"]
            workflows: ["restart_teams"]
            targets: self
    """
    async with world_at(tmp_path, policy) as world:
        by_mention = await _run(world, "U0ALICE", f"{TEAMS} user:<@U0BOB|bob>")
        by_upn = await _run(world, "U0ALICE", f"{TEAMS} user:bob@example.com")
        by_device = await _run(world, "U0ALICE", f"{TEAMS} device:LAPTOP-ALICE")
        # a refused mention is named as the mention: it costs no profile look-up (#13, seam 7)
        assert "not on <@U0BOB>" in by_mention
        assert "on yourself" in by_mention
        assert "on yourself" in by_upn
        assert "device:LAPTOP-ALICE" in by_device
        assert "on yourself" in by_device
        assert executes(world) == []
        await _run(world, "U0ALICE", f"{TEAMS} user:<@U0ALICE|alice>")
        assert executes(world)[0]["users"] == [{"upn": "alice@example.com"}]


async def test_a_visible_role_posts_the_run_in_the_channel(tmp_path: Path) -> None:
    """With `visible: true` the run's result is posted in the channel for everyone."""
    policy = """
        roles:
          everyone:
            members: ["*"]
            workflows: ["*"]
            visible: true
    """
    async with world_at(tmp_path, policy) as world:
        await _run(world, "U0ALICE", TEAMS, channel_id="C0GENERAL")
        reply = last_answer(world, "U0ALICE")
        assert not reply.ephemeral
        assert reply.channel == "C0GENERAL"
        assert "sent to Nexthink" in reply.text
        assert reply in answers(world, "U0BOB")  # Bob sees it too


async def test_refusals_of_a_visible_role_stay_ephemeral(tmp_path: Path) -> None:
    """Even with `visible: true`, a refused run is shown only to the requester."""
    policy = """
        roles:
          everyone:
            members: ["*"]
            workflows: ["*"]
            visible: true
    """
    async with world_at(tmp_path, policy) as world:
        await _run(world, "U0ALICE", f"{TEAMS} device:LAPTOP-BOB", channel_id="C0GENERAL")
        reply = last_answer(world, "U0ALICE")
        assert reply.ephemeral
        assert reply.user == "U0ALICE"
        assert answers(world, "U0BOB") == []


async def test_a_visible_run_is_posted_in_the_channel_when_the_response_url_expired(
    tmp_path: Path,
) -> None:
    """A visible run whose response URL expired is posted with `chat.postMessage` instead."""
    policy = """
        roles:
          everyone:
            members: ["*"]
            workflows: ["*"]
            visible: true
    """
    async with world_at(tmp_path, policy) as world:
        world.slack.response_url_ttl = -1.0
        await _run(world, "U0ALICE", TEAMS, channel_id="C0GENERAL")
        reply = last_answer(world, "U0ALICE")
        assert reply.via == "chat.postMessage"
        assert not reply.ephemeral
        assert reply.channel == "C0GENERAL"
        assert "sent to Nexthink" in reply.text
