"""Messages for consent (pure Block Kit builders): the question to the person a run targets,
with Allow and Not now; that question once answered; the requester's one reply listing each
person's state (``round_message``); the short line a visible run's thread gets per event; and
the clicker's answer when a click did nothing."""

from __future__ import annotations

from typing import Any

from bot.consent import ConsentClick
from bot.notifier import ConsentNews, PersonLine, RoundView
from bot.store import ConsentRecord, RequestRecord
from handlers import ids
from handlers.blocks import Message, Outside, button, code, context, fields, outside, section, shown
from handlers.blocks import when as when_text
from handlers.views import params_text, refusal_message, targets_text

__all__ = [
    "click_answer_text",
    "consent_buttons",
    "consent_message",
    "consent_news_message",
    "requester_consent_message",
    "round_message",
]

_ANSWERS = {
    "cancelled": "The run this asked about was cancelled; nothing runs on you.",
    "not_found": "This request for your consent is no longer known to the bot.",
    "expired": "This request for consent has expired; nothing was run.",
    "settled": "This request for consent was already answered.",
}


def click_answer_text(answer: ConsentClick) -> str:
    """What the clicker alone reads after an Allow or Not now that did nothing."""
    if answer.reason == "refused":
        return answer.text
    if answer.reason == "not_asked":
        whom = f"<@{answer.consent.user_id}>" if answer.consent else "someone else"
        return f"This asks {whom} for their consent; only they can answer it."
    return _ANSWERS[answer.reason]


def _head(record: RequestRecord, name: Outside) -> str:
    workflow = code(outside(record.workflow_id or ""), 100)
    return (
        f":raising_hand: <@{record.user_id}> asks to run *{shown(name, 200)}* ({workflow}) on you."
    )


def consent_buttons(consent: ConsentRecord, block_id: str) -> dict[str, Any]:
    """Allow and Not now, in the question and on the person's Home tab alike."""
    return {
        "type": "actions",
        "block_id": block_id[:255],
        "elements": [
            button("Allow", ids.CONSENT_ALLOW, consent.id, "primary"),
            button("Not now", ids.CONSENT_NOT_NOW, consent.id),
        ],
    }


def consent_message(consent: ConsentRecord, record: RequestRecord, name: Outside) -> Message:
    """The direct message asking the person: who asks, which workflow, with what parameters,
    when it expires, and Allow / Not now."""
    later = consent.run_at is not None  # a scheduled run: it runs then, if they allow it
    blocks: list[dict[str, Any]] = [
        section(_head(record, name)),
        fields(
            [
                ("On", targets_text([consent.label])),
                ("Parameters", params_text(record.params)),
                ("Runs at" if later else "Expires", when_text(consent.expires_at)),
            ]
        ),
        consent_buttons(consent, f"consent:{consent.id}"),
        context(
            "It is scheduled: answer any time before it runs. Nothing runs on you unless you "
            "allow it; Not now tells them it will not run on you."
            if later
            else "Nothing runs on you before you allow it. Not now tells them it did not run."
        ),
    ]
    text = f"<@{record.user_id}> asks to run {shown(name, 200)} on you: Allow or Not now?"
    return {"text": text, "blocks": blocks}


def _settled_line(consent: ConsentRecord, news: ConsentNews) -> str:
    if news.event == "agreed":
        at = when_text(consent.run_at or consent.expires_at)
        return f":white_check_mark: You allowed it; it runs on you at its time, {at}."
    if news.event == "cancelled":
        why = "did not run" if news.detail else "was cancelled"
        return f":no_entry_sign: The scheduled run {why}; nothing runs on you."
    if news.event == "sending":
        return ":hourglass_flowing_sand: You allowed it; sending to Nexthink…"
    if news.event == "sent":
        uuids = ", ".join(code(outside(u.strip()), 100) for u in news.detail.split(",") if u)
        return f":white_check_mark: You allowed it; sent to Nexthink (request {uuids})."
    if news.event == "failed":
        return f":x: You allowed it, but the run failed: {shown(outside(news.detail), 500)}."
    if news.event == "refused":
        return ":no_entry_sign: You said Not now; nothing was run, and they were told."
    if news.event == "expired":
        return ":hourglass: This request expired without an answer; nothing was run."
    return (
        ":warning: You allowed it, but the bot stopped while sending it to Nexthink: whether it "
        "ran is unknown."
    )


