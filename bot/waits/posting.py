"""A question arrives: record the wait once, post it once, answer where it is.

Copies of one execution's webhook post one after the other (``one_post_at_a_time``), so the later
ones find the first one's message; across replicas the store keeps one message and the other is
withdrawn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot.deciders import Deciders
from bot.logging import get_logger
from bot.notifier import NotPosted
from bot.store import NudgePlan, WaitOption, WaitRecord
from bot.waits.deps import WaitDeps
from bot.waits.request import WaitRequest
from bot.workspaces import current, working_in

__all__ = ["WaitRefused", "mention_of", "post_wait", "slack_user_for_upn"]

log = get_logger(__name__)

#: Slack errors that mean the destination is wrong (the workflow's fault), not Slack's trouble
_BAD_DESTINATION = {"channel_not_found", "not_in_channel", "is_archived", "not_installed"}
_HINTS = {
    "not_in_channel": " (invite the bot to the channel)",
    "channel_not_found": " (invite the bot to the channel)",
    # OAuth installs: no installation serves the team named, or none was named among several
    "not_installed": (
        " (no installation of the Slack app serves it: name the workspace T… or org E… "
        "the app is installed in as team)"
    ),
}


class WaitRefused(Exception):
    """The question cannot be posted: ``bad_request`` (the webhook named a wrong destination)
    or ``slack_failed`` (Slack refused for another reason)."""

    def __init__(self, kind: Literal["bad_request", "slack_failed"], error: str) -> None:
        super().__init__(error)
        self.kind = kind
        self.error = error


#: executions whose question this process is posting, and how many webhooks wait on each
_posting: dict[str, tuple[asyncio.Lock, int]] = {}


@asynccontextmanager
async def one_post_at_a_time(key: str) -> AsyncIterator[None]:
    """Copies of one execution's webhook arriving together post one after the other, so the later
    ones find the first one's message instead of posting their own (within this process)."""
    lock, users = _posting.get(key, (asyncio.Lock(), 0))
    _posting[key] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        lock, users = _posting[key]
        if users > 1:
            _posting[key] = (lock, users - 1)
        else:
            del _posting[key]


async def post_wait(
    deps: WaitDeps, req: WaitRequest, *, now: datetime | None = None
) -> tuple[WaitRecord, str, str]:
    """Record the wait and post its question; raises ``WaitRefused``.

    ``now`` (default: the current time) is when the question arrived; its expiry counts from it.
    """
    async with one_post_at_a_time(f"{req.workflow_uuid}/{req.execution_uuid}".lower()):
        with working_in(req.workspace):  # the Slack asked in: the webhook's team, else the bot's
            return await _post_wait(deps, req, now or datetime.now(UTC))


async def _destination(deps: WaitDeps, req: WaitRequest) -> tuple[str, str | None]:
    """Where the question goes, and whom it mentions."""
    if not req.user:
        assert req.channel is not None
        return req.channel, None
    user_id = await slack_user_for_upn(deps, req.user)
    channel = req.channel
    if channel is None:
        if user_id is None:
            raise WaitRefused("bad_request", f"user: no Slack user has the email {req.user}")
        channel = user_id  # a post to a user id opens the DM with the bot
    return channel, f"<@{user_id}>" if user_id else req.user


async def _post_wait(
    deps: WaitDeps, req: WaitRequest, now: datetime
) -> tuple[WaitRecord, str, str]:
    channel, mention = await _destination(deps, req)
    plan = NudgePlan(req.remind_after_minutes, req.escalate_after_minutes, tuple(req.escalate_to))
    expires_at = now + timedelta(minutes=req.expires_in_minutes)
    wait, created = await deps.store.create_wait(
        workflow_uuid=req.workflow_uuid,
        execution_uuid=req.execution_uuid,
        text=req.text,
        options=[
            WaitOption(label=o.label, style=o.style, parameters=dict(o.parameters))
            for o in req.options
        ],
        expires_at=expires_at,
        channel_id=req.channel,
        dm_user_upn=req.user,
        approvers=list(req.approvers),
        approver_parameter=req.approver_parameter,
        requester_upn=req.requester,
        plan=plan,
        next_nudge_at=plan.next_at(now, now, expires_at),
        team_id=current().team_id,
        enterprise_id=current().enterprise_id,
        now=now,
    )
    if not created and wait.message_channel and wait.message_ts:
        log.info("wait_repeated", wait=wait.id)
        return wait, wait.message_channel, wait.message_ts
    try:
        message_channel, ts = await deps.notifier.ask_wait(wait, channel, mention)
    except NotPosted as exc:
        # the wait stays pending without a message: a repeated webhook posts it again
        hint = _HINTS.get(exc.error, "")
        kind: Literal["bad_request", "slack_failed"] = (
            "bad_request" if exc.error in _BAD_DESTINATION else "slack_failed"
        )
        raise WaitRefused(kind, f"Slack refused the message: {exc.error}{hint}") from None
    placed = await deps.store.set_wait_message(wait.id, message_channel, ts)
    if placed.message_ts != ts and placed.message_channel and placed.message_ts:
        # another replica posted the same question first: keep one message in Slack
        await deps.notifier.withdraw(message_channel, ts)
        log.info("wait_posted_twice", wait=wait.id, kept=placed.message_ts)
        return placed, placed.message_channel, placed.message_ts
    log.info("wait_posted", wait=wait.id, execution=wait.execution_uuid, channel=message_channel)
    await deps.audit.record_wait(
        "question_posted",
        placed,
        targets=[_asked(placed, message_channel)],
        params={
            "question_id": placed.id,
            "options": [o.label for o in placed.options],
            "requester": placed.requester_upn,
            "approvers": list(placed.approvers),
        },
        result="posted",
    )
    return placed, message_channel, ts


def _asked(wait: WaitRecord, channel: str) -> dict[str, str]:
    """Where the question went: a person's direct messages, or a channel."""
    if wait.dm_user_upn and not wait.channel_id:
        return {"kind": "user", "upn": wait.dm_user_upn, "channel": channel}
    return {"kind": "channel", "channel": channel}


async def slack_user_for_upn(deps: Deciders, upn: str) -> str | None:
    """The Slack user whose email is ``upn`` (or one the policy rewrites to it)."""
    user_id = await deps.identity.user_for_email(upn)
    if user_id is None:  # the UPN may be the rewritten form of the Slack email
        for email in deps.policy.emails_for_upn(upn):
            user_id = await deps.identity.user_for_email(email)
            if user_id:
                break
    return user_id


async def mention_of(deps: Deciders, wait: WaitRecord) -> str | None:
    """The mention of the question's ``user``, as ``post_wait`` showed it."""
    if not wait.dm_user_upn:
        return None
    try:
        user_id = await slack_user_for_upn(deps, wait.dm_user_upn)
    except Exception:
        user_id = None
    return f"<@{user_id}>" if user_id else wait.dm_user_upn
