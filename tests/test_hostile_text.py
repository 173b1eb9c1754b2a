"""What people read, against a hostile world (issue 13, observations 3, 4 and 10), end to end over
real sockets: LocalSlack, the bot over HTTP, the Nexthink sandbox (and, for answers the sandbox
does not give, a proxy in front of it).

* Outside text is shown as typed: the webhook's question and option labels, workflow names and
  descriptions from Nexthink, Nexthink's refusal details, parameter values and deny reasons
  never become a mention, a link, formatting or a line of their own, in blocks or in the
  top-level ``text`` (the notification). ``tests.support.inert`` checks everything sent.
* Messages say what happened: after an HTTP 500 the person reads "Nexthink answered HTTP 500
  (server error)"; "no answer came back" only when none did. The run form offers no "Other
  parameters" that the policy would refuse; ``console --help`` names the ``software=`` that
  ``request_software`` needs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.console.localslack import Message
from bot.console.world import WEBHOOK_TOKEN, World
from bot.text import Outside
from handlers import ids
from handlers.blocks import code, shown
from handlers.wait_views import decision_action_id
from tests.support.e2e import PatientWorld, answers, executes, text_of, world_at
from tests.support.inert import HOSTILE_NAME, HOSTILE_TEXT, HOSTILE_VALUE, live_markup
from tests.test_hostile_fuzz import BrokenNexthink

ALICE = "U0ALICE"
WORKFLOW_UUID = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"  # the sandbox's pausing request_software
POLICY = """
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: self
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["U0CAROL"], count: 1}
"""


def _rename(world: World, workflow_id: str, **changes: Any) -> None:
    """Change a workflow as Nexthink lists it (before the bot first lists the workflows)."""
    assert world.sandbox is not None
    workflows = world.sandbox.catalogue.workflows
    index = next(i for i, w in enumerate(workflows) if w.id == workflow_id)
    workflows[index] = dataclasses.replace(workflows[index], **changes)


async def _ask(world: World, **extra: Any) -> Message:
    body = {
        "workflowUuid": WORKFLOW_UUID,
        "executionUuid": str(uuid.uuid4()),
        "channel": "C0SUPPORT",
        "text": HOSTILE_TEXT,
        **extra,
    }
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{world.url}/nexthink/waits",
            json=body,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
    assert response.status_code == 201, response.text
    answer = response.json()
    message = world.slack.find_message(answer["channel"], answer["ts"])
    assert message is not None
    return message


_HOSTILE_OPTIONS = [
    {"label": "<!channel> *Approve* now", "style": "primary", "parameters": {"decision": "yes"}},
    {"label": "<https://evil.example|Deny> _it_", "style": "danger"},
]


def _assert_inert(world: World) -> None:
    problems = live_markup(world)
    assert problems == [], "\n".join(problems)


# -- observation 3: the webhook's text and option labels, Nexthink's refusal details ----------


async def test_a_hostile_question_and_its_decision_show_as_typed(tmp_path: Path) -> None:
    """The webhook's ``text`` (``<!channel> <https://evil.example|Approve here> *URGENT*`` …) and
    option labels reach the question, its notification and the decision update as text: no
    mention, no link, no formatting, no line of their own; and a person reads them as typed."""
    async with world_at(tmp_path) as world:
        assert world.driver is not None
        question = await _ask(world, options=_HOSTILE_OPTIONS)
        assert question.text == shown(Outside(HOSTILE_TEXT), 2800)  # the notification
        assert shown(Outside(HOSTILE_TEXT)) in text_of(question)
        await world.driver.click("U0BOB", question, decision_action_id(0))
        await world.settle()
        decided = world.slack.find_message(question.channel, question.ts)
        assert decided is not None
        assert "<@U0BOB> chose" in text_of(decided)  # the sandbox knows no such execution
        assert shown(Outside(_HOSTILE_OPTIONS[0]["label"])) in text_of(decided)  # type: ignore[arg-type]
        # the Home tab lists open questions to approvers: post another one and look
        await _ask(world, options=_HOSTILE_OPTIONS)
        await world.driver.app_home_opened("U0BOB")
        await world.settle()
        _assert_inert(world)


async def test_nexthinks_refusal_details_show_as_typed(tmp_path: Path) -> None:
    """A trigger refused with hostile ``details`` is shown on the question as text."""
    from bot.sandbox import Sandbox

    async with Sandbox(execution_delay=0.05, webhook_token=WEBHOOK_TOKEN) as sandbox:
        proxy = BrokenNexthink(sandbox.url)
        url = await proxy.start()
        try:
            async with PatientWorld(
                database_url=f"sqlite:///{tmp_path}/bot.db",
                nexthink_base_url=url,
                nexthink_client_id=sandbox.client_id,
                nexthink_client_secret=sandbox.client_secret,
                sandbox=sandbox,
            ) as world:
                assert world.driver is not None
                question = await _ask(world)
                refusal = {"code": "EXECUTION_NOT_WAITING", "details": HOSTILE_TEXT}
                proxy.answers["trigger"] = (400, "application/json", json.dumps(refusal).encode())
                await world.driver.click("U0BOB", question, decision_action_id(0))
                await world.settle()
                refused = world.slack.find_message(question.channel, question.ts)
                assert refused is not None
                assert "Nexthink refused it" in text_of(refused)
                assert shown(Outside(HOSTILE_TEXT), 1000) in text_of(refused)
                # a run refused with the same details
                proxy.answers["execute_v2"] = (
                    400,
                    "application/json",
                    json.dumps(refusal).encode(),
                )
                await world.driver.command(ALICE, "run restart_teams")
                await world.settle()
                assert "EXECUTION_NOT_WAITING" in text_of(answers(world, ALICE)[-1])
                _assert_inert(world)
                assert world.bot is not None
                assert world.bot.tasks.failures == 0
        finally:
            await proxy.stop()


# -- observations 3 and 4: workflow names from Nexthink, parameter values, deny reasons -------


@pytest.fixture
async def named(tmp_path: Path) -> AsyncIterator[World]:
    """A world whose Nexthink names workflows with mentions, links and formatting."""
    async with world_at(tmp_path, POLICY) as world:
        _rename(world, "restart_teams", name=HOSTILE_NAME, description=HOSTILE_TEXT)
        _rename(world, "reimage_device", name=HOSTILE_NAME + " reimage", description=HOSTILE_TEXT)
        yield world


def _command_text(value: str) -> str:
    return 'note="' + value.replace('"', "'") + '"'


async def test_hostile_workflow_names_and_values_in_run_replies_list_info_home_history(
    named: World,
) -> None:
    """Workflow names and descriptions from Nexthink (``<!here> Clear disk space …``) and a
    parameter value that closes its code span and starts a fake approval line: in the run reply
    (and its notification and outcome updates), ``list``, ``info``, ``history`` and the Home tab
    they stay text, and the value stays inside its code span."""
    world = named
    assert world.driver is not None
    for command in ("list", "list Clear", "info restart_teams"):
        await world.driver.command(ALICE, command)
        await world.settle()
    await world.driver.command(ALICE, f"run restart_teams {_command_text(HOSTILE_VALUE)}")
    await world.settle()
    (sent,) = executes(world)
    value = HOSTILE_VALUE.replace('"', "'")
    assert sent["params"] == {"note": value}  # Nexthink gets the value as typed
    reply = answers(world, ALICE)[-1]
    assert "sent to Nexthink" in text_of(reply)
    assert shown(Outside(HOSTILE_NAME), 200) in reply.text  # the notification
    assert code(Outside(f"note={value}")) in text_of(reply)  # observation 4: one code span
    await world.driver.command(ALICE, "history")
    await world.driver.app_home_opened(ALICE)
    await world.settle()
    _assert_inert(world)


async def test_an_approval_request_its_deny_reason_and_the_requesters_news_show_as_typed(
    named: World,
) -> None:
    """The approval request (name, parameter value), the approver's Home tab, a deny reason with
    newlines, mentions and ``*bold*``, the settled request and the requester's news: all text."""
    world = named
    assert world.driver is not None
    await world.driver.command(ALICE, f"run reimage_device {_command_text(HOSTILE_VALUE)}")
    await world.settle()
    (request,) = [
        m for m in world.slack.messages_in("C0APPROVALS") if m.author == world.slack.bot_user_id
    ]
    value = HOSTILE_VALUE.replace('"', "'")
    assert code(Outside(f"note={value}")) in text_of(request)
    assert shown(Outside(HOSTILE_NAME + " reimage"), 200) in request.text
    await world.driver.app_home_opened("U0CAROL")
    await world.settle()
    await world.driver.click("U0CAROL", request, ids.APPROVAL_DENY)
    await world.settle()
    (deny,) = [
        v
        for v in world.slack.views.values()
        if v.user_id == "U0CAROL" and v.callback_id == ids.DENY_REASON_MODAL
    ]
    reason = "Not now\n\n*:white_check_mark: FAKE approved by @carol* <!channel>"
    await world.driver.submit_view(
        "U0CAROL", deny.id, {ids.DENY_REASON_BLOCK: {ids.DENY_REASON: reason}}
    )
    await world.settle()
    settled = world.slack.find_message(request.channel, request.ts)
    assert settled is not None
    assert "Denied by <@U0CAROL>" in text_of(settled)
    assert shown(Outside(reason), 500) in text_of(settled)
    told = answers(world, ALICE)[-1]
    assert "denied your request" in text_of(told)
    assert shown(Outside(reason), 500) in text_of(told)
    assert executes(world) == []
    _assert_inert(world)


