"""The `/nexthink` command end to end: signed requests in, Web API calls and V2 executes out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.console.world import World
from bot.nexthink.models import WorkflowStatus
from bot.sandbox.catalogue import PAUSING_WORKFLOW_ID
from tests.support.e2e import (
    ack_problems,
    answers,
    executes,
    last_answer,
    seen_by,
    text_of,
    world_at,
)
from tests.support.openapi import validate_request
from tests.support.secret_scan import captured_lines

ENGINEERS = """
roles:
  engineers:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
    resume: true
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
    targets: self
workflows:
  restart_teams:
    alias: fix-teams
"""
LAPTOP_42 = "6b3c8f2e-1d4a-4c5b-9e7f-0a1b2c3d4e5f"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path) as w:
        yield w


@pytest.fixture
async def engineers(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, ENGINEERS) as w:
        yield w


async def test_self_service_run_sends_a_v2_execute_for_the_requester(world: World) -> None:
    """`/nexthink run restart_teams` with no target runs on the requester's own UPN."""
    assert world.driver is not None
    assert world.sandbox is not None
    response = await world.driver.command(
        "U0ALICE", "run restart_teams mode=hard", channel_id="C0GENERAL"
    )
    assert response.status == 200
    assert not ack_problems(response)
    await world.settle()
    assert executes(world) == [
        {
            "workflowId": "restart_teams",
            "users": [{"upn": "alice@example.com"}],
            "devices": [],
            "params": {"mode": "hard"},
        }
    ]
    reply = last_answer(world, "U0ALICE")
    assert "sent to Nexthink" in reply.text
    request_uuid = world.sandbox.requests("execute_v2")[0].response["requestUuid"]
    assert request_uuid in text_of(reply)


async def test_engineer_runs_on_another_user_and_devices(engineers: World) -> None:
    """An engineer names a user by mention, a device by name and a device by Collector UUID."""
    assert engineers.driver is not None
    await engineers.driver.command(
        "U0BOB",
        f"run restart_teams user:<@U0ALICE|alice> device:LAPTOP-BOB device:{LAPTOP_42.upper()}",
    )
    await engineers.settle()
    assert executes(engineers) == [
        {
            "workflowId": "restart_teams",
            "users": [{"upn": "alice@example.com"}],
            "devices": [{"name": "LAPTOP-BOB"}, {"collectorUid": LAPTOP_42}],
            "params": {},
        }
    ]
    reply = text_of(last_answer(engineers, "U0BOB"))
    assert "alice@example.com" in reply
    assert "LAPTOP-BOB" in reply


async def test_literal_upn_and_sid_targets_are_sent_as_typed(engineers: World) -> None:
    """`user:` with a UPN (also as Slack's mailto link) or a SID is sent as typed."""
    assert engineers.driver is not None
    sid = "S-1-5-21-1004336348-1177238915-682003330-512"
    await engineers.driver.command(
        "U0BOB",
        "run unlock_account user:<mailto:carol@example.com|carol@example.com> "
        f"user:dave@example.com user:{sid}",
    )
    await engineers.settle()
    assert executes(engineers)[0]["users"] == [
        {"upn": "carol@example.com"},
        {"upn": "dave@example.com"},
        {"sid": sid},
    ]


async def test_params_quoting_and_slack_escapes_reach_nexthink_decoded(world: World) -> None:
    """Quoted values keep their spaces and Slack's `&amp;` `&lt;` `&gt;` arrive as `& < >`."""
    assert world.driver is not None
    await world.driver.command(
        "U0ALICE",
        "run restart_teams mode=soft note=\"disk &lt;full&gt; &amp; slow\" who='O''Brien' "
        'path="C:\\temp" say="\\"hi\\""',
    )
    await world.settle()
    assert executes(world)[0]["params"] == {
        "mode": "soft",
        "note": "disk <full> & slow",
        "who": "O'Brien",
        "path": "C:\\temp",
        "say": '"hi"',
    }
    reply = text_of(last_answer(world, "U0ALICE"))
    assert "disk &lt;full&gt; &amp; slow" in reply  # shown escaped, as Slack needs


async def test_bad_syntax_is_answered_in_the_ack_and_nothing_is_sent(world: World) -> None:
    """A malformed command gets an ephemeral explanation in the acknowledgement itself."""
    assert world.driver is not None
    assert world.sandbox is not None
    response = await world.driver.command("U0ALICE", 'run restart_teams note="never closed')
    assert response.status == 200
    assert isinstance(response.body, dict)
    assert response.body["response_type"] == "ephemeral"
    assert "never closed" in response.body["text"]
    await world.settle()
    assert executes(world) == []
    assert world.sandbox.requests("token") == []


