"""Fleet runs: a run on what a saved NQL query returns runs only after its requester's Run click.

``Runner.prepare`` reads a ``query:#id`` run's targets (``bot.query_targets``, the policy's
``may_target_query`` first). ``propose`` records the prepared run (``fleet_runs``) for the preview
("This will run on 412 devices: …" with Run and Cancel). ``start`` is the Run click: only the
requester, only while it is pending and not expired, the policy checked once more
(``_recheck``), then the one atomic claim in the store, so that it starts exactly once
across replicas; the caller then sends it down the one run path (approval or execute).
``cancel`` is the Cancel click. Both return a ``FleetAnswer``; nothing here talks to Slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot import workspaces
from bot.nexthink.models import DeviceData, UserData
from bot.policy import ParamError, Policy, Principal
from bot.query_targets import FleetTargets
from bot.runs import PreparedRun, Refusal, Requester, Runner, Target
from bot.store import FleetRunRecord, Store

__all__ = ["KEPT", "PREVIEW_MINUTES", "FleetAnswer", "cancel", "propose", "prune", "start"]

#: how long Run stays usable after the preview (the query's answer gets stale)
PREVIEW_MINUTES = 15
#: how long a decided or expired preview is kept (the run itself is in ``requests`` and the audit)
KEPT = timedelta(days=1)

Outcome = Literal[
    "started", "cancelled", "not_found", "not_requester", "expired", "decided", "refused"
]


@dataclass(frozen=True)
class FleetAnswer:
    """What a click did: ``started`` (with ``prepared``, to be run now) and ``cancelled``, or why
    nothing happened; ``refusal`` is the policy's reason (mrkdwn) for ``refused``."""

    outcome: Outcome
    record: FleetRunRecord | None = None
    prepared: PreparedRun | None = None
    refusal: str | None = None


async def propose(
    store: Store, prepared: PreparedRun, *, response_url: str | None, now: datetime | None = None
) -> FleetRunRecord:
    """Record a prepared fleet run, to be started by its requester's Run click."""
    fleet = prepared.fleet
    if fleet is None:
        raise ValueError("propose() takes a fleet run (a run prepared from query:#id)")
    at = now or datetime.now(UTC)
    requester = prepared.requester
    return await store.create_fleet_run(
        user_id=requester.user_id,
        team_id=requester.team_id,
        channel_id=requester.channel_id,
        workflow_id=prepared.entry.id,
        query_id=fleet.query_id,
        row_count=fleet.rows,
        skipped=fleet.skipped,
        targets=prepared.targets_json(),
        params=dict(prepared.params),
        visible=prepared.visible,
        expires_at=at + timedelta(minutes=PREVIEW_MINUTES),
        response_url=response_url,
        ticket=prepared.ticket,
        now=at,
    )


async def start(
    runner: Runner, run_id: str, user_id: str, *, now: datetime | None = None
) -> FleetAnswer:
    """The Run click of ``user_id``; ``started`` with the run to send, exactly once."""
    record, refused = await _pending(runner.store, run_id, user_id, now)
    if refused is not None:
        return refused
    assert record is not None
    # the requester's own Run click: the org of the workspace it came from
    org = workspaces.current().enterprise_id
    requester = Requester(record.user_id, record.team_id, record.channel_id, org)
    try:
        principal = await runner.principal(requester)
        entry = await runner.find(principal, record.channel_id, record.workflow_id)
        targets = tuple(_target(t) for t in record.targets)
        prepared = PreparedRun(
            requester=requester,
            principal=principal,
            entry=entry,
            targets=targets,
            params=record.params,
            approval=runner.policy.approval_for(entry.id),
            visible=record.visible,
            source="command",
            ticket=record.ticket,
            fleet=FleetTargets(
                record.query_id,
                targets,
                rows=record.row_count,
                skipped=record.skipped,
            ),
        )
        _recheck(runner.policy, prepared, principal)
    except Refusal as exc:
        await runner.audit.record(
            "run_refused",
            actor=user_id,
            workflow=record.workflow_id,
            targets=record.targets,
            params=record.params,
            result="refused",
            detail=exc.message,
            team_id=record.team_id,
        )
        return FleetAnswer("refused", record, refusal=exc.message)
    claimed = await runner.store.decide_fleet_run(run_id, user_id=user_id, state="started", now=now)
    if claimed is None:
        return await _why_not(runner.store, run_id, now)
    return FleetAnswer("started", claimed, prepared=prepared)


def _recheck(policy: Policy, prepared: PreparedRun, principal: Principal) -> None:
    """The policy once more at the Run click: may this person still run it here, on what a
    query returns, with these parameters? Raises ``Refusal``."""
    channel_id = prepared.requester.channel_id
    decision = policy.may_run(principal, channel_id, prepared.entry.id)
    if decision.allowed and prepared.fleet is not None:
        decision = policy.may_target_query(
            principal, channel_id, prepared.entry.id, prepared.fleet.query_id
        )
    if not decision.allowed:
        raise Refusal(decision.reason)
    try:
        policy.check_params(prepared.entry.id, dict(prepared.params))
    except ParamError as exc:
        raise Refusal(str(exc)) from None


async def cancel(
    store: Store, run_id: str, user_id: str, *, now: datetime | None = None
) -> FleetAnswer:
    """The Cancel click of ``user_id``: nothing runs."""
    _, refused = await _pending(store, run_id, user_id, now)
    if refused is not None:
        return refused
    claimed = await store.decide_fleet_run(run_id, user_id=user_id, state="cancelled", now=now)
    if claimed is None:
        return await _why_not(store, run_id, now)
    return FleetAnswer("cancelled", claimed)


async def prune(store: Store, *, now: datetime | None = None) -> int:
    """Forget previews older than ``KEPT`` (each holds up to 999 targets); how many. The
    periodic sweep calls it, so the table stays small whatever the number of fleet runs."""
    return await store.prune_fleet_runs((now or datetime.now(UTC)) - KEPT)


async def _pending(
    store: Store, run_id: str, user_id: str, now: datetime | None
) -> tuple[FleetRunRecord | None, FleetAnswer | None]:
    record = await store.get_fleet_run(run_id) if run_id else None
    if record is None:
        return None, FleetAnswer("not_found")
    if record.user_id != user_id:
        return record, FleetAnswer("not_requester", record)
    return record, _refusal(record, now)


def _refusal(record: FleetRunRecord, now: datetime | None) -> FleetAnswer | None:
    if record.state != "pending":
        return FleetAnswer("decided", record)
    if record.expires_at <= (now or datetime.now(UTC)):
        return FleetAnswer("expired", record)
    return None


async def _why_not(store: Store, run_id: str, now: datetime | None) -> FleetAnswer:
    record = await store.get_fleet_run(run_id)
    if record is None:
        return FleetAnswer("not_found")
    return _refusal(record, now) or FleetAnswer("decided", record)


def _target(data: dict[str, object]) -> Target:
    label = str(data.get("label") or "")
    fields = {k: v for k, v in data.items() if k not in ("kind", "label")}
    if data.get("kind") == "user":
        return Target(label, user=UserData.model_validate(fields))
    return Target(label, device=DeviceData.model_validate(fields))
