"""Messages for bot-side approvals (pure Block Kit builders): the request with Approve and Deny,
the request once settled, what each ``ApprovalNews`` and ``RequesterNews`` reads like, the deny
form, and the clicker's answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.approvals import ApprovalNotPosted, VoteAnswer
from bot.notifier import ApprovalNews, RequesterNews
from bot.reminders import Awaited
from bot.runs import PreparedRun
from bot.store import ApprovalRecord, ApprovalVote, RequestRecord
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
from handlers.views import params_text, refusal_message, targets_text, text_message
from handlers.wait_views import escalation_text, principal_text

__all__ = [
    "approval_message",
    "approval_news_message",
    "approval_settled_message",
    "approve_comment_view",
    "deny_reason_view",
    "not_posted_message",
    "pending_message",
    "requester_news_message",
    "vote_answer_text",
    "waiting_on_text",
]

_ANSWERS = {
    "not_found": "This approval request is no longer known to the bot.",
    "expired": "This approval request has expired.",
    "not_pending": "This approval request was already settled.",
    "already_voted": "You already approved this request; another approver is needed.",
    "own_request": "You cannot approve your own request.",
    "not_counted": "Your approval was not counted.",
    "not_deniable": "This request can no longer be denied.",
    "reason_required": (
        "A reason is required to deny this request: click *Deny* again and write why in the form. "
        "Nothing was denied."
    ),
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
        whose = f" for <@{answer.for_user_id}>" if answer.for_user_id else ""
        return f"Your approval{whose} was counted ({answer.votes} of {answer.count})."
    return _ANSWERS.get(answer.reason, _ANSWERS["not_counted"])


def approval_message(
    approval: ApprovalRecord,
    request: RequestRecord,
    *,
    workflow_name: Outside,
    targets: Sequence[str],
) -> Message:
    votes = len(approval.votes)
    voters = " — " + _voters_text(approval.votes) if votes else ""
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
    ]
    escalation = escalation_text(
        approval.plan.escalate_to,
        approval.plan.escalates_at(approval.created_at) if approval.approvers else None,
    )
    if escalation:
        blocks.append(section(escalation))
    blocks.extend(_comments(approval.votes))
    blocks.append(approve_deny_block(f"approval:{approval.id}", approval.id))
    if approval.approvers:
        blocks.append(
            context(
                "Who may approve: "
                + ", ".join(principal_text(a) for a in approval.approvers[:10])
                + " (never the requester)"
            )
        )
    return {"text": f"Approval needed: {name} for <@{request.user_id}>", "blocks": blocks}


def _voter(vote: ApprovalVote) -> str:
    return f"<@{vote.cast_by}> for <@{vote.user_id}>" if vote.cast_by else f"<@{vote.user_id}>"


def _voters_text(votes: Sequence[ApprovalVote]) -> str:
    return ", ".join(_voter(v) for v in votes)


def _comments(votes: Sequence[ApprovalVote]) -> list[dict[str, Any]]:
    """One line per approver's comment, as typed."""
    return [
        context(f":speech_balloon: {_voter(v)}: “{shown(outside(v.comment), 1000)}”")
        for v in votes
        if v.comment
    ][:10]


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
    blocks.extend(_comments(approval.votes))
    if detail:
        blocks.append(context(detail))
    return {"text": f"{name}: {headline}", "blocks": blocks}


def _why(reason: str | None) -> str:
    return f" — “{shown(outside(reason), 500)}”" if reason else ""


def _headline(news: ApprovalNews, approval: ApprovalRecord) -> str:
    voters = _voters_text(approval.votes) or "the approvers"
    if news.event == "sending":
        return ":hourglass_flowing_sand: Approved; sending to Nexthink…"
    if news.event == "executed":
        return f":white_check_mark: Approved by {voters}; Nexthink request {_request_ids(news.detail)}."
    if news.event == "failed":
        return f":x: Approved by {voters}, but the run failed: {shown(outside(news.detail), 1000)}."
    if news.event == "consent":
        return (
            f":white_check_mark: Approved by {voters}; now waiting for the consent of "
            f"{shown(outside(news.detail), 1000)}, who are asked by direct message."
        )
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
        whom = f" for <@{news.for_user_id}>" if news.for_user_id else ""
        return f":no_entry: {verb} by <@{news.user_id}>{whom}{_why(news.reason)}"
    return ":hourglass: Expired without enough approvals; nothing was run."