async def test_help_is_ephemeral_and_sends_nothing(world: World) -> None:
    """`help` answers with usage in the ephemeral acknowledgement and calls nobody."""
    assert world.driver is not None
    assert world.sandbox is not None
    response = await world.driver.command("U0ALICE", "help")
    assert isinstance(response.body, dict)
    assert response.body["response_type"] == "ephemeral"
    (shown,) = seen_by(world, "U0ALICE")
    assert shown.ephemeral
    for word in ("run", "list", "info", "resume", "history"):
        assert word in text_of(shown)
    await world.settle()
    assert world.sandbox.journal == []


async def test_list_shows_only_workflows_the_caller_may_run_with_aliases(engineers: World) -> None:
    """`list` shows active API workflows the caller may run, with aliases; a filter narrows it."""
    assert engineers.driver is not None
    await engineers.driver.command("U0ALICE", "list", channel_id="C0GENERAL")
    await engineers.settle()
    alice = text_of(last_answer(engineers, "U0ALICE"))
    assert "restart_teams" in alice
    assert "fix-teams" in alice
    assert "clear_disk_space" in alice
    assert "unlock_account" not in alice
    assert "reimage_device" not in alice

    await engineers.driver.command("U0BOB", "list")
    await engineers.settle()
    bob = text_of(last_answer(engineers, "U0BOB"))
    for workflow in ("restart_teams", "unlock_account", "reimage_device", PAUSING_WORKFLOW_ID):
        assert workflow in bob
    for hidden in ("legacy_vpn_reset", "update_drivers", "weekly_health_check"):
        assert hidden not in bob  # inactive or not API-triggerable

    await engineers.driver.command("U0BOB", "list FIX-")
    await engineers.settle()
    filtered = text_of(last_answer(engineers, "U0BOB"))
    assert "restart_teams" in filtered
    assert "unlock_account" not in filtered
    assert executes(engineers) == []


async def test_info_calls_get_workflow_and_shows_it(engineers: World) -> None:
    """`info <alias>` reads the workflow with Get workflow by NQL ID and shows its details."""
    assert engineers.driver is not None
    assert engineers.sandbox is not None
    await engineers.driver.command("U0ALICE", "info fix-teams")
    await engineers.settle()
    gets = engineers.sandbox.requests("get")
    assert [g.query for g in gets] == [{"nqlId": "restart_teams"}]
    validate_request(
        "GET",
        "/api/v1/workflows/details",
        query="nqlId=restart_teams",
        headers=dict(gets[0].headers),
    )
    shown = text_of(last_answer(engineers, "U0ALICE"))
    assert "restart_teams" in shown
    assert "fix-teams" in shown
    assert "mode" in shown


async def test_unknown_workflow_suggests_closest_names_and_sends_nothing(world: World) -> None:
    """`run`/`info` of an unknown workflow name the closest ones and send nothing."""
    assert world.driver is not None
    assert world.sandbox is not None
    await world.driver.command("U0ALICE", "run restart_team")
    await world.driver.command("U0ALICE", "info teams")
    await world.settle()
    run_reply, info_reply = (text_of(m) for m in answers(world, "U0ALICE"))
    assert "restart_team" in run_reply
    assert "`restart_teams`" in run_reply
    assert "`restart_teams`" in info_reply
    assert executes(world) == []
    assert world.sandbox.requests("get") == []


async def test_history_lists_the_callers_requests_and_ids(world: World) -> None:
    """`history` lists the caller's own requests with their Nexthink request ids."""
    assert world.driver is not None
    assert world.sandbox is not None
    await world.driver.command("U0ALICE", "run restart_teams")
    await world.driver.command("U0BOB", "run clear_disk_space")
    await world.settle()
    await world.driver.command("U0ALICE", "history")
    await world.settle()
    shown = text_of(last_answer(world, "U0ALICE"))
    alice_uuid, bob_uuid = (e.response["requestUuid"] for e in world.sandbox.requests("execute_v2"))
    assert "restart_teams" in shown
    assert alice_uuid in shown
    assert "clear_disk_space" not in shown
    assert bob_uuid not in shown


async def _waiting_execution(world: World) -> tuple[str, str]:
    """An execution waiting for a trigger with no question in Slack (the sandbox's webhook is off
    meanwhile): resuming it is the tool of roles with ``resume: true``. An execution with a
    question is resumed as a click on it (``tests/test_hostile_seams.py``)."""
    assert world.driver is not None
    assert world.sandbox is not None
    webhook_url, world.sandbox.webhook_url = world.sandbox.webhook_url, None
    try:
        await world.driver.command("U0BOB", f"run {PAUSING_WORKFLOW_ID} software=Slack")
        await world.settle()
    finally:
        world.sandbox.webhook_url = webhook_url
    (execution,) = [e for e in world.sandbox.executions.values() if e.waiting]
    return execution.workflow.uuid, execution.uuid


