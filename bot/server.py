"""The HTTP side: Slack's events (HTTP mode), Nexthink's waits webhook, health and metrics.

One aiohttp server on ``PORT`` serves ``POST /slack/events`` (HTTP mode only),
``GET /slack/install`` and ``GET /slack/oauth_redirect`` (OAuth installs), ``POST /nexthink/waits``, ``GET /healthz``, ``GET /readyz`` and ``GET /metrics``. ``serve``
runs it until SIGTERM or SIGINT, then drains: it stops taking requests, finishes the work
already acknowledged (bounded), closes Socket Mode and the store, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request import payload_utils
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.app import Bot, StartupError
from bot.logging import get_logger
from bot.metrics import ACK_SECONDS
from bot.webhook_http import waits_route

__all__ = ["build_web_app", "serve_bot"]

log = get_logger(__name__)

#: from SIGTERM to a closed process: the product promises an exit within 10 s
SHUTDOWN_SECONDS = 8.5
#: kept out of the drain for closing Socket Mode, the HTTP connections, the clients and the store
_CLOSE_SECONDS = 1.5
#: how long in-flight HTTP requests (acknowledgements, the waits webhook) may take to be answered
_HTTP_SHUTDOWN_SECONDS = 2.0
#: a successful ``auth.test`` vouches for Slack this long in ``/readyz``; then it is called again
SLACK_RECHECK_SECONDS = 5.0
#: each readiness check gives up after this long
READY_CHECK_SECONDS = 3.0


BOT: web.AppKey[Bot] = web.AppKey("bot")


def build_web_app(bot: Bot) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[BOT] = bot
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/nexthink/waits", waits_route(bot))
    if not bot.settings.socket_mode:
        app.router.add_post("/slack/events", _slack_events)
    flow = bot.app.oauth_flow
    if flow is not None:  # OAuth installs: Bolt's own install page and redirect
        app.router.add_get(flow.install_path, _oauth_route(flow.handle_installation))
        app.router.add_get(flow.redirect_uri_path, _oauth_route(flow.handle_callback))
    return app


def _oauth_route(
    handle: Callable[[AsyncBoltRequest], Awaitable[BoltResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await handle(await to_bolt_request(request)))

    return route


async def _slack_events(request: web.Request) -> web.StreamResponse:
    bot = request.app[BOT]
    with bot.tasks.acks.acknowledging():  # work after earlier acks waits for this one
        return await _acknowledged(bot, request)


async def _acknowledged(bot: Bot, request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    if not _whole_number(request.headers.get("X-Slack-Request-Timestamp", "0")):
        # Bolt's verifier would fail on int() with a 500: such a request is simply not signed
        return web.json_response({"error": "invalid request"}, status=401)
    try:
        bolt_request = _reparsed(await to_bolt_request(request))
        _bolt_can_read(bolt_request.body)
    except Exception as exc:  # Bolt parses before it verifies: JSON that is not, not UTF-8, ...
        return await _unreadable(bot, request, exc)
    body = bolt_request.body
    if "command" in body:
        kind = "command"
    elif str(body.get("type")) in {"event_callback", "url_verification", "app_rate_limited"}:
        kind = "event"
    else:
        kind = "interactive"
    try:
        bolt_response = await bot.app.async_dispatch(bolt_request)
    except Exception as exc:  # Bolt's matchers read fields a malformed (signed) payload may lack
        log.warning("slack_request_unhandled", kind=kind, error=type(exc).__name__)
        return web.json_response({"error": "the request could not be handled"}, status=400)
    ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)
    return await to_aiohttp_response(bolt_response)


def _reparsed(bolt_request: AsyncBoltRequest) -> AsyncBoltRequest:
    """Bolt reads any form body that contains the word "payload" as an interaction's
    ``payload=`` field, so a slash command whose text (or any field) holds the word arrives
    empty and goes unanswered; such a form is read as the plain form it is."""
    raw = bolt_request.raw_body
    if bolt_request.body or "payload" not in raw or raw.startswith("{"):
        return bolt_request
    if bolt_request.content_type == "application/json":
        return bolt_request
    form = dict(parse_qsl(raw, keep_blank_values=True))
    if "payload" not in form:
        bolt_request.body = form
        bolt_request.context = build_async_context(AsyncBoltContext({}), form)
    return bolt_request


def _bolt_can_read(body: Any) -> None:
    """Raise if Bolt's own extractors fail on ``body``: Bolt runs all of them for every listener
    and middleware, so a payload missing what Slack always sends (``actions[0]``, ``view``, ...)
    would otherwise be a 500 and a logged stack trace."""
    if not isinstance(body, dict):
        raise TypeError("the body is not an object")
    for extract in _EXTRACTORS:
        extract(body)
    # what the listener matchers then compare as text
    name = _MATCHED.get(str(body.get("type")))
    if "command" in body and not isinstance(body["command"], str):
        raise TypeError("command is not text")
    if name is not None and not isinstance(name(body), str):
        raise TypeError(f"{body.get('type')}: the name listeners match on is not text")


_EXTRACTORS = (
    payload_utils.to_options,
    payload_utils.to_shortcut,
    payload_utils.to_action,
    payload_utils.to_view,
    payload_utils.to_command,
    payload_utils.to_event,
    payload_utils.to_message,
    payload_utils.to_step,
)


_MATCHED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "block_actions": lambda body: body["actions"][0]["action_id"],
    "block_suggestion": lambda body: body["action_id"],
    "view_submission": lambda body: body["view"]["callback_id"],
    "view_closed": lambda body: body["view"]["callback_id"],
    "shortcut": lambda body: body["callback_id"],
    "message_action": lambda body: body["callback_id"],
    "event_callback": lambda body: body["event"]["type"],
}


async def _unreadable(bot: Bot, request: web.Request, exc: Exception) -> web.Response:
    """A body Bolt cannot parse: 401 unless Slack signed it (as Bolt answers unsigned requests),
    else 400; never a 500 and a stack trace for anyone who can reach the port."""
    secret = bot.settings.slack_signing_secret
    signed = secret is not None and _signed(
        secret.get_secret_value(), await request.read(), request
    )
    if not signed:
        return web.json_response({"error": "invalid request"}, status=401)
    log.warning("slack_request_unreadable", error=type(exc).__name__)
    return web.json_response({"error": "the request body could not be read"}, status=400)


def _whole_number(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _signed(secret: str, body: bytes, request: web.Request) -> bool:
    """Slack's ``v0`` signature over the raw bytes, made within the last 5 minutes."""
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 5 * 60:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers.get("X-Slack-Signature", ""))


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    bot = request.app[BOT]
    if bot.tasks.closing:
        body: dict[str, object] = {"ready": False, "reason": "shutting down", "checks": {}}
        return web.json_response(body, status=503)
    checks = await readiness(bot)
    problems = [f"{name}: {result}" for name, result in checks.items() if result != "ok"]
    body = {"ready": not problems, "checks": checks}
    if problems:
        body["reason"] = "; ".join(problems)
    return web.json_response(body, status=503 if problems else 200)


