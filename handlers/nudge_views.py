"""Texts for approvals that don't die unseen (pure builders): the reminder and escalation direct
messages with their link to the request, and the answers of ``/nexthink delegate``."""

from __future__ import annotations

import re
from typing import Any

from bot.delegation import DelegationAnswer
from bot.notifier import Reminder
from handlers.blocks import Message, code, context, outside, section, shown, when

__all__ = ["delegation_text", "reminder_message", "stand_in_message"]

#: a permalink Slack gave: used as a link target only if it cannot break out of ``<url|label>``
_SAFE_URL = re.compile(r"^https?://[^\s<>|]+$")


def _link(permalink: str | None) -> str:
    if permalink and _SAFE_URL.match(permalink):
        return f"<{permalink}|Open the request>"
    return "Find it in the channel where it was posted."


def _what(reminder: Reminder) -> str:
    if reminder.subject == "approval":
        name = shown(outside(reminder.workflow_name or reminder.workflow_id or "a workflow"), 200)
        workflow = code(outside(reminder.workflow_id or ""), 100)
        return f"<@{reminder.requester_id}>'s request to run *{name}* ({workflow})"
    question = shown(outside(reminder.text or ""), 500)
    asked = ""
    if reminder.requester_upn:
        asked = f" (asked for {shown(outside(reminder.requester_upn), 200)})"
    return f"a question from Nexthink{asked}: “{question}”"


def reminder_message(reminder: Reminder, permalink: str | None) -> Message:
    """The direct message to someone a request waits on."""
    what = _what(reminder)
    for_whom = f" as the stand-in of <@{reminder.for_user_id}>" if reminder.for_user_id else ""
    if reminder.kind == "escalated":
        head = (
            f":arrow_double_up: {what} has waited since {when(reminder.created_at)} without a "
            f"decision: it was escalated, and you may now decide it{for_whom}."
        )
        text = "A request was escalated to you"
    else:
        head = f":bell: Reminder: {what} waits on your decision{for_whom}."
        text = "Reminder: a request waits on your decision"
    blocks: list[dict[str, Any]] = [
        section(f"{head}\n{_link(permalink)}"),
        context(
            f"Asked {when(reminder.created_at)} · expires {when(reminder.expires_at)}"
            + (f" · reminder {reminder.round}" if reminder.kind == "reminder" else "")
        ),
    ]
    return {"text": text, "blocks": blocks}


def delegation_text(answer: DelegationAnswer) -> str:
    """What ``/nexthink delegate`` answers (mrkdwn)."""
    if answer.kind == "refused":
        return f":no_entry: {answer.text}"
    delegation = answer.delegation
    if answer.kind == "none":
        return (
            "You have no stand-in. Name one while you are away with "
            "`/nexthink delegate @someone [until YYYY-MM-DD]`."
        )
    if answer.kind == "ended":
        if delegation is None:
            return "You had no stand-in; nothing changed."
        return f"<@{delegation.stand_in_id}> no longer stands in for you."
    assert delegation is not None
    until = f" until {when(delegation.until)}" if delegation.until else " until you end it"
    lead = "From now on, " if answer.kind == "set" else ""
    return (
        f":busy_in_meeting: {lead}<@{delegation.stand_in_id}> stands in for you{until}: they may "
        "decide what waits on you, and they get your reminders. End it with "
        "`/nexthink delegate off`."
    )


def stand_in_message(answer: DelegationAnswer) -> Message | None:
    """What the person just named as a stand-in is told (None: nothing to tell)."""
    delegation = answer.delegation
    if answer.kind != "set" or delegation is None:
        return None
    until = f" until {when(delegation.until)}" if delegation.until else " until they end it"
    text = (
        f":busy_in_meeting: <@{delegation.user_id}> named you their stand-in{until}: you may "
        "decide the approvals and questions that wait on them, and you get their reminders."
    )
    return {"text": text, "blocks": [section(text)]}
