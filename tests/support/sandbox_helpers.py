"""Helpers for driving the sandbox over loopback with every exchange checked against the reference.

``Caller`` sends a request with httpx, after checking it with ``validate_request`` when it is
meant to be valid, and checks the answer with ``validate_response`` (or, for the NQL endpoint,
which is not in the OpenAPI document, with ``check_nql_answer``).

The reference's ``Workflow.triggerMethods`` and ``Workflow.versions[]`` point back at ``Workflow``
itself, a documentation error (see shared/nexthink/NOTES.md): no real listing could satisfy it.
Listing answers are therefore validated against a copy of the document in which exactly those two
schemas are relaxed to "any object"; every other field of ``Workflow`` is checked as written.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import warnings
from collections.abc import Callable
from functools import cache
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

import httpx
from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.support.openapi import HOST, SPEC_PATH, validate_request, validate_response

TOKEN_PATH = "/oauth2/default/v1/token"
EXECUTE_V1 = "/api/v1/workflows/execute"
EXECUTE_V2 = "/api/v2/workflows/execute"
LIST = "/api/v1/workflows"
DETAILS = "/api/v1/workflows/details"
NQL = "/api/v2/nql/execute"
_WORKFLOW_PATHS = {LIST, DETAILS}


def trigger_path(workflow_uuid: str, execution_uuid: str) -> str:
    return f"/api/v1/workflows/workflows/{workflow_uuid}/execution/{execution_uuid}/trigger"


def basic(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


@cache
def _listing_spec() -> OpenAPI:
    document = json.loads(SPEC_PATH.read_text())
    relaxed = copy.deepcopy(document)
    workflow = relaxed["components"]["schemas"]["Workflow"]["properties"]
    workflow["triggerMethods"] = {"type": "object"}
    workflow["versions"] = {"type": "array", "items": {"type": "object"}}
    return OpenAPI.from_dict(relaxed)


def validate_listing_response(path: str, status: int, body: Any, *, query: str = "") -> None:
    """``validate_response`` for list/details answers, with the two self-references relaxed."""
    request = MockRequest(HOST, "get", path, args=dict(parse_qsl(query, keep_blank_values=True)))
    data = b"" if body is None else json.dumps(body).encode()
    response = MockResponse(data, status_code=status, content_type="application/json")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        _listing_spec().validate_response(request, response)


def check_nql_answer(body: Any) -> None:
    """The NQL API v2 answer shape the bot reads (not in the Workflows OpenAPI document)."""
    assert isinstance(body, dict)
    assert isinstance(body["queryId"], str)
    assert isinstance(body["executedQuery"], str)
    assert isinstance(body["executionDateTime"], str)
    assert isinstance(body["headers"], list)
    assert isinstance(body["data"], list)
    assert body["rows"] == len(body["data"])
    for row in body["data"]:
        assert set(row) == set(body["headers"])
        assert all(isinstance(value, str) for value in row.values())


def check_answer(method: str, path: str, response: httpx.Response, *, query: str = "") -> None:
    """Raise unless the answer is one the reference documents for this request."""
    body = response.json() if response.content else None
    if response.status_code == 401:
        assert response.content == b"", "a 401 from the API has no body"
    if path == NQL:
        if response.status_code == 200:
            check_nql_answer(body)
        elif response.status_code != 401:
            assert isinstance(body, dict)
            assert set(body) == {"code", "details"}
    elif path in _WORKFLOW_PATHS and response.status_code == 200:
        validate_listing_response(path, 200, body, query=query)
    else:
        validate_response(method, path, response.status_code, body, query=query)


class Caller:
    """A Nexthink API caller over real sockets that checks what it sends and what it gets."""

    def __init__(self, client: httpx.AsyncClient, token: str | None = None) -> None:
        self.client = client
        self.token = token

    async def get_token(
        self,
        client_id: str = "sandbox",
        client_secret: str = "sandbox",  # noqa: S107 - the sandbox's documented default
    ) -> str:
        response = await self.client.post(
            TOKEN_PATH,
            data={"grant_type": "client_credentials", "scope": "service:integration"},
            headers={"Authorization": basic(client_id, client_secret)},
        )
        assert response.status_code == 200, response.text
        self.token = str(response.json()["access_token"])
        return self.token

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}", "Source": "sandbox-tests"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: str = "",
        valid: bool = True,
        check: bool = True,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        time_limit: float | None = None,
    ) -> httpx.Response:
        """Send (``raw`` bytes as JSON, else ``body`` as JSON); ``valid``: the request must satisfy the reference; ``check``: so must the answer."""
        sent = headers if headers is not None else self.headers()
        if valid and path != NQL:
            validate_request(method, path, query=query, headers=sent, body=body)
        url = f"{path}?{query}" if query else path
        if raw is None and body is not None:
            raw = json.dumps(body).encode()
        if raw is not None:
            sent = {"Content-Type": "application/json"} | sent
        extra: dict[str, Any] = {} if time_limit is None else {"timeout": time_limit}
        response = await self.client.request(method, url, headers=sent, content=raw, **extra)
        if check:
            check_answer(method, path, response, query=query)
        return response

    async def execute_v2(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return await self.call("POST", EXECUTE_V2, body=body, **kwargs)

    async def execute_v1(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return await self.call("POST", EXECUTE_V1, body=body, **kwargs)

    async def trigger(
        self, workflow_uuid: str, execution_uuid: str, parameters: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        path = trigger_path(workflow_uuid, execution_uuid)
        return await self.call("POST", path, body={"parameters": parameters}, **kwargs)

    async def nql(
        self, request_id: str, query_id: str = "#chatops_execution_status"
    ) -> httpx.Response:
        body = {"queryId": query_id, "parameters": {"request_id": request_id}}
        return await self.call("POST", NQL, body=body)


class WebhookReceiver:
    """A tiny stand-in for the bot's ``POST /nexthink/waits`` on 127.0.0.1, any free port."""

    def __init__(self, *, status: int = 201, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.received: list[tuple[dict[str, str], Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.json()))
        if self.delay:
            await asyncio.sleep(self.delay)
        body = {
            "id": f"wait-{len(self.received)}",
            "channel": "D0SANDBOX",
            "ts": "1717000000.000100",
        }
        if self.status >= 400:
            body = {"error": "refused by the test receiver"}
        return web.json_response(body, status=self.status)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/nexthink/waits", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/nexthink/waits"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def eventually(predicate: Callable[[], object], within: float = 60.0) -> None:
    """Until ``predicate()`` is true, checking every 10 ms; AssertionError after ``within`` s
    (generous: it bounds a hung test, it does not measure speed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.01)
    if predicate():
        return
    raise AssertionError(f"not true within {within:g} s: {predicate}")


class FakeClock:
    """A clock a test moves by hand (for token expiry)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
