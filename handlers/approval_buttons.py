"""The Approve and Deny buttons of bot-side approvals, the form asking why a request is denied
(policy ``deny_reason``: ``required`` cannot be left empty, ``none`` denies at once) and the one
taking an approver's comment (``approve_comment: optional``); the decisions themselves are
``bot.approvals``, which also refuses a denial without a required reason whatever the path."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import approvals
from bot.approvals import VoteAnswer
from bot.forms import TAMPERED, TamperedForm
from bot.logging import get_logger
from bot.store import StoreError
from handlers import ids
from handlers.approval_views import approve_comment_view, deny_reason_view, vote_answer_text
from handlers.delivery import reply
from handlers.payloads import click_of, obj, text
from handlers.payloads import user_id as payload_user_id
from handlers.services import Services
from handlers.views import STORE_UNAVAILABLE, refusal_message, text_message

__all__ = ["register"]

log = get_logger(__name__)


async def _deny_refusal(bot: Services, approval_id: str, user_id: str) -> str | None:
    """Why ``user_id`` may not deny (the form is then not opened), or None."""
    approval = await bot.store.get_approval(approval_id)
    if approval is None:
        return vote_answer_text(VoteAnswer("not_found"))
    refusal = None
    if approval.requester_id != user_id:  # the requester may always withdraw
        refusal = (await approvals.may_decide(bot, approval, user_id)).refusal
    if approval.state != "pending":
        refusal = vote_answer_text(VoteAnswer("not_pending"))
    return refusal


def register(bot: Services) -> None:
    app = bot.app

    async def answer(answered: VoteAnswer | None, user_id: str, channel_id: str | None) -> None:
        if answered:
            text = vote_answer_text(answered)
            await reply(bot, text_message(text), user_id=user_id, channel_id=channel_id)

    @app.action(ids.APPROVAL_APPROVE)
    async def on_approve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, _, approval_id = click_of(body)
        trigger_id = str(body.get("trigger_id") or "")

        async def work() -> None:
            rule = await approvals.rule_for(bot, approval_id)
            if rule.approve_comment == "optional":
                refusal = await _deny_refusal(bot, approval_id, user_id)
                if refusal is None and await _approval_requester(bot, approval_id) == user_id:
                    refusal = vote_answer_text(VoteAnswer("own_request"))
                if refusal:
                    await reply(
                        bot, refusal_message(refusal), user_id=user_id, channel_id=channel_id
                    )
                    return
                try:
                    sealed = bot.forms.seal({"a": approval_id}, user_id=user_id)
                    await bot.slack.views_open(
                        trigger_id=trigger_id, view=approve_comment_view(sealed)
                    )
                    return
                except SlackApiError:  # the trigger expired: approve without a comment
                    pass
            await answer(await approvals.approve(bot, approval_id, user_id), user_id, channel_id)

        bot.tasks.spawn(_store_guarded(bot, work(), user_id, channel_id), name="approval_approve")

    @app.view(ids.APPROVE_COMMENT_MODAL)
    async def on_approve_comment(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        view = obj(body.get("view"))
        user_id = payload_user_id(body)
        approval_id = _approval_of(bot, view, user_id)
        values = obj(obj(view.get("state")).get("values"))
        block = obj(values.get(ids.APPROVE_COMMENT_BLOCK))
        comment = text(obj(block.get(ids.APPROVE_COMMENT)).get("value"))

        async def work() -> None:
            if not approval_id:
                await reply(bot, refusal_message(TAMPERED), user_id=user_id, channel_id=None)
                return
            said = (comment or "").strip()[:500] or None
            await answer(await approvals.approve(bot, approval_id, user_id, said), user_id, None)

        bot.tasks.spawn(_store_guarded(bot, work(), user_id, None), name="approval_comment")

    @app.action(ids.APPROVAL_DENY)
    async def on_deny(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, _, approval_id = click_of(body)
        trigger_id = str(body.get("trigger_id") or "")

        async def work() -> None:
            refusal = await _deny_refusal(bot, approval_id, user_id)
            if refusal:
                await reply(bot, refusal_message(refusal), user_id=user_id, channel_id=channel_id)
                return
            rule = await approvals.rule_for(bot, approval_id)
            withdrawal = await _approval_requester(bot, approval_id) == user_id
            if rule.deny_reason == "none":
                denied = await approvals.deny(bot, approval_id, user_id, None)
                await answer(denied, user_id, channel_id)
                return
            required = rule.deny_reason == "required" and not withdrawal
            sealed = bot.forms.seal({"a": approval_id}, user_id=user_id)
            try:
                await bot.slack.views_open(
                    trigger_id=trigger_id, view=deny_reason_view(sealed, required=required)
                )
            except SlackApiError:  # the trigger expired: deny without a reason, if none is needed
                denied = await approvals.deny(bot, approval_id, user_id, None)
                await answer(denied, user_id, channel_id)

        bot.tasks.spawn(_store_guarded(bot, work(), user_id, channel_id), name="approval_deny")

    @app.view(ids.DENY_REASON_MODAL)
    async def on_deny_reason(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = obj(body.get("view"))
        user_id = payload_user_id(body)
        approval_id = _approval_of(bot, view, user_id)
        values = obj(obj(view.get("state")).get("values"))
        reason = text(obj(obj(values.get(ids.DENY_REASON_BLOCK)).get(ids.DENY_REASON)).get("value"))
        if not approval_id:
            await ack(response_action="errors", errors={ids.DENY_REASON_BLOCK: TAMPERED})
            return
        if not (reason or "").strip() and await _reason_required(bot, approval_id, user_id):
            await ack(response_action="errors", errors={ids.DENY_REASON_BLOCK: REASON_NEEDED})
            return
        await ack()

        async def work() -> None:
            why = (reason or "").strip()[:500] or None
            await answer(await approvals.deny(bot, approval_id, user_id, why), user_id, None)

        bot.tasks.spawn(_store_guarded(bot, work(), user_id, None), name="approval_deny_reason")


REASON_NEEDED = "Write why you deny it: the requester is told."


def _approval_of(bot: Services, view: dict[str, Any], user_id: str) -> str:
    """The approval the form was opened for, as the bot sealed it for ``user_id``; "" when the
    form's metadata was altered (``bot.forms``)."""
    try:
        sealed = bot.forms.open(view.get("private_metadata"), user_id=user_id)
    except TamperedForm:
        log.warning("form_tampered", form=str(view.get("callback_id") or ""), user=user_id)
        return ""
    return text(sealed.get("a"))


async def _approval_requester(bot: Services, approval_id: str) -> str | None:
    approval = await bot.store.get_approval(approval_id)
    return approval.requester_id if approval else None


async def _reason_required(bot: Services, approval_id: str, user_id: str) -> bool:
    """Whether the form's empty reason must be refused (a withdrawal needs none); a store that
    does not answer leaves it to ``approvals.deny``, which refuses it too."""
    try:
        if await _approval_requester(bot, approval_id) == user_id:
            return False
        return (await approvals.rule_for(bot, approval_id)).deny_reason == "required"
    except StoreError:
        return False


async def _store_guarded(
    bot: Services, work: Awaitable[None], user_id: str, channel_id: str | None
) -> None:
    """``work``, or a clear answer when the database does not answer: an approval is read from
    the store before anything is sent, and a run records Nexthink's answer even without it."""
    try:
        await work
    except StoreError as exc:
        log.error("approval_store_unavailable", error=str(exc))
        await reply(bot, text_message(STORE_UNAVAILABLE), user_id=user_id, channel_id=channel_id)
