"""The audit trail: append events, read them back oldest first in batches, prune old ones.

``append_audit`` and ``insert_audit`` (the same rows, in the transaction of the request write
whose change they record: ``create_request`` / ``update_request``'s ``audit=``) are the only
code that inserts into ``audit_events``; the core reaches them through
``bot.audit.AuditTrail``, which redacts the record and logs it. Rows are never updated.

Reading is keyset pagination on ``(occurred_at, id)``: each batch is one short read transaction
(``WHERE occurred_at >= :t AND NOT (occurred_at = :t AND id <= :id) ORDER BY occurred_at, id
LIMIT :batch``), the same SQL on SQLite and PostgreSQL, served by ``ix_audit_events_time``. A
million records therefore cost the memory of one batch and never hold a lock or a snapshot for
the length of an export. Pruning deletes in batches too, one transaction per batch, so writers
(and on SQLite, every writer of the file) wait at most for one batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, RowMapping, and_, delete, func, not_, or_, select

from ._base import StoreBase, utc
from .direct import Executor, Prepared
from .records import AUDIT_EVENTS, AuditEvent, AuditRecord, RequestRecord
from .schema import audit_events

__all__ = ["AuditFor", "AuditMixin", "AuditQuery", "audit_from_row", "insert_audit"]

_T = audit_events.c

#: one statement for every append, its values bound apart: compiled and cached once
_INSERT = audit_events.insert()
#: the same insert, every column but the key given, for a request write's transaction
_PREPARED = Prepared(
    audit_events.insert().inline(), columns=[c.key for c in audit_events.c if c.key != "id"]
)

#: the audit event of a request a write produces, built from the record written (in its
#: transaction): ``bot.audit.AuditTrail.for_request``
AuditFor = Callable[[RequestRecord], AuditRecord]


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which records to read: ``since`` inclusive, ``until`` exclusive (aware datetimes).

    ``user`` matches the actor's Slack id exactly or their UPN without regard to case;
    ``workflow`` and ``ticket`` match exactly.
    """

    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None
    workflow: str | None = None
    ticket: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.since is not None:
            found.append(_T.occurred_at >= utc(self.since))
        if self.until is not None:
            found.append(_T.occurred_at < utc(self.until))
        if self.user is not None:
            found.append(or_(_T.actor == self.user, func.lower(_T.actor_upn) == self.user.lower()))
        if self.workflow is not None:
            found.append(_T.workflow == self.workflow)
        if self.ticket is not None:
            found.append(_T.ticket == self.ticket)
        return found


def audit_from_row(row: RowMapping) -> AuditRecord:
    return AuditRecord(
        seq=row["id"],
        time=row["occurred_at"],
        event=cast(AuditEvent, row["event"]),
        actor=row["actor"],
        actor_upn=row["actor_upn"],
        workflow=row["workflow"],
        targets=tuple(dict(t) for t in row["targets"] or ()),
        params=dict(row["params"] or {}),
        ticket=row["ticket"],
        request_uuid=row["request_uuid"],
        execution_uuids=tuple(str(u) for u in row["execution_uuids"] or ()),
        result=row["result"],
        detail=row["detail"],
        request_id=row["request_id"],
        enterprise_id=row["enterprise_id"],
        team_id=row["team_id"],
    )


def _values(record: AuditRecord) -> dict[str, Any]:
    if record.event not in AUDIT_EVENTS:
        raise ValueError(f"unknown audit event {record.event!r}; one of {list(AUDIT_EVENTS)}")
    return {
        "occurred_at": utc(record.time),
        "event": record.event,
        "actor": record.actor,
        "actor_upn": record.actor_upn,
        "workflow": record.workflow,
        "targets": [dict(t) for t in record.targets],
        "params": dict(record.params),
        "ticket": record.ticket,
        "request_uuid": record.request_uuid,
        "execution_uuids": [str(u) for u in record.execution_uuids],
        "result": record.result,
        "detail": record.detail,
        "request_id": record.request_id,
        "enterprise_id": record.enterprise_id,
        "team_id": record.team_id,
    }


async def insert_audit(tx: Executor, records: Sequence[AuditRecord]) -> None:
    """Append ``records`` in the caller's transaction (the write whose change they record)."""
    rows = [_values(r) for r in records]
    if len(rows) == 1:
        await tx.execute(_PREPARED, rows[0])
    elif rows:
        await tx.execute(_PREPARED, rows)


class AuditMixin(StoreBase):
    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Write ``records`` (one or many) in one transaction; raise ``ValueError`` for an event
        name outside ``AuditEvent`` before writing any of them."""
        rows = [_values(r) for r in records]
        if not rows:
            return
        async with self._write() as conn:
            await conn.execute(_INSERT, rows)

    async def iter_audit(
        self, query: AuditQuery | None = None, *, batch: int = 2000
    ) -> AsyncIterator[AuditRecord]:
        """The matching records oldest first (ties in insertion order), ``batch`` per read."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        conditions = (query or AuditQuery()).conditions()
        after: tuple[datetime, int] | None = None
        while True:
            where = list(conditions)
            if after is not None:
                at, seq = after
                where.append(_T.occurred_at >= at)
                where.append(not_(and_(_T.occurred_at == at, _T.id <= seq)))
            statement = (
                select(audit_events).where(*where).order_by(_T.occurred_at, _T.id).limit(batch)
            )
            async with self._read() as conn:
                rows = (await conn.execute(statement)).mappings().all()
            for row in rows:
                yield audit_from_row(row)
            if len(rows) < batch:
                return
            last = rows[-1]
            after = (last["occurred_at"], last["id"])

    async def prune_audit(
        self, before: datetime, *, batch: int = 1000, max_rows: int | None = None
    ) -> int:
        """Delete records older than ``before`` (strictly), ``batch`` rows per transaction, until
        none is left or ``max_rows`` were deleted; return how many were deleted."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        cutoff = utc(before)
        deleted = 0
        while max_rows is None or deleted < max_rows:
            size = batch if max_rows is None else min(batch, max_rows - deleted)
            oldest = (
                select(_T.id)
                .where(_T.occurred_at < cutoff)
                .order_by(_T.occurred_at, _T.id)
                .limit(size)
            )
            async with self._write() as conn:
                result = await conn.execute(delete(audit_events).where(_T.id.in_(oldest)))
            count = max(0, result.rowcount or 0)
            deleted += count
            if count < size:
                break
            await asyncio.sleep(0)  # let other writers of this process in between batches
        return deleted
