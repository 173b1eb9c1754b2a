"""Trust at the seams (issue 13): the rules an attacker tried to walk around on a side path, each
one now decided in one place of the core, tried again end to end over real sockets (LocalSlack,
the bot over HTTP, the Nexthink sandbox, a real SQLite file).

One test per numbered observation of the issue (observations 3, 4, 8 and 10 are in
``tests/test_hostile_text.py`` and ``tests/test_logging.py``):

1. ``/nexthink resume`` of an execution with a question is a click on it (the same rules).
2. The requester never decides: (a) not when Slack's profile lookup fails, (b) not when the
   webhook leaves out ``requester`` for an execution the bot started for them.
5. Forms carry no authority: altered metadata (a planted response URL, another channel), a
   forged parameter name, the target limit.
6. The webhook: raw bytes in ``Authorization`` get 401; ids compare without regard to case.
7. Limits: 50 parameters, ``info`` and ``resume`` under the rate limit, a refused mention costs
   no ``users.info``.
9. Other organisations decide nothing and run nothing; votes count people, not accounts.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aiohttp import web

from bot.console.localslack import View
from bot.console.world import World
from bot.deciders import EXTERNAL, IMPERSONATION, LOOKUP_FAILED
from bot.forms import TAMPERED, slack_response_url
from handlers import ids
from tests.support.e2e import answers, executes, last_answer, text_of, world_at
from tests.test_e2e_waits import (
    WORKFLOW_UUID,
    ask,
    bot_triggers,
    buttons,
    click,
    ephemerals,
    paused,
    post,
    question,
    run_pausing_workflow,
)
from tests.test_e2e_waits import shown as shown_in

ALICE, BOB, CAROL, DAVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"
ZOE = "U0ZOE"  # a Slack Connect member of a partner organisation

POLICY = """
roles:
  leads:
    members: ["U0CAROL", "U0DAVE"]
    workflows: ["*"]
    targets: any
    resume: true
  requesters:
    members: ["U0ALICE"]
    workflows: ["*"]
    targets: self
    resume: true
  support:
    members: ["U0BOB"]
    channels: ["C0SUPPORT"]
    workflows: ["*"]
    targets: any
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
    targets: self
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["carol@example.com", "U0DAVE"], count: 1}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY) as w:
        yield w


def _execution_of(world: World) -> str:
    assert world.sandbox is not None
    (execution_uuid,) = world.sandbox.executions
    return str(execution_uuid)


def _triggers(world: World) -> list[dict[str, Any]]:
    assert world.sandbox is not None
    return [e.body for e in world.sandbox.requests("trigger")]


# -- 1. /nexthink resume walks around a question ------------------------------------------------


async def test_1_resume_of_a_question_is_a_click_under_its_rules(world: World) -> None:
    """The requester (a role with ``resume: true``), refused by the button, is refused by
    ``/nexthink resume`` too, whatever ``approver=`` says; an approver's resume is their click: the
    trigger carries *their* UPN, the message is settled and its buttons stop working, and a
    later click resumes nothing."""
    assert world.driver is not None
    message = await run_pausing_workflow(world, "channel=C0SUPPORT")
    execution = _execution_of(world)
    as_first_shown = dataclasses.replace(message)  # with its buttons, as Dave's screen keeps it
    await click(world, ALICE, message)
    assert "someone else has to decide it" in ephemerals(world.slack, ALICE)[-1]
    await world.driver.command(
        ALICE,
        f"resume {WORKFLOW_UUID} {execution} decision=approved approver=carol@example.com",
    )
    await world.settle()
    assert "someone else has to decide it" in text_of(last_answer(world, ALICE))
    assert _triggers(world) == []
    current = world.slack.find_message(message.channel, message.ts)
    assert current is not None
    assert buttons(current) == ["Approve", "Deny"]

    # Carol resumes it (upper-case ids, a forged approver): her resume is her click
    await world.driver.command(
        CAROL,
        f"resume {WORKFLOW_UUID.upper()} {execution.upper()} "
        "decision=approved approver=alice@example.com",
    )
    await world.settle()
    assert _triggers(world) == [
        {"parameters": {"decision": "approved", "approver": "carol@example.com"}}
    ]
    assert "your answer to it" in text_of(last_answer(world, CAROL))
    current = world.slack.find_message(message.channel, message.ts)
    assert current is not None
    assert buttons(current) == []
    assert "decided by <@U0CAROL>" in shown_in(current)
    await click(world, DAVE, as_first_shown)
    assert "already decided by <@U0CAROL>" in ephemerals(world.slack, DAVE)[-1]
    assert len(_triggers(world)) == 1


