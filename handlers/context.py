"""A Bolt middleware that gives every log line of one Slack request the same context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = ["register"]


def register(bot: Bot) -> None:
    @bot.app.middleware
    async def bind_request_context(body: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any:
        structlog.contextvars.clear_contextvars()
        user = body.get("user_id") or (body.get("user") or {}).get("id")
        team = body.get("team_id") or (body.get("team") or {}).get("id")
        what = body.get("command") or body.get("type") or body.get("event", {}).get("type")
        actions = body.get("actions") or []
        callback = (body.get("view") or {}).get("callback_id") or body.get("callback_id")
        structlog.contextvars.bind_contextvars(
            slack_team=team,
            slack_user=user,
            slack_kind=what,
            slack_action=actions[0].get("action_id") if actions else callback,
        )
        return await next()
