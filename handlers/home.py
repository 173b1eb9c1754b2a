"""The Home tab: published on ``app_home_opened``, kept current while its owner uses it.

* A *Run* button (``ids.HOME_RUN``) runs its workflow exactly as ``/nexthink run <id>`` with no
  target does: the same run path (``run_and_reply``), so the same policy, limits, approvals and
  outcome follow-up. There is no response URL, so the result arrives as a direct message.
* *Open the run form* (``ids.HOME_OPEN_MODAL``) opens the run modal, as ``/nexthink`` does.
* Approvers (and stand-ins, for the people they stand in for) see the approvals and paused
  executions that wait on them, oldest first, with the channel messages' own buttons: the same
  handlers decide them, and ``bot.deciders.decide_as`` says which they may decide.
* Scheduled runs not run yet are listed with a Cancel button (``handlers.schedules``).

Refresh: the Home is republished after a run from it, and a background pass
(``refresh_forever``, every ``HOME_REFRESH_SECONDS``) rebuilds the Homes of people who opened
theirs lately (``bot.viewers``) and publishes those whose content changed: outcomes arriving,
decisions made here or in a channel, new questions, expiries.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import workspaces
from bot.deciders import Subject, clicker, decide_as
from bot.followups import Progress, pause
from bot.logging import get_logger
from bot.nexthink.errors import NexthinkError
from bot.policy import Principal
from bot.runs import Refusal, Requester, RunRequest
from bot.store import ApprovalRecord, ConsentRecord, RequestRecord, StoreError, WaitRecord
from handlers import ids, payloads
from handlers.home_views import MAX_DECISIONS, Recent, home_view
from handlers.modals import open_run_modal
from handlers.running import run_and_reply
from handlers.schedule_views import schedule_home_blocks
from handlers.services import Services

__all__ = ["build_home", "publish_home", "refresh_forever", "refresh_homes", "register"]

log = get_logger(__name__)

_RECENT = 8


@dataclass
class _Pending:
    """Open approvals and waits, read once per refresh pass and shared by every Home built."""

    approvals: list[ApprovalRecord] = field(default_factory=list)
    waits: list[WaitRecord] = field(default_factory=list)
    records: dict[str, RequestRecord | None] = field(default_factory=dict)

    @classmethod
    async def load(cls, bot: Services) -> _Pending:
        return cls(
            approvals=await bot.store.pending_approvals(limit=200),
            waits=await bot.store.pending_waits(limit=200),
        )

    async def record(self, bot: Services, request_id: str) -> RequestRecord | None:
        if request_id not in self.records:
            self.records[request_id] = await bot.store.get_request(request_id)
        return self.records[request_id]


def _named(approvers: tuple[str, ...]) -> list[str]:
    """The approvers that name people or groups ("*" names nobody in particular)."""
    return [a for a in approvers if a != "*"]


async def _principal(bot: Services, user_id: str) -> tuple[Principal, str | None]:
    """The viewer as the policy sees them, and why they cannot run anything (if so)."""
    try:
        await bot.runner.principal(Requester(user_id=user_id))
        problem = None
    except Refusal as exc:
        problem = f":no_entry: {exc.message}"
    # approvers may name user groups even when the roles do not
    return await clicker(bot, user_id, all_groups=True), problem


async def _decisions(
    bot: Services, principal: Principal, pending: _Pending
) -> tuple[list[tuple[ApprovalRecord, RequestRecord, str]], list[WaitRecord]]:
    """What waits on ``principal`` (as an approver or a stand-in), oldest first."""
    standing_in = (
        await bot.store.delegations_to(principal.user_id, principal.upn)
        if bot.policy.delegation
        else []
    )
    approvals: list[tuple[ApprovalRecord, RequestRecord, str]] = []
    for approval in pending.approvals:
        if not _named(approval.approvers) or approval.requester_id == principal.user_id:
            continue
        record = await pending.record(bot, approval.request_id)
        if record is None:
            continue
        subject = Subject.of_approval(approval, record.user_upn)
        verdict = await decide_as(bot, principal, subject, delegations=standing_in)
        voted = {v.user_id for v in approval.votes} | {v.cast_by for v in approval.votes}
        if verdict.allowed and not voted & {principal.user_id, verdict.counted.user_id}:
            approvals.append(
                (approval, record, await bot.catalogue.display_name(record.workflow_id))
            )
    waits = []
    for wait in pending.waits:
        if not _named(wait.approvers):
            continue
        verdict = await decide_as(bot, principal, Subject.of_wait(wait), delegations=standing_in)
        if verdict.allowed:
            waits.append(wait)
    return approvals, waits


def _is_approver(bot: Services, principal: Principal) -> bool:
    """Whether the policy names this person as an approver of some workflow."""
    rules = [w.approval for w in bot.policy.workflows.values() if w.approval is not None]
    return any(
        (named := _named(rule.approvers)) and bot.policy.may_decide(principal, approvers=named)
        for rule in rules
    )


async def _recent(bot: Services, user_id: str) -> list[Recent]:
    records = await bot.store.history(user_id, limit=_RECENT)
    followups = await bot.store.followups_for([r.id for r in records])
    by_request = {f.request_id: f for f in followups}
    recent = []
    for record in records:
        followup = by_request.get(record.id)
        recent.append(
            Recent(
                record=record,
                workflow_name=await bot.catalogue.display_name(record.workflow_id),
                progress=Progress.load(followup.last_status) if followup else None,
                following=followup is not None and not followup.done,
            )
        )
    return recent


async def build_home(
    bot: Services, user_id: str, *, pending: _Pending | None = None
) -> dict[str, Any]:
    """The Home tab ``user_id`` should see now."""
    principal, problem = await _principal(bot, user_id)
    entries = []
    may_target_others = False
    if problem is None:
        try:
            entries = await bot.runner.entries(principal, None)
        except NexthinkError as exc:
            problem = f":warning: Nexthink did not answer ({exc.summary}), so the workflows cannot be listed now."
    defaults: dict[str, dict[str, str]] = {}
    runnable = []
    for entry in entries:
        specs = bot.policy.param_specs(entry.id)
        if any(spec.required and spec.default is None for spec in specs.values()):
            continue  # needs a value from the person: the run form or /nexthink run
        if bot.policy.ticket_needs(principal, None, entry.id).required:
            continue  # needs a ticket: the run form or /nexthink run … ticket:
        defaults[entry.id] = {n: s.default for n, s in specs.items() if s.default is not None}
        runnable.append(entry)
        may_target_others = may_target_others or bot.policy.may_target_others(
            principal, None, entry.id
        )
    pending = pending or await _Pending.load(bot)
    approvals, waits = await _decisions(bot, principal, pending)
    return home_view(
        user_id=user_id,
        entries=runnable,
        upn=principal.upn,
        defaults=defaults,
        problem=problem,
        may_target_others=may_target_others,
        recent=await _recent(bot, user_id),
        approver=bool(approvals or waits) or _is_approver(bot, principal),
        approvals=approvals,
        waits=waits,
        needs_approval=frozenset(e.id for e in runnable if bot.policy.approval_for(e.id)),
        scheduled=await _scheduled(bot, user_id),
        consents=await _consents(bot, user_id),
    )


async def _consents(bot: Services, user_id: str) -> list[tuple[ConsentRecord, RequestRecord, str]]:
    """The runs waiting on the viewer's consent, with Allow / Not now (the questions' own)."""
    found = []
    for asked in await bot.store.consents_waiting_on(user_id, limit=MAX_DECISIONS):
        record = await bot.store.get_request(asked.request_id)
        if record is not None:
            found.append((asked, record, await bot.catalogue.display_name(record.workflow_id)))
    return found


async def _scheduled(bot: Services, user_id: str) -> list[dict[str, Any]]:
    """The viewer's scheduled runs not run yet, soonest first, each with a Cancel button."""
    found = await bot.store.open_schedules(user_id, limit=10)
    names = {s.workflow: await bot.catalogue.display_name(s.workflow) for s in found}
    return schedule_home_blocks(found, names)