async def test_1_resume_with_parameters_that_are_no_choice_of_the_question_is_refused(
    world: World,
) -> None:
    """A resume whose parameters are none of the question's choices sends nothing and says which
    choices there are."""
    assert world.driver is not None
    await run_pausing_workflow(world, "channel=C0SUPPORT")
    execution = _execution_of(world)
    await world.driver.command(CAROL, f"resume {WORKFLOW_UUID} {execution} decision=maybe")
    await world.settle()
    said = text_of(last_answer(world, CAROL))
    assert "`decision=approved`" in said
    assert "`decision=denied`" in said
    assert _triggers(world) == []


# -- 2. the requester never decides, failing closed ---------------------------------------------


async def test_2a_a_failed_profile_lookup_decides_nothing(tmp_path: Path) -> None:
    """When ``users.info`` fails at the click, nothing is decided and the clicker is asked to try
    again; once Slack answers, the requester is recognised and refused."""
    async with world_at(tmp_path, POLICY, overrides={"profile_cache_seconds": 0}) as world:
        execution = await paused(world)
        message = await ask(world, question(execution, requester="alice@example.com"))
        world.slack.fail("users.info", "internal_error", times=20)
        await click(world, ALICE, message)
        assert ephemerals(world.slack, ALICE)[-1] == LOOKUP_FAILED
        assert bot_triggers(world.sandbox) == []
        world.slack._failures.clear()  # Slack answers again
        await click(world, ALICE, message)
        assert "someone else has to decide it" in ephemerals(world.slack, ALICE)[-1]
        assert bot_triggers(world.sandbox) == []
        current = world.slack.find_message(message.channel, message.ts)
        assert current is not None
        assert buttons(current) == ["Approve", "Deny"]


async def test_2b_the_bots_own_record_names_the_requester(world: World) -> None:
    """A question posted without ``requester`` for an execution the bot started for Alice cannot
    be decided by Alice: the bot knows from its record of her run; Bob may decide it."""
    assert world.driver is not None
    assert world.sandbox is not None
    webhook_url, world.sandbox.webhook_url = world.sandbox.webhook_url, None
    await world.driver.command(ALICE, "run request_software software=Visio", channel_id="C0GENERAL")
    await world.settle()
    world.sandbox.webhook_url = webhook_url
    (execution,) = world.sandbox.executions.values()
    message = await ask(world, question(execution, requester=None))
    await click(world, ALICE, message)
    assert "You started this execution" in ephemerals(world.slack, ALICE)[-1]
    assert bot_triggers(world.sandbox) == []
    await click(world, CAROL, message)
    assert len(bot_triggers(world.sandbox)) == 1


# -- 5. forms carry no authority ----------------------------------------------------------------


