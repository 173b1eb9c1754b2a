"""How the policy's reasons show names: Slack mrkdwn, with configured text escaped."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from bot.policy.schema import USER_ID

__all__ = ["channels", "choices", "code", "count", "member"]


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """``text`` in backticks, escaped; a backtick or a line break in it cannot end the span."""
    one_line = re.sub("\r\n|[\n\r\v\f\x85\u2028\u2029]", "\u23ce", text)
    return "`" + _esc(one_line).replace("`", "'") + "`"


def member(value: str) -> str:
    """A role member or approver as a person reads it: "anyone", a mention, a UPN or a @handle."""
    if value == "*":
        return "anyone"
    if USER_ID.match(value):
        return f"<@{value}>"
    return _esc(value)


def channels(ids: Iterable[str]) -> str:
    return ", ".join(f"<#{c}>" for c in sorted(ids))


def choices(values: Sequence[str] | None) -> str:
    return ", ".join(code(v) for v in values or ())


def count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
