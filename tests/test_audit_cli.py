"""``nexthink-bot audit`` as an operator runs it: a subprocess on a seeded SQLite file and on a
PostgreSQL database of its own, with only ``DATABASE_URL`` set (plus a configured secret that
must not be printed); bad arguments exit 2 with one line."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.audit import AuditTrail
from bot.logging import REDACTED, Redactor, redactor
from bot.store import AUDIT_FIELDS, AuditRecord, Store
from tests.support.secret_scan import remember
from tests.test_store import PG_URL, _asyncpg_dsn

pytestmark = pytest.mark.slow

T0 = datetime(2026, 12, 1, tzinfo=UTC)
SECRET = "xoxb-audit-cli-bot-token-0815"  # the bot token of the configuration
HOOK = "https://hooks.slack.com/commands/T1/2/secretpart"


def _run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": SECRET,
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bot.cli", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _seed(url: str) -> None:
    """Six records: two at the --since edge, one just before --until, one at it, one after."""
    remember(SECRET)
    redactor().add([SECRET])  # what configure() does in the bot: its driver logs stay masked
    store = await Store.open(url)
    try:
        trail = AuditTrail(store, redact=Redactor())  # a writer that knows no secret
        await trail.record("run_requested", actor="U1", actor_upn="ann@example.com",
                           workflow="#restart", ticket="INC0000001", now=T0 - timedelta(seconds=1),
                           targets=[{"label": "device PC-1"}], params={"why": "slow"})  # fmt: skip
        await trail.record("approval_vote", actor="U2", workflow="#restart", ticket="INC0000001",
                           result="counted", now=T0)  # fmt: skip
        await trail.record("executed", actor="U1", workflow="#restart", ticket="INC0000001",
                           request_uuid="r-1", execution_uuids=["e-1", "e-2"], now=T0,
                           detail=f"token {SECRET} reply {HOOK}")  # fmt: skip
        await store.append_audit(
            [
                AuditRecord(
                    T0 + timedelta(days=1) - timedelta(microseconds=1),
                    "outcome",
                    workflow="#restart",
                    result="succeeded",
                ),
                AuditRecord(T0 + timedelta(days=1), "delegation_set", actor="U3"),
                AuditRecord(T0 + timedelta(days=2), "run_refused", actor="U1", workflow="#other"),
            ]
        )
    finally:
        await store.close()


def _lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [json.loads(line) for line in done.stdout.splitlines()]


def _check_outputs(url: str) -> None:
    everything = _lines(_run(url))
    assert [r["event"] for r in everything] == [
        "run_requested", "approval_vote", "executed", "outcome", "delegation_set", "run_refused",
    ]  # fmt: skip
    assert all(list(r) == list(AUDIT_FIELDS) for r in everything)
    executed = everything[2]
    assert executed["execution_uuids"] == ["e-1", "e-2"]
    assert executed["request_uuid"] == "r-1"
    assert executed["detail"] == f"token {REDACTED} reply {REDACTED}"

    window = _run(url, "--since", "2026-12-01", "--until", "2026-12-02T00:00:00Z")
    assert [r["event"] for r in _lines(window)] == ["approval_vote", "executed", "outcome"]
    ann = _run(url, "--user", "ANN@example.com")
    assert [r["event"] for r in _lines(ann)] == ["run_requested"]
    u1 = _run(url, "--user", "U1", "--workflow", "#restart")
    assert [r["event"] for r in _lines(u1)] == ["run_requested", "executed"]
    ticket = _run(url, "--ticket", "INC0000001", "--since", "2026-12-01T00:00:00+00:00")
    assert [r["event"] for r in _lines(ticket)] == ["approval_vote", "executed"]
    assert _lines(_run(url, "--ticket", "INC9999999")) == []

    as_csv = _run(url, "--format", "csv", "--until", "2026-12-02")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout, newline="")))
    assert tuple(rows[0]) == AUDIT_FIELDS
    assert [row[1] for row in rows[1:]] == ["run_requested", "approval_vote", "executed", "outcome"]
    assert json.loads(rows[1][AUDIT_FIELDS.index("targets")]) == [{"label": "device PC-1"}]
    for done in (as_csv, _run(url)):
        assert SECRET not in done.stdout
        assert "hooks.slack.com" not in done.stdout


async def test_audit_command_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    await _seed(url)
    await asyncio.to_thread(_check_outputs, url)


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of its own (the CLI has no schema option), dropped afterwards."""
    name = f"test_audit_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.postgres
async def test_audit_command_on_postgresql(pg_database: str) -> None:
    await _seed(pg_database)
    await asyncio.to_thread(_check_outputs, pg_database)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "7x"], "--since: '7x' is not a duration"),
        (["--until", "tomorrow"], "--until: 'tomorrow' is not a duration"),
        (["--since", "2026-12-02", "--until", "2026-12-01"], "must be before --until"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--user"], "expected one argument"),
        (["--user", " "], "--user needs a value"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    done = _run(f"sqlite:///{tmp_path / 'bot.db'}", *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("nexthink-bot audit: ")
    assert says in done.stderr


def test_a_missing_sqlite_file_or_bad_url_is_one_line(tmp_path: Path) -> None:
    missing = _run(f"sqlite:///{tmp_path / 'nope.db'}")
    assert missing.returncode == 2
    assert "there is no SQLite database" in missing.stderr
    assert missing.stderr.count("\n") == 1
    assert not (tmp_path / "nope.db").exists()  # not created by looking
    bad = _run("mysql://x/y")
    assert bad.returncode == 2
    assert bad.stderr.startswith("nexthink-bot audit: DATABASE_URL")
    assert bad.stderr.count("\n") == 1


def test_an_unreachable_database_exits_1(tmp_path: Path) -> None:
    done = _run("postgresql://nobody@127.0.0.1:9/none")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "unavailable" in done.stderr or "unreachable" in done.stderr


async def test_an_empty_trail_exits_0(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    await (await Store.open(url)).close()
    done = await asyncio.to_thread(_run, url, "--format", "csv")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [",".join(AUDIT_FIELDS)]
    assert (await asyncio.to_thread(_run, url)).stdout == ""


def test_help_states_the_boundaries() -> None:
    done = _run("sqlite:///x.db", "--help")
    assert done.returncode == 0
    assert "--since is inclusive, --until is exclusive" in done.stdout
    assert ", ".join(AUDIT_FIELDS[:4]) in done.stdout
