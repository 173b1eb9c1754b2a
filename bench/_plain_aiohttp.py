"""The floor for ``bench/ack.py``: plain aiohttp whose ``/slack/events`` only verifies Slack's
signature and answers 200 with an empty body.

    python bench/_plain_aiohttp.py --port 8104

No Bolt, no parsing of the form, no listener: the request's body is read, its
``X-Slack-Signature`` checked against ``X-Slack-Request-Timestamp`` with slack_sdk's
``SignatureVerifier`` (HMAC-SHA256, the five-minute window), and the answer is 200 (401 if the
signature does not hold). What no Slack app can go below on this machine with aiohttp.
``GET /healthz`` answers 200. No logging configured (Python's default: warnings only).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

# as in _support.py, not imported from it so that this process loads no more than it needs
SIGNING_SECRET = "bench-signing-secret"
HOST = "127.0.0.1"


def build() -> web.Application:
    verifier = SignatureVerifier(SIGNING_SECRET)

    async def events(request: web.Request) -> web.Response:
        body = await request.read()
        valid = verifier.is_valid(
            body,
            request.headers.get("X-Slack-Request-Timestamp", ""),
            request.headers.get("X-Slack-Signature", ""),
        )
        return web.Response(status=200 if valid else 401)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    return app


async def main(port: int) -> None:
    runner = web.AppRunner(build(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"plain aiohttp on http://{HOST}:{port}/slack/events", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
