"""What people read about scheduled runs: the reply to ``run … at/in``, ``/nexthink scheduled``,
``/nexthink cancel``, the news when one runs (or does not), and the Home tab's list.

Times are written with Slack's date formatting (``blocks.when``), so each reader sees them in
their own time zone. Every scheduled run shows its short code in backticks; a Cancel button
(``ids.SCHEDULE_CANCEL``, value = the schedule's id) sits beside each run not run yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.notifier import ScheduleNews
from bot.schedules import CancelAnswer, Scheduled
from bot.store import RequestRecord, ScheduleRecord
from handlers import ids
from handlers.blocks import Message, button, code, context, outside, section, shown, when
from handlers.views import params_text, run_result_message, targets_text

__all__ = [
    "cancel_answer_message",
    "schedule_home_blocks",
    "schedule_news_message",
    "scheduled_list_message",
    "scheduled_message",
    "with_schedule",
]

_MAX_LISTED = 20


def _code(schedule: ScheduleRecord) -> str:
    return f"`{schedule.code}`"


def _cancel_button(schedule: ScheduleRecord) -> dict[str, Any]:
    return button("Cancel", ids.SCHEDULE_CANCEL, schedule.id, "danger")


def _labels(record: RequestRecord | None) -> list[str]:
    return [str(t.get("label") or "") for t in (record.targets if record else ())]


def scheduled_message(scheduled: Scheduled) -> Message:
    """The reply to a run asked for later: when, what, its id, and how to cancel it."""
    schedule, prepared = scheduled.schedule, scheduled.prepared
    name = shown(outside(prepared.workflow.display_name), 200)
    at = when(schedule.run_at)
    gated = schedule.state == "awaiting_approval"
    head = (
        f":alarm_clock: *{name}* ({code(outside(prepared.entry.id))}) is scheduled for {at}"
        f" — id {_code(schedule)}."
    )
    if gated:
        head += " It needs approval first: it runs at its time only once approved."
    if prepared.asking:  # each person is asked now (after the approval, if any)
        head += (
            " It runs on someone else only if they allow it before then: they are asked"
            + (" once it is approved" if gated else " now")
            + ", and a direct message shows you each answer."
        )
    lines = [f"*Targets:* {targets_text([t.label for t in prepared.targets])}"]
    if prepared.params:
        lines.append(f"*Parameters:* {params_text(prepared.params)}")
    text = f"{prepared.entry.id} scheduled for {at}, id {schedule.code}"
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": head},
                "accessory": _cancel_button(schedule),
            },
            section("\n".join(lines)),
            context(
                f"`/nexthink cancel {schedule.code}` cancels it · `/nexthink scheduled` lists "
                "your scheduled runs · the policy is checked again when it runs"
            ),
        ],
    }


def _line(schedule: ScheduleRecord, names: Mapping[str, str], owner: bool) -> str:
    name = shown(outside(names.get(schedule.workflow, schedule.workflow)), 100)
    state = " (waiting for approval)" if schedule.state == "awaiting_approval" else ""
    who = f" · asked by <@{schedule.user_id}>" if owner else ""
    return f"{_code(schedule)} *{name}* at {when(schedule.run_at)}{state}{who}"


def _rows(
    schedules: Sequence[ScheduleRecord], names: Mapping[str, str], owner: bool = False
) -> list[dict[str, Any]]:
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _line(s, names, owner)},
            "accessory": _cancel_button(s),
        }
        for s in schedules[:_MAX_LISTED]
    ]


def scheduled_list_message(
    schedules: Sequence[ScheduleRecord], names: Mapping[str, str], *, whose: str | None = None
) -> Message:
    """``/nexthink scheduled``: the runs not run yet, soonest first, each with Cancel."""
    owner = f"<@{whose}> has" if whose else "You have"
    if not schedules:
        text = f"{owner} no scheduled runs. Add `at 22:00` or `in 2h` to `/nexthink run` to schedule one."
        return {"text": text, "blocks": [section(text)]}
    head = f":alarm_clock: {owner} {len(schedules)} scheduled run" + (
        "s" if len(schedules) != 1 else ""
    )
    more = len(schedules) - _MAX_LISTED
    blocks = [section(f"*{head}*"), *_rows(schedules, names, owner=whose is not None)]
    if more > 0:
        blocks.append(context(f"and {more} more"))
    return {"text": head, "blocks": blocks}


def cancel_answer_message(answer: CancelAnswer, key: str) -> Message:
    """What ``/nexthink cancel`` or a Cancel button answers the person who asked."""
    typed = code(outside(key), 40)
    schedule = answer.schedule
    if answer.reason == "cancelled" and schedule is not None:
        text = (
            f":wastebasket: The scheduled run {_code(schedule)} ({code(outside(schedule.workflow))}, "
            f"due {when(schedule.run_at)}) is cancelled: it will not run."
        )
    elif answer.reason == "already" and schedule is not None:
        how = {
            "running": "is running right now",
            "ran": "has already run",
            "missed": "was missed (the bot was down at its time)",
            "refused": "was refused by the policy at its time",
            "cancelled": "was already cancelled",
            "closed": "was closed",
        }.get(schedule.state, f"is {schedule.state}")
        text = f":information_source: The scheduled run {_code(schedule)} {how}, so it cannot be cancelled."
    else:
        text = (
            f":mag: There is no scheduled run {typed} of yours. `/nexthink scheduled` lists them."
        )
    return {"text": text, "blocks": [section(text)]}


def schedule_news_message(
    schedule: ScheduleRecord, record: RequestRecord, news: ScheduleNews, workflow_name: str
) -> Message:
    """What the requester is told when the time came (a run that ran: its run reply, headed)."""
    name = shown(outside(workflow_name), 200)
    ref = f"Your scheduled run {_code(schedule)} of *{name}*, due {when(schedule.run_at)},"
    if news.event == "ran" and news.result is not None:
        message = run_result_message(news.result)
        note = context(
            f":alarm_clock: Scheduled run {_code(schedule)}, due {when(schedule.run_at)}"
        )
        return {**message, "blocks": [note, *message.get("blocks", [])][:50]}
    if news.event == "missed":
        text = (
            f":hourglass: {ref} did *not* run: the bot could not start it in time "
            f"({shown(outside(news.reason))}, more than the policy's `max_late_minutes`). "
            "Run it again if it is still needed."
        )
    elif news.event == "refused":
        text = f":no_entry: {ref} did *not* run: {news.reason}"
    elif news.event == "approved":
        text = f":white_check_mark: {ref} was approved: it runs at its time."
    elif news.event == "cancelled":
        text = f":wastebasket: {ref} was cancelled by <@{news.user_id}>: it will not run."
    else:
        text = (
            f":warning: {ref} was being sent when the bot stopped, so it *may or may not have "
            "run*. Check `/nexthink history` or Nexthink before running it again."
        )
    targets = _labels(record)
    blocks = [section(text)]
    if targets:
        blocks.append(context(f"Targets: {targets_text(targets)}"))
    return {"text": text.replace("*", ""), "blocks": blocks}


def schedule_home_blocks(
    schedules: Sequence[ScheduleRecord], names: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The Home tab's "Scheduled runs" section (nothing when there are none)."""
    if not schedules:
        return []
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Scheduled runs"}},
        *_rows(schedules, names),
        context("Times are shown in your time zone. The policy is checked again when each runs."),
        {"type": "divider"},
    ]


def with_schedule(message: Message, schedule: ScheduleRecord) -> Message:
    """An approval request for a scheduled run: when it would run, under its first block."""
    note = context(
        f":alarm_clock: Scheduled for {when(schedule.run_at)} (scheduled run {_code(schedule)}): "
        "approved, it runs then, not now."
    )
    blocks = list(message.get("blocks") or [])
    return {**message, "blocks": [*blocks[:1], note, *blocks[1:]][:50]}
