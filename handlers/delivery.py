"""Every message the bot sends a person: where it goes, and how a run's outcome reaches it later.

The Slack calls that post, update and answer through a response URL are here, once each
(``post_message``, ``update_message``, ``send_to_response_url``); ``reply`` is the answer to one
person (the response URL while it is valid, else an ephemeral or a direct message).

``deliver_run_result`` is the last step of the one run path (command, modal, Home, shortcuts,
approved runs). It posts the result and records on the request where the reply lives, so the
outcome follow-up (``bot.followups``) can update it, even after a restart:

* **visible run** (policy ``visible: true`` or the ``visible`` word) in a channel:
  ``chat.postMessage``; the message is updated in place and its thread carries the outcome and
  any approval decision: one tidy entry per request. If the bot may not post there, the
  command's response URL posts it ``in_channel`` instead.
* **ephemeral reply** with a response URL (slash command, run modal from it, message shortcut):
  through the response URL; later updates replace it (``replace_original``) while Slack accepts
  the URL (30 minutes, 5 uses: the follow-up keeps its last use for the final outcome).
* **no response URL** (Home tab, global shortcut, or the URL failed): an ephemeral
  (``chat.postEphemeral``) in a channel, else a direct message. A direct message is updated in
  place; an ephemeral cannot be, so the final outcome then arrives as a new direct message.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import followups
from bot.followups import Progress
from bot.forms import slack_response_url
from bot.logging import get_logger
from bot.runs import PreparedRun, RunResult
from bot.store import ApprovalRecord, RequestRecord
from handlers import outcome_views as ov
from handlers.blocks import outside
from handlers.services import Services

__all__ = [
    "announce_approval",
    "deliver_run_result",
    "post_message",
    "reply",
    "send_to_response_url",
    "show_outcome",
    "tell_requester",
    "tell_thread",
    "update_message",
]

log = get_logger(__name__)

#: what a call to Slack raises when Slack did not answer (in time, or at all): it may or may not
#: have acted. A report that cannot be delivered is logged and given up; it never stops the work
#: it reports on (an approved run is still sent, its requester still told).
_UNANSWERED = (TimeoutError, aiohttp.ClientError, OSError)

#: response-URL posts the follow-up makes before the final one (Slack allows 5 per URL)
_URL_UPDATES = 3


def _is_channel(channel_id: str | None) -> bool:
    """A shared conversation (public or private channel), not a direct message."""
    return bool(channel_id) and not str(channel_id).startswith("D")


def _thread_root(record: RequestRecord) -> tuple[str, str] | None:
    if record.message_channel and record.message_ts and _is_channel(record.message_channel):
        return record.message_channel, record.message_ts
    return None


# -- posting -------------------------------------------------------------------------------


async def post_message(
    bot: Services, channel: str, message: dict[str, Any], **extra: Any
) -> tuple[str, str] | None:
    """``chat.postMessage``; (channel, ts), or None when Slack refused or did not answer
    (logged)."""
    try:
        posted = await bot.slack.chat_postMessage(channel=channel, **message, **extra)
    except SlackApiError as exc:
        log.info("post_failed", error=exc.response.get("error"))
        return None
    except _UNANSWERED as exc:
        log.warning("post_unanswered", error=type(exc).__name__, channel=channel)
        return None
    return str(posted.get("channel") or channel), str(posted.get("ts"))


async def update_message(bot: Services, where: tuple[str, str], message: dict[str, Any]) -> bool:
    """``chat.update`` of the message at (channel, ts); whether Slack took it (logged if not, or
    if it did not answer)."""
    try:
        await bot.slack.chat_update(channel=where[0], ts=where[1], **message)
    except SlackApiError as exc:
        log.info("update_failed", error=exc.response.get("error"))
        return False
    except _UNANSWERED as exc:
        log.warning("update_unanswered", error=type(exc).__name__, channel=where[0])
        return False
    return True


async def send_to_response_url(
    bot: Services,
    url: str,
    message: dict[str, Any],
    *,
    visible: bool = False,
    replace: bool = False,
) -> bool:
    """Post through a response URL (``in_channel`` when ``visible``); whether Slack took it. A URL
    that is not Slack's (``bot.forms.slack_response_url``) is never called."""
    if slack_response_url(url, bot.settings.slack_api_url) is None:
        log.warning("response_url_refused_not_slack")
        return False
    try:
        webhook = AsyncWebhookClient(url, session=getattr(bot.slack, "session", None))
        response = await webhook.send(
            text=message.get("text"),
            blocks=message.get("blocks"),
            response_type="in_channel" if visible else "ephemeral",
            replace_original=replace,
        )
    except Exception as exc:  # expired, unreachable: the caller falls back
        log.info("response_url_failed", error=type(exc).__name__)
        return False
    if response.status_code != 200:
        log.info("response_url_refused", status=response.status_code, body=response.body[:200])
        return False
    return True


