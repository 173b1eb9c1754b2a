"""Runs asked for later: ``/nexthink run … at 22:00`` / ``in 2h``, kept in the store and run
once at their time by whichever replica claims them.

* ``ask`` checks everything the run path checks now (``Runner.prepare``: the policy, targets,
  parameters, the rate limit), then the policy's ``schedule:`` and the time
  (``bot.schedule_times.due_at``, in the requester's Slack time zone), records the request
  (state ``scheduled``) and the schedule. A workflow with ``approval:`` asks for it now; the run
  is scheduled once approved (``approved``), and never runs if it is denied or expires.
* ``run_due`` runs one claimed schedule: beyond ``max_late_minutes`` after its time it is
  reported as missed; otherwise the policy is checked again through the same
  ``Runner.prepare`` (a person who lost the right meanwhile is told, nothing is sent), then the
  request is executed as any run and the requester told (``Notifier.schedule_changed``).
* ``cancel`` (the requester, or a role with ``audit: true``): a cancelled run never runs.
* A workflow with ``consent:`` run on others asks each person when it is scheduled (after its
  approval, if any), each question open until the run's time; at that time only those who
  allowed it get their execute (``bot.consent_schedules``), and cancelling closes the questions.

The loop that claims due runs and keeps Nexthink's pace is ``bot.schedule_loop``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from bot import approvals, consent, consent_schedules
from bot.audit import AuditTrail
from bot.catalogue import Catalogue
from bot.identity import Identity, IdentityError
from bot.logging import get_logger
from bot.mrkdwn import code
from bot.nexthink.client import BulkExecution
from bot.nexthink.errors import NexthinkError, Throttled
from bot.notifier import Notifier, ScheduleNews
from bot.policy import Policy, Principal
from bot.runs import PreparedRun, Refusal, Requester, Runner, RunRequest, RunResult
from bot.schedule_times import ScheduleTimeError, When, due_at
from bot.store import RequestRecord, ScheduleDone, ScheduleRecord, Store, StoreError, Write
from bot.targets import DeviceTarget, UserTarget
from bot.text import outside
from bot.workspaces import of, working_in

__all__ = [
    "CancelAnswer",
    "ScheduleDeps",
    "Scheduled",
    "ask",
    "ask_json",
    "cancel",
    "listed",
    "request_of",
    "run_due",
]

log = get_logger(__name__)

#: the policy asks for consent at the run's time but nobody was asked when it was scheduled
_NEEDS_CONSENT = (
    "{workflow} now needs the consent of the people it runs on, who were not asked when it was "
    "scheduled: it was not run. Ask for it again to have them asked."
)


class ScheduleDeps(approvals.ApprovalDeps, consent.ConsentDeps, Protocol):
    store: Store
    runner: Runner
    policy: Policy
    identity: Identity
    catalogue: Catalogue
    notifier: Notifier
    audit: AuditTrail


@dataclass(frozen=True)
class Scheduled:
    """A run asked for later: its schedule (``code`` is what people type), the checked run, and
    whether it waits for an approval first."""

    schedule: ScheduleRecord
    prepared: PreparedRun
    record: RequestRecord


# -- asking -----------------------------------------------------------------------------------


def ask_json(request: RunRequest, *, visible: bool) -> dict[str, Any]:
    """What is kept of the request, so that ``Runner.prepare`` checks it again at its time."""
    return {
        "workflow": request.workflow,
        "users": [{"kind": u.kind, "value": u.value} for u in request.users],
        "devices": [{"kind": d.kind, "value": d.value} for d in request.devices],
        "params": dict(request.params),
        "source": request.source,
        "visible": visible,
        "ticket": request.ticket,
    }


def request_of(schedule: ScheduleRecord) -> RunRequest:
    """The ``RunRequest`` a schedule was asked with (its source is ``schedule``)."""
    ask = schedule.ask
    return RunRequest(
        workflow=str(ask.get("workflow") or schedule.workflow),
        users=tuple(UserTarget(u["kind"], u["value"]) for u in ask.get("users") or ()),
        devices=tuple(DeviceTarget(d["kind"], d["value"]) for d in ask.get("devices") or ()),
        params={str(k): str(v) for k, v in (ask.get("params") or {}).items()},
        source="schedule",
        ticket=str(ask["ticket"]) if ask.get("ticket") else None,
    )


async def ask(
    deps: ScheduleDeps,
    requester: Requester,
    request: RunRequest,
    when: When,
    *,
    visible: bool = False,
    now: datetime | None = None,
) -> Scheduled:
    """Check and keep a run for later; raises ``Refusal`` (nothing kept) when it may not be."""
    prepared = await deps.runner.prepare(requester, request)  # its refusals are audited there
    try:
        run_at = await _due(deps, prepared, when, now)
    except Refusal as exc:
        await deps.audit.record(
            "run_refused",
            actor=requester.user_id,
            actor_upn=prepared.principal.upn,
            workflow=prepared.entry.id,
            targets=prepared.targets_json(),
            params=prepared.params,
            ticket=prepared.ticket,
            result="refused",
            detail=exc.message,
            team_id=requester.team_id,
            enterprise_id=requester.enterprise_id,
        )
        raise
    gated = prepared.approval is not None
    record = await deps.runner.record(prepared, state="approval_pending" if gated else "scheduled")
    schedule = await deps.store.create_schedule(
        request_id=record.id,
        user_id=requester.user_id,
        user_upn=prepared.principal.upn,
        team_id=requester.team_id,
        channel_id=requester.channel_id,
        workflow=prepared.entry.id,
        ask=ask_json(request, visible=visible or prepared.visible),
        run_at=run_at,
        state="awaiting_approval" if gated else "scheduled",
    )
    await deps.audit.record_request(
        "scheduled",
        record,
        result="awaiting_approval" if gated else "scheduled",
        detail=f"{schedule.code} at {run_at.isoformat()} ({when.text})",
    )
    if prepared.asking and not gated:  # asked now, each until its time (consent_schedules)
        await consent.ask(
            deps, prepared, response_url=None, record=record, schedule_id=schedule.id, run_at=run_at
        )
    if gated:  # asked now; the run is scheduled once approved (``approvals.approve``)
        try:
            await approvals.request(deps, prepared, response_url=None, record=record)
        except approvals.ApprovalNotPosted:
            await deps.store.finish_schedule(
                schedule.id, "closed", expected=("awaiting_approval",), detail="not posted"
            )
            raise
    log.info("run_scheduled", schedule=schedule.id, request=record.id, run_at=run_at.isoformat())
    return Scheduled(schedule, prepared, record)


async def _due(
    deps: ScheduleDeps, prepared: PreparedRun, when: When, now: datetime | None
) -> datetime:
    """When the run falls due, if the policy lets this workflow be scheduled then."""
    decision = deps.policy.may_schedule(prepared.entry.id)
    if not decision.allowed:
        raise Refusal(decision.reason, field="when")
    rule = deps.policy.schedule_for(prepared.entry.id)
    try:
        tz = (await deps.identity.profile(prepared.requester.user_id)).tz
    except IdentityError as exc:
        raise Refusal(str(exc)) from None
    try:
        return due_at(when, tz=tz, now=now or datetime.now(UTC), max_days=rule.max_days)
    except ScheduleTimeError as exc:
        raise Refusal(str(exc), field="when") from None


# -- listing and cancelling -------------------------------------------------------------------


async def _principal(deps: ScheduleDeps, user_id: str) -> Principal:
    return await deps.runner.principal(Requester(user_id=user_id))


async def listed(
    deps: ScheduleDeps, requester: Requester, of_user: str | None = None
) -> list[ScheduleRecord]:
    """The scheduled runs not run yet of the requester (or of ``of_user``, for auditors)."""
    if of_user is not None and of_user != requester.user_id:
        principal = await _principal(deps, requester.user_id)
        decision = deps.policy.may_audit(principal, requester.channel_id)
        if not decision.allowed:
            raise Refusal(decision.reason)
    return await deps.store.open_schedules(of_user or requester.user_id)


CancelReason = Literal["cancelled", "not_found", "not_yours", "already"]


@dataclass(frozen=True)
class CancelAnswer:
    """``cancelled``, or why not: no such id (or not visible to the person), someone else's, or
    it already ran / was cancelled (``schedule`` then says how it ended)."""

    reason: CancelReason
    schedule: ScheduleRecord | None = None


async def cancel(deps: ScheduleDeps, requester: Requester, key: str) -> CancelAnswer:
    """Cancel the scheduled run ``key`` (short code or UUID); only its requester, or an auditor."""
    schedule = await deps.store.get_schedule(key)
    if schedule is None:
        return CancelAnswer("not_found")
    if schedule.user_id != requester.user_id:
        principal = await _principal(deps, requester.user_id)
        if not deps.policy.may_audit(principal, requester.channel_id).allowed:
            return CancelAnswer("not_found")  # someone else's ids are not confirmed to exist
    if not schedule.open:
        return CancelAnswer("already", schedule)
    if schedule.state == "awaiting_approval":  # its approval request is withdrawn first
        approval_id = await deps.store.approval_of_request(schedule.request_id)
        if approval_id is not None:
            await approvals.deny(
                deps, approval_id, schedule.user_id, "the scheduled run was cancelled"
            )
    done = await deps.store.finish_schedule(
        schedule.id,
        "cancelled",
        expected=("awaiting_approval", "scheduled"),
        cancelled_by=requester.user_id,
    )
    if done is None:  # claimed or cancelled between the read and now
        return CancelAnswer("already", await deps.store.get_schedule(schedule.id))
    await consent_schedules.close(deps, done.id, "cancelled")
    record = await _set_request(deps, done, state="cancelled")
    if record is not None:
        await deps.audit.record_request(
            "schedule_cancelled",
            record,
            actor=requester.user_id,
            actor_upn=None,
            result="cancelled",
            detail=done.code,
        )
    if done.state == "cancelled" and requester.user_id != done.user_id and record is not None:
        await deps.notifier.schedule_changed(
            done, record, ScheduleNews("cancelled", requester.user_id)
        )
    log.info("schedule_cancelled", schedule=done.id, by=requester.user_id)
    return CancelAnswer("cancelled", done)


# -- running ----------------------------------------------------------------------------------

RunOutcome = Literal["ran", "missed", "refused", "lost", "throttled"]


async def run_due(
    deps: ScheduleDeps,
    schedule: ScheduleRecord,
    *,
    now: datetime | None = None,
    record: RequestRecord | None = None,
) -> tuple[RunOutcome, float | None]:
    """Run one schedule this caller claimed (``record``: its request, as the claim read it);
    returns how it ended and, for ``throttled`` (given back untouched: Nexthink took nothing),
    how long Nexthink asked to wait."""
    now = now or datetime.now(UTC)
    token = schedule.claim_token
    assert token is not None, "run_due takes a claimed schedule"
    if record is None or record.id != schedule.request_id:
        record = await deps.store.get_request(schedule.request_id)
    if record is None:  # pragma: no cover - a schedule always has its request
        await deps.store.finish_schedule(schedule.id, "closed", token=token, detail="no request")
        return "lost", None
    with working_in(of(record)):  # the requester's workspace: their Slack, their groups
        return await _run_claimed(deps, schedule, record, token, now)


async def _run_claimed(
    deps: ScheduleDeps, schedule: ScheduleRecord, record: RequestRecord, token: str, now: datetime
) -> tuple[RunOutcome, float | None]:
    rule = deps.policy.schedule_for(record.workflow_id or schedule.workflow)
    late = now - schedule.run_at
    if late > rule.max_late:
        return await _missed(deps, schedule, record, token, late.total_seconds()), None
    requester = Requester(
        schedule.user_id, schedule.team_id, schedule.channel_id, record.enterprise_id
    )
    try:  # the one policy path, again: a refusal there is audited there
        prepared = await deps.runner.prepare(requester, request_of(schedule), rate_limited=False)
    except Refusal as exc:
        return await _refused(deps, schedule, record, token, exc.message, audited=True), None
    except NexthinkError as exc:
        reason = f"The policy could not be checked: Nexthink answered {exc.summary}."
        return await _refused(deps, schedule, record, token, reason), None
    allowed = deps.policy.may_schedule(prepared.entry.id)
    if not allowed.allowed:
        return await _refused(deps, schedule, record, token, allowed.reason), None
    if prepared.asking:  # only those who allowed it, each once; the rest as any run
        found = await deps.store.round_of_schedule(schedule.id)
        if found is None:  # the policy asks for consent now: never run it without
            reason = _NEEDS_CONSENT.format(workflow=code(outside(prepared.entry.id)))
            return await _refused(deps, schedule, record, token, reason), None
        sent, rest = await consent_schedules.run_agreed(deps, found, prepared)
        if rest is None:  # its round's reply shows who it ran for
            state: Literal["ran", "closed"] = "ran" if sent else "closed"
            detail = None if sent else "nobody allowed it by its time"
            await deps.store.finish_schedule(schedule.id, state, token=token, detail=detail)
            log.info("schedule_ran", schedule=schedule.id, consent_round=found.id, sent=sent)
            return "ran", None
        prepared = rest
    targets, params = prepared.targets_json(), dict(prepared.params)
    checked: dict[str, Any] = {
        "state": "pending",
        "targets": targets,
        "params": params,
        "workflow_id": prepared.entry.id,
        "user_upn": prepared.principal.upn,
    }
    if not await deps.store.mark_schedule_sending(schedule.id, token, request=checked):
        return "lost", None  # a sweep judged this claim dead and gave it away
    record = dataclasses.replace(  # as written with it: the targets and parameters checked now
        record,
        state="pending",
        targets=tuple(targets),
        params=params,
        workflow_id=prepared.entry.id,
        user_upn=prepared.principal.upn,
    )
    if schedule.ask.get("visible"):
        prepared = _visible(prepared)

    def ended(error: NexthinkError | None, sent: BulkExecution | None) -> tuple[Write, ...]:
        """The run's end, written with Nexthink's answer (unless it is given back)."""
        return () if _untouched(error, sent) else (ScheduleDone(schedule.id, token),)

    result = await deps.runner.execute(prepared, record, also=ended)
    if _throttled_untouched(result):
        assert isinstance(result.error, Throttled)
        await deps.store.update_request(record.id, state="scheduled", error=None)
        await deps.store.finish_schedule(
            schedule.id, "scheduled", token=token, detail="throttled by Nexthink; again shortly"
        )
        return "throttled", result.error.retry_after
    await deps.notifier.schedule_changed(
        schedule, result.record, ScheduleNews("ran", result=result)
    )
    log.info("schedule_ran", schedule=schedule.id, ok=result.ok)
    return "ran", None


def _visible(prepared: PreparedRun) -> PreparedRun:
    from dataclasses import replace

    return replace(prepared, visible=True)


def _throttled_untouched(result: RunResult) -> bool:
    """Nexthink answered 429 past the client's retries and took nothing: safe to send later."""
    return _untouched(result.error, result.completed)


