"""Consent of the person on the other end: a workflow with ``consent:`` in the policy runs on
someone else only after that person said Allow.

``ask`` splits a prepared run: each person it targets (other than the requester) gets a run
recorded for them alone (``consent_pending``) and a direct message with Allow and Not now; the
rest (the requester, the requester's own devices) is handed back to run at once. ``allow`` is one
click: only the person asked counts, and the store accepts exactly one click per consent (across
replicas and restarts), which then sends one V2 execute for that person. One execute per person
rather than one for all who allowed: each person answers in their own time, and each execute
is then followed, reported and audited on its own. The people asked together are one round:
the requester's one reply lists each person's state and is re-rendered from the store after
every change (``bot.consent_rounds.show``), for an Allow, its execute's answer, ``not_now``,
``sweep_expired`` and ``sweep_stale`` (an Allow whose process died while sending: of unknown
outcome, never sent twice). When the workflow also needs approval, approval comes first
(``bot.approvals`` calls ``ask`` once approved). What happened is told to the notifier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from bot import consent_rounds as rounds
from bot import deciders
from bot.audit import AuditTrail
from bot.catalogue import Catalogue
from bot.deciders import PersonRefused
from bot.identity import Identity
from bot.logging import get_logger
from bot.metrics import CLICKS
from bot.notifier import Asked, ConsentNews, Notifier, NotPosted
from bot.policy import ConsentRule, Policy
from bot.runs import PreparedRun, Runner, RunResult
from bot.store import ConsentRecord, RequestRecord, Store, StoreError
from bot.targets import Target

__all__ = [
    "STALE_AFTER",
    "Asked",
    "ConsentClick",
    "ConsentDeps",
    "ConsentRound",
    "allow",
    "ask",
    "not_now",
    "report_expired",
    "send",
    "sweep_expired",
    "sweep_stale",
]

log = get_logger(__name__)

#: an Allow still ``allowed`` after this long belongs to a process that died while sending
STALE_AFTER = timedelta(minutes=10)


class ConsentDeps(Protocol):
    identity: Identity
    store: Store
    catalogue: Catalogue
    runner: Runner
    policy: Policy
    notifier: Notifier
    audit: AuditTrail


@dataclass(frozen=True)
class ConsentRound:
    """What ``ask`` did: the people asked, and the part of the run that needs nobody's consent
    (to run at once), if any."""

    asked: tuple[Asked, ...]
    rest: PreparedRun | None
    round_id: str | None = None


@dataclass(frozen=True)
class ConsentClick:
    """Why a click did nothing, for the clicker alone: ``not_found``, ``not_asked`` (someone
    other than the person asked), ``expired``, ``settled`` (answered already), ``cancelled`` (its
    scheduled run was cancelled), ``refused`` (who clicked cannot be established: fail closed)."""

    reason: Literal["not_found", "not_asked", "expired", "settled", "cancelled", "refused"]
    consent: ConsentRecord | None = None
    text: str = ""  #: ``refused``: why the bot cannot tell who the clicker is (``deciders``)


async def ask(
    deps: ConsentDeps,
    prepared: PreparedRun,
    *,
    response_url: str | None,
    record: RequestRecord | None = None,
    schedule_id: str | None = None,
    run_at: datetime | None = None,
) -> ConsentRound:
    """Ask each person ``prepared`` targets for their consent; ``record``: the run was recorded
    already (an approved or scheduled run), and is narrowed to what runs at once (or to the
    first person). ``run_at``: the run is scheduled for then; each question stays open until
    then, and an Allow is sent at that time (``bot.consent_schedules``)."""
    asking = deps.runner.asking(prepared)
    rule = deps.policy.consent_for(prepared.entry.id) or ConsentRule()
    rest_targets = tuple(t for t in prepared.targets if t not in asking)
    rest = replace(prepared, targets=rest_targets, asking=()) if rest_targets else None
    name = prepared.workflow.display_name
    expires_at = run_at if run_at is not None else datetime.now(UTC) + rule.expires_in
    round_id = await deps.store.create_consent_round(
        requester_id=prepared.requester.user_id,
        workflow_id=prepared.entry.id,
        rest=[t.label for t in rest_targets],
        # the reply keeps the URL only if nothing else answers through it (the rest's result)
        response_url=response_url if rest is None else None,
        schedule_id=schedule_id,
        run_at=run_at,
    )
    people: list[tuple[Target, RequestRecord, ConsentRecord]] = []
    reuse = record if rest is None else None
    for target in asking:
        person = replace(prepared, targets=(target,), asking=(target,))
        if reuse is not None:
            own = await deps.store.update_request(
                reuse.id,
                state="consent_pending",
                targets=person.targets_json(),
                response_url=None,
            )
            reuse = None
        else:  # no response URL: the round's reply is the requester's, and only it uses it
            own = await deps.runner.record(person, state="consent_pending")
        upn = target.user.upn if target.user and target.user.upn else target.label
        consent = await deps.store.create_consent(
            request_id=own.id,
            user_id=target.person or "",
            upn=upn,
            label=target.label,
            expires_at=expires_at,
            round_id=round_id,
        )
        people.append((target, own, consent))
    if record is not None and rest is not None:
        await deps.store.update_request(record.id, targets=rest.targets_json())
    await rounds.show(deps, round_id, first=True)  # before anyone can answer
    asked: list[Asked] = []
    for target, own, consent in people:
        asked.append(await _ask_one(deps, target, own, consent, name))
    if any(a.error for a in asked):
        await rounds.show(deps, round_id)
    return ConsentRound(tuple(asked), rest, round_id)


async def _ask_one(
    deps: ConsentDeps, target: Target, own: RequestRecord, consent: ConsentRecord, name: str
) -> Asked:
    try:
        where = await deps.notifier.ask_consent(consent, own, name)
    except NotPosted as exc:
        await deps.store.decide_consent(consent.id, consent.user_id, allow=False)
        own = await deps.store.update_request(
            own.id, state="failed", error=f"{rounds.NOT_POSTED}: {exc.error}"
        )
        await deps.audit.record_request(
            "consent_asked", own, result="not_posted", detail=f"{consent.upn}; Slack: {exc.error}"
        )
        log.warning("consent_not_posted", consent=consent.id, error=exc.error)
        return Asked(target.label, consent.user_id, error=exc.error)
    consent = await deps.store.set_consent_message(consent.id, *where)
    await deps.audit.record_request(
        "consent_asked",
        own,
        result="asked",
        detail=f"{consent.upn} until {_iso(consent.expires_at)}",
    )
    log.info("consent_asked", consent=consent.id, request=own.id, workflow=own.workflow_id)
    return Asked(target.label, consent.user_id, consent=consent)


async def allow(deps: ConsentDeps, consent_id: str, user_id: str) -> ConsentClick | None:
    """One Allow click; returns why it did nothing, or None once the run was sent (or failed)."""
    answer = await _decide(deps, consent_id, user_id, allow=True)
    if isinstance(answer, ConsentClick):
        return answer
    consent, record = answer
    await deps.audit.record_request(
        "consent_given", record, actor=user_id, actor_upn=consent.upn, result="allowed"
    )
    name = await deps.catalogue.display_name(record.workflow_id)
    if consent.state == "agreed":  # a scheduled run's: sent for them at its time
        await deps.notifier.consent_changed(consent, record, name, ConsentNews("agreed"))
        await rounds.show(deps, consent.round_id)
        return None
    await send(deps, consent, record, name)
    return None


async def send(
    deps: ConsentDeps,
    consent: ConsentRecord,
    record: RequestRecord,
    name: str,
    *,
    prepared: PreparedRun | None = None,
) -> None:
    """The one execute of an allowed consent (this caller moved it to ``allowed``); ``prepared``:
    the person's run as checked just now (a scheduled run's, at its time), else as recorded."""
    await deps.notifier.consent_changed(consent, record, name, ConsentNews("sending"))
    await rounds.show(deps, consent.round_id)
    if prepared is None:
        prepared = await deps.runner.from_record(record, consented=True, source="consent")
    try:
        result = await deps.runner.execute(prepared, record)
    except asyncio.CancelledError:
        await _interrupted(deps, consent, record, name)
        raise
    try:
        await deps.store.finish_consent(consent.id)
    except StoreError as exc:  # the execute was sent: still tell everyone how it went
        log.error("consent_not_recorded", consent=consent.id, error=str(exc))
    await deps.notifier.consent_changed(consent, result.record, name, _sent(result))
    if consent.round_id is None:  # asked before rounds: its own reply, followed like any run
        await deps.notifier.run_finished(result)
        return
    await rounds.show(deps, consent.round_id)
    await deps.notifier.consent_run_finished(result)


async def not_now(deps: ConsentDeps, consent_id: str, user_id: str) -> ConsentClick | None:
    """One Not now click: nothing is sent for this person, and the requester is told."""
    answer = await _decide(deps, consent_id, user_id, allow=False)
    if isinstance(answer, ConsentClick):
        return answer
    consent, record = answer
    record = await deps.store.update_request(record.id, state="denied", error="consent: not now")
    await deps.audit.record_request(
        "consent_refused", record, actor=user_id, actor_upn=consent.upn, result="not_now"
    )
    name = await deps.catalogue.display_name(record.workflow_id)
    await deps.notifier.consent_changed(consent, record, name, ConsentNews("refused"))
    await rounds.show(deps, consent.round_id)
    return None


async def _decide(
    deps: ConsentDeps, consent_id: str, user_id: str, *, allow: bool
) -> ConsentClick | tuple[ConsentRecord, RequestRecord]:
    action = "consent_allow" if allow else "consent_not_now"
    consent = await deps.store.get_consent(consent_id)
    if consent is None:
        CLICKS.labels(action, "not_found").inc()
        return ConsentClick("not_found")
    if consent.user_id != user_id:  # only the person asked decides; anyone else changes nothing
        CLICKS.labels(action, "not_asked").inc()
        return ConsentClick("not_asked", consent)
    try:  # who clicked, failing closed like every other click (lookup failed, external, …)
        await deciders.person(deps, user_id)
    except PersonRefused as exc:
        CLICKS.labels(action, "refused").inc()
        return ConsentClick("refused", consent, text=exc.text)
    wait = consent.run_at is not None  # a scheduled run's Allow waits for its time
    answer = await deps.store.decide_consent(consent_id, user_id, allow=allow, wait=wait)
    if not answer.accepted or answer.consent is None:
        reason = answer.reason or "settled"
        CLICKS.labels(action, reason).inc()
        return ConsentClick(reason, answer.consent or consent)
    record = await deps.store.get_request(consent.request_id)
    if record is None:
        return ConsentClick("not_found", answer.consent)
    CLICKS.labels(action, "ok").inc()
    return answer.consent, record


def _sent(result: RunResult) -> ConsentNews:
    if result.ok and result.execution is not None:
        return ConsentNews("sent", detail=", ".join(result.execution.request_uuids))
    return ConsentNews("failed", detail=result.error.summary if result.error else "unknown error")


async def _interrupted(
    deps: ConsentDeps, consent: ConsentRecord, record: RequestRecord, name: str
) -> None:
    """The bot stopped while sending an allowed run: its outcome is unknown, and sending it
    again could run it twice; close it and say so."""
    error = "interrupted: the bot stopped while sending the execute; the outcome is unknown"
    await deps.store.finish_consent(consent.id)
    record = await deps.store.update_request(record.id, state="unknown", error=error)
    await deps.audit.record_request("execute_failed", record, result="unknown", detail=error)
    await deps.notifier.consent_changed(consent, record, name, ConsentNews("interrupted"))
    await rounds.show(deps, consent.round_id)


async def sweep_expired(deps: ConsentDeps, *, now: datetime | None = None) -> int:
    """Close the consents nobody answered by ``now`` and tell their requesters; how many."""
    expired = await deps.store.expire_consents(now)
    await report_expired(deps, expired)
    return len(expired)


async def report_expired(deps: ConsentDeps, expired: Sequence[ConsentRecord]) -> None:
    """Record and tell the expiry of ``expired`` (this caller expired them)."""
    for consent in expired:
        record = await deps.store.update_request(
            consent.request_id, state="expired", error="consent: no answer in time"
        )
        await deps.audit.record_request(
            "consent_refused",
            record,
            actor=None,
            result="expired",
            detail=f"{consent.upn} did not answer by {_iso(consent.expires_at)}",
        )
        name = await deps.catalogue.display_name(record.workflow_id)
        await deps.notifier.consent_changed(consent, record, name, ConsentNews("expired"))
    for round_id in dict.fromkeys(c.round_id for c in expired):
        await rounds.show(deps, round_id)


async def sweep_stale(
    deps: ConsentDeps, *, now: datetime | None = None, older_than: timedelta = STALE_AFTER
) -> int:
    """Report Allows whose execute was interrupted by a crash as of unknown outcome."""
    closed = await deps.store.close_stale_consents(older_than, now)
    for consent in closed:
        record = await deps.store.get_request(consent.request_id)
        if record is None or record.state != "consent_pending":
            continue  # the execute's answer was recorded: the run was reported already
        error = "interrupted: the bot stopped while sending the execute; the outcome is unknown"
        record = await deps.store.update_request(record.id, state="unknown", error=error)
        await deps.audit.record_request("execute_failed", record, result="unknown", detail=error)
        name = await deps.catalogue.display_name(record.workflow_id)
        await deps.notifier.consent_changed(consent, record, name, ConsentNews("interrupted"))
        await rounds.show(deps, consent.round_id)
    return len(closed)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
