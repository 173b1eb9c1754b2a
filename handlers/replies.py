"""Where an answer goes: the ``response_url`` while it is valid, else an ephemeral or a DM."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.logging import get_logger

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = ["reply"]

log = get_logger(__name__)


async def reply(
    bot: Bot,
    message: dict[str, Any],
    *,
    user_id: str,
    channel_id: str | None,
    response_url: str | None = None,
    visible: bool = False,
    replace: bool = False,
) -> None:
    """Deliver ``message`` to the requester; never raises (a lost reply is logged)."""
    if response_url:
        try:
            webhook = AsyncWebhookClient(response_url, session=getattr(bot.slack, "session", None))
            response = await webhook.send(
                text=message.get("text"),
                blocks=message.get("blocks"),
                response_type="in_channel" if visible else "ephemeral",
                replace_original=replace,
            )
            if response.status_code == 200:
                return
            log.info("response_url_refused", status=response.status_code, body=response.body[:200])
        except Exception as exc:  # the URL may have expired or be unreachable: fall back
            log.info("response_url_failed", error=type(exc).__name__)
    try:
        if visible and channel_id:
            await bot.slack.chat_postMessage(channel=channel_id, **message)
            return
        if channel_id and not channel_id.startswith("D"):
            await bot.slack.chat_postEphemeral(channel=channel_id, user=user_id, **message)
            return
    except SlackApiError as exc:
        log.info("channel_reply_failed", error=exc.response.get("error"))
    try:
        await bot.slack.chat_postMessage(channel=user_id, **message)
    except SlackApiError as exc:
        log.error("reply_lost", error=exc.response.get("error"), user=user_id)
