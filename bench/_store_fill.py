"""The fill of bench/store.py: a year of records, generated and bulk-inserted."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Column, DateTime, MetaData, Table, Text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.schema import (
    JSONText,
    UTCDateTime,
)

GOAL_MS = 50.0
USERS = 2000
HEAVY = "U0HEAVY00"
HEAVY_SHARE = 0.05
CHUNK = 5000
NOW = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)  # the end of the year of records
YEAR = timedelta(days=365)
STEP = timedelta(seconds=30)  # how far the sweeps' clock moves per call
STALE = timedelta(minutes=10)  # bot/waits.py and bot/approvals.py STALE_AFTER
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


#: JSON columns are filled with text already encoded as ``JSONText`` encodes it
OPTIONS = json.dumps(
    [{"label": "Yes", "style": "primary", "parameters": {"d": "y"}}],
    ensure_ascii=False,
    separators=(",", ":"),
)


# -- the records ----------------------------------------------------------------------------


@dataclass
class Sizes:
    requests: int
    waits: int
    approvals: int
    followups: int
    votes: int = 0
    audit: int = 0

    def line(self) -> str:
        parts = [
            f"{self.requests:,} requests",
            f"{self.waits:,} waits",
            f"{self.approvals:,} approvals ({self.votes:,} votes)",
            f"{self.followups:,} follow-ups",
        ]
        if self.audit:
            parts.append(f"{self.audit:,} audit records")
        return ", ".join(parts)


class Fill:
    """Deterministic rows: ``random.Random(seed)``, timestamps spread over the year before NOW."""

    def __init__(self, rows: int, seed: int = 19) -> None:
        self.rng = random.Random(seed)
        self.sizes = Sizes(rows, max(rows // 10, 100), max(rows // 10, 100), max(rows // 10, 100))
        self.request_ids: list[str] = []

    def uid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def user(self) -> str:
        if self.rng.random() < HEAVY_SHARE:
            return HEAVY
        return f"U0BENCH{self.rng.randrange(USERS):04d}"

    def at(self, i: int, n: int) -> datetime:
        """The i-th of n moments, in order, over the year."""
        return NOW - YEAR + YEAR * (i / n)

    def requests(self) -> Iterator[dict[str, Any]]:
        n = self.sizes.requests
        states = ["succeeded"] * 70 + ["failed"] * 15 + ["unknown"] * 5 + ["denied"] * 5
        states += ["expired"] * 5
        for i in range(n):
            rid = self.uid()
            self.request_ids.append(rid)
            user = self.user()
            created = self.at(i, n)
            yield {
                "id": rid,
                "kind": "run",
                "created_at": created,
                "updated_at": created + timedelta(minutes=1),
                "team_id": "T0BENCH",
                "channel_id": "C0BENCH",
                "user_id": user,
                "user_upn": f"{user.lower()}@example.com",
                "workflow_id": "restart_teams",
                "targets": f'[{{"type":"device","name":"LAPTOP-{self.rng.randrange(50_000)}"}}]',
                "params": "{}",
                "state": self.rng.choice(states),
                "nexthink_request_uuids": f'["{self.uid()}"]',
                "executions_uuids": f'["{self.uid()}"]',
                "error": None,
                "approved_by": "[]",
                "response_url": f"https://hooks.slack.com/commands/T0BENCH/{i}/x",
                "message_channel": None,
                "message_ts": None,
            }

    def waits(self) -> Iterator[dict[str, Any]]:
        n = self.sizes.waits
        active = max(10, n // 100)  # the newest 1%: pending, a tenth of them claimed
        for i in range(n):
            recent = i >= n - active
            if recent:
                created = NOW - timedelta(hours=self.rng.uniform(0, 24))
                expires = created + timedelta(hours=self.rng.uniform(1, 48))
            else:
                created = self.at(i, n)
                expires = created + timedelta(days=1)
            state = "pending" if recent else self.rng.choice(["decided"] * 7 + ["expired"] * 3)
            row: dict[str, Any] = {
                "id": self.uid(),
                "workflow_uuid": self.uid(),
                "execution_uuid": self.uid(),
                "channel_id": "C0APPROVERS",
                "dm_user_upn": None,
                "text": "Reinstall Office on LAPTOP-42?",
                "options": OPTIONS,
                "approvers": f'["S0GROUP01","U0APPR{self.rng.randrange(20):03d}"]',
                "approver_parameter": None,
                "requester_upn": f"u0bench{self.rng.randrange(USERS):04d}@example.com",
                "created_at": created,
                "expires_at": expires,
                "updated_at": created,
                "state": state,
                "decided_by": None,
                "decided_upn": None,
                "decision": None,
                "claimed_at": None,
                "decided_at": None,
                "outcome": None,
                "message_channel": "C0APPROVERS",
                "message_ts": f"{1_700_000_000 + i}.000100",
                "claim_token": None,
                **self.nudge_plan(created, recent),
            }
            if state == "decided":
                row.update(decided_by="U0APPR001", decision=0, decided_at=created)
            elif recent and self.rng.random() < 0.1:
                row.update(
                    state="claimed",
                    claim_token=self.uid(),
                    decided_by="U0APPR001",
                    decision=0,
                    claimed_at=NOW - timedelta(minutes=self.rng.uniform(0, 30)),
                )
            yield row

    def nudge_plan(self, created: datetime, recent: bool) -> dict[str, Any]:
        """Hourly reminders: the open ones fall due within the day; half of the settled ones
        keep the reminder time they had when they were settled (the sweep leaves those alone)."""
        if not recent and self.rng.random() < 0.5:
            return {"remind_after_minutes": None, "next_nudge_at": None}
        return {"remind_after_minutes": 60.0, "next_nudge_at": created + timedelta(minutes=60)}

    def approvals(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        n = self.sizes.approvals
        stride = max(1, len(self.request_ids) // n)
        active = max(10, n // 100)
        rows, votes = [], []
        for i in range(n):
            recent = i >= n - active
            created = NOW - timedelta(hours=self.rng.uniform(0, 24)) if recent else self.at(i, n)
            expires = created + timedelta(hours=self.rng.uniform(1, 48) if recent else 24)
            if recent:
                state = self.rng.choice(["pending"] * 18 + ["approved", "executing"])
            else:
                state = self.rng.choice(["executed"] * 6 + ["denied"] * 2 + ["expired"] * 2)
            aid = self.uid()
            rows.append(
                {
                    "id": aid,
                    "request_id": self.request_ids[(i * stride) % len(self.request_ids)],
                    "channel_id": "C0APPROVERS",
                    "approvers": '["S0GROUP01"]',
                    "required_count": 1,
                    "created_at": created,
                    "expires_at": expires,
                    "updated_at": created if not recent else NOW - timedelta(minutes=20),
                    "state": state,
                    "message_channel": "C0APPROVERS",
                    "message_ts": f"{1_700_000_000 + i}.000200",
                    "denied_by": "U0APPR002" if state == "denied" else None,
                    "deny_reason": None,
                    "decided_at": None if state == "pending" else created,
                    **self.nudge_plan(created, recent),
                }
            )
            if state in ("executed", "approved", "executing"):
                votes.append(
                    {"approval_id": aid, "user_id": "U0APPR001", "upn": None, "voted_at": created}
                )
        self.sizes.votes = len(votes)
        return rows, votes

    def followups(self) -> Iterator[dict[str, Any]]:
        n = self.sizes.followups
        stride = max(1, len(self.request_ids) // n)
        active = max(10, n // 100)
        for i in range(n):
            recent = i >= n - active
            created = NOW - timedelta(minutes=self.rng.uniform(0, 60)) if recent else self.at(i, n)
            yield {
                "id": self.uid(),
                "request_id": self.request_ids[(i * stride + stride // 2) % len(self.request_ids)],
                "nexthink_request_uuid": self.uid(),
                "next_poll_at": NOW + timedelta(minutes=self.rng.uniform(-5, 60))
                if recent
                else created + timedelta(minutes=5),
                "attempts": 0 if recent else 3,
                "deadline": created + timedelta(days=1),
                "done": not recent,
                "last_status": None if recent else "SUCCESS",
                "created_at": created,
                "updated_at": created,
            }


def _audit_rows(table: Table, fill: Fill, n: int) -> Iterator[dict[str, Any]]:
    """Rows for an audit table of unknown shape: its first datetime column spread over the year,
    every other column a plausible value of its type."""
    for i in range(n):
        row: dict[str, Any] = {}
        for column in table.columns:
            python = _python_type(column)
            if isinstance(column.type, JSONText):
                row[column.name] = "[]" if column.name in ("targets", "execution_uuids") else "{}"
            elif isinstance(column.type, UTCDateTime):  # its python_type is not known to SQLAlchemy
                row[column.name] = fill.at(i, n)
            elif column.primary_key and python is str:
                row[column.name] = fill.uid()
            elif column.primary_key:
                continue  # an autoincrement key
            elif python is datetime:
                row[column.name] = fill.at(i, n)
            elif python is int:
                row[column.name] = 0
            elif python is bool:
                row[column.name] = False
            elif python is str:
                row[column.name] = "run_requested" if "event" in column.name else "x"
            else:
                row[column.name] = {}
        yield row


def _python_type(column: Any) -> type:
    try:
        return column.type.python_type  # type: ignore[no-any-return]
    except NotImplementedError:
        return dict


def _raw(table: Table, sqlite: bool) -> tuple[Table, list[str]]:
    """``table`` with its JSON columns as plain TEXT (the rows bring them encoded) and, on
    SQLite, its datetimes as TEXT too (written here as SQLAlchemy's SQLite DATETIME writes them,
    so that they compare with the store's bound values): the same table and bytes, without
    per-value type processing, which made the fill five times slower. Also the names of its
    datetime columns."""
    columns, times = [], []
    for column in table.columns:
        kind: Any = column.type
        if isinstance(kind, JSONText):
            kind = Text()
        elif isinstance(kind, UTCDateTime):
            times.append(column.name)
            kind = Text() if sqlite else DateTime(timezone=True)
        columns.append(Column(column.name, kind, primary_key=column.primary_key))
    return Table(table.name, MetaData(), *columns), times


def _sqlite_time(value: datetime) -> str:
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond:06d}"


async def bulk_insert(engine: AsyncEngine, table: Table, rows: Any) -> int:
    """Insert through SQLAlchemy Core, ``CHUNK`` rows per ``executemany``, one transaction per
    chunk; the number inserted."""
    sqlite = engine.dialect.name == "sqlite"
    raw, times = _raw(table, sqlite)
    count, batch = 0, cast(list[dict[str, Any]], [])

    async def flush() -> None:
        if sqlite:
            for row in batch:
                for name in times:
                    if row.get(name) is not None:
                        row[name] = _sqlite_time(row[name])
        async with engine.begin() as conn:
            await conn.execute(raw.insert(), batch)

    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            await flush()
            count, batch = count + len(batch), []
    if batch:
        await flush()
        count += len(batch)
    return count