async def _dm(bot: Services, user_id: str, message: dict[str, Any]) -> tuple[str, str] | None:
    where = await post_message(bot, user_id, message)
    if where is None:
        log.error("reply_lost", user=user_id)
    return where


async def reply(
    bot: Services,
    message: dict[str, Any],
    *,
    user_id: str,
    channel_id: str | None,
    response_url: str | None = None,
    visible: bool = False,
    replace: bool = False,
) -> None:
    """Deliver ``message`` to one person: the ``response_url`` while it is valid, else in the
    channel (``visible``) or as an ephemeral, else a direct message; never raises."""
    if response_url and await send_to_response_url(
        bot, response_url, message, visible=visible, replace=replace
    ):
        return
    try:
        if visible and channel_id:
            await bot.slack.chat_postMessage(channel=channel_id, **message)
            return
        if channel_id and _is_channel(channel_id):
            await bot.slack.chat_postEphemeral(channel=channel_id, user=user_id, **message)
            return
    except SlackApiError as exc:
        log.info("channel_reply_failed", error=exc.response.get("error"))
    try:
        await bot.slack.chat_postMessage(channel=user_id, **message)
    except SlackApiError as exc:
        log.error("reply_lost", error=exc.response.get("error"), user=user_id)


# -- the run path's last step ----------------------------------------------------------------


async def deliver_run_result(
    bot: Services,
    result: RunResult,
    message: dict[str, Any],
    *,
    response_url: str | None,
    replace: bool = False,
) -> None:
    """Tell the requester how the run went, remember where, and follow its outcome; ``replace``:
    a reply through ``response_url`` replaces the message it belongs to (a fleet run's preview)."""
    record = result.record
    prepared = result.prepared
    requester = prepared.requester
    following = result.ok and followups.enabled(bot)
    if result.ok:
        progress = Progress() if following else None
        message = ov.with_blocks(
            message,
            ov.outcome_blocks(record, progress, max_minutes=bot.settings.followup_max_minutes),
        )
    located: dict[str, Any] = {}
    root = _thread_root(record)
    channel = requester.channel_id
    if root is not None:  # a visible run that waited for approval: its entry in the channel
        await update_message(bot, root, message)
        await post_message(
            bot, root[0], {"text": ov.approved_line(record, result.ok)}, thread_ts=root[1]
        )
    elif prepared.visible and result.ok and channel and _is_channel(channel):
        where = await post_message(bot, channel, message)
        if where is not None:
            located = {"message_channel": where[0], "message_ts": where[1]}
        elif response_url and await send_to_response_url(bot, response_url, message, visible=True):
            located = {"response_url": response_url}
    if root is None and not located:
        located = await _ephemeral(
            bot, requester.user_id, channel, response_url, message, replace=replace
        )
    if not following:
        return
    try:
        if located:
            record = await bot.store.update_request(record.id, **located)
        await followups.track(bot, record)
    except Exception:  # the run and its reply stand; only the later updates are lost
        log.exception("followup_not_recorded", request=record.id)