def consent_news_message(
    consent: ConsentRecord, record: RequestRecord, name: Outside, news: ConsentNews
) -> Message:
    """The person's question after ``news``: no buttons, and what happened."""
    line = _settled_line(consent, news)
    return {
        "text": f"{shown(name, 200)}: {line}",
        "blocks": [section(_head(record, name)), section(line)],
    }


def _person_line(line: PersonLine) -> str:
    who = f"• <@{line.person}> ({shown(outside(line.label), 200)}): "
    detail = outside(line.detail)
    match line.state:
        case "asked":
            until = f", until {when_text(line.until)}" if line.until else ""
            return who + f":hourglass: asked by direct message{until}; no answer yet."
        case "not_asked":
            return who + (
                f":x: could not be asked (Slack answered {code(detail, 100)}); nothing runs for "
                "them."
            )
        case "agreed":
            return who + ":white_check_mark: allowed; it runs for them at its time."
        case "sending":
            return who + ":hourglass_flowing_sand: allowed; sending to Nexthink…"
        case "sent":
            uuids = ", ".join(code(outside(u.strip()), 100) for u in line.detail.split(",") if u)
            return who + f":white_check_mark: allowed; sent to Nexthink (request {uuids})."
        case "failed":
            return who + f":x: allowed, but the run failed: {shown(detail, 300)}."
        case "interrupted":
            return who + (
                ":warning: allowed, but the bot stopped while sending it to Nexthink: whether it "
                "ran is unknown. Check Nexthink before asking again."
            )
        case "not_now":
            return who + ":no_entry_sign: said *Not now*; nothing was sent to Nexthink for them."
        case "expired":
            return who + (
                ":hourglass: did not answer in time (expired); nothing was sent to Nexthink for "
                "them."
            )
    return who + (
        ":no_entry_sign: the scheduled run was cancelled (or not run at its time); nothing runs "
        "for them."
    )


def round_message(view: RoundView, *, schedule_code: str | None = None) -> Message:
    """The requester's one reply about the people a run asked: each with their state, as the
    store has it; re-rendered and updated in place at each change."""
    found = view.round
    name = outside(view.name)
    workflow = code(outside(found.workflow_id), 100)
    head = f"*{shown(name, 200)}* ({workflow}) runs on someone only after they allow it."
    if found.run_at is not None:
        code_text = f" ({code(outside(schedule_code), 40)})" if schedule_code else ""
        head = (
            f"*{shown(name, 200)}* ({workflow}) is scheduled for {when_text(found.run_at)}"
            f"{code_text}; it runs on someone only if they allow it before then."
        )
    lines = [f":busts_in_silhouette: {head}"]
    lines.extend(_person_line(line) for line in view.lines)
    waiting = [line for line in view.lines if line.state == "asked"]
    if waiting:
        lines.append(
            "Nothing is sent to Nexthink for anyone before they allow it; this message shows "
            "each answer as it comes."
        )
    blocks = [section("\n".join(lines))]
    if found.rest:
        blocks.append(context("Runs at once on: " + targets_text(list(found.rest))))
    summary = f"{len(view.lines) - len(waiting)} of {len(view.lines)} answered"
    return {"text": f"{shown(name, 200)}: consent, {summary}", "blocks": blocks}


def requester_consent_message(
    consent: ConsentRecord, record: RequestRecord, name: Outside, news: ConsentNews
) -> Message | None:
    """What the requester is told of a person's answer (None: the run result tells them)."""
    who = f"<@{consent.user_id}>"
    what = f"*{shown(name, 200)}* ({code(outside(record.workflow_id or ''), 100)})"
    if news.event == "refused":
        text = f"{who} said *Not now* to {what}: nothing was sent to Nexthink for them."
    elif news.event == "expired":
        text = (
            f"{who} did not answer in time, so {what} was not run for them: nothing was sent "
            "to Nexthink."
        )
    elif news.event == "interrupted":
        text = (
            f"{who} allowed {what}, but the bot stopped while sending it to Nexthink, so "
            f"whether it ran is unknown (bot record {code(outside(record.id))}). Check Nexthink "
            "before asking again."
        )
    else:
        return None
    return refusal_message(text)
