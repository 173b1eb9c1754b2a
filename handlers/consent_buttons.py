"""The Allow and Not now buttons of a request for consent; the decisions are ``bot.consent``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import consent
from bot.consent import ConsentClick
from bot.logging import get_logger
from bot.store import StoreError
from handlers import ids
from handlers.consent_views import click_answer_text
from handlers.delivery import reply
from handlers.home import publish_home
from handlers.payloads import click_of, obj
from handlers.services import Services
from handlers.views import STORE_UNAVAILABLE, text_message

__all__ = ["register"]

log = get_logger(__name__)

_Decide = Callable[[Services, str, str], Awaitable[ConsentClick | None]]


def register(bot: Services) -> None:
    app = bot.app

    def listener(
        decide: _Decide, name: str
    ) -> Callable[[AsyncAck, dict[str, Any]], Awaitable[None]]:
        async def on_click(ack: AsyncAck, body: dict[str, Any]) -> None:
            await ack()
            user_id, channel_id, _, consent_id = click_of(body)
            from_home = obj(body.get("container")).get("type") == "view"
            work = _answer(bot, decide, consent_id, user_id, None if from_home else channel_id)
            bot.tasks.spawn(_refreshed(bot, work, user_id) if from_home else work, name=name)

        return on_click

    app.action(ids.CONSENT_ALLOW)(listener(consent.allow, "consent_allow"))
    app.action(ids.CONSENT_NOT_NOW)(listener(consent.not_now, "consent_not_now"))


async def _refreshed(bot: Services, work: Awaitable[None], user_id: str) -> None:
    """A click on the Home tab: answer, then show the Home without the question."""
    await work
    await publish_home(bot, user_id)


async def _answer(
    bot: Services, decide: _Decide, consent_id: str, user_id: str, channel_id: str | None
) -> None:
    """Decide, and tell the clicker alone when the click did nothing (or the store is down)."""
    try:
        answered = await decide(bot, consent_id, user_id)
    except StoreError as exc:
        log.error("consent_store_unavailable", error=str(exc))
        answered = None
        text = STORE_UNAVAILABLE
    else:
        text = click_answer_text(answered) if answered else ""
    if text:
        await reply(bot, text_message(text), user_id=user_id, channel_id=channel_id)