class _Planted:
    """A web server on another host than Slack's, counting what reaches it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> _Planted:
        app = web.Application()

        async def anything(request: web.Request) -> web.Response:
            self.hits.append(await request.text())
            return web.Response(text="ok")

        app.router.add_route("*", "/{tail:.*}", anything)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hooks/commands/T0LOCAL/1/planted"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def _open_form(world: World, user_id: str, channel_id: str) -> View:
    assert world.driver is not None
    await world.driver.command(user_id, "", channel_id=channel_id)
    await world.settle()
    (view,) = [v for v in world.slack.views.values() if v.user_id == user_id]
    return view


async def _choose(world: World, user_id: str, view: View, workflow: str) -> View:
    assert world.driver is not None
    await world.driver.click(user_id, view, ids.MODAL_WORKFLOW, workflow)
    await world.settle()
    return world.slack.views[view.id]


async def test_5_altered_form_metadata_is_refused(world: World) -> None:
    """Bob (whose wider role holds only in #it-support) opens the form in #general and alters its
    metadata to claim #it-support and a reply URL on another host: the submission is refused with
    a clear message, nothing runs, nothing reaches the planted URL."""
    assert world.driver is not None
    async with _Planted() as planted:
        view = await _open_form(world, BOB, "C0GENERAL")
        view = await _choose(world, BOB, view, "clear_disk_space")
        payload = world.driver.view_submission_payload(BOB, view.id, {})
        payload["view"]["private_metadata"] = json.dumps({"c": "C0SUPPORT", "r": planted.url})
        payload["view"]["state"]["values"][ids.MODAL_USERS_BLOCK] = {
            ids.MODAL_USERS: {"type": "multi_users_select", "selected_users": [ALICE]}
        }
        response = await world.driver.post_interactive(payload)
        await world.settle()
        assert response.status == 200
        assert response.body["response_action"] == "update"
        assert TAMPERED in json.dumps(response.body["view"])
        assert executes(world) == []
        assert planted.hits == []


async def test_5_a_reply_goes_only_to_slack(world: World) -> None:
    """Whatever URL a request carries, the bot posts only to Slack's response URLs (or the Web
    API): a planted one is never called, and the answer still reaches the person."""
    assert world.driver is not None
    assert slack_response_url("https://hooks.slack.com/commands/T1/2/x") is not None
    assert slack_response_url("https://hooks.slack-gov.com/actions/T1/2/x") is not None
    for bad in (
        "https://hooks.slack.com.evil.example/commands/T1/2/x",
        "http://hooks.slack.com/commands/T1/2/x",
        "https://user@hooks.slack.com/x",
        "https://evil.example/hooks.slack.com/x",
    ):
        assert slack_response_url(bad) is None, bad
    async with _Planted() as planted:
        fields = world.driver.command_payload(ALICE, "list")
        fields["response_url"] = planted.url
        response = await world.driver.post(urlencode(fields).encode())
        assert response.status == 200
        await world.settle()
        assert planted.hits == []
        assert "restart_teams" in text_of(last_answer(world, ALICE))


async def test_5_a_forged_parameter_name_is_refused(world: World) -> None:
    """A parameter block id the bot never wrote (``<!channel> <https://evil.example|x>``) is
    refused inline; nothing is sent."""
    assert world.driver is not None
    view = await _open_form(world, CAROL, "C0SUPPORT")
    view = await _choose(world, CAROL, view, "clear_disk_space")
    payload = world.driver.view_submission_payload(CAROL, view.id, {})
    payload["view"]["state"]["values"][
        f"{ids.MODAL_PARAM_PREFIX}<!channel> <https://evil.example|x>"
    ] = {ids.MODAL_PARAMS: {"type": "plain_text_input", "value": "1"}}
    response = await world.driver.post_interactive(payload)
    await world.settle()
    assert response.body["response_action"] == "errors"
    assert executes(world) == []


async def test_5_the_form_keeps_the_target_limit(world: World) -> None:
    """1,001 devices typed in the form are refused as the command refuses them; nothing is sent."""
    assert world.driver is not None
    view = await _open_form(world, CAROL, "C0SUPPORT")
    view = await _choose(world, CAROL, view, "clear_disk_space")
    devices = "\n".join(f"LAPTOP-{i}" for i in range(1001))
    response = await world.driver.submit_view(
        CAROL, view.id, {ids.MODAL_DEVICES_BLOCK: {ids.MODAL_DEVICES: devices}}
    )
    await world.settle()
    assert response.body["response_action"] == "errors"
    assert "at most 1,000" in json.dumps(response.body["errors"])
    assert executes(world) == []


# -- 6. the webhook -------------------------------------------------------------------------------


async def test_6_raw_bytes_in_the_authorization_header_get_401(world: World) -> None:
    """``Authorization: Bearer \\xff\\xfe`` (not UTF-8) is a wrong credential: 401, not a 5xx."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{world.url}/nexthink/waits",
            content=b"{}",
            headers={"Authorization": b"Bearer \xff\xfe", "Content-Type": "application/json"},
        )
    assert response.status_code == 401
    assert "credential" in response.json()["error"]


async def test_6_ids_in_another_case_are_the_same_question(world: World) -> None:
    """The same execution in upper and in lower case is one question with one message."""
    execution = await paused(world)
    body = question(execution)
    first = await post(world, body | {"executionUuid": execution.uuid.upper()})
    second = await post(world, body | {"executionUuid": execution.uuid.lower()})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    asked = [m for m in world.slack.messages_in("C0SUPPORT") if m.author == world.slack.bot_user_id]
    assert len(asked) == 1


# -- 7. limits on every path --------------------------------------------------------------------


async def test_7_at_most_50_parameters(world: World) -> None:
    """4,000 ``k=v`` pairs are refused with the limit named; nothing is sent to Nexthink."""
    assert world.driver is not None
    pairs = " ".join(f"k{i}=v" for i in range(4000))
    await world.driver.command(ALICE, f"run restart_teams {pairs}")
    await world.settle()
    assert "at most 50" in text_of(last_answer(world, ALICE))
    assert executes(world) == []


