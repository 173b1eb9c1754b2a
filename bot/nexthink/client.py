"""The Nexthink Workflows API client: one pooled ``httpx.AsyncClient`` for the whole bot.

    async with NexthinkClient.from_settings(settings) as nexthink:
        workflows = await nexthink.list_api_workflows()
        answer = await nexthink.execute(ExternalIdsExecutionRequest(...))

Every API call sends ``Authorization: Bearer <token>``, ``Source: <source>`` and
``Accept: application/json``, under the retry policy of ``_http`` (429/503 waited out and
retried; execute and trigger never repeated once they may have reached Nexthink). Failures are
``bot.nexthink.errors`` exceptions, translated in one place (``_http.translate``).

Which execute a run goes through is ``execute_api`` (``NEXTHINK_EXECUTE_API``): ``v2`` always V2;
``v1`` always ``POST /api/v1/workflows/execute`` (SIDs and Collector UUIDs only); ``auto`` (the
default) V2 until the V2 execute answers a 404 without Nexthink's ``ErrorResponse`` (``RouteMissing``:
the route is not there, so nothing ran), then V1 for the rest of the process, starting with the run
that met the 404. A run V1 cannot express (people by UPN or UID, devices by name or UID) raises
``NeedsV2`` before anything is sent through V1.

Requests are validated before anything is sent. The request models validate themselves when
built; the arguments this client turns into a body itself (trigger parameters, execution and
workflow UUIDs, NQL query ids, ``execute_many``'s chunks) are checked here, and a request that
breaks the reference raises ``BadRequest`` with ``code=None`` (its ``__cause__`` is pydantic's
``ValidationError`` where there is one) without any HTTP request being made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Literal, TypeVar

import httpx
from pydantic import SecretStr, ValidationError

from bot.logging import get_logger
from bot.settings import Settings

from ._http import (
    Call,
    RetryPolicy,
    Sender,
    describe_validation_error,
    local_error,
    malformed,
    parse_json,
    parse_model,
    translate,
)
from .auth import TokenProvider
from .errors import BadRequest, ConfigurationError, NeedsV2, NexthinkError, RouteMissing
from .models import (
    MAX_TARGETS,
    DeviceData,
    ExecutionRequest,
    ExecutionResponse,
    ExternalIdsExecutionRequest,
    ThinkletTriggerRequest,
    ThinkletTriggerResponse,
    TriggerMethod,
    UserData,
    Workflow,
    WorkflowDependency,
    is_uuid,
)
from .nql import nql_call, parse_rows
from .results import BulkExecution, NqlResult, attach, completed_before
from .transport import AiohttpTransport
from .v1 import v1_bodies

__all__ = [
    "EXECUTE_APIS",
    "BulkExecution",
    "ExecuteApi",
    "NexthinkClient",
    "NqlResult",
    "completed_before",
]

ExecuteApi = Literal["auto", "v2", "v1"]
#: the values of ``NEXTHINK_EXECUTE_API``
EXECUTE_APIS: Final[tuple[str, ...]] = ("auto", "v2", "v1")

log = get_logger(__name__)

T = TypeVar("T")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class NexthinkClient:
    """Calls to the Nexthink Workflows (and NQL) API, sharing one token and one connection pool."""

    def __init__(
        self,
        *,
        base_url: str,
        token_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        source: str = "slack-chatops",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_retry_after: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        token_margin: float = 60.0,
        execute_api: ExecuteApi = "auto",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        if not base_url or not token_url or not client_id or not secret.get_secret_value():
            raise ConfigurationError(
                "the Nexthink client needs a base URL, a token URL, a client id and a secret"
            )
        if execute_api not in EXECUTE_APIS:
            raise ConfigurationError(
                f"NEXTHINK_EXECUTE_API must be auto, v2 or v1, got {execute_api!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._execute_mode: ExecuteApi = execute_api
        #: in ``auto``: "v1" once the V2 execute met a RouteMissing, "v2" once it was answered
        self._probed: Literal["v1", "v2"] | None = None
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
            ),
            transport=transport if transport is not None else AiohttpTransport(),
            follow_redirects=False,
        )
        policy = RetryPolicy(retries=retries, backoff=backoff, max_retry_after=max_retry_after)
        self._sender = Sender(self._http, policy, source=source)
        self._tokens = TokenProvider(
            self._sender,
            token_url=token_url,
            client_id=client_id,
            client_secret=secret,
            margin=token_margin,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> NexthinkClient:
        """The client for the configured Nexthink instance; ``ConfigurationError`` if there is none."""
        base_url = settings.nexthink_base_url
        token_url = settings.token_url
        if not base_url or not token_url:
            raise ConfigurationError(
                "NEXTHINK_BASE_URL is not set: there is no Nexthink instance to call"
            )
        if not settings.nexthink_client_id:
            raise ConfigurationError("NEXTHINK_CLIENT_ID is required with NEXTHINK_BASE_URL")
        secret = settings.nexthink_client_secret
        if secret is None or not secret.get_secret_value():
            raise ConfigurationError("NEXTHINK_CLIENT_SECRET is required with NEXTHINK_BASE_URL")
        return cls(
            base_url=base_url,
            token_url=token_url,
            client_id=settings.nexthink_client_id,
            client_secret=secret,
            source=settings.nexthink_source,
            connect_timeout=settings.nexthink_connect_timeout,
            read_timeout=settings.nexthink_read_timeout,
            execute_api=settings.nexthink_execute_api,
        )

    def __repr__(self) -> str:
        return f"NexthinkClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    @property
    def execute_api(self) -> str:
        """Which execute runs go through: ``"v2"``, ``"v1"``, or ``"v2 (not yet probed)"`` in
        ``auto`` before the first V2 execute has been answered."""
        if self._execute_mode != "auto":
            return self._execute_mode
        return self._probed or "v2 (not yet probed)"

    # -- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._tokens.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> NexthinkClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- token ----------------------------------------------------------------------------

    async def token(self) -> str:
        """The shared token (fetched once for all waiting callers, renewed before it expires)."""
        return await self._tokens.token()

    @property
    def last_token_at(self) -> float | None:
        """``time.monotonic()`` when the last token was obtained; None before the first."""
        return self._tokens.last_token_at

    # -- workflows ------------------------------------------------------------------------

    async def list_workflows(
        self,
        dependency: WorkflowDependency,
        trigger_method: TriggerMethod = TriggerMethod.API,
        *,
        only_active: bool = True,
    ) -> list[Workflow]:
        """List workflows for one dependency and trigger method (both filters are required).

        Items that are not usable workflows (no ``id``) are skipped with a warning rather than
        failing the whole listing; ``Workflow.dependency`` is set to ``dependency``.
        """
        dependency = WorkflowDependency(dependency)
        trigger_method = TriggerMethod(trigger_method)
        params = {"dependency": dependency.value, "triggerMethod": trigger_method.value}
        if only_active:
            params["fetchOnlyActiveWorkflows"] = "true"
        call = Call(
            endpoint="list",
            method="GET",
            url="/api/v1/workflows",
            what=f"list of {dependency.value} workflows",
            idempotent=True,
            params=params,
        )
        items = await self._call(call, _array)
        workflows = []
        for index, item in enumerate(items):
            try:
                workflow = Workflow.model_validate(item)
            except ValidationError as exc:
                log.warning(
                    "nexthink.workflow_skipped",
                    index=index,
                    id=item.get("id") if isinstance(item, dict) else None,
                    reason=describe_validation_error(exc),
                )
                continue
            workflows.append(workflow.model_copy(update={"dependency": dependency.value}))
        return workflows

    async def list_api_workflows(self) -> list[Workflow]:
        """Active, API-triggerable workflows of all four dependencies, one entry per id.

        The four listings are requested concurrently; if one fails, the others are cancelled and
        its error is raised. Sorted by id.
        """
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self.list_workflows(dependency, TriggerMethod.API))
                    for dependency in WorkflowDependency
                ]
        except ExceptionGroup as group:
            # the first Nexthink error is the one to tell (they are usually the same one)
            first = next((e for e in group.exceptions if isinstance(e, NexthinkError)), None)
            if first is None:
                raise
            raise first from first.__cause__
        merged: dict[str, Workflow] = {}
        for task in tasks:
            for workflow in task.result():
                if workflow.is_active:
                    merged.setdefault(workflow.id, workflow)
        return [merged[key] for key in sorted(merged)]

    async def get_workflow(self, nql_id: str) -> Workflow | None:
        """One workflow's configuration by NQL ID; None when Nexthink answers an empty array."""
        if not nql_id:
            raise BadRequest(
                "A workflow NQL ID is required", code=None, details="nqlId", endpoint="get"
            )
        call = Call(
            endpoint="get",
            method="GET",
            url="/api/v1/workflows/details",
            what=f"details of workflow {nql_id!r}",
            idempotent=True,
            params={"nqlId": nql_id},
        )

        def parse(data: Any) -> Workflow | None:
            items = _array(data)
            if not items:
                return None
            chosen = next((i for i in items if isinstance(i, dict) and i.get("id") == nql_id), None)
            return parse_model(Workflow, items[0] if chosen is None else chosen, where="[0]")

        return await self._call(call, parse)

    # -- executions -----------------------------------------------------------------------

    async def execute_v1(self, request: ExecutionRequest) -> ExecutionResponse:
        """``POST /api/v1/workflows/execute`` (SIDs and Collector UUIDs). Never repeated once sent."""
        call = Call(
            endpoint="execute_v1",
            method="POST",
            url="/api/v1/workflows/execute",
            what=_run_what(request.workflow_id, len(request.users), len(request.devices)),
            idempotent=False,
            json=request.to_json(),
        )
        return await self._call(call, lambda data: parse_model(ExecutionResponse, data))

    async def execute(self, request: ExternalIdsExecutionRequest) -> ExecutionResponse:
        """``POST /api/v2/workflows/execute`` (external ids). Never repeated once sent."""
        call = Call(
            endpoint="execute_v2",
            method="POST",
            url="/api/v2/workflows/execute",
            what=_run_what(request.workflow_id, len(request.users), len(request.devices)),
            idempotent=False,
            json=request.to_json(),
        )
        return await self._call(call, lambda data: parse_model(ExecutionResponse, data))

    async def execute_many(
        self,
        workflow_id: str,
        users: Sequence[UserData],
        devices: Sequence[DeviceData],
        params: Mapping[str, str],
    ) -> BulkExecution:
        """Run a workflow on any number of targets, in requests of at most 10,000 users and devices,
        through the execute ``execute_api`` names.

        Chunk ``k`` holds users ``[k*10000, (k+1)*10000)`` and the devices of the same range.
        Every chunk is built and validated before the first is sent; they are sent one after
        the other. If chunk ``k`` fails, its error is raised with ``exc.completed`` (also
        ``completed_before(exc)``): the ``BulkExecution`` of the chunks that did run, and
        ``exc.chunk`` / ``exc.chunks`` (1-based index, total).

        In ``auto``, a V2 chunk answered ``RouteMissing`` (nothing ran) makes the client use V1
        from then on: that chunk and the rest are converted to V1 (all of them before any is
        sent) and sent. ``NeedsV2`` (nothing more sent) when V1 cannot express them.
        """
        chunks = max(-(-len(users) // MAX_TARGETS), -(-len(devices) // MAX_TARGETS), 1)
        requests = []
        for k in range(chunks):
            window = slice(k * MAX_TARGETS, (k + 1) * MAX_TARGETS)
            try:
                requests.append(
                    ExternalIdsExecutionRequest(
                        workflow_id=workflow_id,
                        users=list(users[window]),
                        devices=list(devices[window]),
                        params=dict(params),
                    )
                )
            except ValidationError as exc:
                what = _run_what(workflow_id, len(users), len(devices))
                raise local_error(_local_call("execute_v2", what), exc) from exc
        done: list[ExecutionResponse] = []
        if self._uses_v1():
            v1 = self._as_v1(requests, done, chunks)
            return await self._send_v1(v1, done, chunks, first=1)
        for k, request in enumerate(requests, start=1):
            try:
                done.append(await self.execute(request))
            except RouteMissing as exc:
                if self._execute_mode != "auto":
                    attach(exc, BulkExecution(list(done)), k, chunks)
                    raise
                self._probed = "v1"
                log.warning(
                    "nexthink.v2_execute_missing",
                    detail="POST /api/v2/workflows/execute answered 404; using V1 from now on",
                )
                v1 = self._as_v1(requests[k - 1 :], done, chunks, first=k)
                return await self._send_v1(v1, done, chunks, first=k)
            except NexthinkError as exc:
                if self._execute_mode == "auto" and getattr(exc, "code", None):
                    self._probed = self._probed or "v2"  # the route answered
                attach(exc, BulkExecution(list(done)), k, chunks)
                raise
            if self._execute_mode == "auto":
                self._probed = self._probed or "v2"
        return BulkExecution(done)

    def _uses_v1(self) -> bool:
        return self._execute_mode == "v1" or (self._execute_mode == "auto" and self._probed == "v1")

    def _as_v1(
        self,
        requests: Sequence[ExternalIdsExecutionRequest],
        done: list[ExecutionResponse],
        chunks: int,
        *,
        first: int = 1,
    ) -> list[ExecutionRequest]:
        try:
            return v1_bodies(requests, forced=self._execute_mode == "v1")
        except NeedsV2 as exc:
            attach(exc, BulkExecution(list(done)), first, chunks)
            raise

    async def _send_v1(
        self,
        bodies: Sequence[ExecutionRequest],
        done: list[ExecutionResponse],
        chunks: int,
        *,
        first: int,
    ) -> BulkExecution:
        for k, body in enumerate(bodies, start=first):
            try:
                done.append(await self.execute_v1(body))
            except NexthinkError as exc:
                attach(exc, BulkExecution(list(done)), k, chunks)
                raise
        return BulkExecution(done)

    async def trigger(
        self, workflow_uuid: str, execution_uuid: str, parameters: Mapping[str, str]
    ) -> list[ThinkletTriggerResponse]:
        """Resume an execution waiting at an API-listener Wait step. Never repeated once sent."""
        what = f"resume of execution {execution_uuid} of workflow {workflow_uuid}"
        for name, value in (("workflowUuid", workflow_uuid), ("executionUuid", execution_uuid)):
            if not is_uuid(value):
                raise BadRequest(
                    f"The {what} was not sent: {name} must be a UUID",
                    code=None,
                    details=f"{name}: must be a UUID",
                    endpoint="trigger",
                )
        try:
            body = ThinkletTriggerRequest(parameters=dict(parameters))
        except ValidationError as exc:
            raise local_error(_local_call("trigger", what), exc) from exc
        call = Call(
            endpoint="trigger",
            method="POST",
            url=f"/api/v1/workflows/workflows/{workflow_uuid}/execution/{execution_uuid}/trigger",
            what=what,
            idempotent=False,
            json=body.to_json(),
        )

        def parse(data: Any) -> list[ThinkletTriggerResponse]:
            return [
                parse_model(ThinkletTriggerResponse, item, where=f"[{i}]")
                for i, item in enumerate(_array(data))
            ]

        return await self._call(call, parse)

    # -- NQL ------------------------------------------------------------------------------

    async def nql(self, query_id: str, parameters: Mapping[str, str]) -> list[dict[str, Any]]:
        """Run a predefined NQL query (``POST /api/v2/nql/execute``); its ``data`` rows."""
        return (await self.nql_query(query_id, parameters)).rows

    async def nql_query(self, query_id: str, parameters: Mapping[str, str]) -> NqlResult:
        """Run a predefined NQL query; its rows and whether they may have been cut short at
        1,000 (``NqlResult.maybe_truncated``)."""
        return await self._call(nql_call(query_id, parameters), parse_rows)

    # -- plumbing -------------------------------------------------------------------------

    async def _call(self, call: Call, parse: Callable[[Any], T]) -> T:
        """Send ``call`` under the retry policy and parse its JSON answer, all translated."""
        with translate(call):
            response = await self._sender.send(call, tokens=self._tokens)
            return parse(parse_json(response))


def _array(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise malformed(f"expected a JSON array, got {type(data).__name__}")
    return data


def _run_what(workflow_id: str, users: int, devices: int) -> str:
    return f"run of workflow {workflow_id!r} ({_count(users, 'user')}, {_count(devices, 'device')})"


def _local_call(endpoint: str, what: str) -> Call:
    return Call(endpoint=endpoint, method="POST", url="", what=what, idempotent=False)
