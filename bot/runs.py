"""A run request, from a person to Nexthink: policy → targets → (approval?) → execute → result.

Everything here is plain Python over plain objects; the Slack handlers only translate a payload
into a ``RunRequest`` and a ``RunResult`` into a message. The same path serves the slash
command, the run modal, the Home tab and shortcuts, so the policy is enforced in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bot import limits
from bot.audit import AuditTrail
from bot.catalogue import Catalogue, Entry
from bot.deciders import person
from bot.devices import DeviceList, Devices
from bot.identity import Identity, IdentityError
from bot.logging import get_logger
from bot.mrkdwn import code
from bot.nexthink.client import BulkExecution, NexthinkClient
from bot.nexthink.errors import NexthinkError
from bot.nexthink.models import Workflow
from bot.policy import ParamError, Policy, Principal, TicketError
from bot.query_targets import QueryUnusable, query_targets
from bot.ratelimit import RateLimiter
from bot.run_targets import Refusal, TargetResolver, others, stored_target
from bot.run_values import (
    ConsentRequired,
    HistoryAnswer,
    HistoryFilter,
    PreparedRun,
    Requester,
    RunRequest,
    RunResult,
    Source,
)
from bot.store import AuditEvent, RequestRecord, RequestState, Store, StoreError, Write
from bot.targets import Target
from bot.text import outside

__all__ = [
    "ConsentRequired",
    "HistoryAnswer",
    "HistoryFilter",
    "PreparedRun",
    "Refusal",
    "Requester",
    "RunRequest",
    "RunResult",
    "Runner",
    "Target",
    "error_text",
]

log = get_logger(__name__)

#: ``Runner.execute``'s ``also``: from Nexthink's answer (the error, or None; what was sent), the
#: other changes to write with it
Also = Callable[[NexthinkError | None, BulkExecution | None], Sequence[Write]]


class Runner:
    def __init__(
        self,
        *,
        nexthink: NexthinkClient,
        catalogue: Catalogue,
        identity: Identity,
        policy: Policy,
        store: Store,
        limiter: RateLimiter,
        audit: AuditTrail,
        devices: Devices | None = None,
    ) -> None:
        self.nexthink = nexthink
        self.devices = devices or Devices(nexthink, None)
        self.targets = TargetResolver(policy=policy, identity=identity, devices=self.devices)
        self.catalogue = catalogue
        self.identity = identity
        self.policy = policy
        self.store = store
        self.limiter = limiter
        self.audit = audit

    # -- who ------------------------------------------------------------------------------

    async def principal(self, requester: Requester) -> Principal:
        """The requester as the policy sees them; raises ``Refusal`` without a usable email."""
        try:
            return await person(self, requester.user_id)
        except IdentityError as exc:
            raise Refusal(str(exc)) from None

    # -- what -----------------------------------------------------------------------------

    async def entries(self, principal: Principal, channel_id: str | None) -> list[Entry]:
        """The workflows this person may run here, with aliases."""
        workflows = await self.catalogue.workflows()
        allowed = set(
            self.policy.visible_workflows(principal, channel_id, [w.id for w in workflows])
        )
        return [Entry(w, self.policy.alias_for(w.id)) for w in workflows if w.id in allowed]

    async def find(self, principal: Principal, channel_id: str | None, name: str) -> Entry:
        """The workflow called ``name`` (NQL id or alias) if this person may run it here."""
        nql_id = self.policy.resolve_workflow(name)
        entries = await self.entries(principal, channel_id)
        for entry in entries:
            if entry.id.casefold() == nql_id.casefold():
                return entry
        if await self._allowed_elsewhere(principal, nql_id):
            # the policy's own reason names the channels where this person may run it
            decision = self.policy.may_run(principal, channel_id, nql_id)
            raise Refusal(decision.reason, field="workflow")
        names = [e.id for e in entries] + [e.alias for e in entries if e.alias]
        near = Catalogue.closest(name, names)
        message = f"There is no workflow {code(outside(name))} that you may run here."
        if near:
            message += " Did you mean " + ", ".join(code(outside(n)) for n in near) + "?"
        raise Refusal(
            message, hint="`/nexthink list` shows the workflows you may run.", field="workflow"
        )

    async def _allowed_elsewhere(self, principal: Principal, nql_id: str) -> bool:
        """Whether ``nql_id`` is a workflow that a channel-limited role lets this person run in
        another channel."""
        known = {w.id.casefold(): w.id for w in await self.catalogue.workflows()}
        workflow_id = known.get(nql_id.casefold())
        if workflow_id is None:
            return False
        channels = {c for role in self.policy.roles if role.channels for c in role.channels}
        return any(self.policy.visible_workflows(principal, c, [workflow_id]) for c in channels)

    # -- run ------------------------------------------------------------------------------

    async def admit(self, requester: Requester) -> Principal:
        """The requester of a ``list``, ``info`` or ``resume``: counted toward the per-user rate
        limit as runs are (before anything is looked up), then established as a principal."""
        await self._count(requester)
        return await self.principal(requester)

    async def _count(self, requester: Requester) -> None:
        wait = await self.limiter.hit(requester.user_id)
        if wait is not None:
            limit = self.policy.runs_per_user_per_minute
            raise Refusal(
                f"You have made {limit} requests in the last minute, the most allowed. "
                f"Try again in {max(1, round(wait))} s."
            )

    async def prepare(
        self, requester: Requester, request: RunRequest, *, rate_limited: bool = True
    ) -> PreparedRun:
        """Check everything that can be checked without Nexthink running anything; a refusal is
        written to the audit trail (``run_refused``) before it is raised.

        ``rate_limited=False``: the run was counted when it was asked for (a scheduled run, whose
        policy is checked again here at its time), so it does not count again."""
        upn: str | None = None
        try:
            try:  # first: a request beyond the limits costs no lookup at all
                limits.check(
                    targets=len(request.users) + len(request.devices), params=request.params
                )
            except limits.LimitExceeded as exc:
                raise Refusal(exc.message, field=exc.field) from None
            principal = await self.principal(requester)
            upn = principal.upn
            return await self._prepare(principal, requester, request, rate_limited=rate_limited)
        except Refusal as exc:
            await self.audit.record(
                "run_refused",
                actor=requester.user_id,
                actor_upn=upn,
                workflow=request.workflow,
                targets=_asked(request),
                params=request.params,
                ticket=request.ticket,
                result="refused",
                detail=exc.message,
                team_id=requester.team_id,
                enterprise_id=requester.enterprise_id,
            )
            raise

    async def _prepare(
        self,
        principal: Principal,
        requester: Requester,
        request: RunRequest,
        *,
        rate_limited: bool = True,
    ) -> PreparedRun:
        entry = await self.find(principal, requester.channel_id, request.workflow)
        decision = self.policy.may_run(principal, requester.channel_id, entry.id)
        if not decision.allowed:
            raise Refusal(decision.reason, field="workflow")
        channel = requester.channel_id
        try:  # before the targets: a missing ticket costs no lookup and no query
            ticket = self.policy.check_ticket(principal, channel, entry.id, request.ticket)
        except TicketError as exc:
            raise Refusal(exc.message, field="ticket") from None
        fleet = None
        own_devices: DeviceList | None = None
        if request.query is not None:  # the policy first: no query for a role that may not
            if self.policy.consent_for(entry.id) is not None:
                raise Refusal(
                    f"{code(outside(entry.id))} needs the consent of each person it runs on, "
                    "so it cannot run on what a query returns: target them with `user:`.",
                    field="targets",
                )
            try:
                fleet = await query_targets(
                    self.nexthink,
                    self.policy,
                    principal,
                    requester.channel_id,
                    entry.id,
                    request.query,
                )
            except QueryUnusable as exc:
                raise Refusal(exc.message, field="targets") from None
            targets = fleet.targets
        else:
            targets, own_devices = await self.targets.resolve(
                principal, requester.channel_id, entry, request.users, request.devices
            )
        param = self.policy.ticket_needs(principal, channel, entry.id).param
        specs = self.policy.param_specs(entry.id)
        # the ticket's parameter goes through the workflow's `params:` rules when they name it
        late = ticket is not None and param is not None and bool(specs) and param not in specs
        raw = dict(request.params)
        if ticket is not None and param is not None and not late:
            raw[param] = ticket
        try:
            params = self.policy.check_params(entry.id, raw)
            if late:
                assert ticket is not None
                assert param is not None
                params = {**params, param: ticket}
        except ParamError as exc:
            name = getattr(exc, "name", None)
            raise Refusal(str(exc), field=f"param:{name}" if name else "params") from None
        wait = await self.limiter.hit(requester.user_id) if rate_limited else None
        if wait is not None:
            limit = self.policy.runs_per_user_per_minute
            raise Refusal(
                f"You have started {limit} runs in the last minute, the most allowed. "
                f"Try again in {max(1, round(wait))} s."
            )
        prepared = PreparedRun(
            requester=requester,
            principal=principal,
            entry=entry,
            targets=targets,
            params=params,
            approval=self.policy.approval_for(entry.id),
            visible=self.policy.run_visible(principal, requester.channel_id, entry.id),
            source=request.source,
            fleet=fleet,
            ticket=ticket,
            consent=self.policy.consent_for(entry.id),
            own_devices=own_devices,
        )
        return replace(prepared, asking=self.asking(prepared))

    # -- consent --------------------------------------------------------------------------

    def asking(self, prepared: PreparedRun) -> tuple[Target, ...]:
        """The targets whose person must allow the run first (``consent:``): every user target
        but the requester, unless this run is the one a person allowed. The execute refuses a
        run while this is not empty, whatever path it came by."""
        if prepared.consented or self.policy.consent_for(prepared.entry.id) is None:
            return ()
        return others(prepared.principal, prepared.targets)

    async def from_record(
        self, record: RequestRecord, *, consented: bool = False, source: Source = "approval"
    ) -> PreparedRun:
        """The run a stored request describes, to execute it later (after an approval, after a
        person's Allow); ``consented``: the one person it is for allowed it."""
        try:
            workflows = {w.id: w for w in await self.catalogue.workflows()}
        except Exception:
            workflows = {}
        workflow = workflows.get(record.workflow_id or "") or Workflow(
            id=record.workflow_id or "unknown"
        )
        return PreparedRun(
            requester=Requester(
                record.user_id, record.team_id, record.channel_id, record.enterprise_id
            ),
            principal=Principal(user_id=record.user_id, upn=record.user_upn, groups=frozenset()),
            entry=Entry(workflow, self.policy.alias_for(workflow.id)),
            targets=tuple(stored_target(t) for t in record.targets),
            params={str(k): str(v) for k, v in record.params.items()},
            approval=None,
            visible=False,
            source=source,
            consent=self.policy.consent_for(workflow.id),
            consented=consented,
            ticket=record.ticket,
        )

    async def run(self, prepared: PreparedRun) -> RunResult:
        """Send the V2 execute (split by 10,000 targets) and record what happened."""
        return await self.execute(prepared, await self.record(prepared))

    async def record(
        self,
        prepared: PreparedRun,
        *,
        state: RequestState = "pending",
        response_url: str | None = None,
    ) -> RequestRecord:
        """The record of a run, written before anything is sent to Nexthink (and its
        ``run_requested`` event, in the same transaction: ``result`` is the state it starts in)."""
        audit = self.audit.for_request("run_requested", result=state)
        record = await self.store.create_request(
            kind="run",
            team_id=prepared.requester.team_id,
            enterprise_id=prepared.requester.enterprise_id,
            channel_id=prepared.requester.channel_id,
            user_id=prepared.requester.user_id,
            user_upn=prepared.principal.upn,
            workflow_id=prepared.entry.id,
            targets=prepared.targets_json(),
            params=dict(prepared.params),
            state=state,
            response_url=response_url,
            ticket=prepared.ticket,
            audit=audit,
        )
        audit.logged()
        return record

    async def execute(
        self, prepared: PreparedRun, record: RequestRecord, *, also: Also | None = None
    ) -> RunResult:
        """Send the execute and record Nexthink's answer with its audit event, in one
        transaction; ``also`` gives, from that answer (the error, what was sent before it), other
        changes to write in that transaction (a scheduled run's end)."""
        if self.asking(prepared):  # whatever path it came by: never before the person's Allow
            raise ConsentRequired(f"{prepared.entry.id}: consent not given")
        try:
            execution = await self.nexthink.execute_many(
                prepared.entry.id, prepared.users, prepared.devices, prepared.params
            )
        except NexthinkError as exc:
            completed = exc.completed
            state = "unknown" if _maybe_ran(exc, completed) else "failed"
            record = await self._recorded(
                record,
                "execute_failed",
                {"result": state, "detail": error_text(exc)},
                also(exc, completed) if also is not None else (),
                state=state,
                error=error_text(exc),
                nexthink_request_uuids=list(completed.request_uuids) if completed else [],
                executions_uuids=list(completed.executions_uuids) if completed else [],
            )
            return RunResult(prepared, record, error=exc, completed=completed)
        record = await self._recorded(
            record,
            "executed",
            {"result": "sent"},
            also(None, execution) if also is not None else (),
            state="sent",
            nexthink_request_uuids=list(execution.request_uuids),
            executions_uuids=list(execution.executions_uuids),
        )
        return RunResult(prepared, record, execution=execution)

    async def _recorded(
        self,
        record: RequestRecord,
        event: AuditEvent,
        audited: dict[str, Any],
        also: Sequence[Write],
        **changes: Any,
    ) -> RequestRecord:
        """Record what Nexthink answered and its audit event; if the database went away
        meanwhile, the answer is still given to the person (and logged) rather than lost:
        Nexthink has already acted."""
        audit = self.audit.for_request(event, **audited)
        try:
            changed = await self.store.update_request(record.id, audit=audit, also=also, **changes)
        except StoreError as exc:
            log.error("request_not_recorded", record=record.id, error=str(exc), **changes)
            await self.audit.record_request(event, record, **audited)  # logged, stored if it can be
            if also:
                try:
                    await self.store.apply(also)
                except StoreError as again:
                    log.error("writes_not_recorded", record=record.id, error=str(again))
            return record
        audit.logged()
        return changed

    async def history(
        self, requester: Requester, about: HistoryFilter | None = None, limit: int = 10
    ) -> HistoryAnswer:
        """The requester's own requests; with a filter (``history @someone``, ``workflow:``,
        ``ticket:``), those it names if a role of the requester has ``audit: true``, else their
        own with the policy's refusal."""
        if not about:
            return HistoryAnswer(await self.store.history(requester.user_id, limit=limit))
        principal = await self.principal(requester)
        decision = self.policy.may_audit(principal, requester.channel_id)
        if not decision.allowed:
            own = await self.store.history(requester.user_id, limit=limit)
            return HistoryAnswer(own, refusal=f"{decision.reason} Here are your own.")
        workflow = about.workflow and await self._workflow_id(about.workflow)
        records = await self.store.history(
            about.user_id, limit, upn=about.upn, workflow=workflow or None, ticket=about.ticket
        )
        return HistoryAnswer(records, about=about)

    async def _workflow_id(self, name: str) -> str:
        """An alias or an id in another case becomes the NQL id as the store keeps it."""
        nql_id = self.policy.resolve_workflow(name)
        try:
            known = {w.id.casefold(): w.id for w in await self.catalogue.workflows()}
        except NexthinkError:
            return nql_id
        return known.get(nql_id.casefold(), nql_id)


def _asked(request: RunRequest) -> list[dict[str, str]]:
    """The targets as the requester named them (a refused run never resolved them)."""
    query = [{"kind": "query", "query_id": request.query}] if request.query else []
    return (
        [{"kind": "user", t.kind: t.value} for t in request.users]
        + [{"kind": "device", t.kind: t.value} for t in request.devices]
        + query
    )


def _maybe_ran(exc: NexthinkError, completed: BulkExecution | None) -> bool:
    from bot.nexthink.errors import may_have_run

    return may_have_run(exc) or bool(completed and completed.request_uuids)


def error_text(exc: NexthinkError) -> str:
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    parts = [type(exc).__name__, exc.message]
    if code:
        parts.append(f"code={code}")
    if details:
        parts.append(f"details={details}")
    return "; ".join(parts)
