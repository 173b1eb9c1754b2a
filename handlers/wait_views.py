"""Messages for paused executions and bot-side approvals (pure Block Kit builders)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.store import ApprovalRecord, RequestRecord, WaitRecord
from handlers import ids
from handlers.views import Message, _clip, _context, _fields, _section, _when, mrkdwn_escape

__all__ = [
    "approval_message",
    "approval_settled_message",
    "decision_action_id",
    "wait_message",
    "wait_settled_message",
]


def _button(text: str, action_id: str, value: str, style: str | None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": _clip(text, 75)},
        "action_id": action_id,
        "value": value,
    }
    if style in {"primary", "danger"}:
        button["style"] = style
    return button


def decision_action_id(index: int) -> str:
    """The action id of option ``index``'s button: Slack refuses an actions block whose elements
    share an action id, so each button gets ``WAIT_DECISION`` plus its index."""
    return f"{ids.WAIT_DECISION}:{index}"


def wait_message(
    wait: WaitRecord, *, mention: str | None = None, note: str | None = None
) -> Message:
    """The question with one button per option (still open)."""
    text = mrkdwn_escape(wait.text)
    if mention:
        text = f"{mention} {text}"
    buttons = [
        _button(option.label, decision_action_id(index), f"{wait.id}:{index}", option.style)
        for index, option in enumerate(wait.options)
    ]
    blocks: list[dict[str, Any]] = [_section(text)]
    if note:
        blocks.append(_section(note))
    blocks.append(
        {"type": "actions", "block_id": f"wait:{wait.id}"[:255], "elements": buttons[:25]}
    )
    who = ""
    if wait.approvers:
        who = "Who may decide: " + ", ".join(_principal(a) for a in wait.approvers[:10]) + " · "
    blocks.append(
        _context(
            f"{who}Expires {_when(wait.expires_at)} · Nexthink execution `{wait.execution_uuid}`"
        )
    )
    return {"text": _clip(wait.text, 3000), "blocks": blocks}


def wait_settled_message(wait: WaitRecord, *, headline: str, detail: str | None = None) -> Message:
    """The question after it was decided, failed or expired: no buttons left to click."""
    blocks: list[dict[str, Any]] = [_section(mrkdwn_escape(wait.text)), _section(headline)]
    if detail:
        blocks.append(_context(detail))
    blocks.append(
        _context(f"Nexthink workflow `{wait.workflow_uuid}` · execution `{wait.execution_uuid}`")
    )
    return {"text": _clip(f"{wait.text} — {headline}", 3000), "blocks": blocks}


def _principal(value: str) -> str:
    if value.startswith(("U", "W")) and value.isalnum():
        return f"<@{value}>"
    if value.startswith("@"):
        return f"`{value}`"
    return mrkdwn_escape(value)


def approval_message(
    approval: ApprovalRecord,
    request: RequestRecord,
    *,
    workflow_name: str,
    targets: Sequence[str],
) -> Message:
    params = (
        ", ".join(f"`{k}={mrkdwn_escape(str(v))}`" for k, v in sorted(request.params.items()))
        or "none"
    )
    votes = len(approval.votes)
    head = f":raised_hand: <@{request.user_id}> asks to run *{mrkdwn_escape(workflow_name)}* (`{request.workflow_id}`)."
    blocks: list[dict[str, Any]] = [
        _section(head),
        _fields(
            [
                (
                    "Targets",
                    ", ".join(mrkdwn_escape(t) for t in targets[:10])
                    + (f" and {len(targets) - 10} more" if len(targets) > 10 else ""),
                ),
                ("Parameters", params),
                (
                    "Approvals",
                    f"{votes} of {approval.count}"
                    + (
                        " — " + ", ".join(f"<@{v.user_id}>" for v in approval.votes)
                        if votes
                        else ""
                    ),
                ),
                ("Expires", _when(approval.expires_at)),
            ]
        ),
        {
            "type": "actions",
            "block_id": f"approval:{approval.id}"[:255],
            "elements": [
                _button("Approve", ids.APPROVAL_APPROVE, approval.id, "primary"),
                _button("Deny", ids.APPROVAL_DENY, approval.id, "danger"),
            ],
        },
    ]
    if approval.approvers:
        blocks.append(
            _context(
                "Who may approve: "
                + ", ".join(_principal(a) for a in approval.approvers[:10])
                + " (never the requester)"
            )
        )
    return {"text": f"Approval needed: {workflow_name} for {request.user_id}", "blocks": blocks}


def approval_settled_message(
    approval: ApprovalRecord,
    request: RequestRecord,
    *,
    workflow_name: str,
    headline: str,
    detail: str | None = None,
) -> Message:
    head = f"<@{request.user_id}> asked to run *{mrkdwn_escape(workflow_name)}* (`{request.workflow_id}`)."
    blocks: list[dict[str, Any]] = [_section(head), _section(headline)]
    if detail:
        blocks.append(_context(detail))
    return {"text": f"{workflow_name}: {headline}", "blocks": blocks}


def decided_line(emoji: str, who: str, label: str, at: datetime) -> str:
    return f"{emoji} *{mrkdwn_escape(label)}* — decided by <@{who}> {_when(at)}"