# -- observation 10: messages say what happened ------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "said", "not_said"),
    [
        (
            "execute_v2:500:processed=true",
            "Nexthink answered HTTP 500 (server error)",
            "no answer came back",
        ),
        (
            "execute_v2:html:processed=true",
            "Nexthink answered HTTP 502 (bad gateway)",
            "no answer came back",
        ),
        (
            "execute_v2:timeout:delay=5:processed=true",
            "no answer came back",
            "Nexthink answered HTTP",
        ),
        ("execute_v2:reset:processed=true", "no answer came back", "Nexthink answered HTTP"),
    ],
    ids=["500", "502", "timeout", "reset"],
)
async def test_a_failed_execute_says_what_nexthink_answered(
    tmp_path: Path, fault: str, said: str, not_said: str
) -> None:
    """After an HTTP 500 (or 502) the person reads what Nexthink answered and that the run may or
    may not have happened, with what to check; "no answer came back" only when none did."""
    async with world_at(tmp_path, overrides={"nexthink_read_timeout": 1.0}) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        world.sandbox.faults.add(fault)
        await world.driver.command(ALICE, "run restart_teams")
        await world.settle()
        assert len(executes(world)) == 1
        reply = answers(world, ALICE)[-1]
        shown_text = text_of(reply)
        assert said in shown_text
        assert said in reply.text  # the notification says it too
        assert not_said not in shown_text
        assert "may or may not have run" in shown_text
        assert "before trying again" in shown_text


