"""The Block Kit pieces every view is built of: outside text, clipping, sections, buttons, dates.

Text from outside (Nexthink, the webhook, people) arrives as ``bot.text.Outside`` and reaches a
message only through ``shown`` (mrkdwn), ``code`` (a code span) or ``plain`` (``plain_text``), in
blocks and in the top-level ``text`` alike; everything is clipped to Slack's limits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.mrkdwn import NEWLINE, SECTION_LIMIT, clip, code, shown
from bot.text import Outside, outside
from handlers import ids

__all__ = [
    "NEWLINE",
    "SECTION_LIMIT",
    "Message",
    "Outside",
    "approve_deny_block",
    "button",
    "clip",
    "code",
    "context",
    "fields",
    "mrkdwn_escape",
    "outside",
    "plain",
    "section",
    "shown",
    "when",
]

Message = dict[str, Any]


def mrkdwn_escape(text: str) -> str:
    """Kept for callers written before ``shown``: the same rendering, for a plain ``str``."""
    return shown(outside(text))


def plain(text: str | Outside, limit: int = 75) -> dict[str, Any]:
    """A ``plain_text`` object: Slack shows it as typed (no mentions, links or formatting), so
    outside text needs no escaping here, only clipping to the field's limit."""
    raw = text.raw if isinstance(text, Outside) else text
    return {"type": "plain_text", "text": clip(raw, limit)}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def context(*texts: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": clip(t, 2000)} for t in texts if t][:10],
    }


def fields(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": clip(f"*{k}*\n{v}", 2000)} for k, v in pairs][:10],
    }


def when(moment: datetime) -> str:
    """A date Slack shows in the reader's time zone (UTC where it cannot)."""
    stamp = int(moment.timestamp())
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{fallback}>"


def button(
    text: str, action_id: str, value: str, style: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A button; ``style`` is kept only when Slack knows it (``primary``, ``danger``)."""
    made: dict[str, Any] = {
        "type": "button",
        "text": plain(text, 75),
        "action_id": action_id,
        "value": value,
        **extra,
    }
    if style in {"primary", "danger"}:
        made["style"] = style
    return made


def approve_deny_block(block_id: str, approval_id: str) -> dict[str, Any]:
    """The Approve and Deny buttons of an approval request (channel message and Home tab)."""
    return {
        "type": "actions",
        "block_id": block_id[:255],
        "elements": [
            button("Approve", ids.APPROVAL_APPROVE, approval_id, "primary"),
            button("Deny", ids.APPROVAL_DENY, approval_id, "danger"),
        ],
    }