async def publish_home(
    bot: Services, user_id: str, *, force: bool = False, pending: _Pending | None = None
) -> bool:
    """Publish ``user_id``'s Home if it changed since last published (always with ``force``).
    Without a database the Home stays as it was (the next refresh brings it up to date)."""
    try:
        view = await build_home(bot, user_id, pending=pending)
    except StoreError as exc:
        log.warning("home_unavailable", error=str(exc))
        return False
    digest = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()
    if not force and bot.home_viewers.shown(user_id) == digest:
        return False
    try:
        await bot.slack.views_publish(user_id=user_id, view=view)
    except SlackApiError as exc:
        log.warning("home_publish_failed", error=exc.response.get("error"))
        return False
    bot.home_viewers.published(user_id, digest)
    return True


async def refresh_homes(bot: Services, stop: asyncio.Event | None = None) -> int:
    """Republish the changed Homes of people who opened theirs lately; how many."""
    users = bot.home_viewers.recent()
    if not users:
        return 0
    pending = await _Pending.load(bot)
    published = 0
    for user_id in users:
        if stop is not None and stop.is_set():
            break
        try:
            with workspaces.working_in(bot.home_viewers.workspace_of(user_id)):
                published += await publish_home(bot, user_id, pending=pending)
        except Exception:
            log.exception("home_refresh_failed")
    return published


async def refresh_forever(bot: Services, stop: asyncio.Event) -> None:
    """Every ``HOME_REFRESH_SECONDS``, bring open Homes up to date, until ``stop`` is set."""
    while not await pause(stop, bot.settings.home_refresh_seconds):
        try:
            await refresh_homes(bot, stop)
        except Exception:
            log.exception("home_refresh_failed")


def _requester(body: dict[str, Any]) -> Requester:
    return Requester(
        user_id=payloads.user_id(body),
        team_id=payloads.team_id(body),
        channel_id=None,
        enterprise_id=payloads.enterprise_id(body),
    )


def register(bot: Services) -> None:
    app = bot.app

    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab") not in (None, "home"):
            return
        viewer = payloads.text(event.get("user"))
        if not viewer:
            return
        bot.home_viewers.seen(viewer, workspaces.current())
        bot.tasks.spawn(publish_home(bot, viewer, force=True), name="home_publish")

    @app.action(ids.HOME_RUN)
    async def on_home_run(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        requester = _requester(body)
        workflow = payloads.text(payloads.first_action(body).get("value"))
        bot.home_viewers.seen(requester.user_id, workspaces.current())

        async def work() -> None:
            # exactly `/nexthink run <workflow>` with no target; no response URL: a DM answers
            await run_and_reply(
                bot,
                requester,
                RunRequest(workflow=workflow, source="home"),
                response_url=None,
            )
            await publish_home(bot, requester.user_id)

        bot.tasks.spawn(work(), name="home_run")

    @app.action(ids.HOME_OPEN_MODAL)
    async def on_open_form(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()

        requester = _requester(body)
        trigger_id = str(body.get("trigger_id") or "")
        bot.tasks.spawn(open_run_modal(bot, trigger_id, requester, None), name="home_form")
