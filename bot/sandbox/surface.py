"""Which endpoints the sandboxed instance has: an instance without the V2 execute, on demand.

Some Nexthink instances answer ``POST /api/v2/workflows/execute`` with 404: the route is not
there (the bot then falls back to V1, see ``bot.nexthink.client``). The sandbox plays one when
started with ``Sandbox(without_v2=True)`` / ``nexthink-bot sandbox --without-v2``, or at run time:

=======  ===================  ========================================================
method   path                 effect
=======  ===================  ========================================================
GET      ``/_sandbox/api``    ``{"v2Execute": true}``: whether the V2 execute exists
POST     ``/_sandbox/api``    ``{"v2Execute": false}`` (JSON) or ``without-v2`` / ``with-v2``
                              (text): remove or restore it; 400 ``{"error"}`` otherwise
=======  ===================  ========================================================

A missing route answers as the front of an instance would, not as the Workflows API does: 404
with a body that is not Nexthink's ``ErrorResponse`` (``{"message": "Not Found"}``). The V1 execute,
the other four endpoints and NQL stay. Missing or not, the request is journaled as
``execute_v2`` (with its 404), and faults still apply to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["API_SWITCH_PATH", "ApiSurface", "missing_route"]

API_SWITCH_PATH = "/_sandbox/api"

_TEXT = {"without-v2": False, "with-v2": True}


@dataclass
class ApiSurface:
    """The optional parts of the instance (today: the V2 execute)."""

    v2_execute: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"v2Execute": self.v2_execute}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(API_SWITCH_PATH, self._show, allow_head=False, name="sandbox_api_show"),
            web.post(API_SWITCH_PATH, self._switch, name="sandbox_api_switch"),
        ]

    async def _show(self, request: web.Request) -> web.Response:
        return web.json_response(self.to_json())

    async def _switch(self, request: web.Request) -> web.Response:
        text = (await request.text()).strip()
        value: Any = None
        if request.content_type == "application/json":
            try:
                body = json.loads(text or "null")
            except ValueError:
                body = None
            value = body.get("v2Execute") if isinstance(body, dict) else None
        else:
            value = _TEXT.get(text.lower())
        if not isinstance(value, bool):
            return web.json_response(
                {"error": 'send {"v2Execute": false} as JSON, or the text without-v2 or with-v2'},
                status=400,
            )
        self.v2_execute = value
        return web.json_response(self.to_json())


def missing_route() -> web.Response:
    """What an instance answers for a route it does not have: 404, no ``ErrorResponse``."""
    return web.json_response({"message": "Not Found"}, status=404)
