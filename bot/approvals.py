"""Bot-side approvals: a workflow with ``approval:`` in the policy runs only once enough
distinct approvers (never the requester) said yes.

``request`` records the run and asks in the approval channel; ``approve`` counts a vote
atomically in the store, and the one vote that reaches the count executes the request, exactly
once; ``deny`` closes it with an optional reason. Expired requests are swept. What happened is
told to the notifier (``bot.notifier``); a click that does nothing returns a ``VoteAnswer``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot import consent
from bot.audit import AuditTrail
from bot.catalogue import Catalogue
from bot.deciders import StandIns, Subject, Verdict, decider
from bot.logging import get_logger
from bot.metrics import CLICKS
from bot.notifier import ApprovalNews, Notifier, NotPosted, RequesterNews, ScheduleNews
from bot.policy import ApprovalRule, Principal
from bot.runs import PreparedRun, Runner
from bot.store import (
    ApprovalRecord,
    NudgePlan,
    RequestRecord,
    ScheduleRecord,
    Store,
    StoreError,
)

__all__ = [
    "STALE_AFTER",
    "ApprovalDeps",
    "ApprovalNotPosted",
    "VoteAnswer",
    "approve",
    "deny",
    "may_decide",
    "request",
    "rule_for",
    "rule_of",
    "sweep_expired",
    "sweep_stale",
]

log = get_logger(__name__)

#: an approval still approved/executing after this long was abandoned by a crashed process
#: (an execute, retries and chunks included, takes a few minutes at the very most)
STALE_AFTER = timedelta(minutes=10)


class ApprovalDeps(StandIns, Protocol):
    store: Store
    catalogue: Catalogue
    runner: Runner
    notifier: Notifier
    audit: AuditTrail


class ApprovalNotPosted(Exception):
    """Nobody could be asked: Slack refused the approval request (``error``) in ``channel``."""

    def __init__(self, workflow_id: str, channel: str, error: str) -> None:
        super().__init__(error)
        self.workflow_id = workflow_id
        self.channel = channel
        self.error = error


@dataclass(frozen=True)
class VoteAnswer:
    """What the clicker alone is told: a store refusal (``not_found``, ``expired``, ``not_pending``,
    ``already_voted``, ``own_request``, ``not_counted``, ``not_deniable``), ``policy`` (``text``
    says why), ``reason_required`` (a denial without the reason the policy requires), or
    ``counted`` (a vote short of the count: ``votes`` of ``count``; ``for_user_id``: the
    approver a stand-in voted for)."""

    reason: str
    text: str = ""
    votes: int = 0
    count: int = 0
    for_user_id: str | None = None


def rule_of(deps: ApprovalDeps, record: RequestRecord | None) -> ApprovalRule:
    """The policy's approval rule for the request's workflow (its forms: ``deny_reason``,
    ``approve_comment``); the defaults if the policy no longer has one."""
    found = deps.policy.approval_for(record.workflow_id or "") if record else None
    return found or ApprovalRule(channel=None, approvers=())


async def rule_for(deps: ApprovalDeps, approval_id: str) -> ApprovalRule:
    """``rule_of`` the approval's request (the defaults when the approval is unknown)."""
    approval = await deps.store.get_approval(approval_id)
    record = await deps.store.get_request(approval.request_id) if approval else None
    return rule_of(deps, record)


