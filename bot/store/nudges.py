"""Reminders and escalation notices: which requests are due, and the once-only claim of each.

A reminder is claimed before it is sent: one row in ``nudges`` per (request, person, round),
inserted with ``ON CONFLICT DO NOTHING``. Whichever replica inserts the row sends the message;
the others (and a restarted bot) find it there and send nothing. Round 0 is the escalation
notice; round ``n`` the reminder after ``n`` intervals. ``next_nudge_at`` on approvals and waits
says when the sweep should look at a request again, so a sweep reads only the requests due.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ._base import StoreBase, utc
from .approvals import _load, _select
from .records import ApprovalRecord, WaitRecord
from .schema import approvals, nudges, waits
from .waits import wait_from_row

__all__ = ["NudgesMixin"]


class NudgesMixin(StoreBase):
    async def claim_nudge(
        self, subject_id: str, user_id: str, round: int, *, now: datetime | None = None
    ) -> bool:
        """Claim the message of ``round`` about ``subject_id`` (an approval or wait id) to
        ``user_id``: True for exactly one caller, across processes and restarts."""
        values = {"subject_id": subject_id, "user_id": user_id, "round": round, "sent_at": utc(now)}
        insert = pg_insert if self.backend == "postgresql" else sqlite_insert
        statement = insert(nudges).values(values).on_conflict_do_nothing()
        async with self._write() as conn:
            result = await conn.execute(statement)
        return result.rowcount == 1

    async def nudges_sent(self, subject_id: str) -> list[tuple[str, int]]:
        """(person, round) of every message claimed about ``subject_id``, in round order."""
        query = (
            select(nudges.c.user_id, nudges.c.round)
            .where(nudges.c.subject_id == subject_id)
            .order_by(nudges.c.round, nudges.c.user_id)
        )
        async with self._read() as conn:
            return [(str(r[0]), int(r[1])) for r in (await conn.execute(query)).all()]

    async def due_approvals(
        self, now: datetime | None = None, *, limit: int = 200
    ) -> list[ApprovalRecord]:
        """Pending, unexpired approvals whose ``next_nudge_at`` has come, the most overdue first."""
        at = utc(now)
        query = (
            _select()
            .where(
                approvals.c.state == "pending",
                approvals.c.next_nudge_at <= at,
                approvals.c.expires_at > at,
            )
            .order_by(approvals.c.next_nudge_at)  # the index's order: no sort (bench/store.py)
            .limit(max(0, limit))
        )
        async with self._read() as conn:
            return await _load(conn, query)

    async def due_waits(self, now: datetime | None = None, *, limit: int = 200) -> list[WaitRecord]:
        """Pending, unexpired waits whose ``next_nudge_at`` has come, the most overdue first."""
        at = utc(now)
        query = (
            select(waits)
            .where(waits.c.state == "pending", waits.c.next_nudge_at <= at, waits.c.expires_at > at)
            .order_by(waits.c.next_nudge_at)  # the index's order: no sort (bench/store.py)
            .limit(max(0, limit))
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [wait_from_row(r) for r in rows]

    async def set_next_nudge(
        self,
        kind: Literal["approval", "wait"],
        subject_id: str,
        at: datetime | None,
        *,
        expected: datetime | None,
    ) -> bool:
        """Move ``next_nudge_at`` from ``expected`` to ``at`` (None: nothing more to do); False
        when another sweep moved it first."""
        table = approvals if kind == "approval" else waits
        condition = [table.c.id == subject_id]
        if expected is None:
            condition.append(table.c.next_nudge_at.is_(None))
        else:
            condition.append(table.c.next_nudge_at == utc(expected))
        new = utc(at) if at is not None else None
        async with self._write() as conn:
            result = await conn.execute(table.update().where(*condition).values(next_nudge_at=new))
        return result.rowcount == 1
