"""When a scheduled run is due: the values a person's "later" turns into, and the one function
that turns them into an instant.

The Slack layer reads ``at 22:00``, ``at 2026-12-24 22:00`` or ``in 2h`` into an ``At`` or an
``After`` (``handlers.grammar.when``; the run form's date and time pickers make an ``At`` too).
``due_at`` resolves one in the requester's Slack time zone (``users.info`` ``tz``) at ``now`` and
refuses, with a sentence for the person, a time that has passed, one beyond ``max_days``, and a
local time that does not exist that day (a daylight-saving gap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "MAX_AFTER",
    "After",
    "At",
    "ScheduleTimeError",
    "When",
    "due_at",
    "zone",
]

#: the longest ``in …`` anyone may write, whatever the policy (the policy's max_days is smaller)
MAX_AFTER = timedelta(days=366)


class ScheduleTimeError(ValueError):
    """The time cannot be used; ``str()`` says why and how to write one (mrkdwn)."""


@dataclass(frozen=True)
class After:
    """``in 2h``: a delay from the moment the run is asked for."""

    delay: timedelta
    text: str  #: as typed, for messages: ``in 2h``


@dataclass(frozen=True)
class At:
    """``at 22:00`` (``day`` None: today, or tomorrow once it has passed) or ``at 2026-12-24
    22:00``, in the requester's time zone."""

    clock: time
    day: date | None = None
    text: str = ""  #: as typed, for messages: ``at 22:00``


When: TypeAlias = After | At


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone ``name`` (Slack's ``tz``), or None when it is missing or unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def due_at(when: When, *, tz: str | None, now: datetime, max_days: float) -> datetime:
    """The UTC instant ``when`` means for someone in ``tz`` (UTC if unknown) at ``now``.

    Raises ``ScheduleTimeError`` for a time that has passed, one more than ``max_days`` away, or a
    local time that the zone skips that day."""
    now = now.astimezone(UTC)
    limit = timedelta(days=max_days)
    if isinstance(when, After):
        if when.delay <= timedelta(0):
            raise ScheduleTimeError(f"`{when.text}` is no delay: write e.g. `in 30m` or `in 2h`.")
        due = now + when.delay
    else:
        local_zone = zone(tz) or ZoneInfo("UTC")
        local_now = now.astimezone(local_zone)
        day = when.day or local_now.date()
        due = _local(day, when.clock, local_zone, when.text)
        if when.day is None and due <= now:
            due = _local(day + timedelta(days=1), when.clock, local_zone, when.text)
        if due <= now:
            raise ScheduleTimeError(
                f"`{when.text}` has already passed ({_shown(local_now)} now where you are): "
                "pick a later time."
            )
    if due - now > limit:
        days = f"{max_days:g} day" + ("" if max_days == 1 else "s")
        raise ScheduleTimeError(
            f"`{when.text}` is more than {days} away, the furthest a run may be scheduled here."
        )
    return due


def _local(day: date, clock: time, local_zone: ZoneInfo, text: str) -> datetime:
    """``day`` at ``clock`` in ``local_zone``, in UTC; a time skipped by the zone is refused."""
    local = datetime.combine(day, clock, tzinfo=local_zone)
    there_and_back = local.astimezone(UTC).astimezone(local_zone)
    if there_and_back.replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ScheduleTimeError(
            f"`{text}` does not exist on {day.isoformat()} where you are (the clocks change): "
            "pick another time."
        )
    return local.astimezone(UTC)


def _shown(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
