"""Outcome follow-ups: Nexthink requests whose result the bot looks up later (status query).

``due_followups`` leases what it returns: it pushes their ``next_poll_at`` forward by ``lease``
with a conditional ``UPDATE`` in the same transaction, so several replicas polling at once share
the work instead of each polling everything (on PostgreSQL the due rows are picked with ``FOR
UPDATE SKIP LOCKED``, so concurrent pollers take different rows; SQLite has one writer at a
time). A follow-up whose poller died comes due again when the lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import RowMapping, select

from ._base import StoreBase, new_id, utc
from .errors import RecordNotFound
from .records import FollowupRecord
from .schema import followups

__all__ = ["FollowupsMixin"]


def _record(row: RowMapping) -> FollowupRecord:
    return FollowupRecord(
        id=row["id"],
        request_id=row["request_id"],
        nexthink_request_uuid=row["nexthink_request_uuid"],
        next_poll_at=row["next_poll_at"],
        attempts=row["attempts"],
        deadline=row["deadline"],
        done=bool(row["done"]),
        last_status=row["last_status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class FollowupsMixin(StoreBase):
    async def add_followup(
        self,
        *,
        request_id: str,
        nexthink_request_uuid: str,
        next_poll_at: datetime,
        deadline: datetime,
        now: datetime | None = None,
    ) -> FollowupRecord:
        """Schedule a look-up of ``nexthink_request_uuid``'s outcome until ``deadline``."""
        at = utc(now)
        async with self._write() as conn:
            row = (
                (
                    await conn.execute(
                        followups.insert()
                        .values(
                            id=new_id(),
                            request_id=request_id,
                            nexthink_request_uuid=nexthink_request_uuid,
                            next_poll_at=utc(next_poll_at),
                            attempts=0,
                            deadline=utc(deadline),
                            done=False,
                            created_at=at,
                            updated_at=at,
                        )
                        .returning(*followups.c)
                    )
                )
                .mappings()
                .one()
            )
        return _record(row)

    async def due_followups(
        self,
        now: datetime | None = None,
        limit: int = 50,
        *,
        lease: timedelta = timedelta(seconds=60),
    ) -> list[FollowupRecord]:
        """Up to ``limit`` follow-ups due at ``now``, leased to this caller for ``lease``."""
        at = utc(now)
        due = (
            select(followups.c.id)
            .where(followups.c.done.is_(False), followups.c.next_poll_at <= at)
            .order_by(followups.c.next_poll_at, followups.c.id)
            .limit(max(0, limit))
            .with_for_update(skip_locked=True)  # PostgreSQL: pollers take disjoint rows
        )
        async with self._write() as conn:
            ids = (await conn.execute(due)).scalars().all()
            if not ids:
                return []
            rows = (
                (
                    await conn.execute(
                        followups.update()
                        .where(
                            followups.c.id.in_(ids),
                            followups.c.done.is_(False),
                            followups.c.next_poll_at <= at,
                        )
                        .values(next_poll_at=at + lease, updated_at=at)
                        .returning(*followups.c)
                    )
                )
                .mappings()
                .all()
            )
        return sorted((_record(r) for r in rows), key=lambda f: (f.created_at, f.id))

    async def reschedule_followup(
        self,
        followup_id: str,
        next_poll_at: datetime,
        *,
        last_status: str | None = None,
        now: datetime | None = None,
    ) -> FollowupRecord:
        """Count one more attempt and poll again at ``next_poll_at``; raise ``RecordNotFound``."""
        return await self._update(
            followup_id,
            now,
            last_status,
            next_poll_at=utc(next_poll_at),
            attempts=followups.c.attempts + 1,
        )

    async def finish_followup(
        self, followup_id: str, *, last_status: str | None = None, now: datetime | None = None
    ) -> FollowupRecord:
        """Stop following this request (outcome known, or deadline passed)."""
        return await self._update(followup_id, now, last_status, done=True)

    async def followups_for(self, request_ids: Sequence[str]) -> list[FollowupRecord]:
        """The follow-ups (done or not) of these requests, oldest first."""
        if not request_ids:
            return []
        query = (
            select(followups)
            .where(followups.c.request_id.in_(list(request_ids)))
            .order_by(followups.c.created_at, followups.c.id)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(row) for row in rows]

    async def _update(
        self, followup_id: str, now: datetime | None, last_status: str | None, **values: object
    ) -> FollowupRecord:
        if last_status is not None:
            values["last_status"] = last_status
        async with self._write() as conn:
            row = (
                (
                    await conn.execute(
                        followups.update()
                        .where(followups.c.id == followup_id)
                        .values(updated_at=utc(now), **values)
                        .returning(*followups.c)
                    )
                )
                .mappings()
                .one_or_none()
            )
        if row is None:
            raise RecordNotFound(f"no follow-up with id {followup_id!r}")
        return _record(row)
