"""Nexthink's pace, played in front of the sandbox: a proxy that lets at most ``pace`` executes
a second through and answers the others ``429 Too Many Requests`` with ``Retry-After``.

Nexthink publishes no numeric rate limit for the Workflows API; what it documents (for its NQL
API, and what ``../shared/nexthink/NOTES.md`` tells us to expect here) is a 429 with a
``Retry-After`` header. This proxy is that: a token bucket of ``pace`` executes per second (a
burst of one second's worth), every other request passed through untouched. It counts what
it let through per second, the 429s it answered, and the most executes in flight at once.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

__all__ = ["PaceProxy"]

_EXECUTES = ("/api/v2/workflows/execute", "/api/v1/workflows/execute")
_HOP = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class PaceProxy:
    upstream: str
    pace: float  #: executes per second Nexthink accepts
    retry_after: float = 1.0
    accepted: Counter[int] = field(default_factory=Counter)  #: executes let through per second
    throttled: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    _tokens: float = 0.0
    _stamp: float = 0.0
    _session: aiohttp.ClientSession | None = None
    _runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> str:
        self._tokens, self._stamp = self.pace, time.monotonic()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.pace, self._tokens + (now - self._stamp) * self.pace)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        execute = request.method == "POST" and request.path in _EXECUTES
        if execute and not self._take():
            self.throttled += 1
            return web.json_response(
                {"code": "TOO_MANY_REQUESTS", "details": "rate limit exceeded"},
                status=429,
                headers={"Retry-After": f"{self.retry_after:g}"},
            )
        if execute:
            self.accepted[int(time.time())] += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            assert self._session is not None
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
            async with self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
            ) as answer:
                body = await answer.read()
                out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
                return web.Response(status=answer.status, body=body, headers=out)
        finally:
            if execute:
                self.in_flight -= 1
