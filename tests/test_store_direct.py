"""The prepared statements (``bot.store.direct``) write and read what SQLAlchemy writes and reads,
roll back whole, and turn the driver's errors into the store's, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, text

from bot.audit import AuditTrail
from bot.store import StoreError, StoreUnavailable
from bot.store.direct import SQLAlchemyExecutor
from bot.store.requests import _INSERT, _update
from bot.store.schema import audit_events, requests
from bot.store.store import Store
from tests.test_store import PG_URL, _asyncpg_dsn, backend, store

__all__ = ["backend", "store"]  # the fixtures: SQLite and PostgreSQL

AT = datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=timezone(timedelta(hours=2)))


def _values(request_id: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "kind": "run",
        "created_at": AT,
        "updated_at": AT + timedelta(microseconds=1),
        "team_id": "T1",
        "enterprise_id": None,
        "channel_id": "C1",
        "user_id": "U1",
        "user_upn": "zoë@example.com",
        "workflow_id": "#restart_teams",
        "targets": [{"kind": "device", "name": "LAPTOP-ÅÄÖ", "nested": {"n": [1, None, "x"]}}],
        "params": {"reason": 'quotes " and \\ and 日本'},
        "state": "pending",
        "nexthink_request_uuids": [],
        "executions_uuids": ["E1"],
        "error": None,
        "approved_by": [],
        "response_url": None,
        "message_channel": None,
        "message_ts": "1700000000.000100",
        "ticket": "CHG0001",
    }


async def _raw_row(store: Store, request_id: str) -> tuple[Any, ...]:
    """The row as the database keeps it (no type processing): text and timestamps as stored."""
    async with store._live().connect() as conn:
        sql = "SELECT * FROM requests WHERE id = ?"
        if conn.dialect.name != "sqlite":
            sql = "SELECT * FROM requests WHERE id = $1"
        row = (await conn.exec_driver_sql(sql, (request_id,))).one()
    return tuple(row)


async def test_a_prepared_insert_writes_the_row_sqlalchemy_writes(store: Store) -> None:
    async with store._prepared() as tx:
        await tx.execute(_INSERT, _values("direct"))
    async with store._live().begin() as conn:
        await conn.execute(requests.insert(), _values("sqlalchemy"))
    direct, through = await _raw_row(store, "direct"), await _raw_row(store, "sqlalchemy")
    assert direct[1:] == through[1:]
    assert direct[0] == "direct"


async def test_a_prepared_update_returns_what_sqlalchemy_reads(store: Store) -> None:
    async with store._prepared() as tx:
        await tx.execute(_INSERT, _values("r1"))
    statement = _update(("error", "state", "updated_at"))
    bound = {"error_": "ünïcode", "state_": "sent", "updated_at_": AT, "request_id_": "r1"}
    async with store._prepared() as tx:
        returned = await tx.returning(statement, bound)
    async with store._live().connect() as conn:
        read = (await conn.execute(select(requests).where(requests.c.id == "r1"))).mappings().one()
    assert returned == dict(read)
    assert returned is not None
    assert returned["updated_at"] == AT
    assert returned["updated_at"].tzinfo == UTC
    assert returned["targets"] == _values("r1")["targets"]
    async with store._prepared(through_sqlalchemy=True) as tx:
        assert isinstance(tx, SQLAlchemyExecutor)
        assert await tx.returning(statement, bound) == returned
    async with store._prepared() as tx:
        assert await tx.returning(statement, {**bound, "request_id_": "none"}) is None


async def _count(store: Store, table: Any) -> int:
    async with store._live().connect() as conn:
        return len((await conn.execute(select(table))).all())


async def test_a_refused_statement_rolls_back_the_whole_transaction(store: Store) -> None:
    async with store._prepared() as tx:
        await tx.execute(_INSERT, _values("taken"))

    async def first_then_taken() -> None:
        async with store._prepared() as tx:
            await tx.execute(_INSERT, _values("first"))
            await tx.execute(_INSERT, _values("taken"))  # the same key again

    with pytest.raises(StoreError) as raised:
        await first_then_taken()
    assert not isinstance(raised.value, StoreUnavailable)  # refused, not unreachable
    assert "refused" in str(raised.value)
    assert await _count(store, requests) == 1  # "first" went with it
    # the connection is usable afterwards
    record = await store.create_request(kind="run", user_id="U2")
    assert (await store.get_request(record.id)) is not None


async def test_an_error_of_the_caller_after_a_row_was_read_rolls_back(store: Store) -> None:
    async with store._prepared() as tx:
        await tx.execute(_INSERT, _values("r1"))

    async def read_then_fail() -> None:
        async with store._prepared() as tx:
            await tx.execute(_INSERT, _values("r2"))
            assert await tx.returning(_update(("state",)), {"state_": "x", "request_id_": "r1"})
            raise LookupError("the caller changed its mind")

    with pytest.raises(LookupError):
        await read_then_fail()
    assert await _count(store, requests) == 1
    assert (await store.get_request("r1")).state == "pending"  # type: ignore[union-attr]
    assert await _count(store, audit_events) == 0


async def test_sqlite_locked_by_another_process_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = await Store.open(f"sqlite:///{path}", busy_timeout=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.create_request(kind="run", user_id="U1")
        holder.execute("ROLLBACK")
        record = await store.create_request(kind="run", user_id="U1")
        assert (await store.get_request(record.id)) is not None
    finally:
        holder.close()
        await store.close()


@pytest.mark.postgres
async def test_postgresql_connection_lost_mid_transaction_is_unavailable_and_replaced() -> None:
    store = await Store.open(PG_URL, schema="test_direct_lost", pool_size=1, max_overflow=0)
    admin = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=5)
    try:
        async with store._prepared() as tx:  # the pool's one connection, warmed
            await tx.execute(_INSERT, _values("before"))

        async def lose_the_connection() -> None:
            async with store._prepared() as tx:
                await tx.execute(_INSERT, _values("lost"))
                pid = tx._driver.get_server_pid()  # type: ignore[attr-defined]
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
                await tx.execute(_INSERT, _values("after"))

        with pytest.raises(StoreUnavailable):
            await lose_the_connection()
        assert await _count(store, requests) == 1  # "lost" was never committed
        record = await store.create_request(kind="run", user_id="U1")  # a new connection
        assert (await store.get_request(record.id)) is not None
    finally:
        await store.close()
        await admin.execute('DROP SCHEMA IF EXISTS "test_direct_lost" CASCADE')
        await admin.close()


async def test_sqlalchemy_sees_no_transaction_left_open(store: Store) -> None:
    """A prepared transaction ends with the pooled connection as SQLAlchemy expects it."""
    for _ in range(3):
        record = await store.create_request(kind="run", user_id="U1")
        await store.update_request(record.id, state="sent", executions_uuids=[record.id])
    async with store._live().begin() as conn:  # SQLAlchemy's own BEGIN on the same pool
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert await _count(store, requests) == 3


async def test_cancelled_writes_leave_whole_records_and_clean_connections(store: Store) -> None:
    """Writes cancelled at every point (before, while and after their call to the database):
    each request is there with its event or not at all, and the pool's connections carry no
    transaction into the next write."""
    trail = AuditTrail(store)
    for i in range(60):
        audit = trail.for_request("run_requested", result="pending")
        task = asyncio.create_task(store.create_request(kind="run", user_id=f"U{i}", audit=audit))
        for _ in range(i % 6):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for i in range(10):  # more writes than the pool has connections: each one is reused
        await store.create_request(kind="run", user_id=f"after{i}")
    async with store._live().connect() as conn:
        ids = set((await conn.execute(select(requests.c.id))).scalars())
        events = list((await conn.execute(select(audit_events.c.request_id))).scalars())
    assert sorted(events) == sorted(set(events))  # one event per request written
    assert set(events) <= ids
    assert len(ids) - len(events) == 10  # only the "after" ones were written without an event
