"""The store against real databases: a SQLite file per test and the PostgreSQL server named by
``TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``), each PostgreSQL test
in a schema of its own that is dropped afterwards. PostgreSQL cases fail, never skip, when the
server is unreachable: CI has one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from bot.store import (
    LATEST_VERSION,
    ClaimRefusal,
    RecordNotFound,
    Store,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    WaitOption,
    WaitRecord,
    migrations,
)
from bot.store.engine import driver_url
from bot.store.migrations import MIGRATIONS
from bot.store.schema import metadata
from tests.support.relay import Relay

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
OPTIONS = (
    WaitOption("Approve", "primary", {"decision": "approved"}),
    WaitOption("Deny", "danger", {"decision": "denied"}),
)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Backend:
    name: str
    url: str
    schema: str | None = None

    async def open(self) -> Store:
        return await Store.open(self.url, schema=self.schema)


@asynccontextmanager
async def _postgresql() -> AsyncIterator[Backend]:
    """A PostgreSQL backend in a fresh schema, dropped on exit."""
    try:
        admin = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        where = make_url(PG_URL).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL at {where} is unreachable ({type(exc).__name__}: {exc}); start it or set "
            "TEST_DATABASE_URL (these tests fail rather than skip, CI has PostgreSQL)"
        )
    schema = f"test_store_{uuid4().hex[:16]}"
    try:
        yield Backend("postgresql", PG_URL, schema)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'bot.db'}")
        return
    async with _postgresql() as postgresql:
        yield postgresql


@pytest.fixture
async def pg_backend() -> AsyncIterator[Backend]:
    async with _postgresql() as postgresql:
        yield postgresql


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = await backend.open()
    yield opened
    await opened.close()


@pytest.fixture
async def other(backend: Backend) -> AsyncIterator[Store]:
    """A second store on the same database: another engine, as another process would have."""
    opened = await backend.open()
    yield opened
    await opened.close()


async def _wait(store: Store, execution: str = "exec-1", **kw: Any) -> WaitRecord:
    values: dict[str, Any] = {
        "workflow_uuid": "wf-1",
        "execution_uuid": execution,
        "text": "Reinstall Office on LAPTOP-42?",
        "options": OPTIONS,
        "expires_at": T0 + HOUR,
        "channel_id": "C1",
        "now": T0,
    }
    values.update(kw)
    wait, created = await store.create_wait(**values)
    assert created
    return wait


async def _request(store: Store, user_id: str = "U_REQ", **kw: Any) -> str:
    record = await store.create_request(kind="run", user_id=user_id, workflow_id="#wf", **kw)
    return record.id


# -- opening, migrations, ping ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        ("sqlite:////tmp/abs.db", "sqlite+aiosqlite:////tmp/abs.db"),
        ("postgresql://u:pw@h:5433/db", "postgresql+asyncpg://u:pw@h:5433/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql+asyncpg://u@h/db?ssl=require"),
    ],
    ids=["sqlite-relative", "sqlite-absolute", "postgresql", "postgres", "other-driver", "sslmode"],
)
def test_driver_url_maps_to_async_drivers(url: str, expected: str) -> None:
    """DATABASE_URL forms map onto aiosqlite and asyncpg."""
    assert driver_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db", "not a url"], ids=str
)
async def test_unusable_urls_are_configuration_errors(url: str) -> None:
    """In-memory SQLite, other databases and garbage are refused with StoreConfigError."""
    with pytest.raises(StoreConfigError, match="DATABASE_URL"):
        await Store.open(url)


async def test_missing_sqlite_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A SQLite file in a directory that does not exist names the directory and creates nothing."""
    missing = tmp_path / "no" / "such"
    with pytest.raises(StoreConfigError, match=r"directory '.*no/such' .* does not exist"):
        await Store.open(f"sqlite:///{missing / 'bot.db'}")
    assert not missing.exists()


async def test_unreachable_postgresql_is_unavailable() -> None:
    """Opening a PostgreSQL nobody listens on raises StoreUnavailable naming it, password hidden."""
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1/") as caught:
        await Store.open("postgresql://bot:s3cret@127.0.0.1:1/nexthink", connect_timeout=2)
    assert "s3cret" not in str(caught.value)


