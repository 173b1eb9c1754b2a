"""How the policy's reasons show names: Slack mrkdwn, with configured text escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.mrkdwn import code as _code
from bot.mrkdwn import escape
from bot.policy.schema import USER_ID
from bot.text import outside

__all__ = ["channels", "choices", "code", "count", "member"]


def code(text: str) -> str:
    """``text`` (a name from the policy file, Nexthink or a person) in a code span it cannot
    leave: the one rendering of ``bot.mrkdwn``."""
    return _code(outside(text), limit=None)


def member(value: str) -> str:
    """A role member or approver as a person reads it: "anyone", a mention, a UPN or a @handle."""
    if value == "*":
        return "anyone"
    if USER_ID.match(value):
        return f"<@{value}>"
    return escape(value)


def channels(ids: Iterable[str]) -> str:
    return ", ".join(f"<#{c}>" for c in sorted(ids))


def choices(values: Sequence[str] | None) -> str:
    return ", ".join(code(v) for v in values or ())


def count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
