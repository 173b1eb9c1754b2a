"""Shortcuts: both open the run modal, whose submission takes the one run path.

* Global shortcut (``ids.GLOBAL_SHORTCUT``, from the composer or search): the modal opens with
  no channel and no response URL, so the result arrives as a direct message from the bot (which
  the outcome follow-up then updates in place).
* Message shortcut (``ids.MESSAGE_SHORTCUT``, "Run for this person" on a message): the modal opens
  in that message's channel with its author preselected as the target. Only someone whose role
  may target others there sees the target fields; anyone else gets a note in the modal and runs
  on themselves. The result is an ephemeral in that channel through the shortcut's response URL.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.runs import Requester
from handlers import ids
from handlers.modals import open_run_modal
from handlers.payloads import enterprise_id, obj, team_id, text, user_id
from handlers.services import Services

__all__ = ["author_of", "register"]

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")


def author_of(body: dict[str, Any]) -> str | None:
    """The person who wrote the shortcut's message (None for a bot's or an app's message)."""
    message = obj(body.get("message"))
    if message.get("bot_id") or message.get("subtype") == "bot_message":
        return None
    user = str(message.get("user") or "")
    return user if _USER_ID.match(user) else None


def _requester(body: dict[str, Any], channel_id: str | None) -> Requester:
    return Requester(
        user_id=user_id(body),
        team_id=team_id(body),
        channel_id=channel_id,
        enterprise_id=enterprise_id(body),
    )


def register(bot: Services) -> None:
    app = bot.app

    @app.shortcut(ids.GLOBAL_SHORTCUT)
    async def on_global_shortcut(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        requester = _requester(body, None)
        trigger_id = str(body.get("trigger_id") or "")
        bot.tasks.spawn(open_run_modal(bot, trigger_id, requester, None), name="shortcut_modal")

    @app.shortcut(ids.MESSAGE_SHORTCUT)
    async def on_message_shortcut(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        channel_id = text(obj(body.get("channel")).get("id")) or None
        requester = _requester(body, channel_id)
        author = author_of(body)
        users = (author,) if author and author != requester.user_id else ()
        trigger_id = str(body.get("trigger_id") or "")
        bot.tasks.spawn(
            open_run_modal(bot, trigger_id, requester, body.get("response_url"), users=users),
            name="shortcut_modal",
        )
