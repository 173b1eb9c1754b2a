"""Consent of the person on the other end: a workflow with ``consent:`` in the policy runs on
someone else only after that person said Allow.

``ask`` splits a prepared run: each person it targets (other than the requester) gets a run
recorded for them alone (``consent_pending``) and a direct message with Allow and Not now; the
rest (the requester, the requester's own devices) is handed back to run at once. ``allow`` is one
click: only the person asked counts, and the store accepts exactly one click per consent (across
replicas and restarts), which then sends one V2 execute for that person. One execute per person
rather than one for all who allowed: each person answers in their own time, and each execute
is then followed, reported and audited on its own. ``not_now`` and ``sweep_expired`` tell the
requester; ``sweep_stale`` reports an Allow whose process died while sending as of unknown
outcome, never sent twice. When the workflow also needs approval, approval comes first
(``bot.approvals`` calls ``ask`` once approved). What happened is told to the notifier.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from bot.audit import AuditTrail
from bot.catalogue import Catalogue
from bot.logging import get_logger
from bot.metrics import CLICKS
from bot.notifier import Asked, ConsentNews, Notifier, NotPosted
from bot.policy import ConsentRule, Policy
from bot.runs import PreparedRun, Runner, RunResult
from bot.store import ConsentRecord, RequestRecord, Store, StoreError

__all__ = [
    "STALE_AFTER",
    "Asked",
    "ConsentClick",
    "ConsentDeps",
    "ConsentRound",
    "allow",
    "ask",
    "not_now",
    "sweep_expired",
    "sweep_stale",
]

log = get_logger(__name__)

#: an Allow still ``allowed`` after this long belongs to a process that died while sending
STALE_AFTER = timedelta(minutes=10)


class ConsentDeps(Protocol):
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


@dataclass(frozen=True)
class ConsentClick:
    """Why a click did nothing, for the clicker alone: ``not_found``, ``not_asked`` (someone
    other than the person asked), ``expired``, ``settled`` (answered already)."""

    reason: Literal["not_found", "not_asked", "expired", "settled"]
    consent: ConsentRecord | None = None


async def ask(
    deps: ConsentDeps,
    prepared: PreparedRun,
    *,
    response_url: str | None,
    record: RequestRecord | None = None,
) -> ConsentRound:
    """Ask each person ``prepared`` targets for their consent; ``record``: the run was recorded
    already (an approved run), and is narrowed to what runs at once (or to the first person)."""
    asking = deps.runner.asking(prepared)
    rule = deps.policy.consent_for(prepared.entry.id) or ConsentRule()
    rest_targets = tuple(t for t in prepared.targets if t not in asking)
    rest = replace(prepared, targets=rest_targets, asking=()) if rest_targets else None
    name = prepared.workflow.display_name
    expires_at = datetime.now(UTC) + rule.expires_in
    asked: list[Asked] = []
    reuse = record if rest is None else None
    for target in asking:
        person = replace(prepared, targets=(target,), asking=(target,))
        if reuse is not None:
            own = await deps.store.update_request(
                reuse.id, state="consent_pending", targets=person.targets_json()
            )
            reuse = None
        else:
            own = await deps.runner.record(
                person, state="consent_pending", response_url=response_url
            )
        upn = target.user.upn if target.user and target.user.upn else target.label
        consent = await deps.store.create_consent(
            request_id=own.id,
            user_id=target.person or "",
            upn=upn,
            label=target.label,
            expires_at=expires_at,
        )
        try:
            where = await deps.notifier.ask_consent(consent, own, name)
        except NotPosted as exc:
            await deps.store.decide_consent(consent.id, consent.user_id, allow=False)
            own = await deps.store.update_request(
                own.id, state="failed", error=f"consent request not posted: {exc.error}"
            )
            await deps.audit.record_request(
                "consent_asked", own, result="not_posted", detail=f"{upn}; Slack: {exc.error}"
            )
            log.warning("consent_not_posted", consent=consent.id, error=exc.error)
            asked.append(Asked(target.label, consent.user_id, error=exc.error))
            continue
        consent = await deps.store.set_consent_message(consent.id, *where)
        await deps.audit.record_request(
            "consent_asked", own, result="asked", detail=f"{upn} until {_iso(expires_at)}"
        )
        log.info("consent_asked", consent=consent.id, request=own.id, workflow=prepared.entry.id)
        asked.append(Asked(target.label, consent.user_id, consent=consent))
    if record is not None and rest is not None:
        await deps.store.update_request(record.id, targets=rest.targets_json())
    if asked:
        await deps.notifier.consents_asked(prepared, tuple(asked), response_url=response_url)
    return ConsentRound(tuple(asked), rest)


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
    await deps.notifier.consent_changed(consent, record, name, ConsentNews("sending"))
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
    await deps.notifier.run_finished(result)  # the requester's reply, followed like any run
    return None


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
    answer = await deps.store.decide_consent(consent_id, user_id, allow=allow)
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


async def sweep_expired(deps: ConsentDeps, *, now: datetime | None = None) -> int:
    """Close the consents nobody answered by ``now`` and tell their requesters; how many."""
    expired = await deps.store.expire_consents(now)
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
    return len(expired)


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
    return len(closed)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
