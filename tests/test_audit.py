"""The audit trail against real databases (a SQLite file, the PostgreSQL of ``tests/test_store``):
every field round-trips, filters and the ``--since``/``--until`` boundaries are exact, the export
is oldest first across batches, CSV parses with the header, nothing secret is written, logged or
printed, and retention deletes only older records, in batches.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import event, text

from bot.audit import AuditTrail
from bot.audit_export import export, parse_time
from bot.logging import REDACTED, Redactor, redactor
from bot.settings import Settings, SettingsError
from bot.store import AUDIT_EVENTS, AUDIT_FIELDS, AuditQuery, AuditRecord, Store, WaitOption
from tests.support.secret_scan import captured_lines, remember
from tests.test_store import Backend, _postgresql

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
PLUS_TWO = timezone(timedelta(hours=2))
SECRET = "audit-test-configured-secret-4711"
RESPONSE_URL = "https://hooks.slack.com/commands/T0001/1234567890/abcdefghijklmnopqrstuvwx"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        opened = await Backend("sqlite", f"sqlite:///{tmp_path / 'bot.db'}").open()
        yield opened
        await opened.close()
        return
    async with _postgresql() as backend:
        opened = await backend.open()
        yield opened
        await opened.close()


def _rec(at: datetime, event_name: str = "run_requested", **fields: Any) -> AuditRecord:
    return AuditRecord(time=at, event=event_name, **fields)  # type: ignore[arg-type]


async def _all(
    store: Store, query: AuditQuery | None = None, batch: int = 2000
) -> list[AuditRecord]:
    return [r async for r in store.iter_audit(query, batch=batch)]


def test_event_names_are_the_contracts() -> None:
    assert AUDIT_EVENTS == (
        "run_requested",
        "run_refused",
        "approval_requested",
        "approval_vote",
        "approval_denied",
        "approval_expired",
        "executed",
        "execute_failed",
        "outcome",
        "question_posted",
        "question_decided",
        "question_expired",
        "resumed",
        "delegation_set",
        "consent_asked",
        "consent_given",
        "consent_refused",
        "scheduled",
        "schedule_cancelled",
    )


async def test_every_field_round_trips(store: Store) -> None:
    trail = AuditTrail(store, redact=Redactor())
    written = await trail.record(
        "executed",
        actor="W0123ABCD",
        actor_upn="Zoë.Müller@example.com",
        workflow="#restart_service",
        targets=[{"label": "device PC-1", "device": {"name": "PC-1"}}, {"user": {"upn": "a@b.c"}}],
        params={"service": "spooler", "nested": {"list": [1, 2.5, None, True]}},
        ticket="INC0001234",
        request_uuid="0b4b3c4e-0000-4000-8000-000000000001",
        execution_uuids=["e-1", "e-2"],
        result="sent",
        detail='multi\nline, "quoted"; ünïcödé',
        request_id="3f1c2a8e-1111-4111-8111-111111111111",
        enterprise_id="E0001",
        team_id="T0001",
        now=datetime(2030, 1, 1, 13, 0, 0, 123456, tzinfo=PLUS_TWO),
    )
    [back] = await _all(store)
    assert back.seq is not None
    assert back.to_json() == written.to_json()
    assert back.time == datetime(2030, 1, 1, 11, 0, 0, 123456, tzinfo=UTC)
    assert back.to_json()["time"] == "2030-01-01T11:00:00.123456Z"
    assert list(back.to_json()) == list(AUDIT_FIELDS)
    for name in AUDIT_EVENTS:  # every event name is accepted by the store
        await store.append_audit([_rec(T0, name)])
    assert [r.event for r in await _all(store, AuditQuery(since=T0 - US, until=T0 + US))] == list(
        AUDIT_EVENTS
    )


async def test_unknown_events_are_refused_before_anything_is_written(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown audit event 'run_started'"):
        await store.append_audit([_rec(T0), _rec(T0, "run_started")])
    with pytest.raises(ValueError, match="unknown audit event"):
        await AuditTrail(store).record("nope")  # type: ignore[arg-type]
    assert await _all(store) == []


async def test_filters(store: Store) -> None:
    await store.append_audit(
        [
            _rec(T0, actor="U1", actor_upn="Ann@Example.com", workflow="#a", ticket="INC1"),
            _rec(T0 + US, actor="U2", actor_upn="bob@example.com", workflow="#a", ticket="INC2"),
            _rec(T0 + 2 * US, actor="U1", actor_upn="ann@example.com", workflow="#b"),
            _rec(T0 + 3 * US, "approval_vote", actor="U3", workflow="#a", ticket="INC1"),
            _rec(T0 + 4 * US, "approval_expired", workflow="#b", ticket="INC1"),
        ]
    )

    async def times(**query: Any) -> list[int]:
        return [(r.time - T0) // US for r in await _all(store, AuditQuery(**query))]

    assert await times() == [0, 1, 2, 3, 4]
    assert await times(user="U1") == [0, 2]
    assert await times(user="ANN@example.COM") == [0, 2]  # UPN without regard to case
    assert await times(user="bob@example.com") == [1]
    assert await times(user="u1") == []  # Slack ids are exact
    assert await times(workflow="#a") == [0, 1, 3]
    assert await times(workflow="#A") == []
    assert await times(ticket="INC1") == [0, 3, 4]
    assert await times(ticket="INC1", workflow="#b") == [4]
    assert await times(user="U3", ticket="INC1", since=T0 + 3 * US) == [3]
    assert await times(user="nobody") == []


async def test_since_is_inclusive_and_until_exclusive_to_the_microsecond(store: Store) -> None:
    since, until = T0, T0 + timedelta(hours=1)
    edges = [since - US, since, since + US, until - US, until, until + US]
    await store.append_audit([_rec(at) for at in edges])
    found = [r.time for r in await _all(store, AuditQuery(since=since, until=until))]
    assert found == [since, since + US, until - US]
    assert [r.time for r in await _all(store, AuditQuery(until=since))] == [since - US]
    assert [r.time for r in await _all(store, AuditQuery(since=until))] == [until, until + US]
    # an offset is the same instant
    plus_two = since.astimezone(PLUS_TWO)
    assert [r.time for r in await _all(store, AuditQuery(since=plus_two, until=since + US))] == [
        since
    ]


async def test_export_is_oldest_first_across_batches_with_ties_in_insertion_order(
    store: Store,
) -> None:
    # written out of time order, with many records at the same instant around batch edges
    times = [T0 + timedelta(seconds=s) for s in (5, 1, 3, 3, 3, 3, 3, 0, 4, 3, 2, 3)]
    await store.append_audit([_rec(at, detail=str(i)) for i, at in enumerate(times)])
    for batch in (1, 2, 3, 5, 100):
        found = await _all(store, batch=batch)
        assert [r.time for r in found] == sorted(times)
        ties = [r.detail for r in found if r.time == T0 + timedelta(seconds=3)]
        assert ties == ["2", "3", "4", "5", "6", "9", "11"]  # insertion order
        assert len({r.seq for r in found}) == len(times)
    with pytest.raises(ValueError, match="batch must be at least 1"):
        await _all(store, batch=0)


async def test_csv_parses_with_the_documented_header(store: Store) -> None:
    trail = AuditTrail(store, redact=Redactor())
    await trail.record(
        "run_refused",
        actor="U1",
        targets=[{"label": 'device "X", the one'}],
        params={"note": "a,b\nc"},
        detail="needs a ticket: add `ticket:INC…`",
        now=T0,
    )
    await trail.record("outcome", result="succeeded", execution_uuids=["e1"], now=T0 + US)
    out = io.StringIO(newline="")
    assert await export(store, AuditQuery(), out, fmt="csv") == 2
    reader = csv.DictReader(io.StringIO(out.getvalue(), newline=""))
    assert tuple(reader.fieldnames or ()) == AUDIT_FIELDS
    first, second = list(reader)
    assert first["event"] == "run_refused"
    assert first["actor"] == "U1"
    assert json.loads(first["targets"]) == [{"label": 'device "X", the one'}]
    assert json.loads(first["params"]) == {"note": "a,b\nc"}
    assert first["detail"] == "needs a ticket: add `ticket:INC…`"
    assert first["time"] == "2030-01-01T12:00:00.000000Z"
    assert first["ticket"] == ""
    assert json.loads(first["execution_uuids"]) == []
    assert second["result"] == "succeeded"
    assert json.loads(second["execution_uuids"]) == ["e1"]
    # the same records as JSON lines
    lines = io.StringIO()
    await export(store, AuditQuery(), lines, fmt="jsonl")
    decoded = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [list(d) for d in decoded] == [list(AUDIT_FIELDS)] * 2
    assert decoded[0]["params"] == {"note": "a,b\nc"}
    assert decoded[1]["ticket"] is None


async def test_the_writer_redacts_the_row_and_the_log_line(store: Store) -> None:
    remember(SECRET)
    trail = AuditTrail(store, redact=Redactor([SECRET]))
    written = await trail.record(
        "execute_failed",
        actor="U1",
        params={"reason": f"typed {SECRET} here", "api_token": "plain-value-under-a-secret-key"},
        targets=[{"label": SECRET}],
        detail=f"Nexthink said 401; reply went to {RESPONSE_URL} with Bearer abcdefghijklmnop",
        now=T0,
    )
    assert written.params == {"reason": f"typed {REDACTED} here", "api_token": REDACTED}
    assert written.detail == f"Nexthink said 401; reply went to {REDACTED} with {REDACTED}"
    # what the database holds, read around the store
    async with store._read() as conn:
        raw = " ".join(
            str(v) for row in (await conn.execute(text("SELECT * FROM audit_events"))) for v in row
        )
    for leaked in (SECRET, RESPONSE_URL, "hooks.slack.com", "plain-value", "abcdefghijklmnop"):
        assert leaked not in raw
    assert REDACTED in raw
    # one structured log line, redacted like the row
    lines = [json.loads(line) for line in captured_lines() if '"audit"' in line]
    [line] = [entry for entry in lines if entry.get("event") == "audit"]
    assert line["audit_event"] == "execute_failed"
    assert line["actor"] == "U1"
    assert line["time"] == "2030-01-01T12:00:00.000000Z"
    assert line["params"] == written.params
    assert line["detail"] == written.detail
    assert set(AUDIT_FIELDS) - {"event"} <= set(line)
    assert SECRET not in json.dumps(line)
    assert "hooks.slack.com" not in json.dumps(line)


async def test_with_the_process_wide_redactor_the_line_is_masked_once_and_the_context_too(
    store: Store,
) -> None:
    """The default trail redacts the record once (``entry``); the log line is that record, and
    what the line gets beside it (the request's log context) still goes through the redactor."""
    remember(SECRET)
    redactor().add([SECRET])  # as ``bot.logging.configure`` does with the configured secrets
    with structlog.contextvars.bound_contextvars(slack_user=f"U1 {SECRET}"):
        written = await AuditTrail(store).record(
            "execute_failed", actor="U1", detail=f"went to {RESPONSE_URL} ({SECRET})", now=T0
        )
    assert written.detail == f"went to {REDACTED} ({REDACTED})"
    lines = [json.loads(line) for line in captured_lines() if '"audit"' in line]
    [line] = [entry for entry in lines if entry.get("event") == "audit"]
    assert line["detail"] == written.detail
    assert line["slack_user"] == f"U1 {REDACTED}"
    assert "_already_redacted" not in line
    assert SECRET not in json.dumps(line)


async def test_the_export_masks_what_a_writer_left(store: Store) -> None:
    """A row written around ``AuditTrail`` (an older release, a hand-made import) still prints
    without the configured secrets, response URLs or values under secret-looking keys."""
    remember(SECRET)
    # as ``bot.logging.configure`` does with the configured secrets: the driver's DEBUG lines
    # about the INSERT below then go out masked, like every log line in production
    redactor().add([SECRET])
    await store.append_audit(
        [
            _rec(
                T0,
                detail=f"{SECRET} / {RESPONSE_URL}",
                params={"password": "hunter2-but-longer"},
            ),
            _rec(T0 + US, detail="harmless"),
        ]
    )
    for fmt in ("jsonl", "csv"):
        out = io.StringIO()
        assert await export(store, AuditQuery(), out, fmt=fmt, redact=Redactor([SECRET])) == 2
        printed = out.getvalue()
        assert SECRET not in printed
        assert "hooks.slack.com" not in printed
        assert "hunter2" not in printed
        assert "harmless" in printed


async def test_trail_survives_an_unavailable_store(tmp_path: Path) -> None:
    opened = await Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    await opened.close()
    record = await AuditTrail(opened).record("resumed", actor="U1")
    assert record.event == "resumed"
    assert any('"audit_not_stored"' in line for line in captured_lines())


async def test_prune_deletes_only_older_records_in_batches(store: Store) -> None:
    cutoff = T0
    older = [cutoff - timedelta(days=d) for d in (1000, 401, 1)] + [cutoff - US] * 4
    newer = [cutoff, cutoff + US, cutoff + timedelta(days=1)]
    await store.append_audit([_rec(at) for at in older + newer])
    engine = store._live().sync_engine
    deletes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert await store.prune_audit(cutoff, batch=2, max_rows=3) == 3  # a bounded call
        assert len(deletes) == 2
        assert await store.prune_audit(cutoff, batch=2) == 4
        assert len(deletes) == 2 + 3  # 2 + 2 + 0: the last batch finds nothing more
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [r.time for r in await _all(store)] == newer
    assert await store.prune_audit(cutoff, batch=1000) == 0


async def test_retention_days(store: Store) -> None:
    now = T0
    await store.append_audit([_rec(now - timedelta(days=d)) for d in (500, 400.0001, 400, 399, 0)])
    assert await AuditTrail(store, retention_days=0).prune(now) == 0
    assert len(await _all(store)) == 5
    assert await AuditTrail(store, retention_days=400).prune(now, batch=1) == 2
    assert [round((now - r.time) / timedelta(days=1)) for r in await _all(store)] == [400, 399, 0]
    with pytest.raises(ValueError, match="retention_days"):
        AuditTrail(store, retention_days=-1)


def test_retention_setting() -> None:
    assert Settings.load("audit").audit_retention_days == 400
    assert Settings.load("audit", audit_retention_days=0).audit_retention_days == 0
    with pytest.raises(SettingsError, match="AUDIT_RETENTION_DAYS"):
        Settings.load("audit", audit_retention_days=-1)


def test_audit_mode_needs_no_slack_or_nexthink_settings() -> None:
    with pytest.raises(SettingsError, match="SLACK_BOT_TOKEN"):
        Settings.load("serve", nexthink_base_url="http://x", nexthink_client_id="i",
                      nexthink_client_secret="s")  # fmt: skip
    assert Settings.load("audit", database_url="sqlite:///x.db").database_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7d", T0 - timedelta(days=7)),
        ("12h", T0 - timedelta(hours=12)),
        ("30m", T0 - timedelta(minutes=30)),
        ("45s", T0 - timedelta(seconds=45)),
        ("2w", T0 - timedelta(weeks=2)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T08:00:00Z", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T08:00:00.000001+02:00", datetime(2026, 12, 1, 6, 0, 0, 1, tzinfo=UTC)),
        ("2026-12-01 08:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
    ],
)
def test_parse_time(value: str, expected: datetime) -> None:
    assert parse_time(value, now=T0) == expected


