"""Messages for bot-side approvals (pure Block Kit builders): the request with Approve and Deny,
the request once settled, what each ``ApprovalNews`` and ``RequesterNews`` reads like, the deny
form, and the clicker's answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.approvals import ApprovalNotPosted, VoteAnswer
from bot.notifier import ApprovalNews, RequesterNews
from bot.runs import PreparedRun
from bot.store import ApprovalRecord, RequestRecord
from handlers import ids
from handlers.blocks import (
    Message,
    Outside,
    approve_deny_block,
    code,
    context,
    fields,
    outside,
    plain,
    section,
    shown,
    when,
)
from handlers.views import params_text, refusal_message, targets_text
from handlers.wait_views import principal_text

__all__ = [
    "approval_message",
    "approval_news_message",
    "approval_settled_message",
    "deny_reason_view",
    "not_posted_message",
    "pending_message",
    "requester_news_message",
    "vote_answer_text",
]

_ANSWERS = {
    "not_found": "This approval request is no longer known to the bot.",
    "expired": "This approval request has expired.",
    "not_pending": "This approval request was already settled.",
    "already_voted": "You already approved this request; another approver is needed.",
    "own_request": "You cannot approve your own request.",
    "not_counted": "Your approval was not counted.",
    "not_deniable": "This request can no longer be denied.",
}


def _request_ids(detail: str) -> str:
    """Nexthink's request ids as the core lists them ("`id`, `id`"), in code spans."""
    found = [part.strip().strip("`") for part in detail.split(",")]
    return ", ".join(code(outside(i), 100) for i in found if i) or "none"


def vote_answer_text(answer: VoteAnswer) -> str:
    """What the clicker alone reads after an Approve or Deny click."""
    if answer.reason == "policy":
        return answer.text
    if answer.reason == "counted":
        return f"Your approval was counted ({answer.votes} of {answer.count})."
    return _ANSWERS.get(answer.reason, _ANSWERS["not_counted"])


def approval_message(
    approval: ApprovalRecord,
    request: RequestRecord,
    *,
    workflow_name: Outside,
    targets: Sequence[str],
) -> Message:
    votes = len(approval.votes)
    voters = " — " + ", ".join(f"<@{v.user_id}>" for v in approval.votes) if votes else ""
    name = shown(workflow_name, 200)
    workflow = code(outside(request.workflow_id or ""), 100)
    head = f":raised_hand: <@{request.user_id}> asks to run *{name}* ({workflow})."
    blocks: list[dict[str, Any]] = [
        section(head),
        fields(
            [
                ("Targets", targets_text(targets)),
                ("Parameters", params_text(request.params)),
                ("Approvals", f"{votes} of {approval.count}{voters}"),
                ("Expires", when(approval.expires_at)),
            ]
        ),
        approve_deny_block(f"approval:{approval.id}", approval.id),
    ]
    if approval.approvers:
        blocks.append(
            context(
                "Who may approve: "
                + ", ".join(principal_text(a) for a in approval.approvers[:10])
                + " (never the requester)"
            )
        )
    return {"text": f"Approval needed: {name} for <@{request.user_id}>", "blocks": blocks}


def approval_settled_message(
    approval: ApprovalRecord,
    request: RequestRecord,
    *,
    workflow_name: Outside,
    headline: str,
    detail: str | None = None,
) -> Message:
    name = shown(workflow_name, 200)
    workflow = code(outside(request.workflow_id or ""), 100)
    head = f"<@{request.user_id}> asked to run *{name}* ({workflow})."
    blocks: list[dict[str, Any]] = [section(head), section(headline)]
    if detail:
        blocks.append(context(detail))
    return {"text": f"{name}: {headline}", "blocks": blocks}


def _why(reason: str | None) -> str:
    return f" — “{shown(outside(reason), 500)}”" if reason else ""


