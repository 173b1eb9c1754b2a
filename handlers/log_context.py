"""A Bolt middleware that gives every log line of one Slack request the same context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from handlers.payloads import first_action, obj, team_id, user_id
from handlers.services import Services

__all__ = ["register"]


def register(bot: Services) -> None:
    @bot.app.middleware
    async def bind_request_context(body: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any:
        structlog.contextvars.clear_contextvars()
        # a payload may lack any of these, or carry them with another type: never fail on that
        what = body.get("command") or body.get("type") or obj(body.get("event")).get("type")
        action = first_action(body).get("action_id")
        callback = obj(body.get("view")).get("callback_id") or body.get("callback_id")
        structlog.contextvars.bind_contextvars(
            slack_team=team_id(body),
            slack_user=user_id(body) or None,
            slack_kind=what,
            slack_action=action or callback,
        )
        return await next()