async def request(
    deps: ApprovalDeps,
    prepared: PreparedRun,
    *,
    response_url: str | None,
    record: RequestRecord | None = None,
) -> ApprovalRecord:
    """Record the run as awaiting approval (unless ``record`` is it already: a scheduled run)
    and ask in the approval channel; raises ``ApprovalNotPosted`` when the request could not be
    posted (nothing is then pending)."""
    rule = prepared.approval
    assert rule is not None
    if record is None:
        record = await deps.runner.record(
            prepared, state="approval_pending", response_url=response_url
        )
    now = datetime.now(UTC)
    expires_at = now + timedelta(minutes=rule.expires_in_minutes)
    plan = NudgePlan(rule.remind_after_minutes, rule.escalate_after_minutes, rule.escalate_to)
    approval = await deps.store.create_approval(
        request_id=record.id,
        count=rule.count,
        expires_at=expires_at,
        channel_id=rule.channel,
        approvers=list(rule.approvers),
        plan=plan,
        next_nudge_at=plan.next_at(now, now, expires_at),
        now=now,
    )
    labels = [t.label for t in prepared.targets]
    channel = approval.channel_id or prepared.requester.channel_id or prepared.requester.user_id
    try:
        where = await deps.notifier.ask_approval(
            approval, record, prepared.workflow.display_name, labels
        )
    except NotPosted as exc:
        # nobody was asked: close the approval now rather than let it expire unseen
        await deps.store.mark_approval(approval.id, "expired", expected="pending")
        record = await deps.store.update_request(
            record.id, state="failed", error=f"approval request not posted: {exc.error}"
        )
        await deps.audit.record_request(
            "approval_requested", record, result="not_posted", detail=f"Slack: {exc.error}"
        )
        log.warning("approval_not_posted", approval=approval.id, channel=channel, error=exc.error)
        raise ApprovalNotPosted(prepared.entry.id, channel, exc.error) from None
    approval = await deps.store.set_approval_message(approval.id, *where)
    await deps.audit.record_request(
        "approval_requested",
        record,
        result="pending",
        detail=_asked_of(approval),
    )
    log.info(
        "approval_requested", approval=approval.id, request=record.id, workflow=prepared.entry.id
    )
    return approval


async def may_decide(deps: ApprovalDeps, approval: ApprovalRecord, user_id: str) -> Verdict:
    """Whether (and for whom) the clicker may decide the approval (``bot.deciders``)."""
    record = await deps.store.get_request(approval.request_id)
    subject = Subject.of_approval(approval, record.user_upn if record else None)
    return await decider(deps, user_id, subject)


def _voters(approval: ApprovalRecord) -> tuple[str, ...]:
    return tuple(v.user_id for v in approval.votes)


async def approve(
    deps: ApprovalDeps, approval_id: str, user_id: str, comment: str | None = None
) -> VoteAnswer | None:
    """One Approve click (with the approver's ``comment``, where the policy asks for one);
    returns why it did nothing visible, or None."""
    approval = await deps.store.get_approval(approval_id)
    if approval is None:
        return VoteAnswer("not_found")
    if approval.requester_id == user_id:
        CLICKS.labels("approve", "own_request").inc()
        return VoteAnswer("own_request")
    verdict = await may_decide(deps, approval, user_id)
    if verdict.refusal:
        CLICKS.labels("approve", "refused").inc()
        return VoteAnswer("policy", text=verdict.refusal)
    record = await deps.store.get_request(approval.request_id)
    if rule_of(deps, record).approve_comment == "none":
        comment = None  # a form the policy does not offer carries nothing
    counted = verdict.counted
    stand_in = user_id if verdict.on_behalf else None
    vote = await deps.store.vote_approval(
        approval_id, counted.user_id, counted.upn, cast_by=stand_in, comment=comment
    )
    if not vote.accepted:
        CLICKS.labels("approve", vote.reason or "refused").inc()
        return VoteAnswer(vote.reason or "not_counted")
    CLICKS.labels("approve", "ok").inc()
    if vote.approval is None or record is None:
        return None
    detail = f"{vote.votes} of {vote.approval.count}"
    if stand_in:
        detail += f"; for {counted.user_id} ({counted.upn or 'no UPN'}), as their stand-in"
    if comment:
        detail += f"; comment: {comment}"
    await deps.audit.record_request(
        "approval_vote",
        record,
        actor=user_id,
        actor_upn=verdict.principal.upn,
        result="approved" if vote.reached else "counted",
        detail=detail,
    )
    name = await deps.catalogue.display_name(record.workflow_id)
    if comment:
        news = RequesterNews("approved", counted.user_id, comment, cast_by=stand_in)
        await deps.notifier.tell_requester(record, news)
    if not vote.reached:
        await deps.notifier.approval_changed(vote.approval, record, name, ApprovalNews("votes"))
        for_user = counted.user_id if stand_in else None
        return VoteAnswer(
            "counted", votes=vote.votes, count=vote.approval.count, for_user_id=for_user
        )
    claimed = await deps.store.mark_approval(approval_id, "executing", expected="approved")
    if claimed is None:  # another process is already running it
        return None
    schedule = await deps.store.schedule_for_request(record.id)
    if schedule is not None:  # a run asked for later: it runs at its time, not now
        await _approved_for_later(deps, claimed, record, name, schedule)
    else:
        await _run_approved(deps, claimed, record, name)
    return None


