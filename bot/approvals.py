"""Bot-side approvals: a workflow with ``approval:`` in the policy runs only once enough
distinct approvers (never the requester) said yes.

``request`` records the run and posts Approve/Deny to the approval channel; ``approve`` counts
a vote atomically in the store, and the one vote that reaches the count executes the request,
exactly once; ``deny`` closes it with an optional reason. Expired requests are swept.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.catalogue import Entry
from bot.logging import get_logger
from bot.metrics import CLICKS
from bot.nexthink.models import DeviceData, UserData, Workflow
from bot.policy import Principal
from bot.runs import PreparedRun, Refusal, Requester, RunResult, Target
from bot.store import ApprovalRecord, RequestRecord, StoreError

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = [
    "STALE_AFTER",
    "approve",
    "deny",
    "may_decide",
    "request",
    "sweep_expired",
    "sweep_stale",
]

log = get_logger(__name__)

#: an approval still approved/executing after this long was abandoned by a crashed process
#: (an execute, retries and chunks included, takes a few minutes at the very most)
STALE_AFTER = timedelta(minutes=10)

_VOTE_REFUSALS = {
    "not_found": "This approval request is no longer known to the bot.",
    "expired": "This approval request has expired.",
    "not_pending": "This approval request was already settled.",
    "already_voted": "You already approved this request; another approver is needed.",
    "own_request": "You cannot approve your own request.",
}


async def request(bot: Bot, prepared: PreparedRun, *, response_url: str | None) -> ApprovalRecord:
    """Record the run as awaiting approval and ask in the approval channel."""
    from handlers.wait_views import approval_message

    rule = prepared.approval
    assert rule is not None
    record = await bot.runner.record(prepared, state="approval_pending", response_url=response_url)
    approval = await bot.store.create_approval(
        request_id=record.id,
        count=rule.count,
        expires_at=datetime.now(UTC) + timedelta(minutes=rule.expires_in_minutes),
        channel_id=rule.channel,
        approvers=list(rule.approvers),
    )
    labels = [t.label for t in prepared.targets]
    channel = approval.channel_id or prepared.requester.channel_id or prepared.requester.user_id
    try:
        posted = await bot.slack.chat_postMessage(
            channel=channel,
            **approval_message(
                approval, record, workflow_name=prepared.workflow.display_name, targets=labels
            ),
        )
    except SlackApiError as exc:
        # nobody was asked: close the approval now rather than let it expire unseen
        error = str(exc.response.get("error"))
        await bot.store.mark_approval(approval.id, "expired", expected="pending")
        await bot.store.update_request(
            record.id, state="failed", error=f"approval request not posted: {error}"
        )
        log.warning("approval_not_posted", approval=approval.id, channel=channel, error=error)
        raise Refusal(
            f"`{prepared.entry.id}` needs approval, but the request could not be posted in "
            f"<#{channel}> (Slack answered `{error}`). Nothing was sent to Nexthink.",
            hint="Ask the bot's administrators to invite the bot to that channel.",
        ) from None
    approval = await bot.store.set_approval_message(
        approval.id, str(posted.get("channel")), str(posted.get("ts"))
    )
    log.info(
        "approval_requested", approval=approval.id, request=record.id, workflow=prepared.entry.id
    )
    return approval


async def may_decide(
    bot: Bot, approval: ApprovalRecord, user_id: str
) -> tuple[Principal, str | None]:
    """The clicker as a principal, and a refusal sentence if they may not decide."""
    try:
        upn: str | None = await bot.identity.upn(user_id)
    except Exception:
        upn = None
    needs_groups = bot.policy.uses_groups or any(a.startswith("@") for a in approval.approvers)
    groups = await bot.identity.groups_of(user_id) if needs_groups else frozenset()
    principal = Principal(user_id=user_id, upn=upn, groups=groups)
    record = await bot.store.get_request(approval.request_id)
    decision = bot.policy.may_decide(
        principal,
        approvers=list(approval.approvers) or None,
        requester_upn=record.user_upn if record else None,
        requester_id=approval.requester_id,
    )
    return principal, None if decision.allowed else decision.reason


async def approve(bot: Bot, approval_id: str, user_id: str) -> str | None:
    """One Approve click; returns an ephemeral text for the clicker, or None."""
    approval = await bot.store.get_approval(approval_id)
    if approval is None:
        return _VOTE_REFUSALS["not_found"]
    if approval.requester_id == user_id:
        CLICKS.labels("approve", "own_request").inc()
        return _VOTE_REFUSALS["own_request"]
    principal, refusal = await may_decide(bot, approval, user_id)
    if refusal:
        CLICKS.labels("approve", "refused").inc()
        return refusal
    vote = await bot.store.vote_approval(approval_id, user_id, principal.upn)
    if not vote.accepted:
        CLICKS.labels("approve", vote.reason or "refused").inc()
        return _VOTE_REFUSALS.get(vote.reason or "", "Your approval was not counted.")
    CLICKS.labels("approve", "ok").inc()
    if vote.approval is None:
        return None
    record = await bot.store.get_request(vote.approval.request_id)
    if record is None:
        return None
    name = await _workflow_name(bot, record.workflow_id or "")
    if not vote.reached:
        await _show(bot, vote.approval, record, name, pending=True)
        return f"Your approval was counted ({vote.votes} of {vote.approval.count})."
    claimed = await bot.store.mark_approval(approval_id, "executing", expected="approved")
    if claimed is None:  # another process is already running it
        return None
    await _show(
        bot,
        claimed,
        record,
        name,
        headline=":hourglass_flowing_sand: Approved; sending to Nexthink…",
    )
    voters = ", ".join(f"<@{v.user_id}>" for v in claimed.votes)
    try:
        result = await _execute(bot, record)
    except asyncio.CancelledError:
        await _interrupted(bot, claimed, record, name, voters)
        raise
    try:
        done = await bot.store.mark_approval(approval_id, "executed")
    except StoreError as exc:  # the execute was sent: still tell everyone how it went
        log.error("approval_not_recorded", approval=approval_id, error=str(exc))
        done = None
    from handlers.commands import run_result_message

    if result.ok and result.execution is not None:
        uuids = ", ".join(f"`{u}`" for u in result.execution.request_uuids)
        headline = f":white_check_mark: Approved by {voters}; Nexthink request {uuids}."
    else:
        headline = f":x: Approved by {voters}, but the run failed: {result.error.summary if result.error else 'unknown error'}."
    await _show(bot, done or claimed, record, name, headline=headline)
    from handlers.outcomes import deliver_run_result  # posts where it can follow the outcome

    await deliver_run_result(
        bot, result, run_result_message(result), response_url=result.record.response_url
    )
    return None


async def _interrupted(
    bot: Bot,
    approval: ApprovalRecord,
    record: RequestRecord,
    name: str,
    voters: str,
    *,
    closed: bool = False,
) -> None:
    """The bot is stopping and gave up on the execute of an approved request: whether Nexthink
    got it is unknown, and running it again could run it twice. Close the approval (else it stays
    ``executing`` for good) and say so, rather than leave everyone waiting. ``closed``: the store
    already closed it (a sweep after a crash)."""
    from handlers.views import refusal_message

    error = "interrupted: the bot stopped while sending the execute; the outcome is unknown"
    done = approval if closed else await bot.store.mark_approval(approval.id, "executed")
    record = await bot.store.update_request(record.id, state="unknown", error=error)
    await _show(
        bot,
        done or approval,
        record,
        name,
        headline=f":warning: Approved by {voters}, but the bot stopped while sending it to "
        "Nexthink: the outcome is unknown. Check Nexthink before asking again.",
    )
    await _tell_requester(
        bot,
        record,
        refusal_message(
            f"Your request to run `{record.workflow_id}` was approved, but the bot stopped while "
            f"sending it to Nexthink, so whether it ran is unknown (bot record `{record.id}`). "
            "Check Nexthink before asking again."
        ),
    )


async def deny(bot: Bot, approval_id: str, user_id: str, reason: str | None) -> str | None:
    from handlers.views import mrkdwn_escape, refusal_message

    approval = await bot.store.get_approval(approval_id)
    if approval is None:
        return _VOTE_REFUSALS["not_found"]
    if approval.requester_id != user_id:
        _, refusal = await may_decide(bot, approval, user_id)
        if refusal:
            CLICKS.labels("deny", "refused").inc()
            return refusal
    result = await bot.store.deny_approval(approval_id, user_id, reason)
    if not result.accepted or result.approval is None:
        CLICKS.labels("deny", result.reason or "refused").inc()
        return _VOTE_REFUSALS.get(result.reason or "", "This request can no longer be denied.")
    CLICKS.labels("deny", "ok").inc()
    record = await bot.store.update_request(result.approval.request_id, state="denied")
    name = await _workflow_name(bot, record.workflow_id or "")
    why = f" — “{mrkdwn_escape(reason)}”" if reason else ""
    withdrawn = user_id == approval.requester_id
    headline = f":no_entry: {'Withdrawn' if withdrawn else 'Denied'} by <@{user_id}>{why}"
    await _show(bot, result.approval, record, name, headline=headline)
    if not withdrawn:
        await _tell_requester(
            bot,
            record,
            refusal_message(
                f"<@{user_id}> denied your request to run `{record.workflow_id}`{why}. Nothing was sent to Nexthink."
            ),
        )
    return None


async def sweep_expired(bot: Bot, *, now: datetime | None = None) -> int:
    """Close the approvals that expired by ``now`` (default: the current time) and tell their
    requesters; returns how many."""
    from handlers.views import refusal_message

    expired = await bot.store.expire_approvals(now)
    for approval in expired:
        record = await bot.store.update_request(approval.request_id, state="expired")
        name = await _workflow_name(bot, record.workflow_id or "")
        await _show(
            bot,
            approval,
            record,
            name,
            headline=":hourglass: Expired without enough approvals; nothing was run.",
        )
        await _tell_requester(
            bot,
            record,
            refusal_message(
                f"Your request to run `{record.workflow_id}` expired before it was approved; nothing was sent to Nexthink."
            ),
        )
    return len(expired)


async def _execute(bot: Bot, record: RequestRecord) -> RunResult:
    workflows = {w.id: w for w in await _safe_workflows(bot)}
    workflow = workflows.get(record.workflow_id or "") or Workflow(
        id=record.workflow_id or "unknown"
    )
    targets = tuple(_target(t) for t in record.targets)
    prepared = PreparedRun(
        requester=Requester(
            user_id=record.user_id, team_id=record.team_id, channel_id=record.channel_id
        ),
        principal=Principal(user_id=record.user_id, upn=record.user_upn, groups=frozenset()),
        entry=Entry(workflow, bot.policy.alias_for(workflow.id)),
        targets=targets,
        params={str(k): str(v) for k, v in record.params.items()},
        approval=None,
        visible=False,
        source="approval",
    )
    return await bot.runner.execute(prepared, record)


def _target(data: dict[str, Any]) -> Target:
    fields = {k: v for k, v in data.items() if k not in {"kind", "label"}}
    if data.get("kind") == "device":
        return Target(label=str(data.get("label")), device=DeviceData.model_validate(fields))
    return Target(label=str(data.get("label")), user=UserData.model_validate(fields))


async def _safe_workflows(bot: Bot) -> list[Workflow]:
    try:
        return await bot.catalogue.workflows()
    except Exception:
        return []


async def _workflow_name(bot: Bot, workflow_id: str) -> str:
    for w in await _safe_workflows(bot):
        if w.id == workflow_id:
            return w.display_name
    return workflow_id


async def _show(
    bot: Bot,
    approval: ApprovalRecord,
    record: RequestRecord,
    name: str,
    *,
    pending: bool = False,
    headline: str | None = None,
) -> None:
    from handlers.wait_views import approval_message, approval_settled_message

    if not (approval.message_channel and approval.message_ts):
        return
    labels = [str(t.get("label")) for t in record.targets]
    message = (
        approval_message(approval, record, workflow_name=name, targets=labels)
        if pending
        else approval_settled_message(approval, record, workflow_name=name, headline=headline or "")
    )
    try:
        await bot.slack.chat_update(
            channel=approval.message_channel, ts=approval.message_ts, **message
        )
    except SlackApiError as exc:
        log.warning(
            "approval_message_update_failed", approval=approval.id, error=exc.response.get("error")
        )


async def _tell_requester(bot: Bot, record: RequestRecord, message: dict[str, Any]) -> None:
    # privately, or in the run's thread when it was posted visibly in a channel
    from handlers.outcomes import tell_requester

    await tell_requester(bot, record, message)


async def sweep_stale(
    bot: Bot, *, now: datetime | None = None, older_than: timedelta = STALE_AFTER
) -> int:
    """Report approvals whose execute was interrupted by a crash (approved or executing for too
    long) as having an unknown outcome; never run them again. Returns how many."""
    closed = await bot.store.close_stale_approvals(older_than, now)
    for approval in closed:
        record = await bot.store.get_request(approval.request_id)
        if record is None:
            continue
        name = await _workflow_name(bot, record.workflow_id or "")
        voters = ", ".join(f"<@{v.user_id}>" for v in approval.votes) or "the approvers"
        await _interrupted(bot, approval, record, name, voters, closed=True)
    return len(closed)