async def test_resume_is_refused_without_a_role_that_may_resume(engineers: World) -> None:
    """`resume` by someone whose roles lack `resume: true` is refused and triggers nothing."""
    assert engineers.driver is not None
    assert engineers.sandbox is not None
    workflow_uuid, execution_uuid = await _waiting_execution(engineers)
    await engineers.driver.command(
        "U0ALICE", f"resume {workflow_uuid} {execution_uuid} decision=approved"
    )
    await engineers.settle()
    assert "resume" in text_of(last_answer(engineers, "U0ALICE")).casefold()
    assert engineers.sandbox.requests("trigger") == []


async def test_resume_with_a_resume_role_triggers_the_wait(engineers: World) -> None:
    """`resume` by a role with `resume: true` calls the trigger endpoint with the parameters."""
    assert engineers.driver is not None
    assert engineers.sandbox is not None
    workflow_uuid, execution_uuid = await _waiting_execution(engineers)
    await engineers.driver.command(
        "U0BOB", f"resume {workflow_uuid.upper()} {execution_uuid} decision=approved"
    )
    await engineers.settle()
    (trigger,) = engineers.sandbox.requests("trigger")
    path = f"/api/v1/workflows/workflows/{workflow_uuid}/execution/{execution_uuid}/trigger"
    assert trigger.path == path
    assert trigger.body == {"parameters": {"decision": "approved"}}
    assert trigger.status == 200
    validate_request("POST", path, headers=dict(trigger.headers), body=trigger.body)
    shown = text_of(last_answer(engineers, "U0BOB"))
    assert "resumed" in shown
    assert trigger.response[0]["requestUuid"] in shown


async def test_resuming_an_execution_that_no_longer_waits_shows_nexthinks_400(
    engineers: World,
) -> None:
    """A second `resume` of the same execution shows Nexthink's 400 code and details."""
    assert engineers.driver is not None
    assert engineers.sandbox is not None
    workflow_uuid, execution_uuid = await _waiting_execution(engineers)
    for _ in range(2):
        await engineers.driver.command(
            "U0BOB", f"resume {workflow_uuid} {execution_uuid} decision=approved"
        )
        await engineers.settle()
    assert [t.status for t in engineers.sandbox.requests("trigger")] == [200, 400]
    shown = text_of(last_answer(engineers, "U0BOB"))
    assert "EXECUTION_NOT_WAITING" in shown
    assert execution_uuid in shown


async def test_resume_is_refused_under_the_default_policy(world: World) -> None:
    """Without a policy file nobody may resume, and no trigger is sent."""
    assert world.driver is not None
    assert world.sandbox is not None
    await world.driver.command(
        "U0ALICE",
        "resume 3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a fecab46b-ee58-b8bc-b61e-912a2dc2bcbc",
    )
    await world.settle()
    assert "resume: true" in text_of(last_answer(world, "U0ALICE"))
    assert world.sandbox.requests("trigger") == []


async def test_replies_go_through_the_response_url_as_ephemerals(world: World) -> None:
    """A run's answer is posted to the command's response URL, ephemeral to the requester."""
    assert world.driver is not None
    await world.driver.command("U0ALICE", "run restart_teams", channel_id="C0GENERAL")
    await world.settle()
    reply = last_answer(world, "U0ALICE")
    assert reply.via == "response_url"
    assert reply.ephemeral
    assert reply.user == "U0ALICE"
    assert reply.channel == "C0GENERAL"
    hooks = world.slack.calls_to("response_url")
    assert [c.params.get("response_type") for c in hooks] == ["ephemeral"]
    assert world.slack.calls_to("chat.postMessage") == []


async def test_replies_fall_back_to_an_ephemeral_when_the_response_url_expired(
    world: World,
) -> None:
    """With the response URL expired, the answer arrives by `chat.postEphemeral` instead."""
    assert world.driver is not None
    world.slack.response_url_ttl = -1.0  # every URL issued from now on has expired
    await world.driver.command("U0ALICE", "run restart_teams", channel_id="C0GENERAL")
    await world.settle()
    assert len(executes(world)) == 1
    reply = last_answer(world, "U0ALICE")
    assert reply.via == "chat.postEphemeral"
    assert reply.ephemeral
    assert reply.user == "U0ALICE"
    assert reply.channel == "C0GENERAL"
    assert "sent to Nexthink" in reply.text