async def test_a_click_answered_with_a_500_says_nexthink_answered_it(tmp_path: Path) -> None:
    """A decision whose trigger gets an HTTP 500 reopens the question saying what Nexthink
    answered, not that no answer came back."""
    async with world_at(tmp_path) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        question = await _ask(world, text="Reinstall Office?")
        world.sandbox.faults.add("trigger:500")
        await world.driver.click("U0BOB", question, decision_action_id(0))
        await world.settle()
        updated = world.slack.find_message(question.channel, question.ts)
        assert updated is not None
        assert "Nexthink answered HTTP 500 (server error)" in text_of(updated)
        assert "no answer came back" not in text_of(updated)


FIXED_POLICY = """
roles:
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
    targets: self
workflows:
  restart_teams:
    params:
      mode: {allowed: ["soft", "hard"], default: "soft"}
"""


async def test_the_run_form_offers_other_parameters_only_where_they_are_allowed(
    tmp_path: Path,
) -> None:
    """For a workflow whose parameters the policy lists, the form has no "Other parameters"
    field (anything typed there would be refused); for one it does not, the field is there."""
    async with world_at(tmp_path, FIXED_POLICY) as world:
        assert world.driver is not None
        await world.driver.command(ALICE, "", channel_id="C0SUPPORT")
        await world.settle()
        (view,) = [v for v in world.slack.views.values() if v.user_id == ALICE]
        for workflow, offered in (("restart_teams", False), ("clear_disk_space", True)):
            await world.driver.click(ALICE, view, ids.MODAL_WORKFLOW, workflow)
            await world.settle()
            view = world.slack.views[view.id]
            blocks = [str(b.get("block_id")) for b in view.view.get("blocks") or []]
            assert (ids.MODAL_PARAMS_BLOCK in blocks) is offered, (workflow, blocks)
            if workflow == "restart_teams":
                assert ids.MODAL_PARAM_PREFIX + "mode" in blocks


def test_console_help_names_the_parameter_request_software_needs() -> None:
    """``nexthink-bot console --help`` shows ``/nexthink run request_software`` only with the
    ``software=`` it needs."""
    script = Path(sys.executable).with_name("nexthink-bot")
    done = subprocess.run(  # noqa: S603
        [str(script), "console", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    runs = re.findall(r"/nexthink run request_software[^\n]*", done.stdout)
    assert runs, done.stdout
    assert all("software=" in r for r in runs), runs
    text = " ".join(done.stdout.split())
    for mention in re.finditer("request_software", text):  # each mention shows how to run it
        assert "software=" in text[mention.start() : mention.start() + 160], text[mention.start() :]
