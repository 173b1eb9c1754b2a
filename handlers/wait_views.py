"""Messages for paused executions (pure Block Kit builders): the question with its buttons, the
question once settled, what each ``WaitNews`` reads like, and the clicker's refusals."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.notifier import WaitNews
from bot.store import WaitRecord
from bot.waits import ClickRefused
from handlers import ids
from handlers.blocks import Message, button, code, context, outside, section, shown, when

__all__ = [
    "UNKNOWN_BUTTON",
    "click_refusal_text",
    "decided_line",
    "decision_action_id",
    "escalation_text",
    "principal_text",
    "resumed_by_question_text",
    "wait_buttons",
    "wait_message",
    "wait_news_message",
    "wait_settled_message",
]

UNKNOWN_BUTTON = "This button does not belong to a question the bot knows."

_REFUSALS = {
    "unknown": UNKNOWN_BUTTON,
    "not_found": "This question is no longer known to the bot.",
    "expired": "This question has expired; nothing was sent to Nexthink.",
    "in_progress": "{who} is deciding this right now.",
    "decided": "This was already decided by {who} {when}.",
    "failed": "This was already answered by {who} {when}, and Nexthink refused it.",
    "own_request": "You asked for this, so someone else has to decide it.",
}

_RETRY = (
    "An approver may try again; if the execution was already resumed, Nexthink will refuse the "
    "second try."
)


def decision_action_id(index: int) -> str:
    """The action id of option ``index``'s button: Slack refuses an actions block whose elements
    share an action id, so each button gets ``WAIT_DECISION`` plus its index."""
    return f"{ids.WAIT_DECISION}:{index}"


def wait_buttons(wait: WaitRecord, block_id: str) -> dict[str, Any]:
    """One button per option (channel message and Home tab alike)."""
    buttons = [
        button(option.label, decision_action_id(index), f"{wait.id}:{index}", option.style)
        for index, option in enumerate(wait.options)
    ]
    return {"type": "actions", "block_id": block_id[:255], "elements": buttons[:25]}


def principal_text(value: str) -> str:
    """An approver as written in the policy or the webhook: a mention, a handle or a UPN."""
    if value.startswith(("U", "W")) and value.isalnum() and value.isascii() and len(value) <= 20:
        return f"<@{value}>"
    if value.startswith("@"):
        return code(outside(value), 100)
    return shown(outside(value), 200)


def escalation_text(
    escalate_to: Sequence[str], escalates_at: datetime | None, now: datetime | None = None
) -> str | None:
    """The line that says who may decide too once the request escalates, and since when."""
    if escalates_at is None or not escalate_to:
        return None
    people = ", ".join(principal_text(a) for a in escalate_to[:10])
    if (now or datetime.now(UTC)) >= escalates_at:
        return f":arrow_double_up: *Escalated* {when(escalates_at)}: {people} may decide too."
    return f"If nobody decides by {when(escalates_at)}, {people} may decide too."


_USER_MENTION = re.compile(r"<@[UW][A-Z0-9]{2,20}>")


def _mention(value: str) -> str:
    """The question's addressee: the core's mention of a Slack user, else the UPN as written."""
    return value if _USER_MENTION.fullmatch(value) else shown(outside(value), 200)


def _request_ids(detail: str) -> str:
    """Nexthink's request ids, as the core lists them ("`id`, `id`"), in code spans."""
    ids_ = [part.strip().strip("`") for part in detail.split(",")]
    return ", ".join(code(outside(i), 100) for i in ids_ if i) or "none"


def wait_message(
    wait: WaitRecord, *, mention: str | None = None, note: str | None = None
) -> Message:
    """The question with one button per option (still open)."""
    question = shown(outside(wait.text), 2800)
    text = question
    if mention:
        text = f"{_mention(mention)} {text}"
    blocks: list[dict[str, Any]] = [section(text)]
    if note:
        blocks.append(section(note))
    escalation = escalation_text(
        wait.plan.escalate_to, wait.plan.escalates_at(wait.created_at) if wait.approvers else None
    )
    if escalation:
        blocks.append(section(escalation))
    blocks.append(wait_buttons(wait, f"wait:{wait.id}"))
    who = ""
    if wait.approvers:
        who = "Who may decide: " + ", ".join(principal_text(a) for a in wait.approvers[:10]) + " · "
    blocks.append(
        context(
            f"{who}Expires {when(wait.expires_at)} · Nexthink execution "
            + code(outside(wait.execution_uuid), 100)
        )
    )
    return {"text": question, "blocks": blocks}


