"""Every event of the audit trail, written by the action that causes it and read back with
``nexthink-bot audit``: the bot runs over LocalSlack and the Nexthink sandbox (real sockets, a
real SQLite file), people act through signed Slack requests and the waits webhook, and then the
export runs as the operator runs it (a subprocess with only ``DATABASE_URL``)."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import approvals, waits
from bot.audit import AuditTrail
from bot.console.localslack import Message
from bot.console.world import SIGNING_SECRET, WEBHOOK_TOKEN, World
from bot.logging import REDACTED, Redactor
from bot.store import AUDIT_FIELDS, Store
from handlers import ids
from handlers.wait_views import decision_action_id
from tests.support.e2e import world_at
from tests.support.outcomes import FOLLOW
from tests.support.secret_scan import leaks_in, remember
from tests.test_audit_cli import _run

pytestmark = pytest.mark.slow

POLICY = """
roles:
  engineers:
    members: ["U0BOB"]
    workflows: ["*"]
    targets: any
    resume: true
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: self
limits:
  runs_per_user_per_minute: 100
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["@it-leads"], count: 2}
"""
#: a token and a response URL a person pastes into a parameter: neither may reach an export
PASTED_TOKEN = "xoxb-2718281828-3141592653-pastedbyaccident"
PASTED_HOOK = "https://hooks.slack.com/commands/T0LOCAL/99/pastedsecretpart"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY, overrides=FOLLOW) as w:
        yield w


# -- helpers ------------------------------------------------------------------------------


def _url(world: World) -> str:
    return world.database_url


async def export(world: World, *args: str) -> list[dict[str, Any]]:
    """``nexthink-bot audit --format jsonl`` on the world's database, checked for leaks."""
    done = await asyncio.to_thread(_run, _url(world), *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    _no_secrets(world, done.stdout)
    return [json.loads(line) for line in done.stdout.splitlines()]


def _no_secrets(world: World, text: str) -> None:
    """No configured secret, no token, no response URL (the bot's or one a person typed)."""
    assert world.sandbox is not None
    for secret in (
        world.slack.bot_token,
        SIGNING_SECRET,
        WEBHOOK_TOKEN,
        world.sandbox.client_secret,
        PASTED_TOKEN,
        PASTED_HOOK,
        "hooks.slack.com",
        f"{world.slack.url}/hooks/",
        "/hooks/commands/",
        "/hooks/actions/",
    ):
        assert secret not in text
    assert leaks_in(text) == []


def events(records: list[dict[str, Any]]) -> list[str]:
    return [r["event"] for r in records]


def only(records: list[dict[str, Any]], event: str) -> dict[str, Any]:
    found = [r for r in records if r["event"] == event]
    assert len(found) == 1, (event, events(records))
    return found[0]


async def stored(world: World, event: str, count: int = 1) -> None:
    """Wait until the store holds ``count`` records of ``event`` (background loops write some)."""
    assert world.bot is not None
    store = world.bot.store

    async def have() -> int:
        return len([r async for r in store.iter_audit() if r.event == event])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while await have() < count:
        assert loop.time() < deadline, f"no {count} {event} record(s) within 120 s"
        await asyncio.sleep(0.05)


async def command(world: World, user_id: str, text: str, channel_id: str = "C0GENERAL") -> None:
    assert world.driver is not None
    response = await world.driver.command(user_id, text, channel_id=channel_id)
    assert response.status == 200
    await world.settle()


async def click(world: World, user_id: str, message: Message, action_id: str) -> None:
    assert world.driver is not None
    response = await world.driver.click(user_id, message, action_id)
    assert response.status == 200
    await world.settle()


def approval_requests(world: World) -> list[Message]:
    return [m for m in world.slack.messages_in("C0APPROVALS") if not m.ephemeral]


# -- runs -----------------------------------------------------------------------------------


async def test_a_run_writes_requested_executed_and_its_outcome(world: World) -> None:
    """A run is `run_requested`, then `executed` with Nexthink's ids, then `outcome` once NQL
    says how it ended; the three share the bot's request id, oldest first, all fields present."""
    assert world.sandbox is not None
    await command(world, "U0ALICE", "run restart_teams")
    await stored(world, "outcome")
    records = await export(world)
    assert events(records) == ["run_requested", "executed", "outcome"]
    assert all(list(r) == list(AUDIT_FIELDS) for r in records)
    requested, executed, outcome = records
    (sent,) = world.sandbox.requests("execute_v2")
    for record in (requested, executed):
        assert record["actor"] == "U0ALICE"
        assert record["actor_upn"] == "alice@example.com"
    assert outcome["actor"] is None  # the bot found it by polling
    for record in records:
        assert record["workflow"] == "restart_teams"
        assert record["request_id"] == requested["request_id"] is not None
        assert record["targets"][0]["upn"] == "alice@example.com"
    assert requested["result"] == "pending"
    assert requested["request_uuid"] is None
    assert executed["result"] == "sent"
    assert executed["request_uuid"] == sent.response["requestUuid"]
    assert executed["execution_uuids"] == sent.response["executionsUuids"]
    assert outcome["result"] == "succeeded"
    assert outcome["execution_uuids"] == executed["execution_uuids"]
    assert outcome["detail"].startswith("1 success")
    assert times_are_ordered(records)


def times_are_ordered(records: list[dict[str, Any]]) -> bool:
    times = [r["time"] for r in records]
    return times == sorted(times) and all(t.endswith("Z") for t in times)


async def test_refusals_and_a_failed_execute_are_written_without_what_was_pasted(
    world: World,
) -> None:
    """A policy refusal is `run_refused` with the reason (a token and a response URL pasted into
    a parameter masked), a resume by someone without the right too, and a 500 from Nexthink is
    `execute_failed` with the error."""
    assert world.sandbox is not None
    remember(PASTED_TOKEN)
    note = f"run restart_teams device:LAPTOP-BOB note={PASTED_TOKEN} url={PASTED_HOOK}"
    await command(world, "U0ALICE", note)
    uuid = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"
    await command(world, "U0ALICE", f"resume {uuid} fecab46b-ee58-b8bc-b61e-912a2dc2bcbc x=1")
    world.sandbox.faults.add("execute_v2:500")
    await command(world, "U0ALICE", "run restart_teams")
    records = await export(world)
    assert events(records) == [
        "run_refused", "run_refused", "run_requested", "execute_failed",
    ]  # fmt: skip
    refused, resume, _, failed = records
    assert refused["actor"] == "U0ALICE"
    assert refused["actor_upn"] == "alice@example.com"
    assert refused["workflow"] == "restart_teams"
    assert refused["result"] == "refused"
    assert "You may only run `restart_teams` on yourself" in refused["detail"]
    assert refused["targets"] == [{"kind": "device", "name": "LAPTOP-BOB"}]
    assert refused["params"] == {"note": REDACTED, "url": REDACTED}
    assert resume["workflow"] == uuid
    assert "resume" in resume["detail"].casefold()
    assert resume["targets"] == [
        {"kind": "execution", "label": "fecab46b-ee58-b8bc-b61e-912a2dc2bcbc"}
    ]
    assert failed["result"] in {"failed", "unknown"}
    assert "500" in failed["detail"] or "Unavailable" in failed["detail"]
    assert failed["request_id"] == records[2]["request_id"]
    by_alice = await export(world, "--user", "ALICE@example.com", "--workflow", "restart_teams")
    assert events(by_alice) == ["run_refused", "run_requested", "execute_failed"]


# -- approvals ------------------------------------------------------------------------------


async def test_approvals_with_votes_denials_with_reasons_and_expiry(world: World) -> None:
    """Bob's guarded run: `approval_requested`; Carol's vote counts (1 of 2), Dave's reaches the
    count and the run is `executed`. A second request is denied with a reason, a third expires."""
    assert world.bot is not None
    run = "run reimage_device device:LAPTOP-BOB reason=broken"
    await command(world, "U0BOB", run, "C0SUPPORT")
    (first,) = approval_requests(world)
    await click(world, "U0CAROL", first, ids.APPROVAL_APPROVE)
    await click(world, "U0DAVE", first, ids.APPROVAL_APPROVE)

    await command(world, "U0BOB", run, "C0SUPPORT")
    second = approval_requests(world)[-1]
    await click(world, "U0CAROL", second, ids.APPROVAL_DENY)
    assert world.driver is not None
    (view,) = [v for v in world.slack.views.values() if v.callback_id == ids.DENY_REASON_MODAL]
    response = await world.driver.submit_view(
        "U0CAROL", view.id, {ids.DENY_REASON_BLOCK: {ids.DENY_REASON: "not this week"}}
    )
    assert response.status == 200
    await world.settle()

    await command(world, "U0BOB", run, "C0SUPPORT")
    assert await approvals.sweep_expired(world.bot, now=datetime.now(UTC) + timedelta(days=2)) == 1

    records = await export(world)
    assert [e for e in events(records) if e != "outcome"] == [
        "run_requested", "approval_requested", "approval_vote", "approval_vote", "executed",
        "run_requested", "approval_requested", "approval_denied",
        "run_requested", "approval_requested", "approval_expired",
    ]  # fmt: skip
    runs = [r["request_id"] for r in records if r["event"] == "run_requested"]
    assert len(set(runs)) == 3
    requested = [r for r in records if r["event"] == "approval_requested"]
    assert [r["request_id"] for r in requested] == runs
    assert all(r["actor"] == "U0BOB" and r["result"] == "pending" for r in requested)
    assert "2 of @it-leads in C0APPROVALS" in requested[0]["detail"]
    carol, dave = [r for r in records if r["event"] == "approval_vote"]
    assert (carol["actor"], carol["actor_upn"], carol["result"], carol["detail"]) == (
        "U0CAROL", "carol@example.com", "counted", "1 of 2",
    )  # fmt: skip
    assert (dave["actor"], dave["result"], dave["detail"]) == ("U0DAVE", "approved", "2 of 2")
    assert carol["request_id"] == dave["request_id"] == runs[0]
    executed = only(records, "executed")
    assert executed["actor"] == "U0BOB"  # the run is the requester's; the votes say who approved
    assert executed["params"] == {"reason": "broken"}
    assert executed["request_uuid"]
    denied = only(records, "approval_denied")
    assert (denied["actor"], denied["result"], denied["detail"]) == (
        "U0CAROL", "denied", "not this week",
    )  # fmt: skip
    assert denied["request_id"] == runs[1]
    expired = only(records, "approval_expired")
    assert expired["actor"] is None
    assert expired["request_id"] == runs[2]
    assert expired["result"] == "expired"
    assert expired["detail"].startswith("0 of 2 by ")

    carols = await export(world, "--user", "U0CAROL")
    assert events(carols) == ["approval_vote", "approval_denied"]


# -- questions from Nexthink ------------------------------------------------------------------


async def _question(world: World, params: str) -> Message:
    """Alice runs the pausing request_software; the sandbox posts its question to the webhook."""
    assert world.sandbox is not None
    before = len(world.sandbox.webhooks)
    await command(world, "U0ALICE", f"run request_software software=Firefox {params}")
    delivery = world.sandbox.webhooks[before]
    assert delivery.status == 201, delivery.response
    message = world.slack.find_message(delivery.response["channel"], delivery.response["ts"])
    assert message is not None
    return message


async def test_questions_posted_decided_resumed_and_expired(world: World) -> None:
    """The webhook's question is `question_posted`; Carol's click is `question_decided` and the
    trigger Nexthink accepted `resumed`; an unanswered question is `question_expired` once swept;
    `/nexthink resume` of an execution with a question is Bob's click on it (issue 13): again
    `question_decided` and `resumed`, with Bob's UPN as the approver."""
    assert world.bot is not None
    assert world.sandbox is not None
    message = await _question(world, "channel=C0SUPPORT approvers=U0CAROL")
    await click(world, "U0CAROL", dataclasses.replace(message), decision_action_id(0))
    (trigger,) = world.sandbox.requests("trigger")
    await _question(world, "channel=C0SUPPORT approvers=U0CAROL")
    assert await waits.sweep_expired(world.bot, now=datetime.now(UTC) + timedelta(days=2)) == 1
    await _question(world, "channel=C0SUPPORT")
    execution = [e for e in world.sandbox.executions.values() if e.waiting][-1]
    await command(
        world, "U0BOB", f"resume {execution.workflow.uuid} {execution.uuid} decision=approved"
    )

    records = await export(world)
    questions = [
        r for r in records if r["event"].startswith("question_") or r["event"] == "resumed"
    ]
    assert events(questions) == [
        "question_posted", "question_decided", "resumed",
        "question_posted", "question_expired",
        "question_posted", "question_decided", "resumed",
    ]  # fmt: skip
    posted = questions[0]
    assert posted["actor"] is None
    assert posted["result"] == "posted"
    assert posted["workflow"] == trigger.path.split("/")[-4]
    assert posted["targets"] == [{"kind": "channel", "channel": "C0SUPPORT"}]
    assert posted["params"]["options"] == ["Approve", "Deny"]
    assert posted["params"]["requester"] == "alice@example.com"
    assert posted["params"]["approvers"] == ["U0CAROL"]
    assert posted["detail"]  # the question as Nexthink asked it
    decided, resumed = questions[1], questions[2]
    assert (decided["actor"], decided["actor_upn"], decided["result"]) == (
        "U0CAROL", "carol@example.com", "decided",
    )  # fmt: skip
    assert decided["params"]["option"] == "Approve"
    assert decided["params"]["question_id"] == posted["params"]["question_id"]
    assert decided["execution_uuids"] == posted["execution_uuids"] == [trigger.path.split("/")[-2]]
    assert resumed["actor"] == "U0CAROL"
    assert resumed["request_uuid"] == trigger.response[0]["requestUuid"]
    assert resumed["request_id"] == decided["request_id"] is not None
    assert resumed["result"] == "sent"
    expired = questions[4]
    assert expired["actor"] is None
    assert expired["result"] == "expired"
    assert expired["params"]["question_id"] == questions[3]["params"]["question_id"]
    by_command = questions[7]
    assert (by_command["actor"], by_command["result"]) == ("U0BOB", "sent")
    assert by_command["workflow"] == execution.workflow.uuid
    assert by_command["execution_uuids"] == [execution.uuid]
    assert by_command["params"] == {"decision": "approved", "approver": "bob@example.com"}


# -- delegation -------------------------------------------------------------------------------


async def test_delegation_events_through_the_trail_the_bot_holds(world: World) -> None:
    """``AuditTrail.record_delegation`` (for ``/nexthink delegate``) writes `delegation_set`
    with the stand-in as its target and `until`; `off` has no target."""
    assert world.bot is not None
    trail = world.bot.audit
    until = datetime(2026, 12, 24, tzinfo=UTC).date()
    await trail.record_delegation(
        actor="U0CAROL", actor_upn="carol@example.com", stand_in="U0DAVE",
        stand_in_upn="dave@example.com", until=until,
    )  # fmt: skip
    await trail.record_delegation(actor="U0CAROL", stand_in=None)
    records = await export(world, "--user", "U0CAROL")
    assert events(records) == ["delegation_set", "delegation_set"]
    on, off = records
    assert on["targets"] == [{"kind": "stand_in", "user_id": "U0DAVE", "upn": "dave@example.com"}]
    assert (on["params"], on["result"]) == ({"until": "2026-12-24"}, "set")
    assert (off["targets"], off["params"], off["result"]) == ([], {"until": None}, "off")


# -- CSV and retention --------------------------------------------------------------------------


async def test_the_csv_of_real_events_parses_with_the_documented_header(world: World) -> None:
    """The CSV of a run's events parses with ``csv``: the header is AUDIT_FIELDS, lists and
    objects are JSON cells, an empty cell is null."""
    await command(world, "U0ALICE", "run restart_teams")
    await stored(world, "outcome")
    done = await asyncio.to_thread(_run, _url(world), "--format", "csv")
    assert done.returncode == 0, done.stderr
    _no_secrets(world, done.stdout)
    rows = list(csv.DictReader(io.StringIO(done.stdout, newline="")))
    assert tuple(rows[0]) == AUDIT_FIELDS
    assert [r["event"] for r in rows] == ["run_requested", "executed", "outcome"]
    assert json.loads(rows[1]["targets"])[0]["upn"] == "alice@example.com"
    assert len(json.loads(rows[1]["execution_uuids"])) == 1
    assert rows[0]["request_uuid"] == ""  # null
    assert datetime.fromisoformat(rows[0]["time"]).tzinfo is not None


async def test_the_sweep_deletes_only_records_older_than_the_retention(tmp_path: Path) -> None:
    """With AUDIT_RETENTION_DAYS=30 the bot's sweep deletes a record of 31 days ago and keeps
    one of 29 days ago and what happens now."""
    url = f"sqlite:///{tmp_path}/bot.db"
    store = await Store.open(url)
    now = datetime.now(UTC)
    try:
        trail = AuditTrail(store, redact=Redactor())
        await trail.record("run_requested", actor="U0OLD", now=now - timedelta(days=31))
        await trail.record("run_requested", actor="U0KEPT", now=now - timedelta(days=29))
    finally:
        await store.close()
    overrides = {**FOLLOW, "audit_retention_days": 30}
    async with world_at(tmp_path, POLICY, overrides=overrides) as world:
        assert world.bot is not None
        bot_store = world.bot.store

        async def actors() -> list[str | None]:
            return [r.actor async for r in bot_store.iter_audit()]

        found: list[str | None] = []

        async def refresh() -> None:
            found[:] = await actors()

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        await refresh()
        while "U0OLD" in found:
            assert loop.time() < deadline, "the sweep did not prune within 120 s"
            await asyncio.sleep(0.05)
            await refresh()
        assert found == ["U0KEPT"]
        await command(world, "U0ALICE", "run restart_teams")
        records = await export(world)
        assert [r["actor"] for r in records][:3] == ["U0KEPT", "U0ALICE", "U0ALICE"]
