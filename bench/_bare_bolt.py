"""The baseline for ``bench/ack.py``: a bare slack-bolt AsyncApp whose ``/nexthink`` only acks.

    python bench/_bare_bolt.py --port 8103 --slack-api-url http://127.0.0.1:8101/api/

Configured like the bot's app where it matters to the acknowledgement: request signatures
verified, a bot token with a pooled Web API client toward the same LocalSlack (so Bolt's
single-team authorization calls ``auth.test`` once, as it does in the bot), and served by
aiohttp with the same adapter functions (``to_bolt_request``/``to_aiohttp_response``) the
bot's ``/slack/events`` uses. ``GET /healthz`` answers 200. No logging configured (Python's
default: warnings only).

``process_before_response`` is Bolt's default (False) unless ``--process-before-response``: then
the listener runs inline and the acknowledgement is answered as soon as it returns, rather than
Bolt polling every 10 ms for ``ack()`` from a task of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

# as in _support.py, not imported from it so that this process loads no more than Bolt needs
BOT_TOKEN = "xoxb-bench"
SIGNING_SECRET = "bench-signing-secret"
HOST = "127.0.0.1"


def build(
    slack_api_url: str, *, process_before_response: bool = False
) -> tuple[web.Application, AsyncWebClient]:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack_api_url, timeout=10, session=session)
    app = AsyncApp(
        client=client,
        signing_secret=SIGNING_SECRET,
        process_before_response=process_before_response,
        raise_error_for_unhandled_request=False,
    )

    @app.command("/nexthink")
    async def on_nexthink(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()

    async def events(request: web.Request) -> web.StreamResponse:
        bolt_response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    web_app = web.Application(client_max_size=1024 * 1024)
    web_app.router.add_post("/slack/events", events)
    web_app.router.add_get("/healthz", healthz)
    return web_app, client


async def main(port: int, slack_api_url: str, process_before_response: bool) -> None:
    web_app, client = build(slack_api_url, process_before_response=process_before_response)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"bare Bolt on http://{HOST}:{port}/slack/events", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if client.session is not None:
            await client.session.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slack-api-url", required=True)
    parser.add_argument("--process-before-response", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.slack_api_url, args.process_before_response))