def wait_settled_message(wait: WaitRecord, *, headline: str, detail: str | None = None) -> Message:
    """The question after it was decided, failed or expired: no buttons left to click."""
    question = shown(outside(wait.text), 2000)
    blocks: list[dict[str, Any]] = [section(question), section(headline)]
    if detail:
        blocks.append(context(detail))
    blocks.append(
        context(
            f"Nexthink workflow {code(outside(wait.workflow_uuid), 100)} · "
            f"execution {code(outside(wait.execution_uuid), 100)}"
        )
    )
    return {"text": f"{question} — {headline}", "blocks": blocks}


def decided_line(
    emoji: str, who: str, label: str, at: datetime, for_user: str | None = None
) -> str:
    """ "*Approve* — decided by @bob for @carol 10:02": ``for_user``, whom a stand-in decided for."""
    on_behalf = f" for <@{for_user}>" if for_user else ""
    return f"{emoji} *{shown(outside(label), 75)}* — decided by <@{who}>{on_behalf} {when(at)}"


def wait_news_message(wait: WaitRecord, news: WaitNews) -> Message:
    """The question's message after ``news``."""
    who, label = f"<@{news.user_id}>", f"*{shown(outside(news.option_label), 75)}*"
    if news.for_user_id:
        who += f" (for <@{news.for_user_id}>)"
    at = when(news.at) if news.at else ""
    if news.event == "expired":
        headline = (
            ":hourglass: This question expired; nothing was sent to Nexthink."
            if news.on_click
            else ":hourglass: This question expired without a decision; nothing was sent to Nexthink."
        )
        return wait_settled_message(wait, headline=headline)
    if news.event == "sending":
        headline = f":hourglass_flowing_sand: {who} chose {label}; sending it to Nexthink…"
        return wait_settled_message(wait, headline=headline)
    if news.event == "refused":
        return wait_settled_message(
            wait,
            headline=(
                f":x: {who} chose {label} {at}, but Nexthink refused it: "
                + shown(outside(news.detail), 1000)
            ),
            detail="The question is closed; nothing was resumed.",
        )
    if news.event == "decided":
        emoji = ":white_check_mark:" if news.option_style != "danger" else ":no_entry_sign:"
        assert news.user_id is not None
        assert news.at is not None
        return wait_settled_message(
            wait,
            headline=decided_line(
                emoji, news.user_id, news.option_label, news.at, news.for_user_id
            ),
            detail=f"Nexthink resumed the execution: request {_request_ids(news.detail)}",
        )
    if news.event == "escalated":
        return wait_message(wait, mention=news.mention)
    return wait_message(wait, mention=news.mention, note=_reopened_note(news))


def _reopened_note(news: WaitNews) -> str:
    who, label = f"<@{news.user_id}>", f"*{shown(outside(news.option_label), 75)}*"
    if news.event == "unclear":
        return (
            f":warning: {who}'s {label} did not get a clear answer from Nexthink "
            f"({shown(outside(news.detail), 1000)}). {_RETRY}"
        )
    if news.event == "interrupted":
        return f":warning: The bot restarted while sending {who}'s {label} to Nexthink. {_RETRY}"
    return (
        ":warning: A decision was started but the bot stopped before Nexthink answered, so the "
        "execution may or may not have been resumed. Try again: if it was, Nexthink refuses "
        "the second answer."
    )


def click_refusal_text(refused: ClickRefused) -> str:
    """What the clicker alone reads when their click did nothing."""
    if refused.reason == "policy":
        return refused.text
    who = f"<@{refused.by}>" if refused.by else "someone"
    moment = when(refused.at) if refused.at else ""
    return _REFUSALS.get(refused.reason, UNKNOWN_BUTTON).format(who=who, when=moment)


def resumed_by_question_text(wait: WaitRecord) -> str:
    """What the resumer reads once ``/nexthink resume`` decided the execution's question."""
    where = (
        f" in <#{wait.message_channel}>"
        if wait.message_channel and wait.message_channel[0] in "CG"
        else ""
    )
    return (
        ":arrow_forward: The execution had a question waiting, so your resume was taken as your "
        f"answer to it: its message{where} shows who decided, when, and Nexthink's answer."
    )