async def _approved_for_later(
    deps: ApprovalDeps,
    claimed: ApprovalRecord,
    record: RequestRecord,
    name: str,
    schedule: ScheduleRecord,
) -> None:
    """The approval of a scheduled run: the run waits for its time (``bot.schedule_loop``);
    if it was cancelled meanwhile, nothing will run."""
    done = await deps.store.mark_approval(claimed.id, "executed") or claimed
    ready = await deps.store.finish_schedule(
        schedule.id, "scheduled", expected=("awaiting_approval",)
    )
    voters = _voters(claimed)
    if ready is None:
        news = ApprovalNews("scheduled", voters, detail="cancelled", at=schedule.run_at)
        await deps.notifier.approval_changed(done, record, name, news)
        return
    record = await deps.store.update_request(record.id, state="scheduled")
    news = ApprovalNews("scheduled", voters, detail=ready.code, at=ready.run_at)
    await deps.notifier.approval_changed(done, record, name, news)
    await deps.notifier.schedule_changed(ready, record, ScheduleNews("approved"))
    prepared = await deps.runner.from_record(record)
    if deps.runner.asking(prepared):  # approval first, then the people, each until its time
        await consent.ask(
            deps,
            prepared,
            response_url=None,
            record=record,
            schedule_id=ready.id,
            run_at=ready.run_at,
        )


async def _run_approved(
    deps: ApprovalDeps, claimed: ApprovalRecord, record: RequestRecord, name: str
) -> None:
    voters = _voters(claimed)
    prepared = await deps.runner.from_record(record)
    asking = deps.runner.asking(prepared)
    if asking:  # approval first, then the consent of the people it runs on
        asked = await consent.ask(deps, prepared, response_url=record.response_url, record=record)
        labels = ", ".join(t.label for t in asking)
        rest = asked.rest
        if rest is None:
            done = await deps.store.mark_approval(claimed.id, "executed")
            news = ApprovalNews("consent", voters, detail=labels)
            await deps.notifier.approval_changed(done or claimed, record, name, news)
            return
        prepared = rest
        record = await deps.store.get_request(record.id) or record
    await deps.notifier.approval_changed(claimed, record, name, ApprovalNews("sending", voters))
    try:
        result = await deps.runner.execute(prepared, record)
    except asyncio.CancelledError:
        await _interrupted(deps, claimed, record, name)
        raise
    try:
        done = await deps.store.mark_approval(claimed.id, "executed")
    except StoreError as exc:  # the execute was sent: still tell everyone how it went
        log.error("approval_not_recorded", approval=claimed.id, error=str(exc))
        done = None
    if result.ok and result.execution is not None:
        detail = ", ".join(f"`{u}`" for u in result.execution.request_uuids)
        news = ApprovalNews("executed", voters, detail=detail)
    else:
        summary = result.error.summary if result.error else "unknown error"
        news = ApprovalNews("failed", voters, detail=summary)
    await deps.notifier.approval_changed(done or claimed, record, name, news)
    await deps.notifier.run_finished(result)  # posts where it can follow the outcome


async def _interrupted(
    deps: ApprovalDeps,
    approval: ApprovalRecord,
    record: RequestRecord,
    name: str,
    *,
    closed: bool = False,
) -> None:
    """The bot is stopping and gave up on the execute of an approved request: whether Nexthink
    got it is unknown, and running it again could run it twice. Close the approval (else it stays
    ``executing`` for good) and say so, rather than leave everyone waiting. ``closed``: the store
    already closed it (a sweep after a crash)."""
    error = "interrupted: the bot stopped while sending the execute; the outcome is unknown"
    done = approval if closed else await deps.store.mark_approval(approval.id, "executed")
    record = await deps.store.update_request(record.id, state="unknown", error=error)
    await deps.audit.record_request("execute_failed", record, result="unknown", detail=error)
    news = ApprovalNews("interrupted", _voters(approval))
    await deps.notifier.approval_changed(done or approval, record, name, news)
    await deps.notifier.tell_requester(record, RequesterNews("interrupted"))


