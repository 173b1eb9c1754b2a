"""The store across real processes: several bot processes opening one fresh database at the same
moment, then clicking the same button at the same moment. SQLite file and PostgreSQL (a schema of
its own, dropped afterwards; unreachable PostgreSQL fails the test rather than skipping it).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.store import Store, WaitOption
from bot.store.migrations import MIGRATIONS

pytestmark = pytest.mark.slow

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
PROCESSES = 3
CLICKS_EACH = 7

# Each child: say "ready", wait for "go", open the store (migrating), say "opened", read a wait
# id, click it CLICKS_EACH times at once, print who won or why not as JSON.
_CHILD = """
import asyncio, json, sys
from bot.store import Store, WaitRecord

async def main(url, schema, me, clicks):
    print("ready", flush=True)
    sys.stdin.readline()
    store = await Store.open(url, schema=schema or None)
    try:
        print("opened", flush=True)
        wait_id = sys.stdin.readline().strip()
        results = await asyncio.gather(
            *(store.claim_wait(wait_id, f"{me}-{i}", None, 0) for i in range(clicks))
        )
        print(json.dumps([
            "won:" + (r.decided_by or "") if isinstance(r, WaitRecord) else r.reason
            for r in results
        ]), flush=True)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, str | None]]:
    """(url, schema) of an empty database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bot.db'}", None
        return
    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"PostgreSQL at {make_url(PG_URL)!r} is unreachable ({exc}); set TEST_DATABASE_URL"
        )
    schema = f"test_store_{uuid4().hex[:16]}"
    try:
        yield PG_URL, schema
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await process.stdout.readline()).decode().strip()


async def _say(process: asyncio.subprocess.Process, line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(f"{line}\n".encode())
    await process.stdin.drain()


async def test_processes_open_at_once_and_one_click_wins(database: tuple[str, str | None]) -> None:
    """Three processes migrate one fresh database together, then race 21 clicks: one wins."""
    url, schema = database
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            url,
            schema or "",
            f"P{n}",
            str(CLICKS_EACH),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for n in range(PROCESSES)
    ]
    try:
        async with asyncio.timeout(60):
            assert [await _line(p) for p in processes] == ["ready"] * PROCESSES
            for p in processes:
                await _say(p, "go")
            assert [await _line(p) for p in processes] == ["opened"] * PROCESSES

            store = await Store.open(url, schema=schema)
            try:
                async with store._read() as conn:
                    versions = (
                        await conn.execute(text("SELECT version FROM schema_version"))
                    ).all()
                assert sorted(v[0] for v in versions) == [m.version for m in MIGRATIONS]
                wait, _ = await store.create_wait(
                    workflow_uuid="wf-1",
                    execution_uuid="exec-1",
                    text="Approve?",
                    options=[WaitOption("Approve")],
                    expires_at=datetime.now(UTC) + timedelta(hours=1),
                    channel_id="C1",
                )
                finished = await asyncio.gather(
                    *(p.communicate(f"{wait.id}\n".encode()) for p in processes)
                )
                final = await store.get_wait(wait.id)
            finally:
                await store.close()
    finally:
        for p in processes:
            if p.returncode is None:
                p.kill()
                await p.wait()

    for p, (_, err) in zip(processes, finished, strict=True):
        assert p.returncode == 0, err.decode()
    outcomes = [o for out, _ in finished for o in json.loads(out.decode().strip())]
    winners = [o.removeprefix("won:") for o in outcomes if o.startswith("won:")]
    assert len(winners) == 1, outcomes
    assert sorted(o for o in outcomes if not o.startswith("won:")) == ["in_progress"] * (
        PROCESSES * CLICKS_EACH - 1
    )
    assert final is not None
    assert final.state == "claimed"
    assert final.decided_by == winners[0]
