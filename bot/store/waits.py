"""Paused Nexthink executions waiting for a decision, and the one-winner claim on them.

Life of a wait::

    pending ──claim_wait──> claimed ──finish_wait──> decided | failed
       ^                       │
       └─────release_wait──────┘        pending ──expire_waits──> expired

``claim_wait`` is one conditional ``UPDATE ... WHERE state = 'pending' AND expires_at > :now
RETURNING``: on PostgreSQL concurrent updaters of the row queue on its lock and re-check the
condition once the first commits; on SQLite the write transaction holds the database write lock.
Either way exactly one caller gets the wait, across any number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import RowMapping, and_, exc, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ._base import StoreBase, new_id, utc
from .approvals import plan_from_row, plan_values
from .errors import RecordNotFound
from .records import (
    ClaimRefusal,
    ClaimRefusalReason,
    NudgePlan,
    WaitOption,
    WaitRecord,
    WaitState,
)
from .schema import ACTIVE_WAIT_STATES, waits

__all__ = ["WaitsMixin", "wait_from_row"]


def wait_from_row(row: RowMapping) -> WaitRecord:
    return WaitRecord(
        id=row["id"],
        workflow_uuid=row["workflow_uuid"],
        execution_uuid=row["execution_uuid"],
        channel_id=row["channel_id"],
        dm_user_upn=row["dm_user_upn"],
        text=row["text"],
        options=tuple(WaitOption.from_json(o) for o in row["options"] or ()),
        approvers=tuple(row["approvers"] or ()),
        approver_parameter=row["approver_parameter"],
        requester_upn=row["requester_upn"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        updated_at=row["updated_at"],
        state=cast(WaitState, row["state"]),
        decided_by=row["decided_by"],
        decided_upn=row["decided_upn"],
        decision=row["decision"],
        claimed_at=row["claimed_at"],
        decided_at=row["decided_at"],
        outcome=row["outcome"],
        message_channel=row["message_channel"],
        message_ts=row["message_ts"],
        claim_token=row["claim_token"],
        plan=plan_from_row(row),
        next_nudge_at=row["next_nudge_at"],
        decided_for=row["decided_for"],
        team_id=row["team_id"],
        enterprise_id=row["enterprise_id"],
    )


async def _one(conn: AsyncConnection, statement: Any) -> WaitRecord | None:
    row = (await conn.execute(statement)).mappings().one_or_none()
    return None if row is None else wait_from_row(row)


def _refusal_reason(wait: WaitRecord, now: datetime) -> ClaimRefusalReason:
    if wait.state == "claimed":
        return "in_progress"
    if wait.state in ("decided", "failed"):
        return cast(ClaimRefusalReason, wait.state)
    if wait.state == "pending" and wait.expires_at > now:
        return "in_progress"  # claimed and released again while we looked: a retry is under way
    return "expired"  # state 'expired', or 'pending' past expires_at and not yet swept


class WaitsMixin(StoreBase):
    async def create_wait(
        self,
        *,
        workflow_uuid: str,
        execution_uuid: str,
        text: str,
        options: Sequence[WaitOption],
        expires_at: datetime,
        channel_id: str | None = None,
        dm_user_upn: str | None = None,
        approvers: Sequence[str] = (),
        approver_parameter: str | None = None,
        requester_upn: str | None = None,
        plan: NudgePlan | None = None,
        next_nudge_at: datetime | None = None,
        team_id: str | None = None,
        enterprise_id: str | None = None,
        now: datetime | None = None,
    ) -> tuple[WaitRecord, bool]:
        """Record a paused execution; ``(wait, True)`` if new. ``plan`` reminds and escalates
        it; the sweep first looks at it at ``next_nudge_at``.

        If the same execution already has a pending or claimed wait (Nexthink repeated its
        webhook), that wait is returned as ``(existing, False)`` and nothing is added.
        """
        if channel_id is None and dm_user_upn is None:
            raise ValueError("a wait needs a channel_id or a dm_user_upn to ask in")
        if not options:
            raise ValueError("a wait needs at least one option")
        at = utc(now)
        # ids compare without regard to case: one question per execution
        workflow_uuid, execution_uuid = workflow_uuid.lower(), execution_uuid.lower()
        values: dict[str, Any] = {
            "id": new_id(),
            "workflow_uuid": workflow_uuid,
            "execution_uuid": execution_uuid,
            "channel_id": channel_id,
            "dm_user_upn": dm_user_upn,
            "text": text,
            "options": [o.to_json() for o in options],
            "approvers": list(approvers),
            "approver_parameter": approver_parameter,
            "requester_upn": requester_upn,
            "team_id": team_id,
            "enterprise_id": enterprise_id,
            "created_at": at,
            "expires_at": utc(expires_at),
            "updated_at": at,
            "state": "pending",
            **plan_values(plan, next_nudge_at),
        }
        active = (
            select(waits)
            .where(
                waits.c.workflow_uuid == workflow_uuid,
                waits.c.execution_uuid == execution_uuid,
                waits.c.state.in_(ACTIVE_WAIT_STATES),
            )
            .limit(1)
        )
        async with self._write() as conn:
            existing = await _one(conn, active)
            if existing is not None:
                return existing, False
            try:
                async with conn.begin_nested():
                    created = await _one(conn, waits.insert().values(values).returning(*waits.c))
            except exc.IntegrityError:
                # Another process inserted it between our check and our insert (PostgreSQL);
                # its row is committed now, and READ COMMITTED lets this statement see it.
                existing = await _one(conn, active)
                if existing is None:
                    raise
                return existing, False
        assert created is not None
        return created, True

    async def set_wait_message(
        self, wait_id: str, channel: str, ts: str, *, now: datetime | None = None
    ) -> WaitRecord:
        """Remember where the wait's message was posted; raise ``RecordNotFound``.

        The first message recorded stays: when two replicas posted the same question at once,
        the one whose message was not recorded sees another ``message_ts`` in the answer and
        deletes its own post.
        """
        async with self._write() as conn:
            placed = await _one(
                conn,
                waits.update()
                .where(waits.c.id == wait_id, waits.c.message_ts.is_(None))
                .values(message_channel=channel, message_ts=ts, updated_at=utc(now))
                .returning(*waits.c),
            )
            if placed is None:
                placed = await _one(conn, select(waits).where(waits.c.id == wait_id))
        if placed is None:
            raise RecordNotFound(f"no wait with id {wait_id!r}")
        return placed

    async def get_wait(self, wait_id: str) -> WaitRecord | None:
        async with self._read() as conn:
            return await _one(conn, select(waits).where(waits.c.id == wait_id))

    async def wait_for_execution(
        self, workflow_uuid: str, execution_uuid: str
    ) -> WaitRecord | None:
        """The latest question asked for this execution (ids in any case), in whatever state."""
        query = (
            select(waits)
            .where(
                waits.c.workflow_uuid == workflow_uuid.lower(),
                waits.c.execution_uuid == execution_uuid.lower(),
            )
            .order_by(waits.c.created_at.desc())
            .limit(1)
        )
        async with self._read() as conn:
            return await _one(conn, query)

    async def claim_wait(
        self,
        wait_id: str,
        user_id: str,
        upn: str | None,
        option_index: int,
        now: datetime | None = None,
        *,
        decided_for: str | None = None,
    ) -> WaitRecord | ClaimRefusal:
        """Take the wait for this click, atomically; exactly one of concurrent callers wins.

        The winner gets the wait in state ``claimed`` with a fresh ``claim_token`` and must end
        with ``finish_wait`` or ``release_wait``. Everyone else gets a ``ClaimRefusal`` whose
        ``wait`` says who has it or decided it, and when. The requester (``requester_upn``,
        compared without regard to case) is always refused. Whether ``user_id`` may decide at all
        (approvers, user groups, policy, for whom as a stand-in: ``decided_for``) is for the
        caller to check first.
        """
        at = utc(now)
        token = new_id()
        async with self._write() as conn:
            current = await _one(conn, select(waits).where(waits.c.id == wait_id))
            if current is None:
                return ClaimRefusal("not_found", None)
            if (
                current.requester_upn is not None
                and upn is not None
                and current.requester_upn.casefold() == upn.casefold()
            ):
                return ClaimRefusal("own_request", current)
            if not 0 <= option_index < len(current.options):
                raise ValueError(f"option {option_index} does not exist on wait {wait_id}")
            won = await _one(
                conn,
                waits.update()
                .where(
                    waits.c.id == wait_id,
                    waits.c.state == "pending",
                    waits.c.expires_at > at,
                )
                .values(
                    state="claimed",
                    claim_token=token,
                    decided_by=user_id,
                    decided_upn=upn,
                    decided_for=decided_for,
                    decision=option_index,
                    claimed_at=at,
                    decided_at=None,
                    updated_at=at,
                )
                .returning(*waits.c),
            )
            if won is not None:
                return won
            latest = await _one(conn, select(waits).where(waits.c.id == wait_id))
        if latest is None:
            return ClaimRefusal("not_found", None)
        return ClaimRefusal(_refusal_reason(latest, at), latest)

    async def finish_wait(
        self,
        wait_id: str,
        claim_token: str,
        state: Literal["decided", "failed"] = "decided",
        outcome: str | None = None,
        *,
        now: datetime | None = None,
    ) -> WaitRecord | None:
        """End a claimed wait with Nexthink's answer; None if ``claim_token`` no longer holds it."""
        if state not in ("decided", "failed"):
            raise ValueError(f"a wait finishes as 'decided' or 'failed', not {state!r}")
        at = utc(now)
        async with self._write() as conn:
            return await _one(
                conn,
                waits.update()
                .where(
                    waits.c.id == wait_id,
                    waits.c.state == "claimed",
                    waits.c.claim_token == claim_token,
                )
                .values(state=state, outcome=_append(outcome), decided_at=at, updated_at=at)
                .returning(*waits.c),
            )

    async def release_wait(
        self,
        wait_id: str,
        claim_token: str,
        outcome: str | None = None,
        *,
        now: datetime | None = None,
    ) -> WaitRecord | None:
        """Put a claimed wait back to pending after a retryable failure (throttled, unreachable).

        ``outcome`` is appended to the wait's notes, so that a later decider can see, for
        instance, that an earlier attempt's outcome is unknown and may have resumed the
        execution. None if ``claim_token`` no longer holds the wait.
        """
        at = utc(now)
        async with self._write() as conn:
            return await _one(
                conn,
                waits.update()
                .where(
                    waits.c.id == wait_id,
                    waits.c.state == "claimed",
                    waits.c.claim_token == claim_token,
                )
                .values(**_unclaimed(outcome, at))
                .returning(*waits.c),
            )

    async def expire_waits(self, now: datetime | None = None) -> list[WaitRecord]:
        """Mark pending waits past their expiry as expired and return exactly those.

        Each expired wait is returned to one caller only, even with several replicas sweeping.
        """
        at = utc(now)
        async with self._write() as conn:
            result = await conn.execute(
                waits.update()
                .where(waits.c.state == "pending", waits.c.expires_at <= at)
                .values(state="expired", updated_at=at)
                .returning(*waits.c)
            )
            rows = result.mappings().all()
        return sorted((wait_from_row(r) for r in rows), key=lambda w: (w.expires_at, w.id))

    async def pending_waits(
        self, now: datetime | None = None, *, limit: int = 100
    ) -> list[WaitRecord]:
        """Pending, unexpired waits, oldest first (for an approver's view)."""
        at = utc(now)
        query = (
            select(waits)
            .where(and_(waits.c.state == "pending", waits.c.expires_at > at))
            .order_by(waits.c.created_at, waits.c.id)
            .limit(max(0, limit))
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [wait_from_row(r) for r in rows]

    async def release_stale_claims(
        self, older_than: timedelta, now: datetime | None = None
    ) -> list[WaitRecord]:
        """Put back to pending the waits claimed more than ``older_than`` ago.

        A claim that old belongs to a process that died between claiming and finishing: its
        trigger may or may not have reached Nexthink, so the wait goes back to its deciders with
        a note, exactly like an "outcome unknown" failure (a second trigger of an execution that
        was already resumed is refused by Nexthink). Each wait is returned to one caller only.
        """
        at = utc(now)
        note = (
            f"{at.isoformat(timespec='seconds')}: a decision was started but never finished "
            "(the bot stopped?); it may or may not have reached Nexthink"
        )
        async with self._write() as conn:
            result = await conn.execute(
                waits.update()
                .where(waits.c.state == "claimed", waits.c.claimed_at <= at - older_than)
                .values(**_unclaimed(note, at))
                .returning(*waits.c)
            )
            rows = result.mappings().all()
        return [wait_from_row(r) for r in rows]

    async def count_pending_waits(self, now: datetime | None = None) -> int:
        """How many waits are pending and unexpired (for the metrics gauge)."""
        at = utc(now)
        query = (
            select(func.count())
            .select_from(waits)
            .where(waits.c.state == "pending", waits.c.expires_at > at)
        )
        async with self._read() as conn:
            return int((await conn.execute(query)).scalar_one())


def _unclaimed(note: str | None, at: datetime) -> dict[str, Any]:
    """The values that put a claimed wait back to pending, ``note`` added to its outcome."""
    return {
        "state": "pending",
        "claim_token": None,
        "decided_by": None,
        "decided_upn": None,
        "decided_for": None,
        "decision": None,
        "claimed_at": None,
        "outcome": _append(note),
        "updated_at": at,
    }


def _append(note: str | None) -> Any:
    """``outcome`` with ``note`` appended on a new line (SQL, so it is done in the UPDATE)."""
    if note is None:
        return waits.c.outcome
    return func.coalesce(waits.c.outcome + literal("\n"), literal("")) + literal(note)