async def deny(
    deps: ApprovalDeps, approval_id: str, user_id: str, reason: str | None
) -> VoteAnswer | None:
    """A denial (or the requester's withdrawal), with a reason: required, optional or none, as
    the policy's ``deny_reason`` says (a withdrawal needs none)."""
    approval = await deps.store.get_approval(approval_id)
    if approval is None:
        return VoteAnswer("not_found")
    reason = (reason or "").strip() or None
    denied_for = None
    principal: Principal | None = None
    if approval.requester_id != user_id:
        verdict = await may_decide(deps, approval, user_id)
        principal = verdict.principal
        if verdict.refusal:
            CLICKS.labels("deny", "refused").inc()
            return VoteAnswer("policy", text=verdict.refusal)
        rule = rule_of(deps, await deps.store.get_request(approval.request_id))
        if rule.deny_reason == "required" and reason is None:
            CLICKS.labels("deny", "reason_required").inc()
            return VoteAnswer("reason_required")
        if rule.deny_reason == "none":
            reason = None
        denied_for = verdict.on_behalf.user_id if verdict.on_behalf else None
    result = await deps.store.deny_approval(approval_id, user_id, reason, denied_for=denied_for)
    if not result.accepted or result.approval is None:
        CLICKS.labels("deny", result.reason or "refused").inc()
        return VoteAnswer(result.reason or "not_deniable")
    CLICKS.labels("deny", "ok").inc()
    record = await deps.store.update_request(result.approval.request_id, state="denied")
    name = await deps.catalogue.display_name(record.workflow_id)
    withdrawn = user_id == approval.requester_id
    standing_in = f"for {denied_for}, as their stand-in" if denied_for else None
    await deps.audit.record_request(
        "approval_denied",
        record,
        actor=user_id,
        actor_upn=principal.upn if principal else record.user_upn,
        result="withdrawn" if withdrawn else "denied",
        detail="; ".join(p for p in (reason, standing_in) if p) or None,
    )
    news = ApprovalNews(
        "withdrawn" if withdrawn else "denied",
        user_id=user_id,
        reason=reason,
        for_user_id=denied_for,
    )
    await deps.notifier.approval_changed(result.approval, record, name, news)
    if not withdrawn:
        told = RequesterNews(
            "denied", denied_for or user_id, reason, cast_by=denied_for and user_id
        )
        await deps.notifier.tell_requester(record, told)
    return None


async def sweep_expired(deps: ApprovalDeps, *, now: datetime | None = None) -> int:
    """Close the approvals that expired by ``now`` (default: the current time) and tell their
    requesters; returns how many."""
    expired = await deps.store.expire_approvals(now)
    for approval in expired:
        record = await deps.store.update_request(approval.request_id, state="expired")
        await deps.audit.record_request(
            "approval_expired",
            record,
            actor=None,
            result="expired",
            detail=f"{len(approval.votes)} of {approval.count} by {_iso(approval.expires_at)}",
        )
        name = await deps.catalogue.display_name(record.workflow_id)
        await deps.notifier.approval_changed(approval, record, name, ApprovalNews("expired"))
        await deps.notifier.tell_requester(record, RequesterNews("expired"))
    return len(expired)


async def sweep_stale(
    deps: ApprovalDeps, *, now: datetime | None = None, older_than: timedelta = STALE_AFTER
) -> int:
    """Report approvals whose execute was interrupted by a crash (approved or executing for too
    long) as having an unknown outcome; never run them again. Returns how many."""
    closed = await deps.store.close_stale_approvals(older_than, now)
    for approval in closed:
        record = await deps.store.get_request(approval.request_id)
        if record is None:
            continue
        name = await deps.catalogue.display_name(record.workflow_id)
        await _interrupted(deps, approval, record, name, closed=True)
    return len(closed)


def _asked_of(approval: ApprovalRecord) -> str:
    where = f" in {approval.channel_id}" if approval.channel_id else ""
    who = ", ".join(approval.approvers) or "any approver"
    return f"{approval.count} of {who}{where}, by {_iso(approval.expires_at)}"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
