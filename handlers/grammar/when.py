""" "Later" in a ``run`` command: ``at 22:00``, ``at 2026-12-24 22:00``, ``in 2h`` / ``in 90m`` /
``in 45s`` (also ``in 1h30m``, ``in 2 hours``, ``at 10pm``).

``read_when(p, words, i)`` is called on the unquoted word ``at`` or ``in`` at ``words[i]``; it
returns the ``bot.schedule_times`` value and how many words it used, or raises the parser's
``GrammarError`` saying how to write it. The time zone is not known here: the core resolves an
``At`` in the requester's Slack time zone (``bot.schedule_times.due_at``).
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta

from bot.schedule_times import MAX_AFTER, After, At, When
from handlers.grammar.errors import quoted
from handlers.grammar.parser import Parser
from handlers.grammar.words import Word

__all__ = ["WHEN_WORDS", "is_when_word", "read_when"]

WHEN_WORDS = frozenset({"at", "in"})

_HOW = "write `at 22:00`, `at 2026-12-24 22:00` or `in 2h`"
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$", re.IGNORECASE)
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[T_](.+)$", re.IGNORECASE)
_PARTS = re.compile(r"(\d{1,6})\s*([a-z]+)", re.IGNORECASE)
_UNITS: dict[str, timedelta] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), timedelta(seconds=1)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
}


def _plain(word: Word) -> bool:
    """Typed without quotes or markup: a quoted ``"at"`` is not the word ``at``."""
    return all(isinstance(i, tuple) and not i[1] for i in word.items)


def is_when_word(word: Word) -> bool:
    return _plain(word) and word.text.casefold() in WHEN_WORDS


def read_when(p: Parser, words: list[Word], i: int) -> tuple[When, int]:
    """The time that starts at ``words[i]`` (``at`` or ``in``) and the number of words it takes."""
    head = words[i].text.casefold()
    rest = [w.text for w in words[i + 1 : i + 3] if _plain(w)]
    if head == "in":
        return _read_after(p, rest)
    return _read_at(p, rest)


def _read_after(p: Parser, rest: list[str]) -> tuple[When, int]:
    if not rest:
        raise p.error(f"`in` needs a delay: {_HOW}.")
    used, text = 1, rest[0]
    if text.isdigit() and len(rest) > 1 and rest[1].casefold() in _UNITS:
        used, text = 2, f"{text} {rest[1]}"  # `in 2 hours`
    delay = _delay(text)
    typed = f"in {text}"
    if delay is None:
        raise p.error(f"{quoted(typed)} is not a delay: write `in 30m`, `in 2h` or `in 45s`.")
    if delay > MAX_AFTER:
        raise p.error(
            f"{quoted(typed)} is too far away: a run may be scheduled days, not years, ahead."
        )
    return After(delay, typed), used


def _delay(text: str) -> timedelta | None:
    """``2h``, ``1h30m``, ``2 hours``, ``45s``: the sum of its parts, or None."""
    compact = text.replace(" ", "")
    parts = _PARTS.findall(text)
    if not parts or "".join(n + u for n, u in parts) != compact:
        return None
    total = timedelta(0)
    for number, unit in parts:
        step = _UNITS.get(unit.casefold())
        if step is None:
            return None
        total += int(number) * step
        if total > MAX_AFTER * 2:
            break
    return total


def _read_at(p: Parser, rest: list[str]) -> tuple[When, int]:
    if not rest:
        raise p.error(f"`at` needs a time: {_HOW}.")
    first = rest[0]
    stamp = _STAMP.match(first)
    if stamp:  # 2026-12-24T22:00
        day = _day(p, stamp.group(1), f"at {first}")
        return At(_clock(p, stamp.group(2), f"at {first}"), day, f"at {first}"), 1
    if _DAY.match(first):
        if len(rest) < 2:
            raise p.error(
                f"{quoted('at ' + first)} needs a time after the date: write `at {first} 22:00`."
            )
        typed = f"at {first} {rest[1]}"
        return At(_clock(p, rest[1], typed), _day(p, first, typed), typed), 2
    if len(rest) > 1 and rest[1].casefold() in {"am", "pm"}:  # `at 10 pm`
        typed = f"at {first} {rest[1]}"
        return At(_clock(p, first + rest[1], typed), None, typed), 2
    typed = f"at {first}"
    return At(_clock(p, first, typed), None, typed), 1


def _clock(p: Parser, text: str, typed: str) -> time:
    match = _CLOCK.match(text)
    if match is None or (match.group(2) is None and match.group(3) is None):
        raise p.error(f"{quoted(typed)} is not a time: write `at 22:00` or `in 2h`.")
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    half = (match.group(3) or "").casefold()
    if half:
        if not 1 <= hour <= 12:
            raise p.error(f"{quoted(typed)} is not a time: write `at 10pm` or `at 22:00`.")
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        raise p.error(f"{quoted(typed)} is not a time: write `at 22:00` or `in 2h`.")
    return time(hour, minute)


def _day(p: Parser, text: str, typed: str) -> date:
    match = _DAY.match(text)
    try:
        if match is None:
            raise ValueError(text)
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise p.error(
            f"{quoted(typed)} is not a date: write the date as `YYYY-MM-DD`, e.g. `at 2026-12-24 22:00`."
        ) from None
