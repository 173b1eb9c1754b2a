"""``/nexthink history``: the requester's own requests, or (for auditors) someone else's, a
workflow's or a ticket's, with who asked, the ticket and Nexthink's ids."""

from __future__ import annotations

from typing import Any

from bot.runs import HistoryAnswer, HistoryFilter
from handlers.blocks import Message, code, context, outside, section, when

__all__ = ["history_message", "ticket_text"]

_STATE_EMOJI = {
    "sent": ":white_check_mark:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "unknown": ":warning:",
    "denied": ":no_entry:",
    "expired": ":hourglass:",
    "approval_pending": ":raised_hand:",
    "consent_pending": ":raising_hand:",
    "pending": ":hourglass_flowing_sand:",
    "scheduled": ":alarm_clock:",
    "cancelled": ":wastebasket:",
    "missed": ":hourglass:",
    "refused": ":no_entry:",
}


def ticket_text(ticket: str | None) -> str:
    """`` · ticket `INC0012345` `` for a request tied to a ticket, else nothing."""
    return f" · ticket {code(outside(ticket), 100)}" if ticket else ""


def _line(record: Any, *, who: bool) -> str:
    emoji = _STATE_EMOJI.get(record.state, "•")
    uuids = ", ".join(code(outside(u)) for u in record.nexthink_request_uuids)
    workflow = code(outside(record.workflow_id or ""), 100)
    asked = f" by <@{record.user_id}>" if who else ""
    return (
        f"{emoji} {when(record.created_at)} *{record.kind}* {workflow}{asked} — "
        f"{record.state.replace('_', ' ')}{ticket_text(record.ticket)} · "
        f"{uuids or 'no Nexthink request'}"
    )


def _about(about: HistoryFilter) -> str:
    parts = []
    if about.user_id:
        parts.append(f"of <@{about.user_id}>")
    if about.upn:
        parts.append(f"of {code(outside(about.upn), 100)}")
    if about.workflow:
        parts.append(f"of workflow {code(outside(about.workflow), 100)}")
    if about.ticket:
        parts.append(f"for ticket {code(outside(about.ticket), 100)}")
    return " ".join(parts)


def history_message(answer: HistoryAnswer) -> Message:
    records, about = answer.records, answer.about
    refusal = [context(f":lock: {answer.refusal}")] if answer.refusal else []
    n = len(records)
    if about is not None:
        title = f"The last {n} request{'s' if n != 1 else ''} {_about(about)}"
        if not records:
            title = f"No requests {_about(about)}."
    elif not records:
        title = "You have no requests yet. `/nexthink run <workflow>` starts one."
    else:
        title = f"Your last {n} request{'s' if n != 1 else ''}"
    if not records:
        return {"text": title, "blocks": [*refusal, section(title)]}
    lines = "\n".join(_line(r, who=about is not None) for r in records)
    return {"text": title, "blocks": [*refusal, section(f"*{title}*"), section(lines)]}
