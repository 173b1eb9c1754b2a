"""Consent for a run asked for later: the people it runs on are asked when it is scheduled, and
it runs at its time only for those who allowed it.

* ``bot.schedules.ask`` (or, for a workflow with approval, the approval) calls
  ``bot.consent.ask`` with the schedule: each person gets their question at once, saying when
  the run is; the question **stays open until the run's time** (the consent's expiry is the
  run's time, whatever ``expires_in_minutes`` says: the person may answer any time before it
  runs). An Allow then records consent (``agreed``) and sends nothing.
* At its time, the one replica that claimed the schedule (``bot.schedule_loop``) re-checks the
  policy for the whole run (``Runner.prepare``, as for any scheduled run), then ``run_agreed``:
  whoever has not answered is expired and reported, and each person who allowed is sent one
  execute, claimed per person (``claim_agreed``: ``agreed`` → ``allowed``), so a run given back
  after a crash never sends twice. Those who said Not now are left out. What remains (targets
  needing nobody's consent) runs as before.
* ``close`` (the run was cancelled, missed or refused at its time) closes the open consents;
  their questions say the run will not happen.

The requester's one reply about the people (``bot.consent_rounds``) shows each state throughout.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from bot import consent
from bot import consent_rounds as rounds
from bot.consent import ConsentDeps
from bot.logging import get_logger
from bot.notifier import ConsentNews
from bot.runs import PreparedRun
from bot.store import RequestRecord, RoundRecord

__all__ = ["close", "run_agreed"]

log = get_logger(__name__)


async def run_agreed(
    deps: ConsentDeps, found: RoundRecord, prepared: PreparedRun
) -> tuple[int, PreparedRun | None]:
    """At the run's time (``prepared`` checked again just now): expire the unanswered, send one
    execute for each person who allowed; returns how many were sent and the rest of the run to
    execute, if any."""
    sent = 0
    expired = await deps.store.expire_round(found.id)
    await consent.report_expired(deps, expired)
    by_person = {t.person: t for t in prepared.targets if t.person}
    asking = set(deps.runner.asking(prepared))
    name = prepared.workflow.display_name
    for person in found.people:
        agreed = person.consent
        if agreed.state != "agreed" or not await deps.store.claim_agreed(agreed.id):
            continue  # not allowed, or sent already (a run given back after a crash)
        own = await deps.store.get_request(agreed.request_id)
        target = by_person.get(agreed.user_id)
        if own is None or target is None:  # pragma: no cover - the same ask, checked again
            log.error("consent_target_gone", consent=agreed.id)
            await deps.store.finish_consent(agreed.id)
            continue
        checked = replace(prepared, targets=(target,), asking=(), consented=True)
        own = await deps.store.update_request(
            own.id, targets=checked.targets_json(), params=dict(checked.params)
        )
        await consent.send(deps, agreed, own, name, prepared=checked)
        sent += 1
    rest = tuple(t for t in prepared.targets if t not in asking)
    return sent, (replace(prepared, targets=rest, asking=()) if rest else None)


async def close(deps: ConsentDeps, schedule_id: str, why: Literal["cancelled", "not run"]) -> int:
    """The scheduled run will not run: close its round's open consents; how many."""
    found = await deps.store.round_of_schedule(schedule_id)
    if found is None:
        return 0
    closed = await deps.store.cancel_round(found.id)
    for done in closed:
        record: RequestRecord | None = await deps.store.get_request(done.request_id)
        if record is None:  # pragma: no cover - a consent always has its request
            continue
        if record.state == "consent_pending":
            record = await deps.store.update_request(
                record.id, state="cancelled", error=f"consent: the scheduled run was {why}"
            )
        name = await deps.catalogue.display_name(record.workflow_id)
        detail = "" if why == "cancelled" else why
        await deps.notifier.consent_changed(done, record, name, ConsentNews("cancelled", detail))
    if closed:
        await rounds.show(deps, found.id)
    return len(closed)
