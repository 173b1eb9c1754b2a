"""``Sandbox``: a local stand-in for a Nexthink tenant, served by aiohttp over real sockets.

    async with Sandbox(execution_delay=0.05) as sb:      # starts on 127.0.0.1, a free port
        sb.faults.add("execute_v2:429:times=2")
        ...                                               # point a client at sb.url
        sb.requests("execute_v2")                         # what it received, what it answered

One middleware wraps the Nexthink endpoints: it keeps the journal and applies injected faults
(see ``bot.sandbox.faults`` for what each kind does, and when the request is processed anyway).
The ``/_sandbox/*`` switches (``bot.sandbox.control``) are neither journaled nor faulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from ipaddress import ip_address
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from bot.sandbox.api import NexthinkApi, error_response, refusal
from bot.sandbox.catalogue import SandboxCatalogue
from bot.sandbox.control import SandboxControl
from bot.sandbox.executions import (
    EngineConfig,
    Execution,
    ExecutionEngine,
    Refused,
    WebhookDelivery,
)
from bot.sandbox.faults import ENDPOINTS, Fault, FaultSet, fault_response
from bot.sandbox.journal import JournalEntry, decode_body
from bot.sandbox.queries import SavedQueries, SavedQuery, add_fleet
from bot.sandbox.surface import ApiSurface
from bot.sandbox.tokens import TokenIssuer

__all__ = ["Sandbox"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Sandbox:
    """A Nexthink tenant on loopback: token endpoint, workflow endpoints, NQL, fault switches."""

    def __init__(
        self,
        *,
        client_id: str = "sandbox",
        client_secret: str = "sandbox",  # noqa: S107 - the sandbox's documented default
        token_lifetime: float = 900.0,
        webhook_url: str | None = None,
        webhook_token: str | None = None,
        execution_delay: float = 2.0,
        webhook_timeout: float = 10.0,
        expires_in_minutes: int = 1440,
        wait_expiry: float | None = None,
        faults: Iterable[Fault | str] = (),
        catalogue: SandboxCatalogue | None = None,
        clock: Callable[[], float] = time.monotonic,
        report: Callable[[str], None] | None = None,
        without_v2: bool = False,
    ) -> None:
        """``clock`` times token expiry (a test may pass its own); ``wait_expiry`` is how many
        seconds a paused execution waits before it expires (default ``expires_in_minutes``);
        ``report`` gets one line per request served and per wait question posted (nothing is
        logged otherwise, so an in-process sandbox stays quiet; the journal keeps everything);
        ``without_v2`` plays an instance whose V2 execute is missing (``self.surface``, switchable
        at run time: ``bot.sandbox.surface``)."""
        self.catalogue = catalogue if catalogue is not None else SandboxCatalogue.seeded()
        self.config = EngineConfig(
            execution_delay=execution_delay,
            webhook_url=webhook_url,
            webhook_token=webhook_token,
            webhook_timeout=webhook_timeout,
            expires_in_minutes=expires_in_minutes,
            wait_expiry=wait_expiry,
            report=report,
        )
        self.tokens = TokenIssuer(client_id, client_secret, token_lifetime, clock)
        self.engine = ExecutionEngine(self.catalogue, self.config)
        self.surface = ApiSurface(v2_execute=not without_v2)
        #: saved NQL queries listing devices or users (``bot.sandbox.queries``)
        self.queries = SavedQueries.seeded(self.catalogue)
        self.faults = FaultSet()
        for fault in faults:
            self.faults.add(fault)
        self.journal: list[JournalEntry] = []
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._stopping = asyncio.Event()

    # -- settings that may change while running -------------------------------------------

    @property
    def client_id(self) -> str:
        return self.tokens.client_id

    @property
    def client_secret(self) -> str:
        return self.tokens.client_secret

    @property
    def webhook_url(self) -> str | None:
        """Where paused executions post their question; may be set after ``start()``."""
        return self.config.webhook_url

    @webhook_url.setter
    def webhook_url(self, value: str | None) -> None:
        self.config.webhook_url = value

    @property
    def webhook_token(self) -> str | None:
        return self.config.webhook_token

    @webhook_token.setter
    def webhook_token(self, value: str | None) -> None:
        self.config.webhook_token = value

    @property
    def execution_delay(self) -> float:
        return self.config.execution_delay

    @execution_delay.setter
    def execution_delay(self, value: float) -> None:
        self.config.execution_delay = value

    # -- state ----------------------------------------------------------------------------

    @property
    def executions(self) -> dict[str, Execution]:
        """Every execution so far, by execution uuid."""
        return self.engine.executions

    @property
    def webhooks(self) -> list[WebhookDelivery]:
        """Every wait question posted so far, with the webhook's answer."""
        return self.engine.webhooks

    def requests(self, endpoint: str) -> list[JournalEntry]:
        """Journal entries for one endpoint: token, execute_v1, execute_v2, trigger, list, get,
        nql (or unknown)."""
        if endpoint not in (*ENDPOINTS, "unknown"):
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        return [entry for entry in self.journal if entry.endpoint == endpoint]

    def add_fleet(self, query_id: str, count: int, *, missing: int = 0) -> SavedQuery:
        """``count`` new devices and a saved query ``query_id`` listing them (then ``missing``
        rows of devices the tenant does not have): a fleet to run on."""
        return add_fleet(self.catalogue, self.queries, query_id, count, missing=missing)

    def expire_tokens(self) -> int:
        """Every token issued so far answers 401 from now on."""
        return self.tokens.expire_all()

    async def wait_for_webhooks(self, within: float = 5.0) -> list[WebhookDelivery]:
        """Until every wait question due so far has been posted and answered (or failed), at most
        ``within`` seconds (then ``TimeoutError``); returns every delivery so far."""
        return await self.engine.wait_for_webhooks(within)

    def hold_executions(self) -> None:
        """Executions stay in progress past their delay until ``release_executions()``."""
        self.engine.hold()

    def release_executions(self) -> None:
        self.engine.release()

    async def settle(self, within: float = 5.0) -> None:
        """Until no execution is in progress and no webhook post is pending, at most ``within``
        seconds (then ``TimeoutError``). Waiting executions stay waiting."""
        await self.engine.settle(within)

    # -- serving --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port`` once started."""
        if self._url is None:
            raise RuntimeError("the sandbox is not started; await sb.start() first")
        return self._url

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        api = NexthinkApi(self.catalogue, self.engine, self.tokens, self.surface, self.queries)
        app.router.add_routes(api.routes())
        app.router.add_routes(SandboxControl(self).routes())
        app.router.add_routes(self.surface.routes())
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: any free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already started")
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = "127.0.0.1" if ip_address(bound_host).is_unspecified else str(bound_host)
        shown = f"[{shown}]" if ":" in shown else shown
        self._url = f"http://{shown}:{bound_port}"
        return self._url

    async def stop(self) -> None:
        """Stop serving: held requests are dropped, background work is cancelled."""
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self.engine.close()
        self._url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- the middleware: journal and faults -----------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        name = request.match_info.route.name
        if request.match_info.http_exception is not None:
            endpoint = "unknown"
        elif name in ENDPOINTS:
            endpoint = str(name)
        else:
            return await handler(request)
        raw = await request.read()
        fault = self.faults.take(endpoint) if endpoint != "unknown" else None

        hidden: web.Response | None = None

        def record(response: web.Response | None) -> None:
            self._record(request, endpoint, raw, response, fault, hidden)

        if fault is None or fault.kind == "latency":
            if fault is not None:
                await self._hold(fault.hold)
            response = await self._answer(request, handler)
            record(response)
            return response
        if fault.processed:
            hidden = await self._answer(request, handler)
        if fault.kind in {"timeout", "reset"}:
            record(None)
            if fault.kind == "timeout":
                await self._hold(fault.hold)
            return _reset(request)
        response = fault_response(fault)
        record(response)
        return response

    async def _answer(self, request: web.Request, handler: _Handler) -> web.Response:
        try:
            response = await handler(request)
        except Refused as exc:
            return refusal(exc)
        except web.HTTPException as exc:
            what = "no such endpoint" if exc.status == 404 else "method not allowed"
            return error_response(
                exc.status,
                "NOT_FOUND" if exc.status == 404 else "METHOD_NOT_ALLOWED",
                f"The Nexthink API has {what}: {request.method} {request.path}.",
            )
        if not isinstance(response, web.Response):
            raise TypeError("sandbox handlers answer with web.Response")
        return response

    async def _hold(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the sandbox stops meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _record(
        self,
        request: web.Request,
        endpoint: str,
        raw: bytes,
        response: web.Response | None,
        fault: Fault | None,
        hidden: web.Response | None,
    ) -> None:
        entry = JournalEntry(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=decode_body(raw, request.content_type),
            status=None if response is None else response.status,
            response=_decoded(response),
            at=datetime.now(UTC),
            fault=None if fault is None else fault.spec(),
            processed_response=_decoded(hidden),
        )
        self.journal.append(entry)
        if self.config.report is not None:
            answer = "no answer" if entry.status is None else str(entry.status)
            fault_note = f" (fault {entry.fault})" if entry.fault else ""
            self.config.report(f"{request.method} {request.path_qs} -> {answer}{fault_note}")


def _decoded(response: web.Response | None) -> Any:
    if response is None or not isinstance(response.body, bytes):
        return None
    return decode_body(response.body, response.content_type)


def _reset(request: web.Request) -> web.Response:
    """Reset the connection (TCP RST, no answer); the returned response is never sent."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.close()
    return web.Response(status=499)
