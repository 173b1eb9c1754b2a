"""CPU per HTTP call of the Nexthink client's transport, against httpx's own and plain aiohttp.

    ./dev python bench/transport.py [--calls 4000] [--in-flight 1,5,50]

Starts a plain aiohttp server in its own process that answers every ``POST`` with a V2
execute's answer, then, in this process, sends ``--calls`` POSTs of a V2 execute body (with
``Authorization`` and ``Accept`` headers) for each number of calls in flight, through:

- ``httpx`` with its own transport (httpcore's connection pool on anyio), as the client had;
- ``httpx`` on ``bot.nexthink.transport.AiohttpTransport`` through ``client.post``;
- the client's own ``Sender`` (``bot.nexthink._http``) on that transport, as every call to
  Nexthink is sent: the request built by the sender (the URL parsed once), sent with
  ``client.send``, counted and timed in the metrics;
- ``aiohttp`` alone (one ``ClientSession``), the floor.

Each reads the answer as JSON. The figure is this process's CPU time (``time.process_time``)
per call, after a warm-up of 200 calls; the rounds alternate between the three, twice.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from _support import machine_lines, served
from aiohttp import web

from bot.nexthink._http import Call, RetryPolicy, Sender
from bot.nexthink.transport import AiohttpTransport

EXECUTE = "/api/v2/workflows/execute"
BODY = {"workflowId": "restart_teams", "users": [{"upn": "alice@example.com"}], "params": {}}
HEADERS = {"Authorization": "Bearer bench-token", "Accept": "application/json"}


class _Token:
    """The sender's token cache, holding the bench's one token."""

    async def token(self) -> str:
        return "bench-token"

    async def refresh(self, stale: str | None) -> str:
        return "bench-token"


def _serve(port: int) -> None:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"requestUuid": "r-1", "executionsUuids": ["e-1"]})

    app = web.Application()
    app.router.add_post("/api/v2/workflows/execute", answer)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _round(kind: str, url: str, calls: int, in_flight: int) -> float:
    """CPU seconds per call of one round."""
    closers: list[Callable[[], Awaitable[Any]]] = []
    if kind == "aiohttp":
        session = aiohttp.ClientSession()
        closers.append(session.close)

        async def call() -> None:
            async with session.post(url, json=BODY, headers=HEADERS) as response:
                await response.json()

    elif kind == "the client's Sender":
        client = httpx.AsyncClient(base_url=url.removesuffix(EXECUTE), transport=AiohttpTransport())
        closers.append(client.aclose)
        sender = Sender(client, RetryPolicy(), source="bench")
        execute = Call("execute_v2", "POST", EXECUTE, "execute", idempotent=False, json=BODY)

        async def call() -> None:
            (await sender.send(execute, tokens=_Token())).json()

    else:
        transport = AiohttpTransport() if kind == "httpx on AiohttpTransport" else None
        client = httpx.AsyncClient(transport=transport)
        closers.append(client.aclose)

        async def call() -> None:
            (await client.post(url, json=BODY, headers=HEADERS)).json()

    gate = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with gate:
            await call()

    try:
        await asyncio.gather(*(one() for _ in range(200)))
        started = time.process_time()
        await asyncio.gather(*(one() for _ in range(calls)))
        return (time.process_time() - started) / calls
    finally:
        for close in closers:
            await close()


async def _run(args: argparse.Namespace, url: str) -> None:
    kinds = ("httpx (own transport)", "httpx on AiohttpTransport", "the client's Sender", "aiohttp")
    for in_flight in args.in_flight:
        figures: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(2):
            for kind in kinds:
                figures[kind].append(await _round(kind, url, args.calls, in_flight))
        line = ", ".join(f"{kind} {statistics.mean(v) * 1e6:.0f} µs" for kind, v in figures.items())
        print(f"{in_flight:>3} in flight: CPU per call: {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4000, help="calls per round")
    parser.add_argument(
        "--in-flight",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 5, 50],
        help="calls in flight, comma-separated (default 1,5,50)",
    )
    args = parser.parse_args()
    print(
        f"bench/transport.py: {args.calls} POSTs of a V2 execute body per round, two rounds of "
        "each client alternating, CPU of this process per call (the server is another process)"
    )
    for line in machine_lines():
        print(line)
    try:
        with served(_serve, EXECUTE) as base:
            asyncio.run(_run(args, base + EXECUTE))
    except RuntimeError as exc:
        print(f"bench/transport.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