async def test_open_twice_is_idempotent(backend: Backend) -> None:
    """Opening an already migrated database applies nothing again and keeps the data."""
    first = await backend.open()
    request_id = await _request(first)
    await first.close()
    second = await backend.open()
    try:
        assert await second.get_request(request_id) is not None
        async with second._read() as conn:
            rows = (await conn.execute(text("SELECT version FROM schema_version"))).all()
        assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
    finally:
        await second.close()


async def test_a_step_below_the_highest_applied_is_still_applied(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database made by a build that had steps 1-5, 8 and 12 but not 6, 7, 9-11 (main for a
    while in this round) gets the missing steps when a full build opens it, and works."""
    older = tuple(m for m in MIGRATIONS if m.version <= 5 or m.version in (8, 12))
    monkeypatch.setattr(migrations, "MIGRATIONS", older)
    first = await backend.open()
    await first.close()
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
    second = await backend.open()
    try:
        async with second._read() as conn:
            rows = (await conn.execute(text("SELECT version FROM schema_version"))).all()
        assert sorted(r[0] for r in rows) == [m.version for m in MIGRATIONS]
        assert await second.get_request(await _request(second)) is not None
    finally:
        await second.close()


async def test_concurrent_opens_migrate_once(backend: Backend) -> None:
    """Five stores opening a fresh database at once all succeed and each step is applied once."""
    stores = await asyncio.gather(*(backend.open() for _ in range(5)))
    try:
        async with stores[0]._read() as conn:
            rows = (await conn.execute(text("SELECT version FROM schema_version"))).all()
        assert sorted(r[0] for r in rows) == [m.version for m in MIGRATIONS]
        for opened in stores:
            await opened.ping()
    finally:
        for opened in stores:
            await opened.close()


async def test_migrated_schema_matches_schema_module(store: Store) -> None:
    """The tables the migrations build have exactly the columns the queries are written for."""

    def columns(sync: Any) -> dict[str, set[str]]:
        found = inspect(sync)
        return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}

    async with store._read() as conn:
        actual = await conn.run_sync(columns)
    expected = {name: {c.name for c in table.columns} for name, table in metadata.tables.items()}
    assert actual == expected


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    """Every SQLite connection runs in WAL mode with a busy timeout and foreign keys enforced."""
    opened = await Store.open(f"sqlite:///{tmp_path / 'bot.db'}", busy_timeout=7)
    try:
        async with opened._read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 7000
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await opened.close()


async def test_ping_answers_while_open(store: Store) -> None:
    """ping returns quietly on a reachable, migrated database."""
    await store.ping()
    assert MIGRATIONS[-1].version == LATEST_VERSION


async def test_ping_after_close_is_unavailable(store: Store) -> None:
    """A closed store answers StoreUnavailable to ping and to every operation."""
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.ping()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.history("U1")


async def test_ping_on_a_database_missing_its_schema_is_unavailable(store: Store) -> None:
    """A database whose schema_version table disappeared is reported, not taken as ready."""
    async with store._write() as conn:
        await conn.execute(text("DELETE FROM schema_version"))
    with pytest.raises(StoreUnavailable, match="schema version None"):
        await store.ping()


def _overwrite_with_garbage(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)


async def test_ping_on_a_corrupted_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    """When the SQLite file stops being a database, ping raises StoreUnavailable."""
    path = tmp_path / "bot.db"
    opened = await Store.open(f"sqlite:///{path}")
    try:
        assert opened._engine is not None
        await opened._engine.dispose()  # drop pooled handles, as after a restart of the disk
        _overwrite_with_garbage(path)
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await opened.ping()
    finally:
        await opened.close()


@pytest.mark.postgres
async def test_ping_when_postgresql_becomes_unreachable(pg_backend: Backend) -> None:
    """Once the network path to PostgreSQL is cut, ping raises StoreUnavailable within its timeout."""
    real = make_url(PG_URL)
    proxy = Relay(real.host or "127.0.0.1", real.port or 5432)
    port = await proxy.start()
    url = real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    opened = await Store.open(url, schema=pg_backend.schema, connect_timeout=2)
    try:
        await opened.ping()
        await proxy.cut()
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
            await opened.ping()
    finally:
        await opened.close()


# -- requests: the audit ---------------------------------------------------------------------


async def test_request_round_trip(store: Store) -> None:
    """A request comes back with its JSON fields decoded, aware UTC datetimes and updates applied."""
    created = await store.create_request(
        kind="run",
        team_id="T1",
        channel_id="C1",
        user_id="U1",
        user_upn="alice@example.com",
        workflow_id="#restart_teams",
        targets=[{"kind": "user", "upn": "alice@example.com"}],
        params={"mode": "soft", "note": "disk full ✓"},
        response_url="https://hooks.slack.com/x",
        now=T0,
    )
    assert created.state == "pending"
    assert created.created_at == T0
    assert created.created_at.tzinfo is not None
    assert created.targets == ({"kind": "user", "upn": "alice@example.com"},)
    later = T0 + timedelta(seconds=3)
    updated = await store.update_request(
        created.id,
        state="sent",
        nexthink_request_uuids=["r-1", "r-2"],
        executions_uuids=("e-1",),
        message_channel="C1",
        message_ts="1700000000.000100",
        now=later,
    )
    fetched = await store.get_request(created.id)
    assert fetched == updated
    assert fetched.state == "sent"
    assert fetched.nexthink_request_uuids == ("r-1", "r-2")
    assert fetched.executions_uuids == ("e-1",)
    assert fetched.params == {"mode": "soft", "note": "disk full ✓"}
    assert (fetched.created_at, fetched.updated_at) == (T0, later)
    assert fetched.updated_at.utcoffset() == timedelta(0)


async def test_request_update_errors(store: Store) -> None:
    """Unknown ids, unknown fields and unknown states are refused."""
    request_id = await _request(store)
    with pytest.raises(RecordNotFound):
        await store.update_request("nope", state="sent")
    with pytest.raises(TypeError, match="kind"):
        await store.update_request(request_id, kind="resume")
    with pytest.raises(ValueError, match="state"):
        await store.update_request(request_id, state="done")
    assert await store.get_request("nope") is None


async def test_history_is_per_user_newest_first_and_limited(store: Store) -> None:
    """history lists one user's requests, newest first, at most ``limit``."""
    mine = [
        (await store.create_request(kind="run", user_id="U1", now=T0 + timedelta(minutes=i))).id
        for i in range(12)
    ]
    await store.create_request(kind="run", user_id="U2", now=T0 + HOUR)
    recent = await store.history("U1")
    assert [r.id for r in recent] == mine[::-1][:10]
    assert [r.id for r in await store.history("U1", limit=3)] == mine[::-1][:3]
    assert await store.history("U3") == []


async def test_datetimes_must_be_aware_and_are_compared_in_utc(store: Store) -> None:
    """Naive datetimes are refused; other offsets are stored and compared as the same instant."""
    with pytest.raises(ValueError, match="naive"):
        await store.create_request(kind="run", user_id="U1", now=datetime(2030, 1, 1))
    paris = timezone(timedelta(hours=2))
    wait = await _wait(store, expires_at=datetime(2030, 1, 1, 15, 0, tzinfo=paris))  # 13:00 UTC
    assert wait.expires_at == T0 + HOUR
    assert wait.expires_at.tzinfo == UTC
    early = await store.claim_wait(wait.id, "U1", None, 0, now=T0 + timedelta(minutes=59))
    assert isinstance(early, WaitRecord)


# -- waits -----------------------------------------------------------------------------------


async def test_repeated_webhook_returns_the_existing_wait(store: Store) -> None:
    """The same execution posted twice yields one wait; once decided, a new pause gets a new one."""
    first = await _wait(store)
    again, created = await store.create_wait(
        workflow_uuid="wf-1",
        execution_uuid="exec-1",
        text="again",
        options=OPTIONS,
        expires_at=T0 + HOUR,
        channel_id="C2",
        now=T0,
    )
    assert not created
    assert again == first
    claimed = await store.claim_wait(first.id, "U1", None, 0, now=T0)
    assert isinstance(claimed, WaitRecord)
    assert claimed.claim_token
    still, created = await store.create_wait(
        workflow_uuid="wf-1",
        execution_uuid="exec-1",
        text="x",
        options=OPTIONS,
        expires_at=T0 + HOUR,
        channel_id="C1",
        now=T0,
    )
    assert not created
    assert still.id == first.id
    await store.finish_wait(first.id, claimed.claim_token, "decided", "200 OK", now=T0)
    second = await _wait(store, text="a second Wait step of the same execution")
    assert second.id != first.id


async def test_concurrent_duplicate_webhooks_make_one_wait(store: Store, other: Store) -> None:
    """Ten simultaneous posts of one execution through two stores create exactly one wait."""
    results = await asyncio.gather(
        *(
            s.create_wait(
                workflow_uuid="wf-1",
                execution_uuid="exec-9",
                text="t",
                options=OPTIONS,
                expires_at=T0 + HOUR,
                channel_id="C1",
                now=T0,
            )
            for s in (store, other) * 5
        )
    )
    assert sum(created for _, created in results) == 1
    assert len({wait.id for wait, _ in results}) == 1


async def test_create_wait_needs_a_place_and_options(store: Store) -> None:
    """A wait without channel or user, or without options, is refused."""
    with pytest.raises(ValueError, match="channel"):
        await _wait(store, channel_id=None)
    with pytest.raises(ValueError, match="option"):
        await _wait(store, options=())
    dm = await _wait(store, channel_id=None, dm_user_upn="bob@example.com")
    assert dm.dm_user_upn == "bob@example.com"
    assert dm.options == OPTIONS


Claim = Coroutine[Any, Any, WaitRecord | ClaimRefusal]


async def _race(claims: list[Claim]) -> tuple[WaitRecord, list[ClaimRefusal]]:
    results = await asyncio.gather(*claims)
    winners = [r for r in results if isinstance(r, WaitRecord)]
    losers = [r for r in results if isinstance(r, ClaimRefusal)]
    assert len(winners) == 1, results
    return winners[0], losers


async def test_twenty_concurrent_claims_have_one_winner(store: Store) -> None:
    """Twenty simultaneous clicks claim the wait once; the others are told who has it."""
    wait = await _wait(store)
    winner, losers = await _race(
        [store.claim_wait(wait.id, f"U{i}", f"u{i}@example.com", i % 2, now=T0) for i in range(20)]
    )
    assert winner.state == "claimed"
    assert winner.claim_token
    assert len(losers) == 19
    for refusal in losers:
        assert refusal.reason == "in_progress"
        assert refusal.wait is not None
        assert refusal.wait.decided_by == winner.decided_by
        assert refusal.wait.claimed_at == T0


async def test_claims_from_two_stores_have_one_winner(store: Store, other: Store) -> None:
    """Claims racing through two engines (two processes) still have exactly one winner."""
    wait = await _wait(store)
    winner, losers = await _race(
        [s.claim_wait(wait.id, f"U{i}", None, 0, now=T0) for i, s in enumerate((store, other) * 10)]
    )
    assert {r.reason for r in losers} == {"in_progress"}
    assert (await other.get_wait(wait.id)) == winner


async def test_claim_refusals_say_why(store: Store) -> None:
    """Unknown, expired, decided, failed and own-request claims are refused with the reason."""
    assert await store.claim_wait("nope", "U1", None, 0, now=T0) == ClaimRefusal("not_found", None)
    expired = await _wait(store, "exec-expired")
    refusal = await store.claim_wait(expired.id, "U1", None, 0, now=T0 + HOUR)
    assert isinstance(refusal, ClaimRefusal)
    assert refusal.reason == "expired"
    own = await _wait(store, "exec-own", requester_upn="Alice@Example.com")
    refusal = await store.claim_wait(own.id, "U1", "alice@example.com", 0, now=T0)
    assert isinstance(refusal, ClaimRefusal)
    assert refusal.reason == "own_request"
    with pytest.raises(ValueError, match="option 2"):
        await store.claim_wait(own.id, "U2", "bob@example.com", 2, now=T0)

    for state in ("decided", "failed"):
        wait = await _wait(store, f"exec-{state}")
        claimed = await store.claim_wait(wait.id, "U1", "bob@example.com", 1, now=T0)
        assert isinstance(claimed, WaitRecord)
        assert claimed.claim_token
        done = await store.finish_wait(wait.id, claimed.claim_token, state, "answer", now=T0)
        assert done is not None
        assert done.state == state
        assert done.decided_at == T0
        assert done.decision_label == "Deny"
        assert done.outcome == "answer"
        refusal = await store.claim_wait(wait.id, "U2", None, 0, now=T0 + timedelta(seconds=1))
        assert isinstance(refusal, ClaimRefusal)
        assert refusal.reason == state
        assert refusal.wait is not None
        assert refusal.wait.decided_by == "U1"


async def test_finish_needs_the_claim_token(store: Store) -> None:
    """finish_wait and release_wait do nothing without the winner's claim token."""
    wait = await _wait(store)
    claimed = await store.claim_wait(wait.id, "U1", None, 0, now=T0)
    assert isinstance(claimed, WaitRecord)
    assert await store.finish_wait(wait.id, "not-the-token", "decided", "x") is None
    assert await store.release_wait(wait.id, "not-the-token", "x") is None
    assert (await store.get_wait(wait.id)) == claimed


async def test_release_lets_someone_claim_again_and_keeps_a_note(store: Store) -> None:
    """A released wait is pending again, claimable by another person, and remembers the attempt."""
    wait = await _wait(store)
    claimed = await store.claim_wait(wait.id, "U1", "a@example.com", 0, now=T0)
    assert isinstance(claimed, WaitRecord)
    assert claimed.claim_token
    released = await store.release_wait(
        wait.id, claimed.claim_token, "U1: outcome unknown (timeout); it may have resumed"
    )
    assert released is not None
    assert released.state == "pending"
    assert released.claim_token is None
    assert released.decided_by is None
    again = await store.claim_wait(wait.id, "U2", "b@example.com", 1, now=T0)
    assert isinstance(again, WaitRecord)
    assert again.decided_by == "U2"
    assert again.claim_token
    assert again.claim_token != claimed.claim_token
    done = await store.finish_wait(wait.id, again.claim_token, "decided", "204 resumed")
    assert done is not None
    assert done.outcome == "U1: outcome unknown (timeout); it may have resumed\n204 resumed"


async def test_expiry_sweep_marks_and_returns_each_wait_once(store: Store, other: Store) -> None:
    """expire_waits returns waits that just expired, once across concurrent sweepers."""
    soon = await _wait(store, "exec-a", expires_at=T0 + timedelta(minutes=5))
    later = await _wait(store, "exec-b", expires_at=T0 + timedelta(minutes=30))
    claimed_wait = await _wait(store, "exec-c", expires_at=T0 + timedelta(minutes=5))
    assert isinstance(await store.claim_wait(claimed_wait.id, "U1", None, 0, now=T0), WaitRecord)
    assert await store.expire_waits(T0) == []
    swept = await asyncio.gather(
        *(s.expire_waits(T0 + timedelta(minutes=10)) for s in (store, other))
    )
    ids = [w.id for batch in swept for w in batch]
    assert ids == [soon.id]
    assert swept[0] + swept[1]
    assert (swept[0] + swept[1])[0].state == "expired"
    assert [w.id for w in await store.pending_waits(T0 + timedelta(minutes=10))] == [later.id]
    refusal = await store.claim_wait(soon.id, "U1", None, 0, now=T0 + timedelta(minutes=10))
    assert isinstance(refusal, ClaimRefusal)
    assert refusal.reason == "expired"


async def test_pending_waits_and_message_location(store: Store) -> None:
    """pending_waits lists unexpired pending waits oldest first; set_wait_message is kept."""
    first = await _wait(store, "exec-1", now=T0)
    second = await _wait(store, "exec-2", now=T0 + timedelta(seconds=1))
    await _wait(store, "exec-3", now=T0, expires_at=T0 + timedelta(seconds=30))
    placed = await store.set_wait_message(second.id, "C9", "1700000000.000200")
    assert placed is not None
    assert (placed.message_channel, placed.message_ts) == (
        "C9",
        "1700000000.000200",
    )
    with pytest.raises(RecordNotFound):
        await store.set_wait_message("nope", "C9", "1")
    pending = await store.pending_waits(T0 + timedelta(minutes=1))
    assert [w.id for w in pending] == [first.id, second.id]


# -- approvals -------------------------------------------------------------------------------


async def _approval(store: Store, count: int = 2, **kw: Any) -> tuple[str, str]:
    request_id = await _request(store, "U_REQ", now=T0)
    values: dict[str, Any] = {
        "count": count,
        "expires_at": T0 + HOUR,
        "channel_id": "C_APP",
        "now": T0,
    }
    values.update(kw)
    approval = await store.create_approval(request_id=request_id, approvers=["@it-leads"], **values)
    assert approval.state == "pending"
    assert approval.requester_id == "U_REQ"
    return approval.id, request_id


async def test_approval_needs_distinct_approvers_and_never_the_requester(store: Store) -> None:
    """Count 2 takes two different people; repeats and the requester are refused."""
    approval_id, request_id = await _approval(store, count=2)
    own = await store.vote_approval(approval_id, "U_REQ", "req@example.com", now=T0)
    assert (own.accepted, own.reason) == (False, "own_request")
    first = await store.vote_approval(approval_id, "U1", "a@example.com", now=T0)
    assert (first.accepted, first.reached, first.votes) == (True, False, 1)
    twice = await store.vote_approval(approval_id, "U1", "a@example.com", now=T0)
    assert (twice.accepted, twice.reason, twice.votes) == (False, "already_voted", 1)
    second = await store.vote_approval(approval_id, "U2", "b@example.com", now=T0)
    assert (second.accepted, second.reached, second.votes) == (True, True, 2)
    assert second.approval is not None
    assert second.approval.state == "approved"
    assert [v.user_id for v in second.approval.votes] == ["U1", "U2"]
    late = await store.vote_approval(approval_id, "U3", None, now=T0)
    assert (late.accepted, late.reason, late.reached) == (False, "not_pending", False)
    request = await store.get_request(request_id)
    assert request is not None
    assert request.approved_by == ("U1", "U2")
    assert (await store.vote_approval("nope", "U1", None, now=T0)).reason == "not_found"


async def test_concurrent_votes_reach_the_count_once(store: Store, other: Store) -> None:
    """Ten people voting at once through two stores: two votes count and exactly one reaches."""
    approval_id, _ = await _approval(store, count=2)
    results = await asyncio.gather(
        *(
            (store, other)[i % 2].vote_approval(approval_id, f"U{i}", None, now=T0)
            for i in range(10)
        )
    )
    assert sum(r.reached for r in results) == 1
    assert sum(r.accepted for r in results) == 2
    assert {r.reason for r in results if not r.accepted} == {"not_pending"}
    final = await store.get_approval(approval_id)
    assert final is not None
    assert final.state == "approved"
    assert len(final.votes) == 2


async def test_one_person_voting_many_times_at_once_counts_once(store: Store, other: Store) -> None:
    """A burst of double clicks by one person adds one vote."""
    approval_id, _ = await _approval(store, count=2)
    results = await asyncio.gather(
        *((store, other)[i % 2].vote_approval(approval_id, "U1", None, now=T0) for i in range(10))
    )
    assert sum(r.accepted for r in results) == 1
    assert {r.reason for r in results if not r.accepted} == {"already_voted"}


async def test_deny_only_while_pending(store: Store) -> None:
    """Deny works once on a pending approval; after that, or after approval or expiry, it is refused."""
    approval_id, _ = await _approval(store, count=1)
    denied = await store.deny_approval(approval_id, "U1", "not during business hours", now=T0)
    assert denied.accepted
    assert denied.approval is not None
    assert (denied.approval.state, denied.approval.denied_by) == ("denied", "U1")
    assert denied.approval.deny_reason == "not during business hours"
    again = await store.deny_approval(approval_id, "U2", None, now=T0)
    assert (again.accepted, again.reason) == (False, "not_pending")
    assert (await store.vote_approval(approval_id, "U2", None, now=T0)).reason == "not_pending"

    approved_id, _ = await _approval(store, count=1)
    assert (await store.vote_approval(approved_id, "U1", None, now=T0)).reached
    assert (await store.deny_approval(approved_id, "U2", None, now=T0)).reason == "not_pending"

    expired_id, _ = await _approval(store, count=1)
    assert (await store.deny_approval(expired_id, "U2", None, now=T0 + HOUR)).reason == "expired"
    assert (await store.deny_approval("nope", "U2", None, now=T0)).reason == "not_found"


async def test_deny_and_approve_racing_settle_one_way(store: Store, other: Store) -> None:
    """A deny racing five approvals (count 1) ends either denied or approved, never both."""
    approval_id, _ = await _approval(store, count=1)
    votes = [
        (store, other)[i % 2].vote_approval(approval_id, f"U{i}", None, now=T0) for i in range(5)
    ]
    racing_deny = asyncio.create_task(other.deny_approval(approval_id, "U9", "no", now=T0))
    results = await asyncio.gather(*votes)
    denied = await racing_deny
    reached = sum(r.reached for r in results)
    assert reached + denied.accepted == 1
    final = await store.get_approval(approval_id)
    assert final is not None
    assert final.state == ("denied" if denied.accepted else "approved")


async def test_approval_expiry_and_marks(store: Store, other: Store) -> None:
    """Expiry sweeps pending approvals once; mark_approval with expected claims a run once."""
    stale_id, _ = await _approval(store, count=2, expires_at=T0 + timedelta(minutes=5))
    fresh_id, _ = await _approval(store, count=1)
    assert await store.expire_approvals(T0) == []
    swept = await asyncio.gather(
        *(s.expire_approvals(T0 + timedelta(minutes=6)) for s in (store, other))
    )
    assert [a.id for batch in swept for a in batch] == [stale_id]
    assert (await store.vote_approval(stale_id, "U1", None, now=T0)).reason == "expired"
    pending = await store.pending_approvals(T0 + timedelta(minutes=6))
    assert [a.id for a in pending] == [fresh_id]

    assert (await store.vote_approval(fresh_id, "U1", None, now=T0)).reached
    claims = await asyncio.gather(
        *(
            (store, other)[i % 2].mark_approval(fresh_id, "executing", expected="approved")
            for i in range(6)
        )
    )
    assert sum(c is not None for c in claims) == 1
    done = await store.mark_approval(fresh_id, "executed")
    assert done is not None
    assert done.state == "executed"
    with pytest.raises(RecordNotFound):
        await store.mark_approval("nope", "executed")
    with pytest.raises(ValueError, match="state"):
        await store.mark_approval(fresh_id, "finished")  # type: ignore[arg-type]
    placed = await store.set_approval_message(fresh_id, "C_APP", "1700000000.000300")
    assert (placed.message_channel, placed.message_ts) == ("C_APP", "1700000000.000300")


async def test_approval_must_belong_to_a_recorded_request(store: Store) -> None:
    """The foreign key to requests holds on both backends (SQLite enforces foreign keys)."""
    with pytest.raises(StoreError, match="refused"):
        await store.create_approval(request_id="nope", count=1, expires_at=T0 + HOUR)
    with pytest.raises(ValueError, match="count"):
        await store.create_approval(request_id="nope", count=0, expires_at=T0 + HOUR)


# -- follow-ups ------------------------------------------------------------------------------


async def test_followups_are_leased_rescheduled_and_finished(store: Store) -> None:
    """Due follow-ups are leased to one poller, rescheduling counts attempts, finishing ends them."""
    request_id = await _request(store)
    first = await store.add_followup(
        request_id=request_id,
        nexthink_request_uuid="r-1",
        next_poll_at=T0,
        deadline=T0 + HOUR,
        now=T0,
    )
    await store.add_followup(
        request_id=request_id,
        nexthink_request_uuid="r-2",
        next_poll_at=T0 + timedelta(minutes=5),
        deadline=T0 + HOUR,
        now=T0,
    )
    due = await store.due_followups(T0, lease=timedelta(seconds=30))
    assert [f.id for f in due] == [first.id]
    assert due[0].next_poll_at == T0 + timedelta(seconds=30)
    assert await store.due_followups(T0 + timedelta(seconds=10)) == []
    again = await store.due_followups(T0 + timedelta(seconds=31), limit=10)
    assert [f.id for f in again] == [first.id]  # the lease ran out: the poller must have died
    moved = await store.reschedule_followup(
        first.id, T0 + timedelta(minutes=2), last_status="in progress"
    )
    assert (moved.attempts, moved.last_status) == (1, "in progress")
    finished = await store.finish_followup(first.id, last_status="success")
    assert finished.done
    assert finished.last_status == "success"
    assert finished.attempts == 1
    later = await store.due_followups(T0 + timedelta(minutes=10))
    assert [f.nexthink_request_uuid for f in later] == ["r-2"]
    with pytest.raises(RecordNotFound):
        await store.finish_followup("nope")


async def test_concurrent_pollers_share_due_followups(store: Store, other: Store) -> None:
    """Two replicas polling at once never get the same follow-up."""
    request_id = await _request(store)
    for i in range(20):
        await store.add_followup(
            request_id=request_id,
            nexthink_request_uuid=f"r-{i}",
            next_poll_at=T0,
            deadline=T0 + HOUR,
            now=T0,
        )
    batches = await asyncio.gather(
        *((store, other)[i % 2].due_followups(T0, limit=7) for i in range(4))
    )
    ids = [f.id for batch in batches for f in batch]
    assert len(ids) == len(set(ids)) == 20


async def test_stale_claims_go_back_to_pending_with_a_note(store: Store) -> None:
    """A claim older than the bound (its process died mid-decision) returns to pending, once."""
    stale = await _wait(store, "exec-stale")
    fresh = await _wait(store, "exec-fresh")
    claimed = await store.claim_wait(stale.id, "U_A", "a@example.com", 0, now=T0)
    assert isinstance(claimed, WaitRecord)
    held = await store.claim_wait(
        fresh.id, "U_B", "b@example.com", 0, now=T0 + timedelta(minutes=9)
    )
    assert isinstance(held, WaitRecord)
    released = await store.release_stale_claims(
        timedelta(minutes=5), now=T0 + timedelta(minutes=10)
    )
    assert [w.id for w in released] == [stale.id]
    assert released[0].state == "pending"
    assert released[0].decided_by is None
    assert "may or may not have reached Nexthink" in (released[0].outcome or "")
    again = await store.release_stale_claims(timedelta(minutes=5), now=T0 + timedelta(minutes=10))
    assert again == []
    still = await store.get_wait(fresh.id)
    assert still is not None
    assert still.state == "claimed"


async def test_pending_counts_leave_out_decided_and_expired(store: Store) -> None:
    """The gauges count pending, unexpired waits and approvals only."""
    await _wait(store, "exec-1")
    decided = await _wait(store, "exec-2")
    await _wait(store, "exec-3", expires_at=T0 + timedelta(minutes=1))
    claim = await store.claim_wait(decided.id, "U_A", None, 0, now=T0)
    assert isinstance(claim, WaitRecord)
    assert await store.count_pending_waits(now=T0 + timedelta(minutes=2)) == 1
    request_id = await _request(store)
    await store.create_approval(request_id=request_id, count=1, expires_at=T0 + HOUR, now=T0)
    assert await store.count_pending_approvals(now=T0) == 1
    assert await store.count_pending_approvals(now=T0 + 2 * HOUR) == 0


async def test_the_first_message_recorded_for_a_wait_stays(store: Store, other: Store) -> None:
    """Two replicas that both posted a wait's question: the first recorded message is kept for both."""
    wait = await _wait(store, "exec-twice")
    first, second = await asyncio.gather(
        store.set_wait_message(wait.id, "C1", "1700000000.000100"),
        other.set_wait_message(wait.id, "C1", "1700000000.000200"),
    )
    assert first.message_ts == second.message_ts
    assert first.message_ts in {"1700000000.000100", "1700000000.000200"}
    kept = await store.get_wait(wait.id)
    assert kept is not None
    assert kept.message_ts == first.message_ts
