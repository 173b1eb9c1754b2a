"""The Nexthink client against a scripted Nexthink on a real loopback socket.

``FakeNexthink`` is a small aiohttp server: it answers like Nexthink, records every request it
receives (so tests can count them exactly), validates each one against the OpenAPI document (the
token and NQL calls, which the document does not cover, against their documented shapes), and
can be told to answer the next requests of an endpoint in a given way: a status, a body, a
delay longer than the client's read timeout, or a connection closed without an answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from bot.nexthink import (
    AuthenticationError,
    BadRequest,
    BulkExecution,
    ConfigurationError,
    NexthinkClient,
    OutcomeUnknown,
    PermissionDenied,
    Throttled,
    Unavailable,
    UnexpectedResponse,
    completed_before,
)
from bot.nexthink.models import (
    DeviceData,
    ExecutionRequest,
    ExternalIdsExecutionRequest,
    TriggerMethod,
    UserData,
    WorkflowDependency,
)
from bot.settings import Settings
from tests.support.openapi import validate_request
from tests.support.secret_scan import captured_lines

TOKEN_PATH = "/oauth2/default/v1/token"
CLIENT_ID = "bot-client"
CLIENT_SECRET = "s3cret-Client-Value-42"
WORKFLOW_UUID = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"
EXECUTION_UUID = "fecab46b-ee58-b8bc-b61e-912a2dc2bcbc"
_DOCUMENTED = {"execute_v1", "execute_v2", "trigger", "list", "get"}


# -- the fake ---------------------------------------------------------------------------------


@dataclass
class Reply:
    """A scripted answer to one request."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds to hold the answer back (longer than the client's read timeout: no answer)
    delay: float = 0.0
    #: close the connection instead of answering
    reset: bool = False


@dataclass
class Seen:
    endpoint: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    #: every header as sent, repeats included
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


def _endpoint(method: str, path: str) -> str:
    if path == TOKEN_PATH:
        return "token"
    if path == "/api/v1/workflows/execute":
        return "execute_v1"
    if path == "/api/v2/workflows/execute":
        return "execute_v2"
    if path == "/api/v1/workflows":
        return "list"
    if path == "/api/v1/workflows/details":
        return "get"
    if path == "/api/v2/nql/execute":
        return "nql"
    if path.startswith("/api/v1/workflows/workflows/") and path.endswith("/trigger"):
        return "trigger"
    return "unknown"


class FakeNexthink:
    """A scripted Nexthink: token endpoint and API on one loopback port."""

    def __init__(self, *, token_lifetime: int = 900, token_delay: float = 0.0) -> None:
        self.token_lifetime = token_lifetime
        self.token_delay = token_delay
        self.seen: list[Seen] = []
        self.invalid: list[str] = []
        self.script: dict[str, deque[Reply]] = defaultdict(deque)
        self.valid_tokens: set[str] = set()
        self.issued: list[str] = []
        self.workflows: dict[str, list[Any]] = {}
        self.nql_rows: list[dict[str, Any]] = []
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        self.url = ""

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def listen(self, port: int) -> None:
        """Also answer on ``port`` (same state, same journal)."""
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        self._released.set()
        await self._runner.cleanup()

    def queue(self, endpoint: str, *replies: Reply) -> None:
        self.script[endpoint].extend(replies)

    def requests(self, endpoint: str) -> list[Seen]:
        return [s for s in self.seen if s.endpoint == endpoint]

    def revoke_tokens(self) -> None:
        self.valid_tokens.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        endpoint = _endpoint(request.method, request.path)
        headers = dict(request.headers)
        body: Any
        if endpoint == "token":
            body = dict(parse_qsl(raw.decode()))
        else:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
        self.seen.append(
            Seen(
                endpoint,
                request.method,
                request.path,
                request.query_string,
                headers,
                body,
                list(request.headers.items()),
            )
        )
        self._check(endpoint, request, headers, body)
        if self.script[endpoint]:
            return await self._scripted(request, self.script[endpoint].popleft())
        if endpoint == "token":
            return await self._token(headers)
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.valid_tokens:
            return web.Response(status=401)
        return web.json_response(self._answer(endpoint, request, body))

    def _check(
        self, endpoint: str, request: web.Request, headers: dict[str, str], body: Any
    ) -> None:
        """Record every way this request breaks the reference."""
        problems = []
        if endpoint == "unknown":
            problems.append(f"unknown path {request.method} {request.path}")
        elif endpoint in _DOCUMENTED:
            try:
                validate_request(
                    request.method,
                    request.path,
                    query=request.query_string,
                    headers=headers,
                    body=body,
                )
            except Exception as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
        elif endpoint == "token":
            if body != {"grant_type": "client_credentials", "scope": "service:integration"}:
                problems.append(f"token form {body!r}")
            if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                problems.append("token content type")
            if not headers.get("Authorization", "").startswith("Basic "):
                problems.append("token without Basic auth")
        elif endpoint == "nql" and (
            not isinstance(body, dict) or set(body) != {"queryId", "parameters"}
        ):
            problems.append(f"nql body {body!r}")
        if endpoint not in {"token", "unknown"}:
            for name in ("Authorization", "Source", "Accept"):
                if name not in headers:
                    problems.append(f"{endpoint} without {name}")
            if headers.get("Accept") != "application/json":
                problems.append(f"{endpoint} Accept {headers.get('Accept')!r}")
        self.invalid += [f"{endpoint}: {p}" for p in problems]

    async def _scripted(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        if reply.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), reply.delay)
        if reply.reset:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)
        body = (
            reply.body
            if reply.body is not None
            else (b"" if reply.json is None else json.dumps(reply.json).encode())
        )
        return web.Response(
            status=reply.status, body=body, content_type=reply.content_type, headers=reply.headers
        )

    async def _token(self, headers: dict[str, str]) -> web.Response:
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if headers.get("Authorization") != expected:
            return web.json_response(
                {"error": "invalid_client", "error_description": "bad credentials"}, status=401
            )
        token = f"tok-{len(self.issued) + 1}-{uuid.uuid4().hex}"
        self.issued.append(token)
        self.valid_tokens.add(token)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "access_token": token,
                "scope": "service:integration",
            }
        )

    def _answer(self, endpoint: str, request: web.Request, body: Any) -> Any:
        if endpoint in {"execute_v1", "execute_v2"}:
            targets = len(body.get("users", [])) + len(body.get("devices", []))
            return {
                "requestUuid": str(uuid.uuid4()),
                "executionsUuids": [str(uuid.uuid4()) for _ in range(max(targets, 1))],
            }
        if endpoint == "trigger":
            return [{"requestUuid": str(uuid.uuid4())}]
        if endpoint == "list":
            return self.workflows.get(request.query["dependency"], [])
        if endpoint == "get":
            everything = [w for ws in self.workflows.values() for w in ws]
            return [
                w
                for w in everything
                if isinstance(w, dict) and w.get("id") == request.query["nqlId"]
            ]
        if endpoint == "nql":
            return {"data": self.nql_rows}
        return {}


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeNexthink]:
    server = FakeNexthink()
    await server.start()
    yield server
    await server.stop()
    assert server.invalid == [], "requests that break the reference"


