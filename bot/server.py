"""The HTTP side: Slack's events (HTTP mode), Nexthink's waits webhook, health and metrics.

One aiohttp server on ``PORT`` serves ``POST /slack/events`` (HTTP mode only),
``POST /nexthink/waits``, ``GET /healthz``, ``GET /readyz`` and ``GET /metrics``. ``serve``
runs it until SIGTERM or SIGINT, then drains: it stops taking requests, finishes the work
already acknowledged (bounded), closes Socket Mode and the store, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.logging import get_logger
from bot.metrics import ACK_SECONDS

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = ["build_web_app", "serve_bot"]

log = get_logger(__name__)

#: SIGTERM must end the process within 10 s; leave room for closing connections
DRAIN_SECONDS = 7.0
_READY_TOKEN_AGE = 600.0


BOT: web.AppKey[Bot] = web.AppKey("bot")


def build_web_app(bot: Bot) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[BOT] = bot
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    from bot.waits import waits_route

    app.router.add_post("/nexthink/waits", waits_route)
    if not bot.settings.socket_mode:
        app.router.add_post("/slack/events", _slack_events)
    return app


async def _slack_events(request: web.Request) -> web.StreamResponse:
    bot = request.app[BOT]
    started = time.perf_counter()
    bolt_request = await to_bolt_request(request)
    kind = (
        "interactive"
        if bolt_request.body.get("type")
        else "command"
        if "command" in bolt_request.body
        else "event"
    )
    bolt_response = await bot.app.async_dispatch(bolt_request)
    ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)
    return await to_aiohttp_response(bolt_response)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    bot = request.app[BOT]
    checks = await readiness(bot)
    ready = all(v == "ok" for v in checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def readiness(bot: Bot) -> dict[str, str]:
    async def store() -> str:
        await bot.store.ping()
        return "ok"

    async def slack() -> str:
        if bot.slack_ok_at is None or time.monotonic() - bot.slack_ok_at > _READY_TOKEN_AGE:
            await bot.check_slack()
        return "ok"

    async def nexthink() -> str:
        last = bot.nexthink.last_token_at
        if last is None or time.monotonic() - last > _READY_TOKEN_AGE:
            await bot.nexthink.token()
        return "ok"

    names = ("store", "slack", "nexthink")
    results = await asyncio.gather(
        *(asyncio.wait_for(check, 3.0) for check in (store(), slack(), nexthink())),
        return_exceptions=True,
    )
    out: dict[str, str] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            out[name] = (
                f"{type(result).__name__}: {result}"[:300] if str(result) else type(result).__name__
            )
        else:
            out[name] = str(result)
    return out


async def _metrics(request: web.Request) -> web.Response:
    bot = request.app[BOT]
    await bot.refresh_gauges()
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve_bot(
    bot: Bot,
    *,
    host: str = "0.0.0.0",  # noqa: S104 - a server in a container listens on all interfaces
    port: int | None = None,
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT or ``stop`` is set, then drain and close.

    ``ready`` is called with the bound port once Slack and Nexthink may send requests."""
    port = bot.settings.port if port is None else port
    runner = web.AppRunner(build_web_app(bot), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = list(getattr(server, "sockets", None) or [])
    bound = sockets[0].getsockname()[1] if sockets else port
    socket_handler = None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # not possible outside the main thread (tests) or on Windows
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await bot.check_slack()
        except Exception as exc:
            log.error("slack_auth_test_failed", error=str(exc)[:300])
        if bot.settings.socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert bot.settings.slack_app_token is not None
            socket_handler = AsyncSocketModeHandler(
                bot.app, bot.settings.slack_app_token.get_secret_value(), web_client=bot.slack
            )
            await socket_handler.connect_async()  # type: ignore[no-untyped-call]
        bot.start_background()
        log.info("serving", port=bound, mode="socket" if bot.settings.socket_mode else "http")
        if ready is not None:
            ready(bound)
        await stop.wait()
        log.info("shutting_down", in_flight=len(bot.tasks))
    finally:
        bot.tasks.closing = True
        if socket_handler is not None:
            await socket_handler.close_async()  # type: ignore[no-untyped-call]
        await site.stop()
        cancelled = await bot.tasks.drain(DRAIN_SECONDS)
        await bot.stop_background()
        await runner.cleanup()
        await bot.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        log.info("stopped", cancelled=cancelled)
