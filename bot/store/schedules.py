"""Scheduled runs, and the one-replica claim on each when it falls due.

Life of a scheduled run::

    awaiting_approval ──approved──> scheduled ──claim_due_schedules──> running ──> ran | refused
            │                          │  ^                               │            | missed
            └──cancel / denied──> cancelled | closed      └──release (nothing sent)─┘

``claim_due_runs`` (and ``claim_due_schedules``) move a batch of due rows with one statement,
``WITH due AS MATERIALIZED (SELECT id … ORDER BY run_at LIMIT n FOR UPDATE SKIP LOCKED) UPDATE
… SET state = 'running' FROM due WHERE id = due.id AND state = 'scheduled' RETURNING *``: on
PostgreSQL the CTE locks the rows it takes and skips those another claimer holds (concurrent claimers take disjoint rows and never
wait on each other); on SQLite the write transaction (``BEGIN IMMEDIATE``) holds the database's
write lock, and the same conditional update decides. Either way a row is handed to exactly one
caller, across processes. The batch's request records are read in the same transaction.
``mark_schedule_sending`` records, before the execute is sent, that it may have reached
Nexthink: a run claimed by a process that died before that point is released and claimed again;
one that died after it is closed as ``unknown``, never sent twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Integer, RowMapping, bindparam, exc, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ._base import StoreBase, new_id, utc
from .records import SCHEDULE_STATES, RequestRecord, ScheduleRecord, ScheduleState
from .requests import request_from_row
from .schema import approvals, requests, schedules

__all__ = ["CODE_ALPHABET", "ScheduleDone", "SchedulesMixin", "schedule_from_row"]

#: the short codes' letters: no 0/O, 1/I/L or U, so that a code read aloud is typed right
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_LENGTH = 8
_OPEN = ("awaiting_approval", "scheduled")


#: the due runs, oldest first, each moved to ``running`` by one statement: the CTE takes them
#: with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (claimers take disjoint rows and never wait on
#: each other; SQLite leaves the clause out: its write lock serializes), ``MATERIALIZED`` so
#: that it is run once (a subquery ``IN (… LIMIT n FOR UPDATE)`` may be run again by the plan
#: and claim more than ``n``), and the UPDATE is conditional on the state it saw
_DUE = (
    select(schedules.c.id)
    .where(schedules.c.state == "scheduled", schedules.c.run_at <= bindparam("at"))
    .order_by(schedules.c.run_at, schedules.c.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
    .cte("due")
    .prefix_with("MATERIALIZED")
)
_CLAIM = (
    schedules.update()
    .where(schedules.c.id == _DUE.c.id, schedules.c.state == "scheduled")
    .values(
        state="running",
        claimed_at=bindparam("at"),
        claim_token=bindparam("token"),
        updated_at=bindparam("at"),
    )
    .returning(*schedules.c)
)
_REQUESTS = select(requests).where(requests.c.id.in_(bindparam("ids", expanding=True)))
_SENDING = (
    schedules.update()
    .where(
        schedules.c.id == bindparam("schedule_id"),
        schedules.c.state == "running",
        schedules.c.claim_token == bindparam("token"),
    )
    .values(sending_at=bindparam("at"), updated_at=bindparam("at"))
    .returning(schedules.c.request_id)
)
_DONE = (
    schedules.update()
    .where(
        schedules.c.id == bindparam("schedule_id"),
        schedules.c.state == "running",
        schedules.c.claim_token == bindparam("token"),
    )
    .values(
        state=bindparam("new_state"),
        claim_token=None,
        finished_at=bindparam("at"),
        updated_at=bindparam("at"),
    )
)


@dataclass(frozen=True, slots=True)
class ScheduleDone:
    """A claimed run's end (``ran``), written in the transaction that records its execute's
    answer (``update_request``'s ``also``); nothing changes if ``token`` no longer holds it."""

    schedule_id: str
    token: str
    state: ScheduleState = "ran"

    async def apply(self, conn: AsyncConnection, at: datetime) -> None:
        _check(self.state)
        bound = {"schedule_id": self.schedule_id, "token": self.token, "new_state": self.state}
        await conn.execute(_DONE, {**bound, "at": at})


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(_CODE_LENGTH))


