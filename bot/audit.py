"""The audit trail as the core writes it: one call per event, a row in the store and a log line.

Every event of the contract ("Change management and audit") goes through ``AuditTrail.record``::

    await bot.audit.record("approval_vote", actor=user_id, actor_upn=upn, request_id=record.id,
                           workflow=record.workflow_id, result="counted", detail="2 of 2")
    await bot.audit.record_request("executed", record, result="sent")   # fields from the request

``record`` builds one ``AuditRecord``, passes it through the log redactor (configured secrets,
values under secret-looking keys, Slack tokens, bearer credentials and response URLs are
masked), emits one structured line ``event="audit"`` (the record's own event name is under
``audit_event``, since structlog keeps ``event`` for the line's name) and appends the row to the
store. The row is the redacted record: what the database keeps is what the log shipper got, and
``nexthink-bot audit`` cannot print a secret that was never written. A store that is unavailable
does not stop the caller (the event has happened; the log line carries it): the failure is
logged as ``audit_not_stored`` and the record returned.

Who writes what (each right after the store accepted the change it records):

* ``bot.runs.Runner``: ``run_refused`` (``prepare`` and ``resume`` refusals), ``run_requested``
  (``record``), ``executed`` / ``execute_failed`` (``execute``), ``resumed`` (``resume``)
* ``bot.approvals``: ``approval_requested``, ``approval_vote``, ``approval_denied`` (with the
  reason; ``result`` ``withdrawn`` for the requester's own), ``approval_expired`` (the sweep),
  ``execute_failed`` for an execute a stop interrupted
* ``bot.waits``: ``question_posted`` (the webhook), ``question_decided`` (a click, with what
  Nexthink answered), ``resumed`` (the trigger Nexthink accepted), ``question_expired`` (sweep)
* ``bot.followups``: ``outcome`` once the follow-up of a run ends
* ``record_delegation``: ``delegation_set`` (stand-ins, ``/nexthink delegate``)

``prune`` applies ``AUDIT_RETENTION_DAYS``; the periodic sweep calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Final, Literal

from bot.logging import ALREADY_REDACTED, Redactor, get_logger, redactor
from bot.store import (
    AUDIT_EVENTS,
    AUDIT_FIELDS,
    AuditEvent,
    AuditRecord,
    RequestRecord,
    Store,
    StoreError,
    WaitRecord,
)
from bot.store._base import utc

__all__ = [
    "AUDIT_EVENTS",
    "AUDIT_FIELDS",
    "REQUESTER",
    "AuditEvent",
    "AuditRecord",
    "AuditTrail",
    "RequestAudit",
]

log = get_logger("bot.audit")


class _Requester(Enum):
    REQUESTER = "requester"


#: ``record_request``'s default actor: the person who asked for the request.
REQUESTER: Final = _Requester.REQUESTER


class AuditTrail:
    """Writes audit events (store row + log line) and prunes old ones.

    ``redactor`` defaults to the process-wide one that ``bot.logging.configure`` fills with the
    configured secrets; ``retention_days`` is ``Settings.audit_retention_days`` (0 keeps all).
    """

    def __init__(
        self, store: Store, *, retention_days: int = 400, redact: Redactor | None = None
    ) -> None:
        if retention_days < 0:
            raise ValueError("retention_days must be 0 (keep everything) or more")
        self.store = store
        self.retention_days = retention_days
        self._redactor = redact

    @property
    def redactor(self) -> Redactor:
        return self._redactor if self._redactor is not None else redactor()

    async def record(
        self,
        event: AuditEvent,
        *,
        actor: str | None = None,
        actor_upn: str | None = None,
        workflow: str | None = None,
        targets: Iterable[Mapping[str, Any]] = (),
        params: Mapping[str, Any] | None = None,
        ticket: str | None = None,
        request_uuid: str | None = None,
        execution_uuids: Iterable[str] = (),
        result: str | None = None,
        detail: str | None = None,
        request_id: str | None = None,
        enterprise_id: str | None = None,
        team_id: str | None = None,
        now: datetime | None = None,
    ) -> AuditRecord:
        """Write one event; return the record as written (redacted). Never raises ``StoreError``."""
        record = self.entry(
            event,
            actor=actor,
            actor_upn=actor_upn,
            workflow=workflow,
            targets=targets,
            params=params,
            ticket=ticket,
            request_uuid=request_uuid,
            execution_uuids=execution_uuids,
            result=result,
            detail=detail,
            request_id=request_id,
            enterprise_id=enterprise_id,
            team_id=team_id,
            now=now,
        )
        self.logged(record)
        try:
            await self.store.append_audit([record])
        except StoreError as exc:
            log.error("audit_not_stored", audit_event=event, error=str(exc))
        return record

    def entry(
        self,
        event: AuditEvent,
        *,
        actor: str | None = None,
        actor_upn: str | None = None,
        workflow: str | None = None,
        targets: Iterable[Mapping[str, Any]] = (),
        params: Mapping[str, Any] | None = None,
        ticket: str | None = None,
        request_uuid: str | None = None,
        execution_uuids: Iterable[str] = (),
        result: str | None = None,
        detail: str | None = None,
        request_id: str | None = None,
        enterprise_id: str | None = None,
        team_id: str | None = None,
        now: datetime | None = None,
    ) -> AuditRecord:
        """The record ``record`` would write (checked and redacted), neither logged nor stored."""
        if event not in AUDIT_EVENTS:
            raise ValueError(f"unknown audit event {event!r}; one of {list(AUDIT_EVENTS)}")
        return self.redacted(
            AuditRecord(
                time=utc(now),
                event=event,
                actor=actor,
                actor_upn=actor_upn,
                workflow=workflow,
                targets=tuple(dict(t) for t in targets),
                params=dict(params or {}),
                ticket=ticket,
                request_uuid=request_uuid,
                execution_uuids=tuple(str(u) for u in execution_uuids),
                result=result,
                detail=detail,
                request_id=request_id,
                enterprise_id=enterprise_id,
                team_id=team_id,
            )
        )

    def logged(self, record: AuditRecord) -> None:
        """The one ``event="audit"`` line (its own event name under ``audit_event``) of ``record``
        as ``entry`` made it (redacted)."""
        line = record.to_json()
        line["audit_event"] = line.pop("event")
        if self._redactor is None:  # masked by the process-wide redactor already (``entry``)
            line[ALREADY_REDACTED] = frozenset(line)
        log.info("audit", **line)

    def for_request(
        self,
        event: AuditEvent,
        *,
        actor: str | Literal[_Requester.REQUESTER] | None = REQUESTER,
        actor_upn: str | None = None,
        **fields: Any,
    ) -> RequestAudit:
        """``record_request`` of the request a store write is about to produce, written in that
        write's transaction: pass it as the write's ``audit=``, then call ``logged()`` once the
        write returned (the line is for an event that happened). If the write fails, nothing
        was stored: ``record_request`` the event as the caller sees it instead."""
        return RequestAudit(self, event, actor, actor_upn, fields)

    async def record_request(
        self,
        event: AuditEvent,
        request: RequestRecord,
        *,
        actor: str | Literal[_Requester.REQUESTER] | None = REQUESTER,
        actor_upn: str | None = None,
        **fields: Any,
    ) -> AuditRecord:
        """``record`` with the fields a bot request already holds: its workflow, targets,
        parameters, ticket, workspace and org, id, Nexthink request uuids (comma-separated when a
        run was split) and execution uuids; the actor is the requester unless given (a voter, a denier) or ``None``
        (the bot itself: an expiry, an outcome found by polling). ``fields`` are the other
        keywords of ``record`` and win over the request's."""
        return await self.record(event, **_request_fields(request, actor, actor_upn, fields))

    async def record_wait(
        self,
        event: AuditEvent,
        wait: WaitRecord,
        *,
        actor: str | None = None,
        actor_upn: str | None = None,
        **fields: Any,
    ) -> AuditRecord:
        """``record`` for a question of a paused execution: Nexthink's workflow and execution
        uuids, the question (``detail``) and its options (``params``: ``{"question_id",
        "options"}``); after a decision ``result`` defaults to the chosen option's label."""
        values: dict[str, Any] = {
            "workflow": wait.workflow_uuid,
            "execution_uuids": (wait.execution_uuid,),
            "detail": wait.text,
            "params": {"question_id": wait.id, "options": [o.label for o in wait.options]},
            "result": wait.decision_label,
        }
        values.update(fields)
        return await self.record(event, actor=actor, actor_upn=actor_upn, **values)

    async def record_delegation(
        self,
        *,
        actor: str,
        actor_upn: str | None = None,
        stand_in: str | None,
        stand_in_upn: str | None = None,
        until: date | datetime | None = None,
        result: str | None = None,
        detail: str | None = None,
        team_id: str | None = None,
        enterprise_id: str | None = None,
    ) -> AuditRecord:
        """``delegation_set``: ``actor`` (an approver) names ``stand_in`` (a Slack user id) to
        decide in their place ``until`` a day (``None``: until turned off); ``stand_in=None`` is
        ``/nexthink delegate off``. The stand-in is the record's one target (``kind``
        ``stand_in``); ``params`` holds ``until`` (ISO 8601 or null); ``result`` defaults to
        ``set`` or ``off``."""
        targets = (
            [{"kind": "stand_in", "user_id": stand_in, "upn": stand_in_upn}] if stand_in else []
        )
        return await self.record(
            "delegation_set",
            actor=actor,
            actor_upn=actor_upn,
            targets=targets,
            params={"until": until.isoformat() if until is not None else None},
            result=result or ("set" if stand_in else "off"),
            detail=detail,
            team_id=team_id,
            enterprise_id=enterprise_id,
        )

    def redacted(self, record: AuditRecord) -> AuditRecord:
        """``record`` with every field passed through the redactor (``time`` and ``event`` kept)."""
        clean = self.redactor.value(record.to_json())
        return replace(
            record,
            actor=clean["actor"],
            actor_upn=clean["actor_upn"],
            workflow=clean["workflow"],
            targets=tuple(clean["targets"]),
            params=clean["params"],
            ticket=clean["ticket"],
            request_uuid=clean["request_uuid"],
            execution_uuids=tuple(clean["execution_uuids"]),
            result=clean["result"],
            detail=clean["detail"],
            request_id=clean["request_id"],
            enterprise_id=clean["enterprise_id"],
            team_id=clean["team_id"],
        )

    async def prune(
        self, now: datetime | None = None, *, batch: int = 1000, max_rows: int | None = 100_000
    ) -> int:
        """Delete records older than ``retention_days`` (none when it is 0), ``batch`` rows per
        transaction and at most ``max_rows`` per call (the next sweep goes on); return the count."""
        if self.retention_days == 0:
            return 0
        before = utc(now) - timedelta(days=self.retention_days)
        deleted = await self.store.prune_audit(before, batch=batch, max_rows=max_rows)
        if deleted:
            log.info("audit_pruned", deleted=deleted, before=before.isoformat())
        return deleted


