"""Bot-side approvals: a request runs only after ``count`` distinct people approve it.

Life of an approval::

    pending ──vote_approval (count reached)──> approved ──> executing ──> executed
       ├──deny_approval──> denied
       └──expire_approvals──> expired

``vote_approval`` locks the approval row first (``SELECT ... FOR UPDATE`` on PostgreSQL; the
``BEGIN IMMEDIATE`` write lock on SQLite), so votes on one approval are counted one after the
other and exactly one vote sees the count reached and flips the state to ``approved``.
``(approval_id, user_id)`` is the votes' primary key, and a vote whose UPN already voted is
refused: a person counts once, whichever of their Slack accounts they vote from.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ._base import StoreBase, new_id, utc
from .errors import RecordNotFound
from .records import (
    APPROVAL_STATES,
    ApprovalRecord,
    ApprovalState,
    ApprovalVote,
    DenyResult,
    NudgePlan,
    VoteRefusalReason,
    VoteResult,
)
from .schema import approval_votes, approvals, requests

__all__ = ["ApprovalsMixin", "plan_from_row", "plan_values"]

_COLUMNS = (*approvals.c, requests.c.user_id.label("requester_id"))


def _select() -> Any:
    return select(*_COLUMNS).join(requests, requests.c.id == approvals.c.request_id)


async def _votes(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, list[ApprovalVote]]:
    found: dict[str, list[ApprovalVote]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = (
        await conn.execute(
            select(approval_votes)
            .where(approval_votes.c.approval_id.in_(list(ids)))
            .order_by(approval_votes.c.voted_at, approval_votes.c.user_id)
        )
    ).mappings()
    for row in rows:
        found[row["approval_id"]].append(
            ApprovalVote(
                row["user_id"], row["upn"], row["voted_at"], row["cast_by"], row["comment"]
            )
        )
    return found


def plan_from_row(row: RowMapping) -> NudgePlan:
    """The reminder plan kept in an approval's or a wait's row."""
    return NudgePlan(
        remind_after_minutes=row["remind_after_minutes"],
        escalate_after_minutes=row["escalate_after_minutes"],
        escalate_to=tuple(row["escalate_to"] or ()),
    )


def plan_values(plan: NudgePlan | None, next_nudge_at: datetime | None) -> dict[str, Any]:
    plan = plan or NudgePlan()
    return {
        "remind_after_minutes": plan.remind_after_minutes,
        "escalate_after_minutes": plan.escalate_after_minutes,
        "escalate_to": list(plan.escalate_to) if plan.escalate_to else None,
        "next_nudge_at": utc(next_nudge_at) if next_nudge_at is not None else None,
    }


def _record(row: RowMapping, votes: Sequence[ApprovalVote]) -> ApprovalRecord:
    return ApprovalRecord(
        id=row["id"],
        request_id=row["request_id"],
        requester_id=row["requester_id"],
        channel_id=row["channel_id"],
        approvers=tuple(row["approvers"] or ()),
        count=row["required_count"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        updated_at=row["updated_at"],
        state=cast(ApprovalState, row["state"]),
        message_channel=row["message_channel"],
        message_ts=row["message_ts"],
        denied_by=row["denied_by"],
        deny_reason=row["deny_reason"],
        decided_at=row["decided_at"],
        votes=tuple(votes),
        plan=plan_from_row(row),
        next_nudge_at=row["next_nudge_at"],
        denied_for=row["denied_for"],
    )


async def _load(conn: AsyncConnection, query: Any) -> list[ApprovalRecord]:
    rows = (await conn.execute(query)).mappings().all()
    votes = await _votes(conn, [r["id"] for r in rows])
    return [_record(r, votes[r["id"]]) for r in rows]


async def _get(conn: AsyncConnection, approval_id: str) -> ApprovalRecord | None:
    found = await _load(conn, _select().where(approvals.c.id == approval_id))
    return found[0] if found else None


def _same_upn(one: str | None, other: str | None) -> bool:
    return bool(one and other and one.casefold() == other.casefold())


def _refusal(approval: ApprovalRecord | None, now: datetime) -> VoteRefusalReason:
    if approval is None:
        return "not_found"
    if approval.state == "expired" or (approval.state == "pending" and approval.expires_at <= now):
        return "expired"
    return "not_pending"


class ApprovalsMixin(StoreBase):
    async def create_approval(
        self,
        *,
        request_id: str,
        count: int,
        expires_at: datetime,
        channel_id: str | None = None,
        approvers: Sequence[str] = (),
        plan: NudgePlan | None = None,
        next_nudge_at: datetime | None = None,
        now: datetime | None = None,
    ) -> ApprovalRecord:
        """Open an approval for a recorded request; ``count`` distinct approvals are needed.
        ``plan`` reminds and escalates it; the sweep first looks at it at ``next_nudge_at``."""
        if count < 1:
            raise ValueError(f"an approval needs a count of at least 1, not {count}")
        at = utc(now)
        approval_id = new_id()
        async with self._write() as conn:
            await conn.execute(
                approvals.insert().values(
                    id=approval_id,
                    request_id=request_id,
                    channel_id=channel_id,
                    approvers=list(approvers),
                    required_count=count,
                    created_at=at,
                    expires_at=utc(expires_at),
                    updated_at=at,
                    state="pending",
                    **plan_values(plan, next_nudge_at),
                )
            )
            created = await _get(conn, approval_id)
        assert created is not None
        return created

    async def set_approval_message(
        self, approval_id: str, channel: str, ts: str, *, now: datetime | None = None
    ) -> ApprovalRecord:
        """Remember where the approval's message was posted; raise ``RecordNotFound``."""
        async with self._write() as conn:
            result = await conn.execute(
                approvals.update()
                .where(approvals.c.id == approval_id)
                .values(message_channel=channel, message_ts=ts, updated_at=utc(now))
            )
            if result.rowcount == 0:
                raise RecordNotFound(f"no approval with id {approval_id!r}")
            found = await _get(conn, approval_id)
        assert found is not None
        return found

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        async with self._read() as conn:
            return await _get(conn, approval_id)

    async def vote_approval(
        self,
        approval_id: str,
        user_id: str,
        upn: str | None,
        now: datetime | None = None,
        *,
        cast_by: str | None = None,
        comment: str | None = None,
    ) -> VoteResult:
        """Count ``user_id``'s approval, atomically; ``cast_by``: the stand-in casting it for
        them, ``comment``: the approver's, as typed.

        Refused when the approval is unknown, expired or no longer pending, when this person (or
        the stand-in casting it) already voted or cast a vote, or when either is the requester
        (nobody approves their own request).
        Whether they are an approver at all is for the caller to check first. The one vote that
        reaches the count gets ``reached=True``; the approval is then ``approved`` and the
        request's ``approved_by`` lists the voters.
        """
        at = utc(now)
        async with self._write() as conn:
            locked = (
                await conn.execute(
                    select(approvals.c.id, approvals.c.state, approvals.c.expires_at)
                    .where(approvals.c.id == approval_id)
                    .with_for_update()
                )
            ).one_or_none()
            current = await _get(conn, approval_id) if locked is not None else None
            if current is None:
                return VoteResult(False, "not_found", 0, False, None)
            if current.state != "pending" or current.expires_at <= at:
                return VoteResult(False, _refusal(current, at), len(current.votes), False, current)
            people = {user_id, cast_by or user_id}
            if current.requester_id in people:
                return VoteResult(False, "own_request", len(current.votes), False, current)
            if any(
                people & {v.user_id, v.cast_by or v.user_id} or _same_upn(v.upn, upn)
                for v in current.votes
            ):
                # a person counts once, whichever of their Slack accounts they vote from
                return VoteResult(False, "already_voted", len(current.votes), False, current)
            await conn.execute(
                approval_votes.insert().values(
                    approval_id=approval_id,
                    user_id=user_id,
                    upn=upn,
                    voted_at=at,
                    cast_by=cast_by,
                    comment=comment,
                )
            )
            votes = len(current.votes) + 1
            reached = votes >= current.count
            if reached:
                await conn.execute(
                    approvals.update()
                    .where(approvals.c.id == approval_id, approvals.c.state == "pending")
                    .values(state="approved", decided_at=at, updated_at=at)
                )
                voters = [v.user_id for v in current.votes] + [user_id]
                await conn.execute(
                    requests.update()
                    .where(requests.c.id == current.request_id)
                    .values(approved_by=voters, updated_at=at)
                )
            else:
                await conn.execute(
                    approvals.update().where(approvals.c.id == approval_id).values(updated_at=at)
                )
            after = await _get(conn, approval_id)
        return VoteResult(True, None, votes, reached, after)

    async def deny_approval(
        self,
        approval_id: str,
        user_id: str,
        reason: str | None,
        now: datetime | None = None,
        *,
        denied_for: str | None = None,
    ) -> DenyResult:
        """Deny a pending, unexpired approval, atomically; anyone later is told it is settled.
        ``denied_for``: the approver for whom the stand-in ``user_id`` denies it."""
        at = utc(now)
        async with self._write() as conn:
            result = await conn.execute(
                approvals.update()
                .where(
                    approvals.c.id == approval_id,
                    approvals.c.state == "pending",
                    approvals.c.expires_at > at,
                )
                .values(
                    state="denied",
                    denied_by=user_id,
                    denied_for=denied_for,
                    deny_reason=reason,
                    decided_at=at,
                    updated_at=at,
                )
            )
            after = await _get(conn, approval_id)
        if result.rowcount == 1:
            return DenyResult(True, None, after)
        return DenyResult(False, _refusal(after, at), after)

    async def mark_approval(
        self,
        approval_id: str,
        state: ApprovalState,
        *,
        expected: ApprovalState | None = None,
        now: datetime | None = None,
    ) -> ApprovalRecord | None:
        """Move an approval to ``state`` (e.g. executing, executed).

        With ``expected``, only if it is in that state now (None otherwise): ``mark_approval(id,
        "executing", expected="approved")`` is a claim of the run. Raises ``RecordNotFound``.
        """
        for value in (state, expected):
            if value is not None and value not in APPROVAL_STATES:
                raise ValueError(
                    f"unknown approval state {value!r}; one of {sorted(APPROVAL_STATES)}"
                )
        at = utc(now)
        condition = [approvals.c.id == approval_id]
        if expected is not None:
            condition.append(approvals.c.state == expected)
        async with self._write() as conn:
            result = await conn.execute(
                approvals.update().where(*condition).values(state=state, updated_at=at)
            )
            after = await _get(conn, approval_id)
        if after is None:
            raise RecordNotFound(f"no approval with id {approval_id!r}")
        return after if result.rowcount == 1 else None

    async def expire_approvals(self, now: datetime | None = None) -> list[ApprovalRecord]:
        """Mark pending approvals past their expiry as expired and return exactly those."""
        at = utc(now)
        async with self._write() as conn:
            ids = (
                (
                    await conn.execute(
                        approvals.update()
                        .where(approvals.c.state == "pending", approvals.c.expires_at <= at)
                        .values(state="expired", decided_at=at, updated_at=at)
                        .returning(approvals.c.id)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            return await _load(
                conn, _select().where(approvals.c.id.in_(ids)).order_by(approvals.c.expires_at)
            )

    async def close_stale_approvals(
        self, older_than: timedelta, now: datetime | None = None
    ) -> list[ApprovalRecord]:
        """Close approvals left ``approved`` or ``executing`` for longer than ``older_than``.

        Such an approval belongs to a process that died after the approving vote: its execute
        may or may not have reached Nexthink, and running it again could run it twice, so it is
        closed (``executed``) for the caller to report the outcome as unknown. Each approval is
        returned to one caller only.
        """
        at = utc(now)
        async with self._write() as conn:
            ids = (
                (
                    await conn.execute(
                        approvals.update()
                        .where(
                            approvals.c.state.in_(("approved", "executing")),
                            approvals.c.updated_at <= at - older_than,
                        )
                        .values(state="executed", updated_at=at)
                        .returning(approvals.c.id)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            return await _load(conn, _select().where(approvals.c.id.in_(ids)))

    async def count_pending_approvals(self, now: datetime | None = None) -> int:
        """How many approvals are pending and unexpired (for the metrics gauge)."""
        at = utc(now)
        query = (
            select(func.count())
            .select_from(approvals)
            .where(approvals.c.state == "pending", approvals.c.expires_at > at)
        )
        async with self._read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def pending_approvals(
        self, now: datetime | None = None, *, limit: int = 100
    ) -> list[ApprovalRecord]:
        """Pending, unexpired approvals, oldest first."""
        at = utc(now)
        query = (
            _select()
            .where(approvals.c.state == "pending", approvals.c.expires_at > at)
            .order_by(approvals.c.created_at, approvals.c.id)
            .limit(max(0, limit))
        )
        async with self._read() as conn:
            return await _load(conn, query)