async def test_a_profile_without_email_is_refused_and_nothing_is_sent(world: World) -> None:
    """Someone whose Slack profile has no email is told why; Nexthink receives nothing."""
    assert world.driver is not None
    await world.driver.command("U0ERIN", "run restart_teams")
    await world.settle()
    assert "no email address" in text_of(last_answer(world, "U0ERIN"))
    assert executes(world) == []


async def test_a_nexthink_400_is_shown_with_its_code_and_details(world: World) -> None:
    """When Nexthink refuses the execute with a 400, the reply shows its code and details."""
    assert world.driver is not None
    assert world.sandbox is not None
    await world.driver.command("U0ALICE", "list")  # the bot now knows restart_teams is active
    await world.settle()
    workflows = world.sandbox.catalogue.workflows
    index = next(i for i, w in enumerate(workflows) if w.id == "restart_teams")
    workflows[index] = replace(workflows[index], status=WorkflowStatus.INACTIVE)
    await world.driver.command("U0ALICE", "run restart_teams")
    await world.settle()
    (execute,) = world.sandbox.requests("execute_v2")
    assert execute.status == 400
    shown = text_of(last_answer(world, "U0ALICE"))
    assert "WORKFLOW_INACTIVE" in shown
    assert "Workflow restart_teams is inactive." in shown


@pytest.mark.parametrize(
    "fault",
    ["execute_v2:500:processed=true", "execute_v2:timeout:delay=5:processed=true"],
    ids=["500", "timeout"],
)
async def test_an_execute_without_an_answer_is_reported_as_outcome_unknown(
    tmp_path: Path, fault: str
) -> None:
    """A processed execute answered by a 500 or by nothing is reported as "may or may not have
    run", and sent exactly once."""
    async with world_at(tmp_path, overrides={"nexthink_read_timeout": 1.0}) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        world.sandbox.faults.add(fault)
        await world.driver.command("U0ALICE", "run restart_teams")
        await world.settle()
        assert len(executes(world)) == 1
        assert len(world.sandbox.executions) == 1  # it did run
        shown = text_of(last_answer(world, "U0ALICE"))
        assert "may or may not have run" in shown
        assert "restart_teams" in shown


async def test_a_mentioned_user_without_email_is_named_in_the_refusal(engineers: World) -> None:
    """Targeting someone whose profile has no email says it is their profile, not the caller's."""
    assert engineers.driver is not None
    await engineers.driver.command("U0BOB", "run unlock_account user:<@U0ERIN|erin>")
    await engineers.settle()
    shown = text_of(last_answer(engineers, "U0BOB"))
    assert "<@U0ERIN>" in shown
    assert "Your Slack profile" not in shown
    assert executes(engineers) == []


async def test_text_typed_by_people_is_escaped_in_every_reply(engineers: World) -> None:
    """Workflow names, devices and values people type never reach Slack as live markup."""
    assert engineers.driver is not None
    assert engineers.sandbox is not None
    live = "<!channel>"
    typed = "&lt;!channel&gt;"
    await engineers.driver.command("U0ALICE", f"run {typed}")
    await engineers.driver.command("U0ALICE", f"run restart_teams device:{typed}")
    await engineers.driver.command("U0ALICE", f"list {typed}")
    await engineers.settle()
    engineers.sandbox.faults.add("execute_v2:500")
    await engineers.driver.command("U0BOB", f"run unlock_account device:{typed} note={typed}")
    await engineers.settle()
    await engineers.driver.command("U0BOB", f"run unlock_account device:{typed} note={typed}")
    await engineers.settle()
    replies = answers(engineers, "U0ALICE") + answers(engineers, "U0BOB")
    assert len(replies) == 5
    for reply in replies:
        assert live not in text_of(reply)
        assert "&lt;!channel&gt;" in text_of(reply)


async def test_every_line_of_a_commands_work_carries_its_request(world: World) -> None:
    """The request's log context (``handlers.log_context``): the audit lines of each command's
    work name its person, workspace and kind, and one person's context never reaches another's."""
    assert world.driver is not None
    for user in ("U0ALICE", "U0BOB"):
        response = await world.driver.command(user, "run restart_teams", channel_id="C0GENERAL")
        assert response.status == 200
    await world.settle()
    lines = [json.loads(line) for line in captured_lines() if '"audit"' in line]
    audit = [line for line in lines if line.get("event") == "audit"]
    for user in ("U0ALICE", "U0BOB"):
        mine = [line for line in audit if line.get("actor") == user]
        assert {line["audit_event"] for line in mine} >= {"run_requested", "executed"}
        for line in mine:
            assert line["slack_user"] == user
            assert line["slack_kind"] == "/nexthink"
            assert line["slack_team"] == world.slack.team_id