def schedule_from_row(row: RowMapping | Mapping[str, Any]) -> ScheduleRecord:
    return ScheduleRecord(
        id=row["id"],
        code=row["code"],
        request_id=row["request_id"],
        team_id=row["team_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        user_upn=row["user_upn"],
        workflow=row["workflow"],
        ask=dict(row["ask"] or {}),
        run_at=row["run_at"],
        state=cast(ScheduleState, row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        claimed_at=row["claimed_at"],
        claim_token=row["claim_token"],
        sending_at=row["sending_at"],
        finished_at=row["finished_at"],
        detail=row["detail"],
        cancelled_by=row["cancelled_by"],
    )


def _check(state: str) -> None:
    if state not in SCHEDULE_STATES:
        raise ValueError(f"unknown schedule state {state!r}; one of {sorted(SCHEDULE_STATES)}")


class SchedulesMixin(StoreBase):
    async def create_schedule(
        self,
        *,
        request_id: str,
        user_id: str,
        workflow: str,
        ask: Mapping[str, Any],
        run_at: datetime,
        state: ScheduleState = "scheduled",
        user_upn: str | None = None,
        team_id: str | None = None,
        channel_id: str | None = None,
        now: datetime | None = None,
    ) -> ScheduleRecord:
        """Keep a run asked for ``run_at`` (UTC-aware); its short code is drawn here."""
        _check(state)
        at = utc(now)
        values: dict[str, Any] = {
            "id": new_id(),
            "request_id": request_id,
            "team_id": team_id,
            "channel_id": channel_id,
            "user_id": user_id,
            "user_upn": user_upn,
            "workflow": workflow,
            "ask": dict(ask),
            "run_at": utc(run_at),
            "state": state,
            "created_at": at,
            "updated_at": at,
            "claimed_at": None,
            "claim_token": None,
            "sending_at": None,
            "finished_at": None,
            "detail": None,
            "cancelled_by": None,
        }
        for attempt in range(5):  # 30^8 codes: a collision is rare, five in a row never happens
            values["code"] = new_code()
            try:
                async with self._write() as conn:
                    await conn.execute(schedules.insert(), values)
                break
            except exc.IntegrityError:  # pragma: no cover - a code drawn twice
                if attempt == 4:
                    raise
        return schedule_from_row(values)

    async def get_schedule(self, key: str) -> ScheduleRecord | None:
        """The scheduled run whose id (UUID) or short code (any case) is ``key``."""
        query = select(schedules).where(
            or_(schedules.c.id == key.lower(), schedules.c.code == key.upper())
        )
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else schedule_from_row(row)

    async def schedule_for_request(self, request_id: str) -> ScheduleRecord | None:
        query = select(schedules).where(schedules.c.request_id == request_id)
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else schedule_from_row(row)

    async def open_schedules(
        self, user_id: str | None = None, *, limit: int = 50
    ) -> list[ScheduleRecord]:
        """Scheduled runs not run yet (of ``user_id``, or everyone's), soonest first."""
        query = select(schedules).where(schedules.c.state.in_(_OPEN))
        if user_id is not None:
            query = query.where(schedules.c.user_id == user_id)
        query = query.order_by(schedules.c.run_at, schedules.c.id).limit(max(0, limit))
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [schedule_from_row(r) for r in rows]

    async def claim_due_schedules(
        self, now: datetime | None = None, limit: int = 50
    ) -> list[ScheduleRecord]:
        """Up to ``limit`` runs due at ``now``, moved to ``running`` for this caller alone."""
        return [schedule for schedule, _ in await self.claim_due_runs(now, limit)]

    async def claim_due_runs(
        self, now: datetime | None = None, limit: int = 50
    ) -> list[tuple[ScheduleRecord, RequestRecord | None]]:
        """``claim_due_schedules`` with each run's request record, read in the claim's
        transaction: one statement claims the batch, one reads their requests."""
        at = utc(now)
        bound = {"at": at, "limit": max(0, limit), "token": new_id()}
        async with self._write() as conn:
            rows = (await conn.execute(_CLAIM, bound)).mappings().all()
            if not rows:
                return []
            ids = [r["request_id"] for r in rows]
            found = (await conn.execute(_REQUESTS, {"ids": ids})).mappings().all()
        by_id = {r["id"]: request_from_row(r) for r in found}
        claimed = sorted((schedule_from_row(r) for r in rows), key=lambda s: (s.run_at, s.id))
        return [(schedule, by_id.get(schedule.request_id)) for schedule in claimed]

    async def mark_schedule_sending(
        self,
        schedule_id: str,
        token: str,
        now: datetime | None = None,
        *,
        request: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record that the execute is about to be sent (and, in the same transaction, the
        ``request`` columns of its request record: state, targets, parameters as checked now);
        False, and nothing changed, if this caller no longer holds it."""
        at = utc(now)
        async with self._write() as conn:
            held = await conn.execute(
                _SENDING, {"schedule_id": schedule_id, "token": token, "at": at}
            )
            request_id = held.scalar()
            if request_id is None:
                return False
            if request:
                await conn.execute(
                    requests.update()
                    .where(requests.c.id == request_id)
                    .values({**request, "updated_at": at})
                )
        return True

    async def release_schedule(
        self, schedule_id: str, token: str, now: datetime | None = None
    ) -> bool:
        """Give a claimed run back (``scheduled``) if its execute was not sent: the process
        holding it is stopping. Whether it was given back."""
        at = utc(now)
        async with self._write() as conn:
            result = await conn.execute(
                schedules.update()
                .where(
                    schedules.c.id == schedule_id,
                    schedules.c.state == "running",
                    schedules.c.claim_token == token,
                    schedules.c.sending_at.is_(None),
                )
                .values(state="scheduled", claim_token=None, updated_at=at)
            )
        return bool(result.rowcount)

    async def finish_schedule(
        self,
        schedule_id: str,
        state: ScheduleState,
        *,
        token: str | None = None,
        expected: Sequence[ScheduleState] = ("running",),
        detail: str | None = None,
        cancelled_by: str | None = None,
        now: datetime | None = None,
    ) -> ScheduleRecord | None:
        """Move a run from one of ``expected`` to ``state`` (with ``token``: only if this caller
        holds it); the record, or None if it was not in such a state."""
        _check(state)
        at = utc(now)
        values: dict[str, Any] = {"state": state, "updated_at": at, "claim_token": None}
        if state not in _OPEN:
            values["finished_at"] = at
        if detail is not None:
            values["detail"] = detail
        if cancelled_by is not None:
            values["cancelled_by"] = cancelled_by
        return await self._transition(schedule_id, values, states=expected, token=token)

    async def approval_of_request(self, request_id: str) -> str | None:
        """The id of the (latest) approval guarding ``request_id``, if any."""
        query = (
            select(approvals.c.id)
            .where(approvals.c.request_id == request_id)
            .order_by(approvals.c.created_at.desc())
            .limit(1)
        )
        async with self._read() as conn:
            return cast(str | None, (await conn.execute(query)).scalar())

    async def close_unapproved_schedules(
        self, now: datetime | None = None, *, limit: int = 200
    ) -> list[ScheduleRecord]:
        """Scheduled runs still waiting for an approval that was denied, withdrawn or expired
        (their request says so): closed, never to run."""
        at = utc(now)
        settled = select(requests.c.id).where(
            requests.c.state.in_(["denied", "expired", "failed", "unknown"])
        )
        waiting = (
            select(schedules.c.id)
            .where(
                schedules.c.state == "awaiting_approval",
                schedules.c.request_id.in_(settled.scalar_subquery()),
            )
            .limit(limit)
        )
        async with self._write() as conn:
            ids = (await conn.execute(waiting)).scalars().all()
            if not ids:
                return []
            rows = (
                (
                    await conn.execute(
                        schedules.update()
                        .where(schedules.c.id.in_(ids), schedules.c.state == "awaiting_approval")
                        .values(
                            state="closed",
                            finished_at=at,
                            updated_at=at,
                            detail="not approved",
                        )
                        .returning(*schedules.c)
                    )
                )
                .mappings()
                .all()
            )
        return [schedule_from_row(r) for r in rows]

    async def release_stale_schedules(
        self, older_than: timedelta, now: datetime | None = None
    ) -> tuple[list[ScheduleRecord], list[ScheduleRecord]]:
        """Runs left ``running`` by a process that died: those claimed more than ``older_than``
        ago that never reached Nexthink go back to ``scheduled`` (first list); those whose execute
        may have been sent are closed as ``closed`` (second list), never run again."""
        at = utc(now)
        before = at - older_than
        stale = (schedules.c.state == "running", schedules.c.claimed_at < before)
        async with self._write() as conn:
            released = (
                (
                    await conn.execute(
                        schedules.update()
                        .where(*stale, schedules.c.sending_at.is_(None))
                        .values(state="scheduled", claim_token=None, updated_at=at)
                        .returning(*schedules.c)
                    )
                )
                .mappings()
                .all()
            )
            closed = (
                (
                    await conn.execute(
                        schedules.update()
                        .where(*stale, schedules.c.sending_at.is_not(None))
                        .values(
                            state="closed",
                            claim_token=None,
                            finished_at=at,
                            updated_at=at,
                            detail="interrupted while sending: the outcome is unknown",
                        )
                        .returning(*schedules.c)
                    )
                )
                .mappings()
                .all()
            )
        return [schedule_from_row(r) for r in released], [schedule_from_row(r) for r in closed]

    async def _transition(
        self,
        schedule_id: str,
        values: Mapping[str, Any],
        *,
        states: Sequence[str],
        token: str | None,
    ) -> ScheduleRecord | None:
        conditions = [schedules.c.id == schedule_id, schedules.c.state.in_(list(states))]
        if token is not None:
            conditions.append(schedules.c.claim_token == token)
        async with self._write() as conn:
            row = (
                (
                    await conn.execute(
                        schedules.update()
                        .where(*conditions)
                        .values(dict(values))
                        .returning(*schedules.c)
                    )
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else schedule_from_row(row)
