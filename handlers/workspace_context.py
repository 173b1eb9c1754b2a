"""A Bolt middleware that tells the rest of the request which Slack workspace it is for.

From the payload (the workspace the person acts in: ``team.id``, ``team_id``, ``user.team_id``,
``view.team_id``) and Bolt's authorization (``enterprise_id``, ``is_enterprise_install``, and with
OAuth installs the bot token it found), it enters a ``bot.workspaces.Workspace`` for the
listeners and the work they spawn; every Slack call then uses that workspace's token and
``team_id`` (``handlers.slack_client``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot import workspaces
from bot.workspaces import Workspace
from handlers.payloads import obj, team_id, text
from handlers.services import Services

__all__ = ["EnterWorkspace", "register", "workspace_of"]


def workspace_of(body: dict[str, Any], context: AsyncBoltContext) -> Workspace:
    """Where a request happens: the person's workspace, the org, the install's kind, the token."""
    team = team_id(body) or text(obj(body.get("view")).get("team_id")) or context.team_id
    enterprise = (
        context.enterprise_id
        or text(obj(body.get("enterprise")).get("id"))
        or text(body.get("enterprise_id"))
        or None
    )
    return Workspace(
        team_id=team,
        enterprise_id=enterprise,
        is_enterprise_install=bool(context.is_enterprise_install),
        token=context.bot_token if context.authorize_result is not None else None,
    )


class EnterWorkspace(AsyncMiddleware):
    """Enters the request's ``Workspace`` (``workspace_of``) for the listeners and their work.

    Bolt runs the listener after the middleware has returned, in this same context: the
    workspace stays set for it (each request sets its own, as ``log_context`` does). A middleware
    class rather than a function, as ``log_context.RequestLogContext``."""

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse | None:
        workspaces.enter(workspace_of(req.body, req.context))
        return await next()


def register(bot: Services) -> None:
    bot.app.use(EnterWorkspace())
