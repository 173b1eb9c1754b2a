"""``POST /nexthink/waits``, the HTTP side: credential, body limit, JSON, validation, statuses.

The wait logic (``bot.waits``) knows nothing of HTTP; this module reads the request, hands a
valid ``WaitRequest`` to ``post_wait`` and turns its result or refusal into the answer Nexthink's
thinklet reads: ``201 {"id", "channel", "ts"}``, ``202`` while Slack is slow, or
``{"error": "..."}`` with 400, 401, 413, 502 or 503.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from base64 import b64decode
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from bot.logging import get_logger
from bot.settings import Settings
from bot.store import StoreError, WaitRecord
from bot.tasks import Tasks
from bot.waits import MAX_BODY, WaitDeps, WaitRefused, WaitRequest, describe, post_wait

__all__ = ["WebhookDeps", "authorized", "waits_route"]

log = get_logger(__name__)

_ANSWER_WITHIN = 8.0  # Nexthink's thinklet gives up after 10 s

_STATUS = {"bad_request": 400, "slack_failed": 502}


class WebhookDeps(WaitDeps, Protocol):
    settings: Settings
    tasks: Tasks


class _Reject(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def authorized(header: str | None, secret: str) -> bool:
    """``Bearer <token>``, or ``Basic`` whose password is the token; compared in constant time.
    Anything else, malformed or not UTF-8 included, is not authorized (401, never a 5xx)."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = b64decode(value, validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    try:  # raw bytes in the header arrive as lone surrogates, which no UTF-8 token has
        given = value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given, secret.encode())


async def _read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _Reject(413, f"the body is over {MAX_BODY // 1024} KiB")
    # StreamReader.read(n) returns what has arrived so far, not n bytes: read until the end
    body = b""
    while len(body) <= MAX_BODY:
        chunk = await request.content.read(MAX_BODY + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > MAX_BODY:
        raise _Reject(413, f"the body is over {MAX_BODY // 1024} KiB")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise _Reject(400, "malformed JSON: the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _Reject(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # e.g. 64 KiB of "[": within the size limit, beyond the parser's depth
        raise _Reject(400, "malformed JSON: nested too deeply") from None


def _refused_at_the_door(deps: WebhookDeps, request: web.Request) -> web.Response | None:
    secret = deps.settings.nexthink_webhook_token
    if secret is None or not secret.get_secret_value():
        return web.json_response(
            {"error": "the waits webhook is disabled: the bot has no NEXTHINK_WEBHOOK_TOKEN"},
            status=503,
        )
    if not authorized(request.headers.get("Authorization"), secret.get_secret_value()):
        log.warning("waits_unauthorized", remote=request.remote)
        return web.json_response(
            {
                "error": "missing or wrong credential: send Authorization: Bearer <NEXTHINK_WEBHOOK_TOKEN>"
            },
            status=401,
        )
    if deps.tasks.closing:
        return web.json_response({"error": "the bot is shutting down; retry shortly"}, status=503)
    return None


async def _wait_request(request: web.Request) -> WaitRequest:
    data = await _read_json(request)
    if not isinstance(data, dict):
        raise _Reject(400, "the body must be a JSON object")
    try:
        return WaitRequest.model_validate(data)
    except ValidationError as exc:
        raise _Reject(400, describe(exc)) from None


def waits_route(deps: WebhookDeps) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler of ``POST /nexthink/waits`` for this bot."""

    async def route(request: web.Request) -> web.Response:
        refused = _refused_at_the_door(deps, request)
        if refused is not None:
            return refused
        try:
            wait_request = await _wait_request(request)
            # keep answering Nexthink in time; the post finishes in the background if Slack is slow
            work = deps.tasks.spawn(_post_or_reject(deps, wait_request), name="post_wait")
            done, _ = await asyncio.wait({work}, timeout=_ANSWER_WITHIN)
            if not done:
                return web.json_response({"status": "posting", "error": None}, status=202)
            result = work.result()
            if isinstance(result, _Reject):
                raise result
            wait, channel, ts = result
        except _Reject as exc:
            return web.json_response({"error": exc.error}, status=exc.status)
        return web.json_response({"id": wait.id, "channel": channel, "ts": ts}, status=201)

    return route


async def _post_or_reject(
    deps: WebhookDeps, req: WaitRequest
) -> tuple[WaitRecord, str, str] | _Reject:
    """``post_wait``, with its refusals returned rather than raised (an expected 4xx is not a
    failed background task) and any other failure turned into a JSON answer for Nexthink."""
    try:
        return await post_wait(deps, req)
    except WaitRefused as exc:
        status = _STATUS[exc.kind]
        log.info("wait_refused", status=status, error=exc.error)
        return _Reject(status, exc.error)
    except StoreError as exc:
        log.error("wait_not_stored", error=str(exc))
        return _Reject(503, "the bot's database is unavailable; retry shortly")
    except Exception:
        log.exception("wait_post_failed", execution=req.execution_uuid)
        return _Reject(502, "the bot could not post the question to Slack; retry shortly")
