"""Reading "later" (`at 22:00`, `at 2026-12-24 22:00`, `in 2h`) and resolving it in the
requester's time zone; the schedule claim on one SQLite file shared by two stores."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from bot.schedule_times import After, At, ScheduleTimeError, due_at
from bot.store import Store
from handlers.grammar import GrammarError, Run, parse

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)  # 16:00 in Zurich


@pytest.mark.parametrize(
    ("text", "when"),
    [
        pytest.param("in 5s", After(timedelta(seconds=5), "in 5s"), id="seconds"),
        pytest.param("in 90m", After(timedelta(minutes=90), "in 90m"), id="minutes"),
        pytest.param("in 1h30m", After(timedelta(minutes=90), "in 1h30m"), id="compound"),
        pytest.param("in 2 hours", After(timedelta(hours=2), "in 2 hours"), id="words"),
        pytest.param("IN 2H", After(timedelta(hours=2), "in 2H"), id="any-case"),
        pytest.param("at 22:00", At(time(22, 0), None, "at 22:00"), id="clock"),
        pytest.param("at 9:05", At(time(9, 5), None, "at 9:05"), id="one-digit-hour"),
        pytest.param("at 10pm", At(time(22, 0), None, "at 10pm"), id="pm"),
        pytest.param("at 12 am", At(time(0, 0), None, "at 12 am"), id="midnight"),
        pytest.param(
            "at 2026-12-24 22:00",
            At(time(22, 0), date(2026, 12, 24), "at 2026-12-24 22:00"),
            id="date",
        ),
        pytest.param(
            "at 2026-12-24T06:30",
            At(time(6, 30), date(2026, 12, 24), "at 2026-12-24T06:30"),
            id="iso",
        ),
    ],
)
def test_run_reads_when(text: str, when: object) -> None:
    """`at …` and `in …` anywhere after the workflow become the run's time."""
    command = parse(f"run restart_teams mode=soft {text} visible")
    assert command == Run("restart_teams", params=(("mode", "soft"),), visible=True, when=when)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "at 25:00", "`at 25:00` is not a time: write `at 22:00` or `in 2h`.", id="hour"
        ),
        pytest.param("at 22:61", "is not a time", id="minute"),
        pytest.param("at 22", "is not a time", id="no-minutes"),
        pytest.param("at 13pm", "is not a time", id="pm"),
        pytest.param("at", "`at` needs a time", id="nothing"),
        pytest.param("in", "`in` needs a delay", id="no-delay"),
        pytest.param("in 2x", "is not a delay", id="unit"),
        pytest.param("in soon", "is not a delay", id="word"),
        pytest.param("in 5000d", "too far away", id="years"),
        pytest.param("at 2026-02-30 10:00", "is not a date", id="date"),
        pytest.param("at 2026-12-24", "needs a time after the date", id="date-only"),
        pytest.param("in 5s at 22:00", "two times", id="twice"),
    ],
)
def test_bad_times_are_refused_with_how_to_write_them(text: str, problem: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(f"run restart_teams {text}")
    assert problem in caught.value.problem


def test_quoted_at_is_a_plain_word() -> None:
    """A quoted "at" is not the keyword: it is refused as an unexpected word."""
    with pytest.raises(GrammarError, match="Unexpected"):
        parse('run restart_teams "at" 22:00')


def test_scheduled_and_cancel_parse() -> None:
    from handlers.grammar import Cancel, Scheduled

    assert parse("scheduled") == Scheduled()
    assert parse("scheduled <@U0BOB|bob>") == Scheduled("U0BOB")
    assert parse("cancel K7Q2M9XD") == Cancel("K7Q2M9XD")
    with pytest.raises(GrammarError, match="needs the id"):
        parse("cancel")
    with pytest.raises(GrammarError, match="is not the id"):
        parse("cancel <@U0BOB>")


def test_at_a_time_is_today_or_tomorrow_in_the_requesters_zone() -> None:
    """16:00 in Zurich: `at 22:00` is tonight (21:00 UTC), `at 09:00` tomorrow morning."""
    tonight = due_at(At(time(22, 0), text="at 22:00"), tz="Europe/Zurich", now=NOW, max_days=14)
    assert tonight == datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
    morning = due_at(At(time(9, 0), text="at 09:00"), tz="Europe/Zurich", now=NOW, max_days=14)
    assert morning == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    unknown = due_at(At(time(22, 0), text="at 22:00"), tz="Mars/Olympus", now=NOW, max_days=14)
    assert unknown == datetime(2026, 12, 3, 22, 0, tzinfo=UTC)  # UTC when the zone is unknown


def test_past_far_and_skipped_times_are_refused() -> None:
    with pytest.raises(ScheduleTimeError, match="already passed"):
        due_at(
            At(time(10, 0), date(2026, 12, 3), "at 2026-12-03 10:00"),
            tz="Europe/Zurich",
            now=NOW,
            max_days=14,
        )
    with pytest.raises(ScheduleTimeError, match="more than 14 days away"):
        due_at(After(timedelta(days=15), "in 15d"), tz=None, now=NOW, max_days=14)
    with pytest.raises(ScheduleTimeError, match="does not exist"):  # Zurich skips 02:00-03:00
        due_at(
            At(time(2, 30), date(2027, 3, 28), "at 2027-03-28 02:30"),
            tz="Europe/Zurich",
            now=NOW,
            max_days=200,
        )
    assert due_at(After(timedelta(seconds=5), "in 5s"), tz=None, now=NOW, max_days=14) == (
        NOW + timedelta(seconds=5)
    )


async def test_two_stores_on_one_sqlite_file_claim_each_run_once(tmp_path: Path) -> None:
    """Two processes' stores claiming at once: every due run goes to exactly one of them."""
    url = f"sqlite:///{tmp_path}/bot.db"
    first = await Store.open(url)
    second = await Store.open(url)
    try:
        at = datetime.now(UTC)
        for _ in range(40):
            record = await first.create_request(kind="run", user_id="U1", state="scheduled")
            await first.create_schedule(
                request_id=record.id, user_id="U1", workflow="w", ask={}, run_at=at
            )
        claims = await asyncio.gather(
            *(s.claim_due_schedules(at, limit=3) for _ in range(10) for s in (first, second))
        )
        ids = [c.id for claim in claims for c in claim]
        assert len(ids) == len(set(ids)) == 40
        assert await first.claim_due_schedules(at) == []
    finally:
        await first.close()
        await second.close()


async def test_a_claim_is_given_back_only_while_nothing_was_sent(tmp_path: Path) -> None:
    """A stopping process gives back a run it had not sent; a dead one's runs are given back
    (not sent) or closed (maybe sent) by the stale sweep, never run twice."""
    store = await Store.open(f"sqlite:///{tmp_path}/bot.db")
    try:
        at = datetime.now(UTC)
        for _ in range(2):
            record = await store.create_request(kind="run", user_id="U1", state="scheduled")
            await store.create_schedule(
                request_id=record.id, user_id="U1", workflow="w", ask={}, run_at=at
            )
        first, second = await store.claim_due_schedules(at)
        assert first.claim_token is not None
        assert second.claim_token is not None
        assert await store.release_schedule(first.id, first.claim_token)
        assert not await store.release_schedule(first.id, first.claim_token)  # not held now
        assert await store.mark_schedule_sending(second.id, second.claim_token)
        assert not await store.release_schedule(second.id, second.claim_token)
        (again,) = await store.claim_due_schedules(at)
        assert again.id == first.id
        later = at + timedelta(minutes=11)
        released, closed = await store.release_stale_schedules(timedelta(minutes=10), later)
        assert [s.id for s in released] == [first.id]
        assert [s.id for s in closed] == [second.id]
        assert closed[0].state == "closed"
        assert (await store.get_schedule(first.code)).state == "scheduled"  # type: ignore[union-attr]
    finally:
        await store.close()