async def readiness(bot: Bot) -> dict[str, str]:
    """``"ok"`` or what is wrong, for each of the store, Slack and Nexthink, checked at once.

    The store is pinged. Slack is usable once ``auth.test`` has answered within the last
    ``SLACK_RECHECK_SECONDS`` (else it is called again). Nexthink is usable when a token is held
    or can be obtained now. Each check gives up after ``READY_CHECK_SECONDS``.
    """

    async def store() -> None:
        await bot.store.ping()

    async def slack() -> None:
        last = bot.slack_ok_at
        if last is None or time.monotonic() - last > SLACK_RECHECK_SECONDS:
            await bot.check_slack()

    async def nexthink() -> None:
        await bot.nexthink.token()  # the shared token: no request while it is fresh

    async def check(probe: Coroutine[Any, Any, None]) -> str:
        try:
            await asyncio.wait_for(probe, READY_CHECK_SECONDS)
        except TimeoutError:
            return f"no answer within {READY_CHECK_SECONDS:g} s"
        except Exception as exc:
            text = " ".join(str(exc).split())
            return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
        return "ok"

    names = ("store", "slack", "nexthink")
    results = await asyncio.gather(check(store()), check(slack()), check(nexthink()))
    return dict(zip(names, results, strict=True))


async def _metrics(request: web.Request) -> web.Response:
    bot = request.app[BOT]
    await bot.refresh_gauges()
    # the text format 0.0.4 that every Prometheus reads, or what the scraper's Accept asks for
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(REGISTRY), headers={"Content-Type": content_type})


