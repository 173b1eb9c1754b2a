"""The Nexthink endpoints: the token, the five workflow endpoints and NQL execute.

Requests are checked as the reference says, in this order: the bearer token (401, no body), the
body's JSON and schema (bodies are read with the models in ``bot.nexthink.models``, which also
refuse unknown fields), target limits, then the workflow. Every refusal is a 400
``ErrorResponse``; its ``code`` is one of:

``INVALID_CONTENT_TYPE``, ``INVALID_JSON``, ``MISSING_FIELD``, ``UNKNOWN_FIELD``,
``INVALID_REQUEST`` (a field of the wrong type), ``TOO_MANY_TARGETS``, ``INVALID_TARGET`` (an
identifier that breaks its pattern, or an item with none), ``INVALID_PARAMETERS`` (params not a
map of strings), ``NO_TARGETS``, ``WORKFLOW_NOT_FOUND``, ``WORKFLOW_INACTIVE``,
``WORKFLOW_NOT_API_TRIGGERABLE``, ``INVALID_PATH_PARAMETER``, ``INVALID_PARAMETER`` (an empty
trigger value, a bad query parameter), ``MISSING_PARAMETER``, ``EXECUTION_NOT_FOUND``,
``EXECUTION_NOT_WAITING``, ``INVALID_QUERY_ID``.

Reading the undocumented corners: ``workflowId`` and ``nqlId`` are NQL ids, with or without the
``#`` Nexthink's examples show; ``details?nqlId=`` of an unknown id answers ``[]``; an execute
with no target is refused unless the workflow's dependency is ``NONE``; NQL execute answers at
most 1,000 rows (``NQL_MAX_ROWS``), cutting the rest without saying so, as Nexthink's NQL API is
reported to. Without its V2 execute (``bot.sandbox.surface``), that route answers 404 as a missing
route does.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.nexthink.models import (
    MAX_TARGETS,
    NQL_MAX_ROWS,
    ExecutionRequest,
    ExternalIdsExecutionRequest,
    ThinkletTriggerRequest,
    TriggerMethod,
    WorkflowDependency,
    is_uuid,
)
from bot.sandbox.catalogue import SandboxCatalogue, SandboxWorkflow
from bot.sandbox.executions import Execution, ExecutionEngine, Refused, Target
from bot.sandbox.queries import SavedQueries
from bot.sandbox.surface import ApiSurface, missing_route
from bot.sandbox.tokens import SCOPE, TokenIssuer

__all__ = ["PATHS", "NexthinkApi", "error_response", "refusal"]

#: endpoint name → (method, path), at the reference's exact paths
PATHS: Final = {
    "token": ("POST", "/oauth2/default/v1/token"),
    "execute_v1": ("POST", "/api/v1/workflows/execute"),
    "execute_v2": ("POST", "/api/v2/workflows/execute"),
    "trigger": (
        "POST",
        "/api/v1/workflows/workflows/{workflowUuid}/execution/{executionUuid}/trigger",
    ),
    "list": ("GET", "/api/v1/workflows"),
    "get": ("GET", "/api/v1/workflows/details"),
    "nql": ("POST", "/api/v2/nql/execute"),
}

_QUERY_ID = re.compile(r"^#[a-z0-9_]{2,255}$")
_NQL_COLUMNS: Final = (
    "workflow.executions.execution_id",
    "workflow.executions.status",
    "workflow.executions.status_details",
    "workflow.executions.outcome",
)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def error_response(status: int, code: str, details: str) -> web.Response:
    """An ``ErrorResponse`` answer."""
    return _json(status, {"code": code, "details": details})


def refusal(exc: Refused) -> web.Response:
    """The 400 ``ErrorResponse`` for a refused request."""
    return error_response(400, exc.code, exc.details)


class NexthinkApi:
    """The handlers; ``routes()`` names each route after its endpoint."""

    def __init__(
        self,
        catalogue: SandboxCatalogue,
        engine: ExecutionEngine,
        tokens: TokenIssuer,
        surface: ApiSurface | None = None,
        queries: SavedQueries | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.engine = engine
        self.tokens = tokens
        self.surface = surface if surface is not None else ApiSurface()
        self.queries = queries if queries is not None else SavedQueries()

    def routes(self) -> list[web.RouteDef]:
        handlers = {
            "token": self.token,
            "execute_v1": self.execute_v1,
            "execute_v2": self.execute_v2,
            "trigger": self.trigger,
            "list": self.list_workflows,
            "get": self.get_workflow,
            "nql": self.nql,
        }
        return [
            web.route(method, path, handlers[name], name=name, allow_head=False)
            if method == "GET"
            else web.route(method, path, handlers[name], name=name)
            for name, (method, path) in PATHS.items()
        ]

    # -- OAuth --------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        if not self.tokens.authenticate(request.headers.get("Authorization")):
            return _json(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed."},
                {"WWW-Authenticate": 'Basic realm="sandbox"'},
            )
        if request.content_type != "application/x-www-form-urlencoded":
            return _oauth_error(
                "invalid_request", "Send the body as application/x-www-form-urlencoded."
            )
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "grant_type must be client_credentials.")
        if form.get("scope") != SCOPE:
            return _oauth_error("invalid_scope", f"scope must be {SCOPE}.")
        body = {
            "token_type": "Bearer",
            "expires_in": self.tokens.expires_in,
            "access_token": self.tokens.issue(),
            "scope": SCOPE,
        }
        return _json(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    # -- execute ------------------------------------------------------------------------

    async def execute_v2(self, request: web.Request) -> web.Response:
        if not self.surface.v2_execute:  # an instance without V2: the route is not there
            return missing_route()
        if not self._authorized(request):
            return web.Response(status=401)
        body = await _execute_body(request)
        req = _parse(ExternalIdsExecutionRequest, body)
        targets = [Target("user", dict(u.to_json())) for u in req.users]
        targets += [Target("device", dict(d.to_json())) for d in req.devices]
        return self._execute(request, req.workflow_id, targets, dict(req.params))

    async def execute_v1(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        body = await _execute_body(request)
        req = _parse(ExecutionRequest, body)
        targets = [Target("user", {"sid": sid}) for sid in req.users]
        targets += [Target("device", {"collectorUid": uid}) for uid in req.devices]
        return self._execute(request, req.workflow_id, targets, dict(req.params))

    def _execute(
        self, request: web.Request, workflow_id: str, targets: list[Target], params: dict[str, str]
    ) -> web.Response:
        workflow = self._runnable(workflow_id)
        if not targets and workflow.dependency is not WorkflowDependency.NONE:
            raise Refused(
                "NO_TARGETS",
                f"Workflow {workflow.id} has dependency {workflow.dependency.value}: "
                "give at least one user or device.",
            )
        request_uuid, executions = self.engine.start(
            workflow, targets, params, source=request.headers.get("Source")
        )
        return _json(
            200, {"requestUuid": request_uuid, "executionsUuids": [e.uuid for e in executions]}
        )

    def _runnable(self, workflow_id: str) -> SandboxWorkflow:
        workflow = self.catalogue.workflow(workflow_id)
        if workflow is None:
            raise Refused("WORKFLOW_NOT_FOUND", f"No workflow has the NQL ID {workflow_id!r}.")
        if not workflow.is_active:
            raise Refused("WORKFLOW_INACTIVE", f"Workflow {workflow.id} is inactive.")
        if not workflow.api_triggerable:
            raise Refused(
                "WORKFLOW_NOT_API_TRIGGERABLE",
                f"Workflow {workflow.id} cannot be triggered by API (enable the API trigger).",
            )
        return workflow

    # -- trigger ------------------------------------------------------------------------

    async def trigger(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        workflow_uuid = request.match_info["workflowUuid"]
        execution_uuid = request.match_info["executionUuid"]
        for name, value in (("workflowUuid", workflow_uuid), ("executionUuid", execution_uuid)):
            if not is_uuid(value):
                raise Refused("INVALID_PATH_PARAMETER", f"{name} must be a UUID, got {value!r}.")
        body = await _json_object(request)
        req = _parse(ThinkletTriggerRequest, body)
        request_uuid = self.engine.trigger(workflow_uuid, execution_uuid, dict(req.parameters))
        return _json(200, [{"requestUuid": request_uuid}])

    # -- list and get -------------------------------------------------------------------

    async def list_workflows(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        dependency = WorkflowDependency(_choice(request, "dependency", WorkflowDependency))
        method = TriggerMethod(_choice(request, "triggerMethod", TriggerMethod))
        only_active = request.query.get("fetchOnlyActiveWorkflows", "false").lower()
        if only_active not in {"true", "false"}:
            raise Refused(
                "INVALID_PARAMETER",
                f"fetchOnlyActiveWorkflows must be true or false, got {only_active!r}.",
            )
        found = [
            w.to_json()
            for w in self.catalogue.workflows
            if w.dependency is dependency
            and method in w.trigger_methods
            and (w.is_active or only_active == "false")
        ]
        return _json(200, found)

    async def get_workflow(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        nql_id = request.query.get("nqlId", "")
        if not nql_id:
            raise Refused("MISSING_PARAMETER", "The query parameter nqlId is required.")
        workflow = self.catalogue.workflow(nql_id)
        return _json(200, [workflow.to_json()] if workflow else [])

    # -- NQL ----------------------------------------------------------------------------

    async def nql(self, request: web.Request) -> web.Response:
        """A saved query (``bot.sandbox.queries``) answers its rows; any other well-formed id runs
        as the devices query when given ``upn`` (the person's devices, most recently seen first),
        else as the execution status query (by ``request_id``). At most 1,000 rows either way."""
        if not self._authorized(request):
            return web.Response(status=401)
        body = await _json_object(request)
        query_id = body.get("queryId")
        if not isinstance(query_id, str) or not _QUERY_ID.match(query_id):
            raise Refused(
                "INVALID_QUERY_ID", f"queryId must match ^#[a-z0-9_]{{2,255}}$, got {query_id!r}."
            )
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict) or not all(
            isinstance(v, str) for v in parameters.values()
        ):
            raise Refused("INVALID_PARAMETERS", "parameters must be a map of strings.")
        saved = self.queries.get(query_id)
        if saved is not None:
            return _json(200, saved.answer())
        if "upn" in parameters and "request_id" not in parameters:
            return self._devices_of(query_id, parameters["upn"])
        request_id = parameters.get("request_id")
        if not request_id:
            raise Refused("MISSING_PARAMETER", "The query needs the parameter request_id.")
        # NQL execute answers at most 1,000 rows, silently: the rest of the answer is cut
        executions: list[Execution] = self.engine.of_request(request_id)[:NQL_MAX_ROWS]
        return _json(
            200,
            {
                "queryId": query_id,
                "executedQuery": (
                    f'workflow.executions during past 7d | where request_id == "{request_id}" '
                    "| list execution_id, status, status_details, outcome"
                ),
                "rows": len(executions),
                "executionDateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "headers": list(_NQL_COLUMNS),
                "data": [e.nql_row() for e in executions],
            },
        )

    def _devices_of(self, query_id: str, upn: str) -> web.Response:
        """The devices query: the devices whose last user is ``upn``, most recent first."""
        owned = [d for d in self.catalogue.devices if (d.owner or "").lower() == upn.lower()]
        owned.sort(key=lambda d: d.last_seen, reverse=True)
        rows = [
            {
                "device.name": d.name,
                "device.collector.uid": d.collector_uid,
                "device.last_seen": d.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            for d in owned[:NQL_MAX_ROWS]
        ]
        return _json(
            200,
            {
                "queryId": query_id,
                "executedQuery": (
                    f'devices during past 30d | where user.upn == "{upn}" '
                    "| list device.name, device.collector.uid, device.last_seen"
                ),
                "rows": len(rows),
                "executionDateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "headers": ["device.name", "device.collector.uid", "device.last_seen"],
                "data": rows,
            },
        )

    def _authorized(self, request: web.Request) -> bool:
        return self.tokens.valid(request.headers.get("Authorization"))


# -- request reading ---------------------------------------------------------------------


def _oauth_error(error: str, description: str) -> web.Response:
    return _json(400, {"error": error, "error_description": description})


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Refused(
            "INVALID_CONTENT_TYPE",
            f"Send the body as application/json, not {request.content_type or 'nothing'}.",
        )
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise Refused("INVALID_JSON", f"The body is not JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise Refused("INVALID_JSON", "The body must be a JSON object.")
    return body


async def _execute_body(request: web.Request) -> dict[str, Any]:
    body = await _json_object(request)
    missing = [name for name in ("workflowId", "users", "devices") if name not in body]
    if missing:
        raise Refused("MISSING_FIELD", f"Required field(s) missing: {', '.join(missing)}.")
    for name in ("users", "devices"):
        value = body[name]
        if isinstance(value, list) and len(value) > MAX_TARGETS:
            raise Refused(
                "TOO_MANY_TARGETS", f"{name} has {len(value)} items; at most {MAX_TARGETS} allowed."
            )
    return body


_M = TypeVar("_M", bound=BaseModel)


def _parse(model: type[_M], body: dict[str, Any]) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise Refused(*_explain(exc)) from None


def _explain(exc: ValidationError) -> tuple[str, str]:
    """The first problem pydantic found, as an ``ErrorResponse`` code and a details sentence."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    where = loc[0] if loc else "body"
    for part in loc[1:]:
        where += f"[{part}]" if part.isdigit() else f".{part}"
    message = str(error["msg"]).removeprefix("Value error, ")
    shown = f" (got {error['input']!r})" if error["type"] == "string_pattern_mismatch" else ""
    if error["type"] == "extra_forbidden":
        code = "UNKNOWN_FIELD"
        message = "is not a field the reference knows"
    elif loc and loc[0] in {"users", "devices"} and len(loc) > 1:
        code = "INVALID_TARGET"
    elif loc and loc[0] == "params":
        code = "INVALID_PARAMETERS"
    elif loc and loc[0] == "parameters":
        code = "INVALID_PARAMETER"
    else:
        code = "INVALID_REQUEST"
    return code, f"{where}: {message}{shown}."


def _choice(
    request: web.Request, name: str, allowed: type[TriggerMethod | WorkflowDependency]
) -> str:
    choices = ", ".join(member.value for member in allowed)
    value = request.query.get(name)
    if value is None or value == "":
        raise Refused("MISSING_PARAMETER", f"The query parameter {name} is required ({choices}).")
    if value not in {member.value for member in allowed}:
        raise Refused("INVALID_PARAMETER", f"{name} must be one of {choices}, got {value!r}.")
    return value
