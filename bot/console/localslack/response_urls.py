"""LocalSlack's response URLs: issued with each interaction, answered like Slack's webhooks.

They answer 200 ``{"ok": true}``; refusals are plain text: 404 ``expired_url`` (after 30 minutes),
``used_url`` (after 5 uses), ``no_service`` (unknown URL), ``message_not_found`` (nothing to replace
or delete); 400 ``no_text``, ``invalid_blocks``, ``invalid_payload``. Each request is journalled as
a call to the pseudo-method ``response_url``.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from aiohttp import web

from bot.console.localslack.messages import ChatMethods
from bot.console.localslack.records import ApiCall, Message, ResponseUrl, SlackError

__all__ = ["ResponseUrls"]


class ResponseUrls(ChatMethods):
    """Response URLs for slash commands and clicks, and their HTTP endpoint."""

    def new_response_url(
        self,
        user_id: str,
        channel_id: str,
        *,
        kind: Literal["commands", "actions"] = "commands",
        message: Message | None = None,
    ) -> str:
        """A response URL for an interaction; ``message`` is the one clicked, if any."""
        path = f"/hooks/{kind}/{self.team_id}/{next(self._ids)}/{secrets.token_hex(12)}"
        target = (message.channel, message.ts) if message else None
        self._response_urls[path] = ResponseUrl(
            user_id,
            channel_id,
            self.clock() + self.response_url_ttl,
            self.response_url_uses,
            target,
        )
        return self.url + path

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        hook = self._response_urls.get(request.path)
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        params = payload if isinstance(payload, dict) else {}
        status, answer = self._respond(hook, payload)
        self.calls.append(
            ApiCall("response_url", params, None, self.clock(), status, {"ok": status == 200})
        )
        if status == 200:
            return web.json_response({"ok": True})
        return web.Response(status=status, text=answer)

    def _respond(self, hook: ResponseUrl | None, payload: Any) -> tuple[int, str]:
        if hook is None:
            return 404, "no_service"
        if self.clock() > hook.expires:
            return 404, "expired_url"
        if hook.uses_left <= 0:
            return 404, "used_url"
        hook.uses_left -= 1
        if not isinstance(payload, dict):
            return 400, "invalid_payload"
        try:
            message = self.deliver(
                hook.user_id,
                hook.channel_id,
                payload,
                via="response_url",
                target=hook.target or hook.last,
            )
        except SlackError as exc:
            return (404 if exc.error == "message_not_found" else 400), exc.error
        if message is not None:
            hook.last = (message.channel, message.ts)
        return 200, "ok"