async def serve_bot(
    bot: Bot,
    *,
    host: str = "0.0.0.0",  # noqa: S104 - a server in a container listens on all interfaces
    port: int | None = None,
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT or ``stop`` is set, then drain and close the bot.

    ``ready`` is called with the bound port once Slack and Nexthink may send requests. A port
    that cannot be bound raises ``StartupError`` naming ``PORT``. Whatever happens, the bot is
    closed on the way out.
    """
    port = bot.settings.port if port is None else port
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # not possible outside the main thread (tests) or on Windows
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        build_web_app(bot), access_log=None, shutdown_timeout=_HTTP_SHUTDOWN_SECONDS
    )
    socket_handler: Any = None
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(
                f"PORT: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        bound = runner.addresses[0][1] if runner.addresses else port
        try:
            await asyncio.wait_for(bot.check_slack(), READY_CHECK_SECONDS * 2)
        except Exception as exc:  # /readyz keeps asking; the bot serves what it can meanwhile
            log.error("slack_auth_test_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        if bot.settings.socket_mode:
            socket_handler = _socket_mode_handler(bot)
            await socket_handler.connect_async()
        bot.start_background()
        log.info("serving", port=bound, mode="socket" if bot.settings.socket_mode else "http")
        if ready is not None:
            ready(bound)
        await stop.wait()
    finally:
        await _shutdown(bot, runner, socket_handler)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


_SOCKET_KINDS = {"slash_commands": "command", "interactive": "interactive", "events_api": "event"}


def _socket_mode_handler(bot: Bot) -> Any:
    """Bolt's Socket Mode handler, timing each acknowledgement as ``_slack_events`` does."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    class TimedSocketModeHandler(AsyncSocketModeHandler):
        async def handle(self, client: Any, req: Any) -> None:
            started = time.perf_counter()
            await super().handle(client, req)  # dispatch, then send the ack over the socket
            kind = _SOCKET_KINDS.get(req.type, "interactive")
            ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)

    assert bot.settings.slack_app_token is not None
    return TimedSocketModeHandler(
        bot.app, bot.settings.slack_app_token.get_secret_value(), web_client=bot.slack
    )


async def _shutdown(bot: Bot, runner: web.AppRunner, socket_handler: Any) -> None:
    """Stop taking work, finish what was acknowledged (bounded), close everything.

    In order: handlers refuse new commands and waits (``tasks.closing``); Socket Mode is closed;
    the HTTP server stops listening and answers the requests it is in the middle of; the work
    already acknowledged (Nexthink calls, replies) gets what is left of ``SHUTDOWN_SECONDS``,
    then is cancelled; the expiry sweeper, the Nexthink and Slack clients and the store close.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    bot.tasks.closing = True
    log.info("shutting_down", in_flight=len(bot.tasks))
    if socket_handler is not None:
        try:
            await asyncio.wait_for(socket_handler.close_async(), _HTTP_SHUTDOWN_SECONDS)
        except Exception as exc:
            log.warning("socket_mode_close_failed", error=type(exc).__name__)
    if runner.server is not None:  # else setup failed: nothing was served
        await runner.cleanup()
    budget = SHUTDOWN_SECONDS - _CLOSE_SECONDS - (loop.time() - started)
    finished, cancelled = await bot.tasks.drain(max(budget, 0.5))
    log.info(
        "drained",
        finished=finished,
        cancelled=cancelled,
        seconds=round(loop.time() - started, 3),
    )
    await bot.close()  # the sweeper, the Nexthink and Slack clients, the store
    log.info("stopped", seconds=round(loop.time() - started, 3))
