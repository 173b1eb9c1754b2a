"""Fleet runs shown to their requester with Run and Cancel, before anything runs.

A fleet run (``/nexthink run <workflow> query:#id``) is recorded ``pending`` with the targets the
query returned. ``decide_fleet_run`` moves it to ``started`` (Run) or ``cancelled`` (Cancel) in one
conditional ``UPDATE ... RETURNING`` that names the requester and checks the state and the expiry:
of two clicks, on one replica or two, exactly one gets the row back, so a fleet run starts at most
once. ``prune_fleet_runs`` deletes those older than a cut-off (they hold up to 999 targets each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import RowMapping, delete, select

from ._base import StoreBase, new_id, utc
from .schema import fleet_runs

__all__ = ["FleetRunRecord", "FleetRunState", "FleetRunsMixin"]

FleetRunState = Literal["pending", "started", "cancelled"]


@dataclass(frozen=True)
class FleetRunRecord:
    id: str
    created_at: datetime
    expires_at: datetime
    state: FleetRunState
    team_id: str | None
    channel_id: str | None
    user_id: str
    workflow_id: str
    query_id: str
    row_count: int
    skipped: int
    targets: tuple[dict[str, Any], ...]
    params: dict[str, str]
    visible: bool
    response_url: str | None
    decided_at: datetime | None
    ticket: str | None = None


def _record(row: RowMapping | Mapping[str, Any]) -> FleetRunRecord:
    return FleetRunRecord(
        id=row["id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        state=cast(FleetRunState, row["state"]),
        team_id=row["team_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        workflow_id=row["workflow_id"],
        query_id=row["query_id"],
        row_count=row["row_count"],
        skipped=row["skipped"],
        targets=tuple(dict(t) for t in row["targets"] or ()),
        params={str(k): str(v) for k, v in (row["params"] or {}).items()},
        visible=bool(row["visible"]),
        response_url=row["response_url"],
        decided_at=row["decided_at"],
        ticket=row.get("ticket"),
    )


class FleetRunsMixin(StoreBase):
    async def create_fleet_run(
        self,
        *,
        user_id: str,
        workflow_id: str,
        query_id: str,
        row_count: int,
        skipped: int,
        targets: Sequence[Mapping[str, Any]],
        params: Mapping[str, str],
        visible: bool,
        expires_at: datetime,
        team_id: str | None = None,
        channel_id: str | None = None,
        response_url: str | None = None,
        ticket: str | None = None,
        now: datetime | None = None,
    ) -> FleetRunRecord:
        """Record a fleet run waiting for its requester's Run or Cancel."""
        values: dict[str, Any] = {
            "id": new_id(),
            "created_at": utc(now),
            "expires_at": utc(expires_at),
            "state": "pending",
            "team_id": team_id,
            "channel_id": channel_id,
            "user_id": user_id,
            "workflow_id": workflow_id,
            "query_id": query_id,
            "row_count": row_count,
            "skipped": skipped,
            "targets": [dict(t) for t in targets],
            "params": dict(params),
            "visible": visible,
            "response_url": response_url,
            "decided_at": None,
            "ticket": ticket,
        }
        async with self._write() as conn:
            await conn.execute(fleet_runs.insert(), values)
        return _record(values)

    async def get_fleet_run(self, run_id: str) -> FleetRunRecord | None:
        async with self._read() as conn:
            row = (
                (await conn.execute(select(fleet_runs).where(fleet_runs.c.id == run_id)))
                .mappings()
                .first()
            )
        return _record(row) if row is not None else None

    async def decide_fleet_run(
        self,
        run_id: str,
        *,
        user_id: str,
        state: Literal["started", "cancelled"],
        now: datetime | None = None,
    ) -> FleetRunRecord | None:
        """``pending`` → ``state``, only by its requester and before it expires; the record if
        this call made the change, None otherwise (someone else did, or it may not)."""
        at = utc(now)
        async with self._write() as conn:
            row = (
                (
                    await conn.execute(
                        fleet_runs.update()
                        .where(
                            fleet_runs.c.id == run_id,
                            fleet_runs.c.user_id == user_id,
                            fleet_runs.c.state == "pending",
                            fleet_runs.c.expires_at > at,
                        )
                        .values(state=state, decided_at=at)
                        .returning(*fleet_runs.c)
                    )
                )
                .mappings()
                .first()
            )
        return _record(row) if row is not None else None

    async def prune_fleet_runs(self, before: datetime) -> int:
        """Delete fleet runs created before ``before``; how many."""
        async with self._write() as conn:
            result = await conn.execute(
                delete(fleet_runs).where(fleet_runs.c.created_at < utc(before))
            )
        return int(result.rowcount or 0)
