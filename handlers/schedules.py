"""Scheduled runs in Slack: ``/nexthink scheduled``, ``/nexthink cancel`` and the Cancel buttons
(in replies, lists and the Home tab); asking for one is ``handlers.running.schedule_and_reply``.

The decisions are the core's (``bot.schedules``): this module turns a command or a click into a
call and the answer into a message (``handlers.schedule_views``).
"""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import schedules
from bot.logging import get_logger
from bot.runs import Requester
from bot.store import ScheduleRecord, StoreError
from handlers import ids, payloads, views
from handlers.delivery import reply
from handlers.home import publish_home
from handlers.schedule_views import cancel_answer_message, scheduled_list_message
from handlers.services import Services

__all__ = ["answer_cancel", "answer_scheduled", "register"]

log = get_logger(__name__)


async def _names(bot: Services, found: list[ScheduleRecord]) -> dict[str, str]:
    return {s.workflow: await bot.catalogue.display_name(s.workflow) for s in found}


async def answer_scheduled(
    bot: Services, requester: Requester, of_user: str | None
) -> dict[str, Any]:
    """``/nexthink scheduled [@someone]``."""
    found = await schedules.listed(bot, requester, of_user)
    whose = of_user if of_user and of_user != requester.user_id else None
    return scheduled_list_message(found, await _names(bot, found), whose=whose)


async def answer_cancel(bot: Services, requester: Requester, key: str) -> dict[str, Any]:
    """``/nexthink cancel <id>`` and the Cancel buttons."""
    return cancel_answer_message(await schedules.cancel(bot, requester, key), key)


def register(bot: Services) -> None:
    @bot.app.action(ids.SCHEDULE_CANCEL)
    async def on_cancel(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, _, schedule_id = payloads.click_of(body)
        requester = Requester(
            user_id=user_id,
            team_id=payloads.team_id(body),
            enterprise_id=payloads.enterprise_id(body),
        )
        response_url = payloads.text(body.get("response_url")) or None
        from_home = payloads.obj(body.get("container")).get("type") == "view"

        async def work() -> None:
            try:
                message = await answer_cancel(bot, requester, schedule_id)
            except StoreError as exc:
                log.error("schedule_cancel_store_unavailable", error=str(exc))
                message = views.store_unavailable_message()
            await reply(
                bot,
                message,
                user_id=user_id,
                channel_id=None if from_home else channel_id,
                response_url=response_url,
            )
            if from_home:
                await publish_home(bot, user_id)

        bot.tasks.spawn(work(), name="schedule_cancel")