def _headline(news: ApprovalNews) -> str:
    voters = ", ".join(f"<@{v}>" for v in news.voters) or "the approvers"
    if news.event == "sending":
        return ":hourglass_flowing_sand: Approved; sending to Nexthink…"
    if news.event == "executed":
        return f":white_check_mark: Approved by {voters}; Nexthink request {_request_ids(news.detail)}."
    if news.event == "failed":
        return f":x: Approved by {voters}, but the run failed: {shown(outside(news.detail), 1000)}."
    if news.event == "interrupted":
        return (
            f":warning: Approved by {voters}, but the bot stopped while sending it to "
            "Nexthink: the outcome is unknown. Check Nexthink before asking again."
        )
    if news.event == "scheduled":
        at = when(news.at) if news.at else "its time"
        if news.detail == "cancelled":
            return f":wastebasket: Approved by {voters}, but the scheduled run was cancelled: nothing will run."
        return (
            f":alarm_clock: Approved by {voters}; it runs at {at} (scheduled run `{news.detail}`)."
        )
    if news.event in ("denied", "withdrawn"):
        verb = "Withdrawn" if news.event == "withdrawn" else "Denied"
        return f":no_entry: {verb} by <@{news.user_id}>{_why(news.reason)}"
    return ":hourglass: Expired without enough approvals; nothing was run."


def approval_news_message(
    approval: ApprovalRecord, record: RequestRecord, name: Outside, news: ApprovalNews
) -> Message:
    """The approval request's message after ``news``."""
    if news.event == "votes":
        labels = [str(t.get("label")) for t in record.targets]
        return approval_message(approval, record, workflow_name=name, targets=labels)
    return approval_settled_message(approval, record, workflow_name=name, headline=_headline(news))


def requester_news_message(record: RequestRecord, news: RequesterNews) -> Message:
    """What the requester of an approval-gated run is told."""
    workflow = code(outside(record.workflow_id or ""), 100)
    if news.event == "denied":
        text = (
            f"<@{news.user_id}> denied your request to run {workflow}{_why(news.reason)}. "
            "Nothing was sent to Nexthink."
        )
    elif news.event == "expired":
        text = (
            f"Your request to run {workflow} expired before it was approved; nothing was sent "
            "to Nexthink."
        )
    else:
        text = (
            f"Your request to run {workflow} was approved, but the bot stopped while "
            f"sending it to Nexthink, so whether it ran is unknown (bot record {code(outside(record.id))}). "
            "Check Nexthink before asking again."
        )
    return refusal_message(text)


def pending_message(prepared: PreparedRun, approval: ApprovalRecord) -> str:
    """The requester's answer while their run waits for approval."""
    count = approval.count
    return (
        f":raised_hand: {code(outside(prepared.entry.id))} needs approval ({count} approver"
        f"{'s' if count > 1 else ''}); the request was posted in <#{approval.message_channel}>. "
        "You will be told here when it is approved or denied. Nothing was sent to Nexthink yet."
    )


def not_posted_message(exc: ApprovalNotPosted) -> Message:
    """The requester's answer when the approval request could not be posted."""
    return refusal_message(
        f"{code(outside(exc.workflow_id))} needs approval, but the request could not be posted in "
        f"<#{exc.channel}> (Slack answered {code(outside(exc.error))}). Nothing was sent to Nexthink.",
        "Ask the bot's administrators to invite the bot to that channel.",
    )


def deny_reason_view(private_metadata: str) -> dict[str, Any]:
    """The form that asks an approver why they deny; ``private_metadata`` is the sealed
    approval id (``bot.forms``)."""
    return {
        "type": "modal",
        "callback_id": ids.DENY_REASON_MODAL,
        "title": plain("Deny the request"),
        "submit": plain("Deny"),
        "close": plain("Cancel"),
        "private_metadata": private_metadata,
        "blocks": [
            {
                "type": "input",
                "block_id": ids.DENY_REASON_BLOCK,
                "optional": True,
                "label": plain("Reason (shown to the requester)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.DENY_REASON,
                    "multiline": True,
                    "max_length": 500,
                },
            }
        ],
    }