def _untouched(error: NexthinkError | None, completed: BulkExecution | None) -> bool:
    return isinstance(error, Throttled) and not (completed is not None and completed.request_uuids)


async def _missed(
    deps: ScheduleDeps, schedule: ScheduleRecord, record: RequestRecord, token: str, late: float
) -> RunOutcome:
    minutes = late / 60
    detail = f"{minutes:.0f} minutes late" if minutes >= 1 else f"{late:.0f} seconds late"
    done = await deps.store.finish_schedule(schedule.id, "missed", token=token, detail=detail)
    if done is None:
        return "lost"
    await consent_schedules.close(deps, done.id, "not run")
    record = await _set_request(deps, done, state="missed", error=f"missed: {detail}") or record
    await deps.audit.record_request("run_refused", record, result="missed", detail=detail)
    await deps.notifier.schedule_changed(done, record, ScheduleNews("missed", reason=detail))
    log.warning("schedule_missed", schedule=schedule.id, late_seconds=round(late))
    return "missed"


async def _refused(
    deps: ScheduleDeps,
    schedule: ScheduleRecord,
    record: RequestRecord,
    token: str,
    reason: str,
    *,
    audited: bool = False,
) -> RunOutcome:
    done = await deps.store.finish_schedule(schedule.id, "refused", token=token, detail=reason)
    if done is None:
        return "lost"
    await consent_schedules.close(deps, done.id, "not run")
    record = await _set_request(deps, done, state="refused", error=reason) or record
    if not audited:
        await deps.audit.record_request("run_refused", record, result="refused", detail=reason)
    await deps.notifier.schedule_changed(done, record, ScheduleNews("refused", reason=reason))
    log.info("schedule_refused", schedule=schedule.id)
    return "refused"


async def _set_request(
    deps: ScheduleDeps, schedule: ScheduleRecord, **changes: Any
) -> RequestRecord | None:
    try:
        return await deps.store.update_request(schedule.request_id, **changes)
    except StoreError as exc:
        log.error("schedule_request_not_recorded", schedule=schedule.id, error=str(exc))
        return None