def approval_news_message(
    approval: ApprovalRecord, record: RequestRecord, name: Outside, news: ApprovalNews
) -> Message:
    """The approval request's message after ``news``."""
    if news.event in ("votes", "escalated"):
        labels = [str(t.get("label")) for t in record.targets]
        return approval_message(approval, record, workflow_name=name, targets=labels)
    headline = _headline(news, approval)
    return approval_settled_message(approval, record, workflow_name=name, headline=headline)


def requester_news_message(record: RequestRecord, news: RequesterNews) -> Message:
    """What the requester of an approval-gated run is told."""
    workflow = code(outside(record.workflow_id or ""), 100)
    who = f"<@{news.cast_by}> (for <@{news.user_id}>)" if news.cast_by else f"<@{news.user_id}>"
    if news.event == "approved":
        return text_message(
            f":speech_balloon: {who} approved your request to run {workflow} and commented: "
            f"“{shown(outside(news.reason or ''), 1000)}”"
        )
    if news.event == "denied":
        text = (
            f"{who} denied your request to run {workflow}{_why(news.reason)}. "
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


def waiting_on_text(waiting: Sequence[Awaited], approvers: Sequence[str]) -> str:
    """Whom a request waits on: the people (and stand-ins) when the bot can name them, else the
    approvers as configured."""
    if waiting:
        people = [
            f"<@{w.user_id}> (for <@{w.for_user_id}>)" if w.for_user_id else f"<@{w.user_id}>"
            for w in waiting[:15]
        ]
        more = f" and {len(waiting) - 15} more" if len(waiting) > 15 else ""
        return "It waits on " + ", ".join(people) + more + "."
    named = [a for a in approvers if a != "*"]
    if named:
        return "It waits on " + ", ".join(principal_text(a) for a in named[:10]) + "."
    return "Anyone but you may approve it."


def pending_message(
    prepared: PreparedRun, approval: ApprovalRecord, waiting: Sequence[Awaited] = ()
) -> str:
    """The requester's answer while their run waits for approval: where, and on whom."""
    count = approval.count
    return (
        f":raised_hand: {code(outside(prepared.entry.id))} needs approval ({count} approver"
        f"{'s' if count > 1 else ''}); the request was posted in <#{approval.message_channel}>. "
        f"{waiting_on_text(waiting, approval.approvers)} "
        "You will be told here when it is approved or denied. Nothing was sent to Nexthink yet."
    )


def not_posted_message(exc: ApprovalNotPosted) -> Message:
    """The requester's answer when the approval request could not be posted."""
    return refusal_message(
        f"{code(outside(exc.workflow_id))} needs approval, but the request could not be posted in "
        f"<#{exc.channel}> (Slack answered {code(outside(exc.error))}). Nothing was sent to Nexthink.",
        "Ask the bot's administrators to invite the bot to that channel.",
    )


def approve_comment_view(private_metadata: str) -> dict[str, Any]:
    """The form that lets an approver add a comment (``approve_comment: optional``);
    ``private_metadata`` is the sealed approval id (``bot.forms``)."""
    return {
        "type": "modal",
        "callback_id": ids.APPROVE_COMMENT_MODAL,
        "title": plain("Approve the request"),
        "submit": plain("Approve"),
        "close": plain("Cancel"),
        "private_metadata": private_metadata,
        "blocks": [
            {
                "type": "input",
                "block_id": ids.APPROVE_COMMENT_BLOCK,
                "optional": True,
                "label": plain("Comment (shown to the requester)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.APPROVE_COMMENT,
                    "multiline": True,
                    "max_length": 500,
                },
            }
        ],
    }


def deny_reason_view(private_metadata: str, *, required: bool = False) -> dict[str, Any]:
    """The form that asks an approver why they deny (``required``: it cannot be left empty);
    ``private_metadata`` is the sealed approval id (``bot.forms``)."""
    label = (
        "Reason (required; shown to the requester)"
        if required
        else "Reason (shown to the requester)"
    )
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
                "optional": not required,
                "label": plain(label),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.DENY_REASON,
                    "multiline": True,
                    "max_length": 500,
                },
            }
        ],
    }