async def test_7_info_and_resume_count_toward_the_rate_limit(world: World) -> None:
    """30 ``info`` and 30 ``resume`` in a row make at most 10 Nexthink calls each (the default
    10 per user per minute); the others are told to wait."""
    assert world.driver is not None
    assert world.sandbox is not None
    for _ in range(30):
        await world.driver.command(CAROL, "info restart_teams")
    for _ in range(30):
        await world.driver.command(DAVE, f"resume {WORKFLOW_UUID} {uuid.uuid4()} decision=ok")
    await world.settle()
    for person, endpoint in ((CAROL, "get"), (DAVE, "trigger")):
        calls = len(world.sandbox.requests(endpoint))
        waits = [m for m in answers(world, person) if "Try again in" in text_of(m)]
        assert calls <= 10, endpoint
        assert calls + len(waits) == 30, endpoint  # each one answered: by Nexthink or "wait"


async def test_7_a_refused_mention_costs_no_profile_lookup(world: World) -> None:
    """Alice may run only on herself: ``user:<@U0BOB>`` is refused without looking Bob up."""
    assert world.driver is not None
    for _ in range(5):
        await world.driver.command(ALICE, "run restart_teams user:<@U0BOB>")
    await world.settle()
    assert "on yourself" in text_of(last_answer(world, ALICE))
    looked_up = [c for c in world.slack.calls_to("users.info") if c.params.get("user") == BOB]
    assert looked_up == []
    assert executes(world) == []


# -- 9. other organisations ---------------------------------------------------------------------


async def test_9_a_slack_connect_member_decides_and_runs_nothing(world: World) -> None:
    """Zoe, of a partner organisation, whose profile email copies Carol's UPN: her Approve click
    and her commands do nothing and she is told privately that the bot serves its own
    organisation; Carol's click approves."""
    assert world.driver is not None
    world.slack.add_user(
        id=ZOE, name="zoe", email="carol@example.com", team_id="T0PARTNER", external=True
    )
    await world.driver.command(ALICE, "run reimage_device")
    await world.settle()
    (approval,) = world.slack.messages_in("C0APPROVALS")
    await world.driver.click(ZOE, approval, ids.APPROVAL_APPROVE)
    await world.driver.command(ZOE, "run restart_teams")
    await world.settle()
    told = [text_of(m) for m in answers(world, ZOE) if m.ephemeral]
    assert len(told) == 2, told
    assert all(EXTERNAL in t for t in told), told
    assert executes(world) == []
    await world.driver.click(CAROL, approval, ids.APPROVAL_APPROVE)
    await world.settle()
    (sent,) = executes(world)
    assert sent["workflowId"] == "reimage_device"


async def test_9_external_users_allow_lets_them_act_as_themselves_only(tmp_path: Path) -> None:
    """With ``external_users: allow`` a partner runs under their own UPN; one whose email is that
    of someone here is refused."""
    async with world_at(tmp_path, POLICY + "external_users: allow\n") as world:
        assert world.driver is not None
        world.slack.add_user(
            id=ZOE, name="zoe", email="zoe@partner.example", team_id="T0PARTNER", external=True
        )
        world.slack.add_user(
            id="U0MALLORY",
            name="mallory",
            email="carol@example.com",
            team_id="T0PARTNER",
            external=True,
        )
        await world.driver.command(ZOE, "run restart_teams")
        await world.driver.command("U0MALLORY", "run restart_teams")
        await world.settle()
        (sent,) = executes(world)
        assert sent["users"] == [{"upn": "zoe@partner.example"}]
        assert IMPERSONATION in text_of(last_answer(world, "U0MALLORY"))


async def test_9_votes_count_people_not_slack_accounts(tmp_path: Path) -> None:
    """Two Slack accounts with one UPN (``upn.domains`` maps both emails to it) count as one
    approver: two approvals from Carol's accounts do not reach a count of 2; Dave's does."""
    policy = """
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: self
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["*"], count: 2}
upn:
  domains: {"corp.example.com": "example.com"}
"""
    async with world_at(tmp_path, policy) as world:
        assert world.driver is not None
        world.slack.add_user(id="U0CAROL2", name="carol2", email="carol@corp.example.com")
        await world.driver.command(ALICE, "run reimage_device")
        await world.settle()
        (approval,) = world.slack.messages_in("C0APPROVALS")
        await world.driver.click(CAROL, approval, ids.APPROVAL_APPROVE)
        await world.settle()
        await world.driver.click("U0CAROL2", approval, ids.APPROVAL_APPROVE)
        await world.settle()
        assert executes(world) == []
        assert "already" in text_of(answers(world, "U0CAROL2")[-1])
        await world.driver.click(DAVE, approval, ids.APPROVAL_APPROVE)
        await world.settle()
        assert len(executes(world)) == 1
