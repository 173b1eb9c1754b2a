"""A run request, from a person to Nexthink: policy → targets → (approval?) → execute → result.

Everything here is plain Python over plain objects; the Slack handlers only translate a payload
into a ``RunRequest`` and a ``RunResult`` into a message. The same path serves the slash
command, the run modal, the Home tab and shortcuts, so the policy is enforced in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot import limits
from bot.audit import AuditTrail
from bot.catalogue import Catalogue, Entry
from bot.deciders import person
from bot.identity import Identity, IdentityError
from bot.logging import get_logger
from bot.mrkdwn import code, shown
from bot.nexthink.client import BulkExecution, NexthinkClient
from bot.nexthink.errors import NexthinkError
from bot.nexthink.models import DeviceData, UserData, Workflow, is_uuid
from bot.policy import ApprovalRule, ParamError, Policy, Principal
from bot.query_targets import FleetTargets, QueryUnusable, query_targets
from bot.ratelimit import RateLimiter
from bot.store import RequestRecord, RequestState, Store, StoreError
from bot.targets import DeviceTarget, Target, UserTarget
from bot.text import outside

__all__ = [
    "Refusal",
    "Requester",
    "RunRequest",
    "RunResult",
    "Runner",
    "Target",
    "error_text",
]

log = get_logger(__name__)

Source = Literal["command", "modal", "home", "shortcut", "approval", "schedule"]


class Refusal(Exception):
    """The request is refused before anything is sent; ``str()`` tells the person why."""

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: what the refusal is about, for inline modal errors: workflow, targets, params, param:NAME
        self.field = field


@dataclass(frozen=True)
class Requester:
    user_id: str
    team_id: str | None = None
    channel_id: str | None = None
    #: the Enterprise Grid org of ``team_id``, when on Grid
    enterprise_id: str | None = None


@dataclass(frozen=True)
class RunRequest:
    workflow: str
    users: tuple[UserTarget, ...] = ()
    devices: tuple[DeviceTarget, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    source: Source = "command"
    query: str | None = None  #: ``query:#id``: the targets are what that saved NQL query returns


@dataclass(frozen=True)
class PreparedRun:
    requester: Requester
    principal: Principal
    entry: Entry
    targets: tuple[Target, ...]
    params: Mapping[str, str]
    approval: ApprovalRule | None
    visible: bool
    source: Source
    #: a fleet run: the query its targets came from (it runs only after a Run click, ``bot.fleet``)
    fleet: FleetTargets | None = None

    @property
    def workflow(self) -> Workflow:
        return self.entry.workflow

    @property
    def users(self) -> list[UserData]:
        return [t.user for t in self.targets if t.user is not None]

    @property
    def devices(self) -> list[DeviceData]:
        return [t.device for t in self.targets if t.device is not None]

    def targets_json(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for t in self.targets:
            data = t.user.to_json() if t.user else t.device.to_json() if t.device else {}
            out.append({"kind": "user" if t.user else "device", "label": t.label, **data})
        return out


@dataclass(frozen=True)
class RunResult:
    prepared: PreparedRun
    record: RequestRecord
    execution: BulkExecution | None = None
    error: NexthinkError | None = None
    completed: BulkExecution | None = None  # chunks that ran before a later one failed

    @property
    def ok(self) -> bool:
        return self.execution is not None and self.error is None


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
    ) -> None:
        self.nexthink = nexthink
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
        fleet = None
        if request.query is not None:  # the policy first: no query for a role that may not
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
            targets = await self._targets(principal, requester, entry, request)
        try:
            params = self.policy.check_params(entry.id, dict(request.params))
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
        return PreparedRun(
            requester=requester,
            principal=principal,
            entry=entry,
            targets=targets,
            params=params,
            approval=self.policy.approval_for(entry.id),
            visible=self.policy.run_visible(principal, requester.channel_id, entry.id),
            source=request.source,
            fleet=fleet,
        )

    async def _targets(
        self, principal: Principal, requester: Requester, entry: Entry, request: RunRequest
    ) -> tuple[Target, ...]:
        own_upn = principal.upn or ""
        if not request.users and not request.devices:
            return (Target(label=own_upn, user=UserData(upn=own_upn)),)
        may_target_others = self.policy.may_target_others(principal, requester.channel_id, entry.id)
        targets: list[Target] = []
        for user in request.users:
            if not may_target_others and user.kind == "mention" and user.value != requester.user_id:
                # someone else, and not allowed: refused without looking them up in Slack
                raise Refusal(
                    f"You may only run {code(outside(entry.id))} on yourself, "
                    f"not on {_person(user.value)}. "
                    "Leave out `user:` and `device:`: Nexthink then picks your most recent device.",
                    field="targets",
                )
            target = await self._user_target(user)
            is_self = (
                target.user is not None
                and target.user.upn is not None
                and target.user.upn.casefold() == own_upn.casefold()
            ) or (user.kind == "mention" and user.value == requester.user_id)
            if not is_self and not may_target_others:
                raise Refusal(
                    f"You may only run {code(outside(entry.id))} on yourself, "
                    f"not on {shown(outside(target.label))}. "
                    "Leave out `user:` and `device:`: Nexthink then picks your most recent device.",
                    field="targets",
                )
            targets.append(target)
        for device in request.devices:
            if not may_target_others:
                raise Refusal(
                    f"You may only run {code(outside(entry.id))} on yourself, so "
                    f"{code(outside('device:' + device.value))} is not "
                    "allowed. Leave out `device:`: Nexthink picks your most recent device.",
                    field="targets",
                )
            if device.kind == "collector_uid" or is_uuid(device.value):
                targets.append(
                    Target(
                        label=f"device {device.value}",
                        device=DeviceData(collector_uid=device.value),
                    )
                )
            else:
                targets.append(
                    Target(label=f"device {device.value}", device=DeviceData(name=device.value))
                )
        return tuple(_dedupe(targets))

    async def _user_target(self, user: UserTarget) -> Target:
        if user.kind == "mention":
            try:
                upn = await self.identity.upn(user.value, own=False)
            except IdentityError as exc:
                raise Refusal(str(exc), field="targets") from None
            return Target(label=upn, user=UserData(upn=upn))
        if user.kind == "sid":
            return Target(label=f"SID {user.value}", user=UserData(sid=user.value))
        return Target(label=user.value, user=UserData(upn=user.value))

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
        ``run_requested`` event: ``result`` is the state it starts in)."""
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
        )
        await self.audit.record_request("run_requested", record, result=state)
        return record

    async def execute(self, prepared: PreparedRun, record: RequestRecord) -> RunResult:
        try:
            execution = await self.nexthink.execute_many(
                prepared.entry.id, prepared.users, prepared.devices, prepared.params
            )
        except NexthinkError as exc:
            completed = exc.completed
            state = "unknown" if _maybe_ran(exc, completed) else "failed"
            record = await self._recorded(
                record,
                state=state,
                error=error_text(exc),
                nexthink_request_uuids=list(completed.request_uuids) if completed else [],
                executions_uuids=list(completed.executions_uuids) if completed else [],
            )
            await self.audit.record_request(
                "execute_failed", record, result=state, detail=error_text(exc)
            )
            return RunResult(prepared, record, error=exc, completed=completed)
        record = await self._recorded(
            record,
            state="sent",
            nexthink_request_uuids=list(execution.request_uuids),
            executions_uuids=list(execution.executions_uuids),
        )
        await self.audit.record_request("executed", record, result="sent")
        return RunResult(prepared, record, execution=execution)

    async def _recorded(self, record: RequestRecord, **changes: Any) -> RequestRecord:
        """Record what Nexthink answered; if the database went away meanwhile, the answer is
        still given to the person (and logged) rather than lost: Nexthink has already acted."""
        try:
            return await self.store.update_request(record.id, **changes)
        except StoreError as exc:
            log.error("request_not_recorded", record=record.id, error=str(exc), **changes)
            return record

    async def history(self, requester: Requester, limit: int = 10) -> Sequence[RequestRecord]:
        return await self.store.history(requester.user_id, limit=limit)


def _asked(request: RunRequest) -> list[dict[str, str]]:
    """The targets as the requester named them (a refused run never resolved them)."""
    query = [{"kind": "query", "query_id": request.query}] if request.query else []
    return (
        [{"kind": "user", t.kind: t.value} for t in request.users]
        + [{"kind": "device", t.kind: t.value} for t in request.devices]
        + query
    )


def _person(user_id: str) -> str:
    """A mention of a Slack user id, or the id as typed if it is not one."""
    if re.fullmatch(r"[UW][A-Z0-9]{2,30}", user_id):
        return f"<@{user_id}>"
    return code(outside(user_id))


def _dedupe(targets: list[Target]) -> list[Target]:
    seen: set[str] = set()
    out: list[Target] = []
    for t in targets:
        key = repr(t.user.to_json() if t.user else t.device.to_json() if t.device else t.label)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


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
