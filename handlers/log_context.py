"""A Bolt middleware that gives every log line of one Slack request the same context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from handlers.payloads import first_action, obj, team_id, user_id
from handlers.services import Services

__all__ = ["RequestLogContext", "register"]


class RequestLogContext(AsyncMiddleware):
    """Binds the request's workspace, person, kind and action to structlog's context.

    A middleware class rather than a function: Bolt calls it with the request as it is, where a
    function middleware first gets its arguments worked out by Bolt for every request."""

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse | None:
        body = req.body
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


def register(bot: Services) -> None:
    bot.app.use(RequestLogContext())
