"""The buttons of a paused execution's question: acknowledge, then decide in the background
(``bot.waits.decide``)."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.logging import get_logger
from bot.store import StoreError
from bot.waits import decide
from handlers import ids
from handlers.delivery import reply
from handlers.payloads import click_of
from handlers.services import Services
from handlers.views import STORE_UNAVAILABLE, text_message
from handlers.wait_views import UNKNOWN_BUTTON, click_refusal_text

__all__ = ["register"]

log = get_logger(__name__)

#: the decision buttons' action ids: ``WAIT_DECISION:<index>`` (bare ``WAIT_DECISION`` too, for
#: messages posted before each button had its own id)
_DECISION = re.compile(rf"^{re.escape(ids.WAIT_DECISION)}(?::\d+)?$")


def register(bot: Services) -> None:
    @bot.app.action(_DECISION)
    async def on_decision(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, ts, value = click_of(body)
        wait_id, _, index = value.rpartition(":")
        response_url = body.get("response_url")

        async def work() -> None:
            if not wait_id or not index.isdigit():
                answer: str | None = UNKNOWN_BUTTON
            else:
                try:
                    refused = await decide(
                        bot,
                        wait_id=wait_id,
                        option_index=int(index),
                        user_id=user_id,
                        channel_id=channel_id,
                        message_ts=ts,
                    )
                    answer = click_refusal_text(refused) if refused else None
                except StoreError as exc:  # decide records what it sent even without a database
                    log.error("decision_store_unavailable", error=str(exc))
                    answer = STORE_UNAVAILABLE
            if answer:
                await _ephemeral(bot, answer, user_id, channel_id, response_url)

        bot.tasks.spawn(work(), name="wait_decision")


async def _ephemeral(
    bot: Services, text: str, user_id: str, channel_id: str | None, response_url: str | None
) -> None:
    # the response_url of a click would replace or follow the shared message; answer privately
    del response_url
    await reply(bot, text_message(text), user_id=user_id, channel_id=channel_id)
