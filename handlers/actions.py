"""Buttons on paused executions: acknowledge, then decide in the background."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.waits import decide
from handlers import ids
from handlers.replies import reply
from handlers.views import text_message

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = ["register"]

#: the decision buttons' action ids: ``WAIT_DECISION:<index>`` (bare ``WAIT_DECISION`` too, for
#: messages posted before each button had its own id)
_DECISION = re.compile(rf"^{re.escape(ids.WAIT_DECISION)}(?::\d+)?$")


def click_of(body: dict[str, Any]) -> tuple[str, str | None, str | None, str]:
    """(user id, channel id, message ts, button value) of a block_actions payload."""
    action = (body.get("actions") or [{}])[0]
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    return str((body.get("user") or {}).get("id", "")), channel, ts, str(action.get("value") or "")


def register(bot: Bot) -> None:
    @bot.app.action(_DECISION)
    async def on_decision(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, ts, value = click_of(body)
        wait_id, _, index = value.rpartition(":")
        response_url = body.get("response_url")

        async def work() -> None:
            if not wait_id or not index.isdigit():
                answer: str | None = "This button does not belong to a question the bot knows."
            else:
                answer = await decide(
                    bot,
                    wait_id=wait_id,
                    option_index=int(index),
                    user_id=user_id,
                    channel_id=channel_id,
                    message_ts=ts,
                )
            if answer:
                await _ephemeral(bot, answer, user_id, channel_id, response_url)

        bot.tasks.spawn(work(), name="wait_decision")


async def _ephemeral(
    bot: Bot, text: str, user_id: str, channel_id: str | None, response_url: str | None
) -> None:
    # the response_url of a click would replace or follow the shared message; answer privately
    del response_url
    await reply(bot, text_message(text), user_id=user_id, channel_id=channel_id)