async def _ephemeral(
    bot: Services,
    user_id: str,
    channel: str | None,
    response_url: str | None,
    message: dict[str, Any],
    *,
    replace: bool = False,
) -> dict[str, Any]:
    """Only the requester sees it: the response URL, else an ephemeral, else a direct message;
    returns where it is, when it can be updated later."""
    if response_url and await send_to_response_url(bot, response_url, message, replace=replace):
        return {"response_url": response_url}
    if channel and _is_channel(channel):
        try:
            await bot.slack.chat_postEphemeral(channel=channel, user=user_id, **message)
            return {}
        except SlackApiError as exc:
            log.info("ephemeral_failed", error=exc.response.get("error"))
    where = await _dm(bot, user_id, message)
    return {"message_channel": where[0], "message_ts": where[1]} if where else {}


# -- approvals of visible runs ---------------------------------------------------------------


async def announce_approval(
    bot: Services,
    prepared: PreparedRun,
    approval: ApprovalRecord,
    message: dict[str, Any],
    *,
    response_url: str | None,
    replace: bool = False,
) -> None:
    """Tell the requester their run waits for approval; a visible run gets its channel entry
    now, whose thread then carries the decision and the outcome."""
    channel = prepared.requester.channel_id
    if prepared.visible and channel and _is_channel(channel):
        record = await bot.store.get_request(approval.request_id)
        if record is not None:
            root = ov.approval_root_message(
                record,
                outside(prepared.workflow.display_name),
                approval_channel=approval.message_channel or approval.channel_id,
                targets=[t.label for t in prepared.targets],
            )
            where = await post_message(bot, channel, root)
            if where is not None:
                await bot.store.update_request(
                    record.id, message_channel=where[0], message_ts=where[1]
                )
                return
    await reply(
        bot,
        message,
        user_id=prepared.requester.user_id,
        channel_id=channel,
        response_url=response_url,
        replace=replace,
    )


async def tell_requester(bot: Services, record: RequestRecord, message: dict[str, Any]) -> None:
    """A decision on the requester's run (denied, expired): in the run's thread when it has
    one in a channel, else privately as before."""
    root = _thread_root(record)
    if root is None:
        await reply(
            bot,
            message,
            user_id=record.user_id,
            channel_id=record.channel_id,
            response_url=record.response_url,
        )
        return
    name = outside(await bot.catalogue.display_name(record.workflow_id))
    await update_message(bot, root, ov.approval_root_message(record, name))
    await post_message(bot, root[0], message, thread_ts=root[1])


async def tell_thread(bot: Services, record: RequestRecord, message: dict[str, Any]) -> None:
    """A line in the run's thread, when it has one in a channel (a visible run); else nothing:
    the requester's own reply shows it."""
    root = _thread_root(record)
    if root is not None:
        await post_message(bot, root[0], message, thread_ts=root[1])


# -- the follow-up's updates -----------------------------------------------------------------


async def show_outcome(
    bot: Services, record: RequestRecord, progress: Progress, *, changed: list[str]
) -> Progress:
    """Bring the run's reply up to date with ``progress``; returns it with the response URL's
    use counted."""
    name = outside(await bot.catalogue.display_name(record.workflow_id))
    max_minutes = bot.settings.followup_max_minutes
    message = ov.run_outcome_message(record, name, progress, max_minutes=max_minutes)
    final = bool(progress.ending)
    if record.message_channel and record.message_ts:
        where = (record.message_channel, record.message_ts)
        updated = await update_message(bot, where, message)
        if _is_channel(where[0]):
            note = ov.thread_update_message(record, name, progress, changed)
            if note is not None:
                await post_message(bot, where[0], note, thread_ts=where[1])
        elif not updated and final:
            await _dm(bot, record.user_id, ov.final_message(record, name, progress))
    elif record.response_url and not progress.url_dead:
        if final or progress.url_uses < _URL_UPDATES:
            progress.url_uses += 1
            if not await send_to_response_url(bot, record.response_url, message, replace=True):
                progress.url_dead = True
                if final:
                    await _dm(bot, record.user_id, ov.final_message(record, name, progress))
    elif final:
        await _dm(bot, record.user_id, ov.final_message(record, name, progress))
    return progress
