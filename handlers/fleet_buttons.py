"""The Run and Cancel buttons of a fleet run's preview; the decisions are ``bot.fleet``.

Run: the run goes down the one run path (``execute_and_reply``: approval or execute) with the
click's response URL, so its reply replaces the preview (a visible run's reply goes to the
channel, and the preview says so). Cancel: the preview says nothing was run. A click that does
nothing (someone else's preview, already decided, expired) gets an ephemeral saying why.
"""

from __future__ import annotations

import uuid
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import fleet
from bot.fleet import FleetAnswer
from bot.logging import get_logger
from bot.metrics import CLICKS
from bot.store import StoreError
from handlers import ids
from handlers.delivery import reply, send_to_response_url
from handlers.fleet_views import answer_text, cancelled_message, started_message
from handlers.payloads import click_of, text
from handlers.running import execute_and_reply
from handlers.services import Services
from handlers.views import STORE_UNAVAILABLE, internal_error_message, text_message

__all__ = ["register"]

log = get_logger(__name__)


def register(bot: Services) -> None:
    app = bot.app

    @app.action(ids.FLEET_RUN)
    async def on_run(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, _, run_id = click_of(body)
        url = text(body.get("response_url")) or None
        bot.tasks.spawn(
            _guarded(bot, _run(bot, run_id, user_id, channel_id, url), user_id, channel_id),
            name="fleet_run",
        )

    @app.action(ids.FLEET_CANCEL)
    async def on_cancel(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, _, run_id = click_of(body)
        url = text(body.get("response_url")) or None
        bot.tasks.spawn(
            _guarded(bot, _cancel(bot, run_id, user_id, channel_id, url), user_id, channel_id),
            name="fleet_cancel",
        )


async def _run(
    bot: Services, run_id: str, user_id: str, channel_id: str | None, url: str | None
) -> None:
    answer = await fleet.start(bot.runner, run_id, user_id)
    CLICKS.labels("fleet_run", answer.outcome).inc()
    if answer.prepared is None:
        await _refused(bot, answer, user_id, channel_id)
        return
    prepared = answer.prepared
    if prepared.visible and url:  # the reply goes to the channel: the preview says so
        await send_to_response_url(bot, url, started_message(prepared), replace=True)
        url = None
    await execute_and_reply(
        bot, prepared, response_url=url or _still(answer), replace=url is not None
    )


def _still(answer: FleetAnswer) -> str | None:
    """The command's response URL, when the click brought none."""
    return answer.record.response_url if answer.record is not None else None


async def _cancel(
    bot: Services, run_id: str, user_id: str, channel_id: str | None, url: str | None
) -> None:
    answer = await fleet.cancel(bot.store, run_id, user_id)
    CLICKS.labels("fleet_cancel", answer.outcome).inc()
    if answer.outcome != "cancelled" or answer.record is None:
        await _refused(bot, answer, user_id, channel_id)
        return
    message = cancelled_message(answer.record)
    if not (url and await send_to_response_url(bot, url, message, replace=True)):
        await reply(bot, message, user_id=user_id, channel_id=channel_id)


async def _refused(
    bot: Services, answer: FleetAnswer, user_id: str, channel_id: str | None
) -> None:
    await reply(bot, text_message(answer_text(answer)), user_id=user_id, channel_id=channel_id)


async def _guarded(bot: Services, work: Any, user_id: str, channel_id: str | None) -> None:
    """``work``, or a clear answer when the database does not answer or something breaks."""
    try:
        await work
    except StoreError as exc:
        log.error("fleet_store_unavailable", error=str(exc))
        await reply(bot, text_message(STORE_UNAVAILABLE), user_id=user_id, channel_id=channel_id)
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("fleet_click_failed", ref=ref)
        await reply(bot, internal_error_message(ref), user_id=user_id, channel_id=channel_id)