@pytest.mark.parametrize("value", ["", "7", "7x", "-7d", "yesterday", "2026-13-01", "1e3d"])
def test_parse_time_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_time(value, now=T0)


async def test_request_and_wait_helpers_fill_the_fields_they_hold(store: Store) -> None:
    trail = AuditTrail(store, redact=Redactor())
    request = await store.create_request(
        kind="run",
        user_id="U_REQ",
        user_upn="req@example.com",
        team_id="T1",
        workflow_id="#wf",
        targets=[{"label": "PC-1"}],
        params={"p": "1"},
    )
    request = await store.update_request(
        request.id, nexthink_request_uuids=["n-1", "n-2"], executions_uuids=["e-1"]
    )
    by_requester = await trail.record_request("executed", request, result="sent", now=T0)
    assert (by_requester.actor, by_requester.actor_upn) == ("U_REQ", "req@example.com")
    assert by_requester.workflow == "#wf"
    assert by_requester.targets == ({"label": "PC-1"},)
    assert by_requester.params == {"p": "1"}
    assert by_requester.request_uuid == "n-1,n-2"
    assert by_requester.execution_uuids == ("e-1",)
    assert (by_requester.request_id, by_requester.team_id) == (request.id, "T1")
    vote = await trail.record_request(
        "approval_vote", request, actor="U_VOTER", actor_upn="v@example.com", now=T0
    )
    assert (vote.actor, vote.actor_upn) == ("U_VOTER", "v@example.com")
    expired = await trail.record_request("approval_expired", request, actor=None, now=T0)
    assert (expired.actor, expired.actor_upn) == (None, None)

    wait, _ = await store.create_wait(
        workflow_uuid="wf-uuid",
        execution_uuid="ex-uuid",
        text="Reinstall Office?",
        options=[WaitOption("Yes"), WaitOption("No")],
        expires_at=T0 + timedelta(hours=1),
        channel_id="C1",
        now=T0,
    )
    posted = await trail.record_wait("question_posted", wait, now=T0)
    assert posted.workflow == "wf-uuid"
    assert posted.execution_uuids == ("ex-uuid",)
    assert posted.detail == "Reinstall Office?"
    assert posted.params == {"question_id": wait.id, "options": ["Yes", "No"]}
    assert posted.actor is None
    assert posted.result is None
    decided = await trail.record_wait("question_decided", wait, actor="U9", result="Yes", now=T0)
    assert (decided.actor, decided.result) == ("U9", "Yes")
    stored = [r.to_json() for r in await _all(store)]
    assert stored == [r.to_json() for r in (by_requester, vote, expired, posted, decided)]
