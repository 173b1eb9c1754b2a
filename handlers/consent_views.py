"""Messages for consent (pure Block Kit builders): the question to the person a run targets,
with Allow and Not now; that question once answered; what the requester reads; and the
clicker's answer when a click did nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.consent import ConsentClick
from bot.notifier import Asked, ConsentNews
from bot.store import ConsentRecord, RequestRecord
from handlers import ids
from handlers.blocks import Message, Outside, button, code, context, fields, outside, section, shown
from handlers.blocks import when as when_text
from handlers.views import params_text, refusal_message, targets_text

__all__ = [
    "click_answer_text",
    "consent_message",
    "consent_news_message",
    "consents_asked_message",
    "requester_consent_message",
]

_ANSWERS = {
    "not_found": "This request for your consent is no longer known to the bot.",
    "expired": "This request for consent has expired; nothing was run.",
    "settled": "This request for consent was already answered.",
}


def click_answer_text(answer: ConsentClick) -> str:
    """What the clicker alone reads after an Allow or Not now that did nothing."""
    if answer.reason == "not_asked":
        whom = f"<@{answer.consent.user_id}>" if answer.consent else "someone else"
        return f"This asks {whom} for their consent; only they can answer it."
    return _ANSWERS[answer.reason]


def _head(record: RequestRecord, name: Outside) -> str:
    workflow = code(outside(record.workflow_id or ""), 100)
    return (
        f":raising_hand: <@{record.user_id}> asks to run *{shown(name, 200)}* ({workflow}) on you."
    )


def consent_message(consent: ConsentRecord, record: RequestRecord, name: Outside) -> Message:
    """The direct message asking the person: who asks, which workflow, with what parameters,
    when it expires, and Allow / Not now."""
    blocks: list[dict[str, Any]] = [
        section(_head(record, name)),
        fields(
            [
                ("On", targets_text([consent.label])),
                ("Parameters", params_text(record.params)),
                ("Expires", when_text(consent.expires_at)),
            ]
        ),
        {
            "type": "actions",
            "block_id": f"consent:{consent.id}"[:255],
            "elements": [
                button("Allow", ids.CONSENT_ALLOW, consent.id, "primary"),
                button("Not now", ids.CONSENT_NOT_NOW, consent.id),
            ],
        },
        context("Nothing runs on you before you allow it. Not now tells them it did not run."),
    ]
    text = f"<@{record.user_id}> asks to run {shown(name, 200)} on you: Allow or Not now?"
    return {"text": text, "blocks": blocks}


def _settled_line(news: ConsentNews) -> str:
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
    line = _settled_line(news)
    return {
        "text": f"{shown(name, 200)}: {line}",
        "blocks": [section(_head(record, name)), section(line)],
    }


def consents_asked_message(
    workflow_id: str, name: Outside, asked: Sequence[Asked], targets: Sequence[str]
) -> Message:
    """The requester's reply once the people a run targets were asked."""
    workflow = code(outside(workflow_id), 100)
    ok = [a for a in asked if a.consent is not None]
    lines = [
        f":hourglass: *{shown(name, 200)}* ({workflow}) runs on someone only after they allow it."
    ]
    for a in ok:
        assert a.consent is not None
        lines.append(
            f"• <@{a.person}> ({shown(outside(a.label), 200)}): asked by direct message, "
            f"until {when_text(a.consent.expires_at)}."
        )
    for a in asked:
        if a.consent is None:
            lines.append(
                f"• <@{a.person}> ({shown(outside(a.label), 200)}): could not be asked (Slack "
                f"answered {code(outside(a.error or 'an error'), 100)}); nothing runs for them."
            )
    lines.append("Nothing was sent to Nexthink for them yet; you are told when each answers.")
    blocks = [section("\n".join(lines))]
    if targets:
        blocks.append(context("Runs at once on: " + targets_text(targets)))
    return {"text": f"{shown(name, 200)}: waiting for consent", "blocks": blocks}


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