def _request_fields(
    request: RequestRecord,
    actor: str | Literal[_Requester.REQUESTER] | None,
    actor_upn: str | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """``record``'s keywords for an event about ``request`` (see ``record_request``)."""
    values: dict[str, Any] = {
        "workflow": request.workflow_id,
        "targets": request.targets,
        "params": request.params,
        "request_uuid": ",".join(request.nexthink_request_uuids) or None,
        "execution_uuids": request.executions_uuids,
        "request_id": request.id,
        "team_id": request.team_id,
        "enterprise_id": request.enterprise_id,
        "ticket": request.ticket,
    }
    values.update(fields)
    if actor is REQUESTER:
        actor, actor_upn = request.user_id, actor_upn or request.user_upn
    values["actor"], values["actor_upn"] = actor, actor_upn
    return values


class RequestAudit:
    """An event about the request a store write produces (``AuditTrail.for_request``): the store
    calls it with the record it wrote, in the same transaction, and stores what it returns."""

    __slots__ = ("_actor", "_actor_upn", "_event", "_fields", "_trail", "record")

    def __init__(
        self,
        trail: AuditTrail,
        event: AuditEvent,
        actor: str | Literal[_Requester.REQUESTER] | None,
        actor_upn: str | None,
        fields: Mapping[str, Any],
    ) -> None:
        if event not in AUDIT_EVENTS:
            raise ValueError(f"unknown audit event {event!r}; one of {list(AUDIT_EVENTS)}")
        self._trail, self._event, self._fields = trail, event, dict(fields)
        self._actor, self._actor_upn = actor, actor_upn
        #: the record as written, once the store called this
        self.record: AuditRecord | None = None

    def __call__(self, request: RequestRecord) -> AuditRecord:
        self.record = self._trail.entry(
            self._event, **_request_fields(request, self._actor, self._actor_upn, self._fields)
        )
        return self.record

    def logged(self) -> AuditRecord | None:
        """The ``event="audit"`` line of the record written (none if the store never asked)."""
        if self.record is not None:
            self._trail.logged(self.record)
        return self.record
