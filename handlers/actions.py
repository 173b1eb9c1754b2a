"""Buttons on paused executions: acknowledge, then decide in the background."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.logging import get_logger
from bot.store import StoreError
from bot.waits import decide
from handlers import ids
from handlers.payloads import first_action, obj, text, user_id
from handlers.replies import reply
from handlers.views import STORE_UNAVAILABLE, text_message

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = ["register"]

log = get_logger(__name__)

#: the decision buttons' action ids: ``WAIT_DECISION:<index>`` (bare ``WAIT_DECISION`` too, for
#: messages posted before each button had its own id)
_DECISION = re.compile(rf"^{re.escape(ids.WAIT_DECISION)}(?::\d+)?$")


def click_of(body: dict[str, Any]) -> tuple[str, str | None, str | None, str]:
    """(user id, channel id, message ts, button value) of a block_actions payload; fields that
    are missing or of another type read as empty."""
    container = obj(body.get("container"))
    channel = text(container.get("channel_id")) or text(obj(body.get("channel")).get("id"))
    ts = text(container.get("message_ts")) or text(obj(body.get("message")).get("ts"))
    return user_id(body), channel or None, ts or None, text(first_action(body).get("value"))


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
                try:
                    answer = await decide(
                        bot,
                        wait_id=wait_id,
                        option_index=int(index),
                        user_id=user_id,
                        channel_id=channel_id,
                        message_ts=ts,
                    )
                except StoreError as exc:  # decide records what it sent even without a database
                    log.error("decision_store_unavailable", error=str(exc))
                    answer = STORE_UNAVAILABLE
            if answer:
                await _ephemeral(bot, answer, user_id, channel_id, response_url)

        bot.tasks.spawn(work(), name="wait_decision")


async def _ephemeral(
    bot: Bot, text: str, user_id: str, channel_id: str | None, response_url: str | None
) -> None:
    # the response_url of a click would replace or follow the shared message; answer privately
    del response_url
    await reply(bot, text_message(text), user_id=user_id, channel_id=channel_id)
