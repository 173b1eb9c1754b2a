"""Approve and Deny buttons of bot-side approvals, and the optional reason for a denial."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import approvals
from bot.logging import get_logger
from bot.runs import PreparedRun, Refusal
from bot.store import StoreError
from handlers import ids
from handlers.actions import click_of
from handlers.outcomes import announce_approval
from handlers.payloads import obj, text
from handlers.payloads import user_id as payload_user_id
from handlers.replies import reply
from handlers.views import STORE_UNAVAILABLE, refusal_message, text_message

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = ["register", "request_approval"]

log = get_logger(__name__)


async def request_approval(bot: Bot, prepared: PreparedRun, *, response_url: str | None) -> None:
    """Called by the run path for workflows that need approval: ask, and tell the requester."""
    try:
        approval = await approvals.request(bot, prepared, response_url=response_url)
    except Refusal as exc:  # the approval request could not be posted
        await reply(
            bot,
            refusal_message(exc.message, exc.hint),
            user_id=prepared.requester.user_id,
            channel_id=prepared.requester.channel_id,
            response_url=response_url,
        )
        return
    # a visible run gets its channel entry now; its thread then carries the decision
    await announce_approval(
        bot,
        prepared,
        approval,
        text_message(
            f":raised_hand: `{prepared.entry.id}` needs approval ({approval.count} approver"
            f"{'s' if approval.count > 1 else ''}); the request was posted in <#{approval.message_channel}>. "
            "You will be told here when it is approved or denied. Nothing was sent to Nexthink yet."
        ),
        response_url=response_url,
    )


def _deny_view(approval_id: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": ids.DENY_REASON_MODAL,
        "title": {"type": "plain_text", "text": "Deny the request"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"a": approval_id}),
        "blocks": [
            {
                "type": "input",
                "block_id": ids.DENY_REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason (shown to the requester)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.DENY_REASON,
                    "multiline": True,
                    "max_length": 500,
                },
            }
        ],
    }


def register(bot: Bot) -> None:
    app = bot.app

    @app.action(ids.APPROVAL_APPROVE)
    async def on_approve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, _, approval_id = click_of(body)

        async def work() -> None:
            answer = await approvals.approve(bot, approval_id, user_id)
            if answer:
                await reply(bot, text_message(answer), user_id=user_id, channel_id=channel_id)

        bot.tasks.spawn(_store_guarded(bot, work(), user_id, channel_id), name="approval_approve")

    @app.action(ids.APPROVAL_DENY)
    async def on_deny(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, _, approval_id = click_of(body)
        trigger_id = str(body.get("trigger_id") or "")

        async def work() -> None:
            approval = await bot.store.get_approval(approval_id)
            refusal = (
                "This approval request is no longer known to the bot." if approval is None else None
            )
            if approval is not None and approval.requester_id != user_id:
                _, refusal = await approvals.may_decide(bot, approval, user_id)
            if approval is not None and approval.state != "pending":
                refusal = "This approval request was already settled."
            if refusal:
                await reply(bot, refusal_message(refusal), user_id=user_id, channel_id=channel_id)
                return
            try:
                await bot.slack.views_open(trigger_id=trigger_id, view=_deny_view(approval_id))
            except SlackApiError:  # the trigger expired: deny without a reason
                answer = await approvals.deny(bot, approval_id, user_id, None)
                if answer:
                    await reply(bot, text_message(answer), user_id=user_id, channel_id=channel_id)

        bot.tasks.spawn(_store_guarded(bot, work(), user_id, channel_id), name="approval_deny")

    @app.view(ids.DENY_REASON_MODAL)
    async def on_deny_reason(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        view = obj(body.get("view"))
        try:
            approval_id = text(obj(json.loads(view.get("private_metadata") or "{}")).get("a"))
        except (ValueError, TypeError):
            approval_id = ""
        values = obj(obj(view.get("state")).get("values"))
        reason = text(obj(obj(values.get(ids.DENY_REASON_BLOCK)).get(ids.DENY_REASON)).get("value"))
        user_id = payload_user_id(body)

        async def work() -> None:
            answer = await approvals.deny(
                bot, approval_id, user_id, (reason or "").strip()[:500] or None
            )
            if answer:
                await reply(bot, text_message(answer), user_id=user_id, channel_id=None)

        bot.tasks.spawn(_store_guarded(bot, work(), user_id, None), name="approval_deny_reason")


async def _store_guarded(
    bot: Bot, work: Awaitable[None], user_id: str, channel_id: str | None
) -> None:
    """``work``, or a clear answer when the database does not answer: an approval is read from
    the store before anything is sent, and a run records Nexthink's answer even without it."""
    try:
        await work
    except StoreError as exc:
        log.error("approval_store_unavailable", error=str(exc))
        await reply(bot, text_message(STORE_UNAVAILABLE), user_id=user_id, channel_id=channel_id)
