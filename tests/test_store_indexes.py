"""The store's indexes: what the migrations build is what ``schema.py`` declares, an older
database gains them, and the queries of a big store use them (bench/store.py measures how fast).

SQLite files per test and the PostgreSQL server of ``TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), each PostgreSQL test in a schema of its own that
is dropped afterwards, as in tests/test_store.py.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy import Column, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SAWarning

from bot.store import Store
from bot.store.engine import create_engine, driver_url
from bot.store.migrations import MIGRATIONS
from bot.store.schema import followups, metadata, requests, schema_version

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """``{"url", "schema"}`` of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield {"url": f"sqlite:///{tmp_path / 'bot.db'}", "schema": None}
        return
    try:
        admin = await asyncpg.connect(_dsn(PG_URL), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(f"PostgreSQL is unreachable ({type(exc).__name__}: {exc}); CI has one")
    schema = f"test_indexes_{uuid4().hex[:16]}"
    try:
        yield {"url": PG_URL, "schema": schema}
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


def _indexes(sync: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    """The column indexes of every table (expression indexes, like the audit trail's
    ``lower(actor_upn)``, are left out: SQLite's reflection cannot read them; so are the indexes
    PostgreSQL builds for a UNIQUE constraint, which schema.py declares as a constraint)."""
    found = inspect(sync)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        return {
            table: {
                i["name"]: tuple(i["column_names"])
                for i in found.get_indexes(table)
                if None not in i["column_names"] and not i.get("duplicates_constraint")
            }
            for table in found.get_table_names()
        }


def _declared() -> dict[str, dict[str, tuple[str, ...]]]:
    return {
        name: {
            str(i.name): tuple(c.name for c in i.columns)
            for i in table.indexes
            if all(isinstance(e, Column) for e in i.expressions)
        }
        for name, table in metadata.tables.items()
    }


async def test_migrated_indexes_match_schema_module(where: dict[str, Any]) -> None:
    """Every index schema.py declares is built by the migrations, with the same columns, and no
    other (the old (user_id, created_at) index of requests is gone)."""
    store = await Store.open(where["url"], schema=where["schema"])
    try:
        async with store._read() as conn:
            actual = await conn.run_sync(_indexes)
    finally:
        await store.close()
    assert actual == _declared()
    assert "ix_requests_user_created" not in actual["requests"]
    assert actual["requests"]["ix_requests_user_created_id"] == ("user_id", "created_at", "id")
    assert actual["followups"]["ix_followups_request"] == ("request_id",)


def _request_row(request_id: str, minutes: int) -> dict[str, Any]:
    at = T0 + timedelta(minutes=minutes)
    return {
        "id": request_id,
        "kind": "run",
        "created_at": at,
        "updated_at": at,
        "user_id": "U1",
        "targets": [],
        "params": {},
        "state": "succeeded",
        "nexthink_request_uuids": [],
        "executions_uuids": [],
        "approved_by": [],
    }


async def test_a_database_made_before_the_indexes_gains_them_and_keeps_its_records(
    where: dict[str, Any],
) -> None:
    """A database at version 1 (as an older release left it), with records, is migrated on open:
    the new indexes exist and the records are found through them."""
    engine = create_engine(driver_url(where["url"]), schema=where["schema"])
    try:
        async with engine.begin() as conn:
            if where["schema"] is not None:
                await conn.execute(text(f'CREATE SCHEMA "{where["schema"]}"'))
            await conn.run_sync(MIGRATIONS[0].apply)
            await conn.run_sync(lambda sync: schema_version.create(sync))
            await conn.execute(
                schema_version.insert().values(version=1, description="old", applied_at=T0)
            )
            for n, request_id in enumerate(("r-oldest", "r-second", "r-newest")):
                await conn.execute(requests.insert().values(_request_row(request_id, n)))
            await conn.execute(
                followups.insert().values(
                    id="f-1",
                    request_id="r-newest",
                    nexthink_request_uuid="nx-newest",
                    next_poll_at=T0,
                    attempts=0,
                    deadline=T0 + timedelta(hours=1),
                    done=False,
                    created_at=T0,
                    updated_at=T0,
                )
            )
            before = await conn.run_sync(_indexes)
    finally:
        await engine.dispose()
    assert "ix_requests_user_created" in before["requests"]
    store = await Store.open(where["url"], schema=where["schema"])
    try:
        async with store._read() as conn:
            versions = (await conn.execute(text("SELECT version FROM schema_version"))).all()
            actual = await conn.run_sync(_indexes)
        assert sorted(v[0] for v in versions) == [m.version for m in MIGRATIONS]
        assert actual == _declared()
        assert [r.id for r in await store.history("U1", limit=2)] == ["r-newest", "r-second"]
        found = await store.followups_for(["r-newest"])
        assert [f.nexthink_request_uuid for f in found] == ["nx-newest"]
    finally:
        await store.close()


async def test_sqlite_history_and_followups_read_through_their_indexes(tmp_path: Path) -> None:
    """On SQLite (which the bot never ANALYZEs) the plans of ``history`` and ``followups_for``
    use the new indexes: no scan of the follow-ups, no sort of a user's whole history."""
    store = await Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    seen: list[tuple[str, Any]] = []

    @event.listens_for(store._live().sync_engine, "before_cursor_execute")
    def _record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    try:
        record = await store.create_request(kind="run", user_id="U1", now=T0)
        seen.clear()
        assert [r.id for r in await store.history("U1")] == [record.id]
        assert await store.followups_for([record.id]) == []
        plans = []
        async with store._read() as conn:
            for statement, parameters in seen:
                rows = await conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, tuple(parameters)
                )
                plans.append(" | ".join(str(r[-1]) for r in rows))
    finally:
        await store.close()
    history_plan, followups_plan = plans
    assert "ix_requests_user_created_id" in history_plan
    assert "TEMP B-TREE" not in history_plan
    assert "ix_followups_request" in followups_plan
    assert "SCAN followups" not in followups_plan
