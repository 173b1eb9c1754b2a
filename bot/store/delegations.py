"""Stand-ins: ``/nexthink delegate``. One row per person who is away, naming who decides for them.

``delegations_to`` finds the people someone stands in for, by Slack user id or by UPN (compared
without regard to case), leaving out those whose ``until`` has passed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, RowMapping, func, or_, select

from ._base import StoreBase, utc
from .records import DelegationRecord
from .schema import delegations

__all__ = ["DelegationsMixin"]


def _record(row: RowMapping) -> DelegationRecord:
    return DelegationRecord(
        user_id=row["user_id"],
        user_upn=row["user_upn"],
        stand_in_id=row["stand_in_id"],
        stand_in_upn=row["stand_in_upn"],
        until=row["until"],
        created_at=row["created_at"],
        team_id=row["team_id"],
    )


def _active(at: datetime) -> ColumnElement[bool]:
    return or_(delegations.c.until.is_(None), delegations.c.until > at)


class DelegationsMixin(StoreBase):
    async def set_delegation(
        self,
        *,
        user_id: str,
        user_upn: str | None,
        stand_in_id: str,
        stand_in_upn: str | None,
        until: datetime | None,
        team_id: str | None = None,
        now: datetime | None = None,
    ) -> DelegationRecord:
        """Name ``stand_in_id`` as ``user_id``'s stand-in, replacing any earlier one."""
        at = utc(now)
        values = {
            "user_id": user_id,
            "user_upn": user_upn,
            "stand_in_id": stand_in_id,
            "stand_in_upn": stand_in_upn,
            "until": utc(until) if until is not None else None,
            "created_at": at,
            "team_id": team_id,
        }
        async with self._write() as conn:
            await conn.execute(delegations.delete().where(delegations.c.user_id == user_id))
            await conn.execute(delegations.insert().values(values))
            row = (
                (await conn.execute(select(delegations).where(delegations.c.user_id == user_id)))
                .mappings()
                .one()
            )
        return _record(row)

    async def end_delegation(self, user_id: str) -> DelegationRecord | None:
        """End ``user_id``'s delegation; returns the one ended (None: there was none)."""
        async with self._write() as conn:
            row = (
                (await conn.execute(select(delegations).where(delegations.c.user_id == user_id)))
                .mappings()
                .one_or_none()
            )
            await conn.execute(delegations.delete().where(delegations.c.user_id == user_id))
        return _record(row) if row is not None else None

    async def delegation_of(
        self, user_id: str, now: datetime | None = None
    ) -> DelegationRecord | None:
        """``user_id``'s stand-in while it lasts (None when there is none or it has ended)."""
        query = select(delegations).where(delegations.c.user_id == user_id, _active(utc(now)))
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().one_or_none()
        return _record(row) if row is not None else None

    async def delegations_of(
        self, user_ids: list[str], now: datetime | None = None
    ) -> dict[str, DelegationRecord]:
        """The lasting delegations of each of ``user_ids`` that has one."""
        if not user_ids:
            return {}
        query = select(delegations).where(
            delegations.c.user_id.in_(sorted(set(user_ids))), _active(utc(now))
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {r["user_id"]: _record(r) for r in rows}

    async def delegations_to(
        self, stand_in_id: str, stand_in_upn: str | None = None, now: datetime | None = None
    ) -> list[DelegationRecord]:
        """The lasting delegations naming this person (by id, or by UPN) as the stand-in."""
        who = [delegations.c.stand_in_id == stand_in_id]
        if stand_in_upn:
            who.append(func.lower(delegations.c.stand_in_upn) == stand_in_upn.lower())
        query = (
            select(delegations)
            .where(or_(*who), _active(utc(now)))
            .order_by(delegations.c.created_at, delegations.c.user_id)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(r) for r in rows]