def make_client(server: FakeNexthink, **overrides: Any) -> NexthinkClient:
    options: dict[str, Any] = {
        "base_url": server.url,
        "token_url": server.url + TOKEN_PATH,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "backoff": 0.01,
        "max_retry_after": 0.2,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
    }
    options.update(overrides)
    return NexthinkClient(**options)


@pytest.fixture
async def client(fake: FakeNexthink) -> AsyncIterator[NexthinkClient]:
    async with make_client(fake) as nexthink:
        yield nexthink


def v2(
    workflow_id: str = "restart_teams", *, upn: str = "alice@example.com"
) -> ExternalIdsExecutionRequest:
    return ExternalIdsExecutionRequest(
        workflow_id=workflow_id, users=[UserData(upn=upn)], params={"mode": "soft"}
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def calls(endpoint: str, status: str) -> float:
    return metric("nexthink_bot_nexthink_calls_total", endpoint=endpoint, status=status)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def workflow(id_: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "uuid": str(uuid.uuid4()),
        "name": id_.replace("_", " ").title(),
        "description": "",
        "status": "ACTIVE",
        "lastUpdateTime": "2023-12-07T16:26:36Z",
        "triggerMethods": ["API"],
        "versions": [],
        **fields,
    }


#: one ordinary call per endpoint
CALL_BY_ENDPOINT: dict[str, Any] = {
    "execute_v2": lambda c: c.execute(v2()),
    "trigger": lambda c: c.trigger(WORKFLOW_UUID, EXECUTION_UUID, {"decision": "approved"}),
    "list": lambda c: c.list_workflows(WorkflowDependency.USER),
    "get": lambda c: c.get_workflow("restart_teams"),
    "nql": lambda c: c.nql("#chatops_execution_status", {}),
}


# -- the happy paths --------------------------------------------------------------------------


async def test_execute_sends_the_v2_body_with_bearer_source_and_accept(fake: FakeNexthink) -> None:
    """A V2 execute carries the model's JSON and the three headers, and Nexthink's answer comes back."""
    async with make_client(fake, source="chatops-test") as client:
        answer = await client.execute(v2())
    (seen,) = fake.requests("execute_v2")
    assert seen.body == {
        "workflowId": "restart_teams",
        "users": [{"upn": "alice@example.com"}],
        "devices": [],
        "params": {"mode": "soft"},
    }
    assert seen.headers["Authorization"] == f"Bearer {fake.issued[0]}"
    assert seen.headers["Source"] == "chatops-test"
    assert seen.headers["Accept"] == "application/json"
    assert answer.request_uuid
    assert len(answer.executions_uuids) == 1


async def test_execute_v1_sends_sids_and_collector_uuids(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """The V1 execute posts SIDs and Collector UUIDs to /api/v1/workflows/execute."""
    request = ExecutionRequest(
        workflow_id="restart_teams", users=["S-1-5-21-1-2-3-1001"], devices=[WORKFLOW_UUID]
    )
    answer = await client.execute_v1(request)
    (seen,) = fake.requests("execute_v1")
    assert seen.body == {
        "workflowId": "restart_teams",
        "users": ["S-1-5-21-1-2-3-1001"],
        "devices": [WORKFLOW_UUID],
        "params": {},
    }
    assert len(answer.executions_uuids) == 2


async def test_trigger_posts_parameters_and_reads_the_array(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Trigger posts ``{"parameters": ...}`` to the execution's path and returns the array of request ids."""
    answers = await client.trigger(WORKFLOW_UUID, EXECUTION_UUID, {"decision": "approved"})
    (seen,) = fake.requests("trigger")
    assert (
        seen.path
        == f"/api/v1/workflows/workflows/{WORKFLOW_UUID}/execution/{EXECUTION_UUID}/trigger"
    )
    assert seen.body == {"parameters": {"decision": "approved"}}
    assert len(answers) == 1
    assert uuid.UUID(answers[0].request_uuid)


async def test_list_workflows_sends_both_filters_and_fills_dependency(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Listing sends dependency, triggerMethod and fetchOnlyActiveWorkflows, and tags each workflow with its dependency."""
    fake.workflows["DEVICE"] = [workflow("clear_disk_space")]
    found = await client.list_workflows(WorkflowDependency.DEVICE)
    assert [(w.id, w.dependency) for w in found] == [("clear_disk_space", "DEVICE")]
    assert (
        fake.requests("list")[0].query
        == "dependency=DEVICE&triggerMethod=API&fetchOnlyActiveWorkflows=true"
    )
    await client.list_workflows(WorkflowDependency.USER, TriggerMethod.MANUAL, only_active=False)
    assert fake.requests("list")[1].query == "dependency=USER&triggerMethod=MANUAL"


async def test_list_api_workflows_merges_the_four_dependencies(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """The API-triggerable listing asks once per dependency, merges by id, and drops inactive workflows."""
    fake.workflows = {
        "USER": [workflow("restart_teams"), workflow("old_one", status="INACTIVE")],
        "DEVICE": [workflow("clear_disk_space")],
        "USER_AND_DEVICE": [workflow("reinstall_office"), workflow("restart_teams")],
        "NONE": [workflow("audit")],
    }
    found = await client.list_api_workflows()
    assert [(w.id, w.dependency) for w in found] == [
        ("audit", "NONE"),
        ("clear_disk_space", "DEVICE"),
        ("reinstall_office", "USER_AND_DEVICE"),
        ("restart_teams", "USER"),
    ]
    assert sorted(dict(parse_qsl(s.query))["dependency"] for s in fake.requests("list")) == sorted(
        WorkflowDependency
    )


async def test_list_api_workflows_raises_one_error_not_a_group(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """When one of the four listings is refused, its error is raised as such, not as a group."""
    fake.queue("list", Reply(403, json={"code": "FORBIDDEN", "details": "no Workflows API"}))
    with pytest.raises(PermissionDenied, match="FORBIDDEN"):
        await client.list_api_workflows()


async def test_get_workflow_reads_the_array_and_answers_none_when_empty(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Get workflow takes its one item from the array Nexthink answers, and None from an empty array."""
    fake.workflows["USER"] = [workflow("restart_teams", description="Restarts Teams")]
    found = await client.get_workflow("restart_teams")
    assert found is not None
    assert found.description == "Restarts Teams"
    assert await client.get_workflow("no_such_workflow") is None
    assert [s.query for s in fake.requests("get")] == [
        "nqlId=restart_teams",
        "nqlId=no_such_workflow",
    ]


async def test_nql_posts_query_id_and_parameters_and_returns_data(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """An NQL query posts queryId and parameters and returns the rows under ``data``."""
    fake.nql_rows = [
        {
            "workflow.executions.execution_id": EXECUTION_UUID,
            "workflow.executions.status": "success",
        }
    ]
    rows = await client.nql("#chatops_execution_status", {"request_id": "r-1"})
    assert rows == fake.nql_rows
    assert fake.requests("nql")[0].body == {
        "queryId": "#chatops_execution_status",
        "parameters": {"request_id": "r-1"},
    }


async def test_workflow_listing_is_tolerant_of_odd_items(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Odd triggerMethods/versions/dates are parsed tolerantly and unusable items are skipped, not fatal."""
    fake.workflows["USER"] = [
        {
            "id": "license_reclamation",
            "name": "License reclamation",
            "status": "ACTIVE",
            "lastUpdateTime": "2023-12-07T16:26:36Z",
        },
        workflow("as_booleans", triggerMethods={"api": True, "manual": False}, versions={"odd": 1}),
        workflow(
            "bad_date",
            lastUpdateTime="yesterday",
            triggerMethods=[{"name": "API"}],
            versions=[{"versionNumber": 2, "isActive": True}, "junk"],
        ),
        {"name": "no id at all"},
        "not an object",
    ]
    found = {w.id: w for w in await client.list_workflows(WorkflowDependency.USER)}
    assert set(found) == {"license_reclamation", "as_booleans", "bad_date"}
    assert found["as_booleans"].trigger_methods == {"API"}
    assert found["bad_date"].last_update_time is None
    assert found["bad_date"].versions == ({"versionNumber": 2, "isActive": True},)


# -- tokens -----------------------------------------------------------------------------------


async def test_one_token_request_for_a_hundred_concurrent_calls(fake: FakeNexthink) -> None:
    """A hundred calls that start together share one token request (single flight)."""
    fake.token_delay = 0.05
    async with make_client(fake) as client:
        await asyncio.gather(*(client.list_workflows(WorkflowDependency.USER) for _ in range(100)))
        await client.list_workflows(WorkflowDependency.NONE)
    assert len(fake.requests("token")) == 1
    assert len(fake.requests("list")) == 101
    assert {s.headers["Authorization"] for s in fake.requests("list")} == {
        f"Bearer {fake.issued[0]}"
    }


async def test_a_cancelled_waiter_does_not_cancel_the_shared_token_request(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Cancelling the caller that started the token request leaves it running for the others."""
    fake.token_delay = 0.05
    first = asyncio.create_task(client.token())
    await asyncio.sleep(0.01)
    first.cancel()
    token = await client.token()
    assert token == fake.issued[0]
    assert len(fake.requests("token")) == 1
    assert first.cancelled()


async def test_token_is_renewed_shortly_before_it_expires(fake: FakeNexthink) -> None:
    """A token is reused until ``token_margin`` before ``expires_in``, then a new one is requested.

    The client reads the real clock: the reuse window is 5 s so that busy cores cannot close it
    between two calls (the 0.15 s window it had could)."""
    fake.token_lifetime = 10
    async with make_client(fake, token_margin=5.0) as client:
        first = await client.token()
        assert await client.token() == first
        assert client.last_token_at is not None
        assert client.last_token_at <= time.monotonic()
        await asyncio.sleep(5.2)
        second = await client.token()
    assert second != first
    assert len(fake.requests("token")) == 2


async def test_a_short_lived_token_is_still_shared(fake: FakeNexthink) -> None:
    """A token shorter-lived than the margin is still reused for a while rather than never."""
    fake.token_lifetime = 2
    async with make_client(fake, token_margin=60.0) as client:
        assert await client.token() == await client.token()
    assert len(fake.requests("token")) == 1


async def test_401_gets_one_new_token_and_retries_once(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """A 401 on execute leads to exactly one token refresh and one more execute, with the new token."""
    await client.token()
    fake.revoke_tokens()
    await client.execute(v2())
    assert len(fake.requests("token")) == 2
    assert [s.headers["Authorization"] for s in fake.requests("execute_v2")] == [
        f"Bearer {t}" for t in fake.issued
    ]


async def test_concurrent_401s_share_one_refresh(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Ten calls refused together with the same expired token cause a single token request."""
    await client.token()
    fake.revoke_tokens()
    await asyncio.gather(*(client.get_workflow("restart_teams") for _ in range(10)))
    assert len(fake.requests("token")) == 2
    assert len(fake.requests("get")) == 20


async def test_401_that_persists_after_the_refresh_is_an_authentication_error(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """When the new token is refused too, the call fails with AuthenticationError after two attempts."""
    fake.queue("execute_v2", Reply(401), Reply(401))
    with pytest.raises(AuthenticationError, match="Workflows API permission"):
        await client.execute(v2())
    assert len(fake.requests("execute_v2")) == 2
    assert len(fake.requests("token")) == 2


async def test_wrong_credentials_fail_once_for_everyone_without_leaking_the_secret(
    fake: FakeNexthink,
) -> None:
    """Wrong credentials make one token request, fail every waiting caller, and never show the secret."""
    before = metric("nexthink_bot_token_refreshes_total", result="failure")
    async with make_client(fake, client_secret="wrong-" + CLIENT_SECRET) as client:
        results = await asyncio.gather(
            *(client.execute(v2()) for _ in range(20)), return_exceptions=True
        )
        assert client.last_token_at is None
    assert len(fake.requests("token")) == 1
    assert fake.requests("execute_v2") == []
    assert all(isinstance(r, AuthenticationError) for r in results)
    error = results[0]
    assert "invalid_client" in str(error)
    assert "NEXTHINK_CLIENT_SECRET" in str(error)
    for text in (str(error), repr(error), repr(client), str(error.__cause__)):
        assert CLIENT_SECRET not in text
    assert metric("nexthink_bot_token_refreshes_total", result="failure") == before + 1


async def test_the_token_request_retries_transient_failures(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """A 503 and a 500 from the token endpoint are retried with backoff before the call goes on."""
    fake.queue(
        "token", Reply(503, headers={"Retry-After": "0.01"}), Reply(500, json={"error": "oops"})
    )
    await client.get_workflow("restart_teams")
    assert len(fake.requests("token")) == 3
    assert len(fake.requests("get")) == 1


async def test_a_malformed_token_answer_is_unexpected_and_not_quoted(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """A token answer without a usable expiry is an UnexpectedResponse whose text does not repeat the token."""
    fake.queue("token", Reply(json={"access_token": "leaky-token-value", "expires_in": "soon"}))
    with pytest.raises(UnexpectedResponse, match="Nexthink answered unexpectedly") as caught:
        await client.token()
    assert "leaky-token-value" not in str(caught.value)
    assert "leaky-token-value" not in str(caught.value.__cause__)


async def test_no_token_or_secret_is_logged(fake: FakeNexthink, client: NexthinkClient) -> None:
    """Nothing the client logs, through retries, refreshes and failures, holds the token or the secret."""
    await client.token()
    fake.revoke_tokens()
    fake.queue("execute_v2", Reply(429, headers={"Retry-After": "0"}))
    await client.execute(v2())
    fake.queue("list", Reply(500), Reply(500), Reply(500))
    with pytest.raises(Unavailable):
        await client.list_workflows(WorkflowDependency.USER)
    logs = [line for line in captured_lines() if '"bot.nexthink' in line]  # as rendered
    assert any("retry" in line for line in logs), "the retries are logged"
    text = "\n".join(logs)
    for secret in (CLIENT_SECRET, *fake.issued):
        assert secret not in text


# -- retries that never duplicate work ------------------------------------------------------


async def test_execute_429_waits_retry_after_and_retries(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """A 429 on execute is waited out (Retry-After) and retried: two requests, one execution."""
    fake.queue(
        "execute_v2",
        Reply(
            429, json={"code": "throttled", "details": "slow down"}, headers={"Retry-After": "0.05"}
        ),
    )
    started = time.monotonic()
    await client.execute(v2())
    assert time.monotonic() - started >= 0.05
    assert len(fake.requests("execute_v2")) == 2


async def test_execute_503_is_retried(fake: FakeNexthink, client: NexthinkClient) -> None:
    """A 503 on execute means nothing was processed, so it is retried."""
    fake.queue("execute_v2", Reply(503, headers={"Retry-After": "0.01"}))
    await client.execute(v2())
    assert len(fake.requests("execute_v2")) == 2


async def test_throttling_that_outlasts_the_retries_is_throttled(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Three 429s in a row: two retries, then Throttled with Nexthink's Retry-After."""
    fake.queue("trigger", *[Reply(429, headers={"Retry-After": "0.02"})] * 3)
    with pytest.raises(Throttled) as caught:
        await client.trigger(WORKFLOW_UUID, EXECUTION_UUID, {"decision": "approved"})
    assert caught.value.retry_after == pytest.approx(0.02)
    assert len(fake.requests("trigger")) == 3


async def test_unavailability_that_outlasts_the_retries_is_unavailable(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Three 503s in a row without Retry-After: backoff, two retries, then Unavailable."""
    fake.queue("execute_v2", *[Reply(503)] * 3)
    with pytest.raises(Unavailable, match="nothing was processed"):
        await client.execute(v2())
    assert len(fake.requests("execute_v2")) == 3


async def test_retry_after_is_capped(fake: FakeNexthink) -> None:
    """A Retry-After of an hour is waited only up to ``max_retry_after`` (the upper bound here is
    generous for busy cores and still far from the hour)."""
    fake.queue("get", Reply(429, headers={"Retry-After": "3600"}))
    async with make_client(fake, max_retry_after=0.05) as client:
        started = time.monotonic()
        await client.get_workflow("restart_teams")
    assert 0.05 <= time.monotonic() - started < 60
    assert len(fake.requests("get")) == 2


async def test_retries_can_be_turned_off(fake: FakeNexthink) -> None:
    """With ``retries=0`` the first 429 is final."""
    fake.queue("list", Reply(429, headers={"Retry-After": "0"}))
    async with make_client(fake, retries=0) as client:
        with pytest.raises(Throttled):
            await client.list_workflows(WorkflowDependency.USER)
    assert len(fake.requests("list")) == 1


async def test_each_request_has_the_clients_headers_once_and_its_cookies(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """The client builds each request itself: httpx's defaults (its User-Agent) and one Accept,
    and a cookie an answer set (a load balancer's) goes back with the next request."""
    fake.queue(
        "list", Reply(429, headers={"Retry-After": "0", "Set-Cookie": "AWSALB=sticky-1; Path=/"})
    )
    await client.list_workflows(WorkflowDependency.USER)
    await client.get_workflow("restart_teams")
    throttled, retried = fake.requests("list")
    for seen in (throttled, retried, *fake.requests("get")):
        names = [name.lower() for name, _ in seen.raw_headers]
        assert names.count("accept") == 1
        assert names.count("authorization") == 1
        assert seen.headers["Accept"] == "application/json"
        assert seen.headers["User-Agent"] == f"python-httpx/{httpx.__version__}"
    assert "Cookie" not in throttled.headers
    assert retried.headers["Cookie"] == "AWSALB=sticky-1"
    assert fake.requests("get")[0].headers["Cookie"] == "AWSALB=sticky-1"


async def test_execute_retries_a_refused_connection_and_runs_once(fake: FakeNexthink) -> None:
    """A refused connection means nothing was sent: the execute is retried and reaches Nexthink once."""
    port = closed_port()
    refusals = calls("execute_v2", "connect_error")

    async def open_after_the_refusal() -> None:
        # the client's own metric is the only sign of the refusal; poll it
        while calls("execute_v2", "connect_error") == refusals:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        await fake.listen(port)

    async with make_client(fake, base_url=f"http://127.0.0.1:{port}", backoff=0.2) as client:
        opener = asyncio.create_task(open_after_the_refusal())
        answer = await client.execute(v2())
        await opener
    assert answer.request_uuid
    assert calls("execute_v2", "connect_error") == refusals + 1
    assert len(fake.requests("execute_v2")) == 1


async def test_a_port_that_stays_closed_is_unavailable(fake: FakeNexthink) -> None:
    """Three refused connections: Unavailable, saying nothing was sent."""
    refusals = calls("execute_v2", "connect_error")
    async with make_client(fake, base_url=f"http://127.0.0.1:{closed_port()}") as client:
        with pytest.raises(Unavailable, match="nothing was sent"):
            await client.execute(v2())
    assert calls("execute_v2", "connect_error") == refusals + 3


async def test_read_timeout_after_execute_is_outcome_unknown_after_one_request(
    fake: FakeNexthink,
) -> None:
    """No answer within the read timeout after an execute: OutcomeUnknown at once, naming the workflow."""
    fake.queue("execute_v2", Reply(delay=1.0))
    async with make_client(fake, read_timeout=0.1) as client:
        with pytest.raises(OutcomeUnknown, match="restart_teams") as caught:
            await client.execute(v2())
    assert "may or may not have run" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert len(fake.requests("execute_v2")) == 1


async def test_reset_after_execute_is_outcome_unknown_after_one_request(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """A connection closed without an answer after an execute: OutcomeUnknown, never resent."""
    fake.queue("execute_v2", Reply(reset=True))
    with pytest.raises(OutcomeUnknown, match="closed without an answer"):
        await client.execute(v2())
    assert len(fake.requests("execute_v2")) == 1


@pytest.mark.parametrize("status", [500, 502, 504], ids=["500", "502", "504"])
async def test_5xx_after_execute_is_outcome_unknown_after_one_request(
    fake: FakeNexthink, client: NexthinkClient, status: int
) -> None:
    """Any 5xx but 503 after an execute: OutcomeUnknown, one request."""
    fake.queue(
        "execute_v2",
        Reply(status, body=b"<html><body>Bad gateway</body></html>", content_type="text/html"),
    )
    with pytest.raises(OutcomeUnknown, match=f"HTTP {status}"):
        await client.execute(v2())
    assert len(fake.requests("execute_v2")) == 1


async def test_500_after_trigger_is_outcome_unknown_naming_the_execution(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """A 500 after a trigger: OutcomeUnknown naming the execution, one request."""
    fake.queue("trigger", Reply(500, json={"code": "internal", "details": "boom"}))
    with pytest.raises(OutcomeUnknown, match=EXECUTION_UUID):
        await client.trigger(WORKFLOW_UUID, EXECUTION_UUID, {"decision": "denied"})
    assert len(fake.requests("trigger")) == 1


async def test_500_on_list_is_retried(fake: FakeNexthink, client: NexthinkClient) -> None:
    """A 500 on a GET is retried with backoff: it can be repeated safely."""
    fake.queue("list", Reply(500))
    fake.workflows["USER"] = [workflow("restart_teams")]
    assert [w.id for w in await client.list_workflows(WorkflowDependency.USER)] == ["restart_teams"]
    assert len(fake.requests("list")) == 2


async def test_5xx_on_a_get_that_outlasts_the_retries_is_unavailable(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Three 502s on a GET: two retries, then Unavailable."""
    fake.queue("get", *[Reply(502, body=b"<html>gateway</html>", content_type="text/html")] * 3)
    with pytest.raises(Unavailable, match="HTTP 502"):
        await client.get_workflow("restart_teams")
    assert len(fake.requests("get")) == 3


async def test_timeouts_and_resets_on_reads_are_retried(fake: FakeNexthink) -> None:
    """A read timeout on a GET and a reset on an NQL query are retried: nothing can be duplicated."""
    fake.queue("get", Reply(delay=1.0))
    fake.queue("nql", Reply(reset=True))
    async with make_client(fake, read_timeout=0.1) as client:
        await client.get_workflow("restart_teams")
        await client.nql("#chatops_execution_status", {})
    assert len(fake.requests("get")) == 2
    assert len(fake.requests("nql")) == 2


async def test_every_attempt_is_counted_and_timed(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Each HTTP attempt adds to NEXTHINK_CALLS by endpoint and status and to NEXTHINK_SECONDS."""
    await client.token()
    throttled, ok = calls("execute_v2", "429"), calls("execute_v2", "200")
    timed = metric("nexthink_bot_nexthink_call_seconds_count", endpoint="execute_v2")
    fake.queue("execute_v2", Reply(429, headers={"Retry-After": "0"}))
    await client.execute(v2())
    assert calls("execute_v2", "429") == throttled + 1
    assert calls("execute_v2", "200") == ok + 1
    assert metric("nexthink_bot_nexthink_call_seconds_count", endpoint="execute_v2") == timed + 2


# -- translation ------------------------------------------------------------------------------


async def test_400_carries_nexthinks_code_and_details(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """A 400 ErrorResponse becomes BadRequest with its code and details."""
    fake.queue(
        "execute_v2", Reply(400, json={"code": "WORKFLOW_NOT_FOUND", "details": "no such workflow"})
    )
    with pytest.raises(BadRequest) as caught:
        await client.execute(v2("nope"))
    assert (caught.value.code, caught.value.details, caught.value.endpoint) == (
        "WORKFLOW_NOT_FOUND",
        "no such workflow",
        "execute_v2",
    )
    assert len(fake.requests("execute_v2")) == 1


async def test_403_is_permission_denied(fake: FakeNexthink, client: NexthinkClient) -> None:
    """A 403 ErrorResponse becomes PermissionDenied with its code and details, not retried."""
    fake.queue(
        "list",
        Reply(403, json={"code": "FORBIDDEN", "details": "missing Workflows API permission"}),
    )
    with pytest.raises(PermissionDenied) as caught:
        await client.list_workflows(WorkflowDependency.USER)
    assert caught.value.code == "FORBIDDEN"
    assert len(fake.requests("list")) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404),
        Reply(400, body=b"<html>Bad request</html>", content_type="text/html"),
        Reply(409, json={"x": 1}),
    ],
    ids=["404", "400-html", "409"],
)
async def test_other_4xx_are_bad_requests_without_a_code(
    fake: FakeNexthink, client: NexthinkClient, reply: Reply
) -> None:
    """4xx answers without an ErrorResponse become BadRequest with no code."""
    fake.queue("trigger", reply)
    with pytest.raises(BadRequest, match=f"HTTP {reply.status}") as caught:
        await client.trigger(WORKFLOW_UUID, EXECUTION_UUID, {})
    assert caught.value.code is None


@pytest.mark.parametrize(
    ("endpoint", "reply"),
    [
        ("execute_v2", Reply(body=b"<html><body>Welcome</body></html>", content_type="text/html")),
        (
            "execute_v2",
            Reply(body=b'{"requestUuid": "abc", "executionsUu', content_type="application/json"),
        ),
        ("execute_v2", Reply(body=b"")),
        ("execute_v2", Reply(json={"requestUuid": "", "executionsUuids": []})),
        ("execute_v2", Reply(json=[{"requestUuid": "abc"}])),
        ("trigger", Reply(json={"requestUuid": WORKFLOW_UUID})),
        ("trigger", Reply(json=[{"requestUuid": 42}])),
        ("list", Reply(json={"workflows": []})),
        ("get", Reply(json=[{"name": "no id"}])),
        ("nql", Reply(json={"rows": []})),
        ("nql", Reply(json={"data": [1, 2]})),
    ],
    ids=[
        "html",
        "truncated-json",
        "empty",
        "empty-fields",
        "wrong-type",
        "trigger-object",
        "trigger-bad-uuid",
        "list-object",
        "get-no-id",
        "nql-no-data",
        "nql-bad-rows",
    ],
)
async def test_answers_that_break_the_reference_are_unexpected(
    fake: FakeNexthink, client: NexthinkClient, endpoint: str, reply: Reply
) -> None:
    """A 200 that breaks the reference is an UnexpectedResponse, and is not retried."""
    fake.queue(endpoint, reply)
    with pytest.raises(UnexpectedResponse, match=r"^Nexthink answered unexpectedly"):
        await CALL_BY_ENDPOINT[endpoint](client)
    assert len(fake.requests(endpoint)) == 1


async def test_an_unexpected_answer_to_execute_warns_that_it_may_have_run(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """An execute answered with an HTML page says the run may have happened."""
    fake.queue("execute_v2", Reply(body=b"<html>portal</html>", content_type="text/html"))
    with pytest.raises(UnexpectedResponse, match=r"an HTML page.*may have run"):
        await client.execute(v2())


async def test_a_redirect_is_not_followed(fake: FakeNexthink, client: NexthinkClient) -> None:
    """A 3xx (a wrong base URL, a login page) is an UnexpectedResponse, not followed."""
    fake.queue("get", Reply(302, headers={"Location": "https://login.example.com/"}))
    with pytest.raises(UnexpectedResponse, match="HTTP 302"):
        await client.get_workflow("restart_teams")
    assert len(fake.requests("get")) == 1


# -- validated before anything is sent ------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.trigger("not-a-uuid", EXECUTION_UUID, {}), "workflowUuid must be a UUID"),
        (
            lambda c: c.trigger(WORKFLOW_UUID, EXECUTION_UUID, {"decision": ""}),
            "parameters.decision",
        ),
        (lambda c: c.nql("chatops status", {}), "#my_query"),
        (lambda c: c.nql("#ok_query", {"n": 1}), "must be strings"),
        (
            lambda c: c.execute_many(
                "restart_teams", [UserData(upn="a@example.com")], [], {"n": 1}
            ),
            "params.n",
        ),
        (lambda c: c.get_workflow(""), "NQL ID is required"),
    ],
    ids=[
        "trigger-uuid",
        "trigger-empty-value",
        "nql-id",
        "nql-values",
        "execute-many-params",
        "get-empty",
    ],
)
async def test_invalid_requests_are_refused_locally(
    fake: FakeNexthink, client: NexthinkClient, call: Any, match: str
) -> None:
    """A request that breaks the reference raises BadRequest without code, and nothing is sent."""
    with pytest.raises(BadRequest, match=match) as caught:
        await call(client)
    assert caught.value.code is None
    assert fake.seen == []


# -- chunking ---------------------------------------------------------------------------------


def devices(n: int) -> list[DeviceData]:
    return [DeviceData(name=f"LAPTOP-{i:05d}") for i in range(n)]


async def test_25000_devices_go_in_three_requests(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """25,000 devices are sent as 10,000 + 10,000 + 5,000, in order, and the answers are combined."""
    targets = devices(25_000)
    bulk = await client.execute_many(
        "clear_disk_space", [UserData(upn="alice@example.com")], targets, {"mode": "soft"}
    )
    sent = fake.requests("execute_v2")
    assert [len(s.body["devices"]) for s in sent] == [10_000, 10_000, 5_000]
    assert [len(s.body["users"]) for s in sent] == [1, 0, 0]
    assert [d["name"] for s in sent for d in s.body["devices"]] == [d.name for d in targets]
    assert all(s.body["params"] == {"mode": "soft"} for s in sent)
    assert isinstance(bulk, BulkExecution)
    assert len(bulk.request_uuids) == 3
    assert len(bulk.executions_uuids) == 25_001


async def test_a_failure_in_chunk_two_reports_what_ran(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """When chunk 2 of 3 fails, the error carries chunk 1's answer and chunk 3 is never sent."""
    fake.queue(
        "execute_v2", Reply(json={"requestUuid": "req-1", "executionsUuids": ["e-1"]}), Reply(500)
    )
    with pytest.raises(OutcomeUnknown) as caught:
        await client.execute_many("clear_disk_space", [], devices(25_000), {})
    completed = completed_before(caught.value)
    assert completed is not None
    assert completed.request_uuids == ["req-1"]
    assert (caught.value.chunk, caught.value.chunks) == (2, 3)  # type: ignore[attr-defined]
    assert len(fake.requests("execute_v2")) == 2


async def test_a_small_execute_many_is_one_request(
    fake: FakeNexthink, client: NexthinkClient
) -> None:
    """Up to 10,000 of each target is a single request, and a failure says nothing ran before it."""
    fake.queue("execute_v2", Reply(400, json={"code": "BAD", "details": "x"}))
    with pytest.raises(BadRequest) as caught:
        await client.execute_many(
            "restart_teams", [UserData(upn="a@example.com")] * 10_000, devices(10_000), {}
        )
    assert completed_before(caught.value) == BulkExecution([])
    assert len(fake.requests("execute_v2")) == 1


def test_ten_thousand_users_and_devices_serialise_whole() -> None:
    """A 10,000 + 10,000 target request serialises every target, in order (how fast: bench/bulk.py)."""
    users = [UserData(upn=f"user{i}@example.com") for i in range(10_000)]
    targets = devices(10_000)
    request = ExternalIdsExecutionRequest(
        workflow_id="clear_disk_space", users=users, devices=targets, params={}
    )
    body = json.loads(json.dumps(request.to_json()))
    assert body["users"] == [u.to_json() for u in users]
    assert body["devices"] == [d.to_json() for d in targets]


# -- configuration and secrets ----------------------------------------------------------------


def test_from_settings_uses_the_configuration() -> None:
    """``from_settings`` takes URL, derived token URL, credentials, source and timeouts from Settings."""
    settings = Settings(
        nexthink_base_url="https://acme.api.eu.nexthink.cloud",
        nexthink_client_id=CLIENT_ID,
        nexthink_client_secret=CLIENT_SECRET,  # type: ignore[arg-type]
        nexthink_source="chatops-prod",
    )
    client = NexthinkClient.from_settings(settings)
    assert client.base_url == "https://acme.api.eu.nexthink.cloud"
    assert (
        client._tokens._token_url == "https://acme-login.eu.nexthink.cloud/oauth2/default/v1/token"
    )
    assert client._sender.source == "chatops-prod"
    assert client._http.timeout.connect == 5.0
    assert client._http.timeout.read == 30.0
    assert CLIENT_SECRET not in repr(client)


def test_from_settings_without_nexthink_is_a_configuration_error() -> None:
    """Without NEXTHINK_BASE_URL there is no client to build, and the error names the variable."""
    with pytest.raises(ConfigurationError, match="NEXTHINK_BASE_URL"):
        NexthinkClient.from_settings(Settings())


async def test_errors_never_hold_the_token(fake: FakeNexthink, client: NexthinkClient) -> None:
    """The texts of the errors raised after a token was used do not contain it, nor the secret."""
    fake.queue("execute_v2", Reply(500))
    fake.queue("trigger", Reply(403, json={"code": "FORBIDDEN", "details": "no"}))
    errors = []
    for call in (client.execute(v2()), client.trigger(WORKFLOW_UUID, EXECUTION_UUID, {})):
        with pytest.raises(Exception) as caught:  # noqa: PT011 - several kinds, checked below
            await call
        errors.append(caught.value)
    assert [type(e) for e in errors] == [OutcomeUnknown, PermissionDenied]
    for error in errors:
        for text in (str(error), repr(error), str(error.__cause__), repr(error.__cause__)):
            assert fake.issued[0] not in text
            assert CLIENT_SECRET not in text
