"""A request's change and its audit event in one transaction (``AuditTrail.for_request``).

``create_request`` / ``update_request`` take the event (``audit=``) and write its row in the
transaction of the change; the ``event="audit"`` line is logged once the write returned. A change
that is not written (no such request) writes no event either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from bot.audit import AuditTrail
from bot.store import AuditRecord, RecordNotFound, Store
from tests.support.secret_scan import captured_lines
from tests.test_audit import store

__all__ = ["store"]  # the fixture: SQLite and PostgreSQL


def _audit_lines(request_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in captured_lines() if '"audit"' in line]
    return [x for x in lines if x.get("event") == "audit" and x.get("request_id") == request_id]


async def _rows(store: Store) -> list[AuditRecord]:
    return [r async for r in store.iter_audit()]


class _Statements:
    """The statements the database driver is given (BEGIN and COMMIT included), on every
    connection the store opens from now on (the pool is emptied first): SQLite's trace callback,
    asyncpg's query logger."""

    def __init__(self, store: Store) -> None:
        self.engine = store._live()
        self.sent: list[str] = []

    def _seen(self, statement: str) -> None:
        self.sent.append(statement.split(None, 1)[0].rstrip(";").upper())

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        async def watch(driver: Any) -> None:
            if self.engine.dialect.name == "sqlite":
                await driver.set_trace_callback(self._seen)
            else:
                driver.add_query_logger(lambda logged: self._seen(logged.query))

        dbapi_connection.run_async(watch)

    async def __aenter__(self) -> _Statements:
        await self.engine.dispose()
        event.listen(self.engine.sync_engine, "connect", self._connected)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        event.remove(self.engine.sync_engine, "connect", self._connected)


@pytest.fixture
async def statements(store: Store) -> AsyncIterator[_Statements]:
    async with _Statements(store) as seen:
        yield seen


async def test_a_new_request_and_its_event_are_one_commit(
    store: Store, statements: _Statements
) -> None:
    trail = AuditTrail(store)
    audit = trail.for_request("run_requested", result="pending")
    record = await store.create_request(
        kind="run", user_id="U1", user_upn="u1@example.com", workflow_id="w", audit=audit
    )
    assert statements.sent.count("COMMIT") == 1
    assert statements.sent.count("INSERT") == 2  # the request, its event
    assert _audit_lines(record.id) == []  # logged once the write returned, by the caller
    written = audit.logged()
    assert written is not None
    [row] = await _rows(store)
    assert (row.event, row.request_id, row.actor, row.actor_upn) == (
        "run_requested",
        record.id,
        "U1",
        "u1@example.com",
    )
    assert (row.workflow, row.result) == ("w", "pending")
    [line] = _audit_lines(record.id)
    assert line["audit_event"] == "run_requested"


async def test_a_change_and_its_event_are_one_commit_with_the_record_as_changed(
    store: Store, statements: _Statements
) -> None:
    trail = AuditTrail(store)
    record = await store.create_request(kind="run", user_id="U1", workflow_id="w")
    statements.sent.clear()
    audit = trail.for_request("executed", result="sent")
    changed = await store.update_request(
        record.id,
        state="sent",
        nexthink_request_uuids=["R1", "R2"],
        executions_uuids=["E1"],
        audit=audit,
    )
    assert statements.sent.count("COMMIT") == 1
    audit.logged()
    [row] = await _rows(store)
    assert row.event == "executed"
    assert row.request_uuid == "R1,R2"  # from the record as changed
    assert row.execution_uuids == ("E1",)
    assert changed.state == "sent"
    found = await store.request_for_execution("e1")
    assert found is not None
    assert found.id == record.id


async def test_a_change_that_finds_no_request_writes_no_event(store: Store) -> None:
    trail = AuditTrail(store)
    audit = trail.for_request("executed", result="sent")
    with pytest.raises(RecordNotFound):
        await store.update_request("no-such-request", state="sent", audit=audit)
    assert audit.logged() is None
    assert await _rows(store) == []


async def test_an_unknown_event_is_refused_before_anything_is_written(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown audit event"):
        AuditTrail(store).for_request("made_up")  # type: ignore[arg-type]
