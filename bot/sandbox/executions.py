"""Executions: what an execute request starts, and how each one ends.

Each target of an execute becomes one execution (a workflow with dependency ``NONE`` gets a single
execution and ignores targets). A target is resolved as Nexthink does: the most recently seen
match; a user target on a device workflow runs on the user's most recent device, a device target
on a user workflow runs for the device's owner.

- A target that matches nothing fails at once with ``status_details`` ``"not found"`` (and the
  identifier in ``outcome``); one that lacks the user or device the dependency needs fails with
  ``"no device found for the user"`` / ``"no user found on the device"``.
- Otherwise the execution is ``in_progress`` and ends ``execution_delay`` seconds later: ``success``,
  or ``failure`` when the request's params say ``simulate=failure``.
- A pausing workflow's executions go straight to ``waiting_for_trigger``; if a webhook URL is set,
  the question is POSTed to it as a Service/API thinklet would (JSON as in PRODUCT.md "Paused
  executions", ``Authorization: Bearer <webhook_token>``, 10-second timeout; no retry). The
  execution waits whatever the webhook answers. The trigger resumes it: ``in_progress``, then after
  ``execution_delay`` ``success``, or ``cancelled`` if the trigger's parameters say
  ``decision=denied``. Unresumed, it turns ``expired`` after ``wait_expiry`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import structlog

from bot.nexthink.models import WorkflowDependency
from bot.sandbox.catalogue import SandboxCatalogue, SandboxDevice, SandboxUser, SandboxWorkflow

__all__ = [
    "DEFAULT_OPTIONS",
    "Execution",
    "ExecutionEngine",
    "ExecutionStatus",
    "Refused",
    "Target",
    "WebhookDelivery",
]

_log = structlog.get_logger("bot.sandbox")

DEFAULT_OPTIONS: list[dict[str, Any]] = [
    {"label": "Approve", "style": "primary", "parameters": {"decision": "approved"}},
    {"label": "Deny", "style": "danger", "parameters": {"decision": "denied"}},
]

#: request params that steer the sandbox rather than the workflow
_CONTROL_PARAMS = frozenset(
    {
        "channel",
        "approvers",
        "simulate",
        "remind_after_minutes",
        "escalate_after_minutes",
        "escalate_to",
    }
)
#: request params passed on into the question: reminders and escalation (numbers as typed)
_NUDGE_PARAMS = {
    "remind_after_minutes": "remindAfterMinutes",
    "escalate_after_minutes": "escalateAfterMinutes",
}

_NEEDS_USER = {WorkflowDependency.USER, WorkflowDependency.USER_AND_DEVICE}
_NEEDS_DEVICE = {WorkflowDependency.DEVICE, WorkflowDependency.USER_AND_DEVICE}


class ExecutionStatus(enum.StrEnum):
    """As NQL's ``workflow.executions.status`` shows it."""

    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    WAITING = "waiting_for_trigger"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Refused(Exception):
    """The request breaks the reference: answered 400 with this ``ErrorResponse``."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class Target:
    """One target as the request named it, e.g. ``Target("user", {"upn": "alice@example.com"})``."""

    kind: Literal["user", "device", "none"]
    identifiers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "none":
            return "no target"
        ids = ", ".join(f"{key}={value}" for key, value in self.identifiers.items())
        return f"{self.kind} {ids}"


@dataclass(frozen=True)
class WebhookDelivery:
    """One wait question POSTed to the webhook, and what came back."""

    execution_uuid: str
    url: str
    payload: dict[str, Any]
    status: int | None
    response: Any
    error: str | None
    at: datetime


@dataclass
class Execution:
    uuid: str
    request_uuid: str
    workflow: SandboxWorkflow
    target: Target
    params: dict[str, str]
    user: SandboxUser | None
    device: SandboxDevice | None
    status: ExecutionStatus
    status_details: str = ""
    outcome: str = ""
    source: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: the question a waiting execution asks (posted to the webhook if one is set)
    question: dict[str, Any] | None = None
    webhook: WebhookDelivery | None = None
    trigger_parameters: dict[str, str] | None = None

    @property
    def waiting(self) -> bool:
        return self.status is ExecutionStatus.WAITING

    def _set(self, status: ExecutionStatus, details: str = "", outcome: str = "") -> None:
        self.status, self.status_details, self.outcome = status, details, outcome
        self.updated_at = datetime.now(UTC)

    def nql_row(self) -> dict[str, str]:
        return {
            "workflow.executions.execution_id": self.uuid,
            "workflow.executions.status": self.status.value,
            "workflow.executions.status_details": self.status_details,
            "workflow.executions.outcome": self.outcome,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "executionUuid": self.uuid,
            "requestUuid": self.request_uuid,
            "workflowId": self.workflow.id,
            "workflowUuid": self.workflow.uuid,
            "target": self.target.describe(),
            "user": self.user.upn if self.user else None,
            "device": self.device.name if self.device else None,
            "params": self.params,
            "status": self.status.value,
            "statusDetails": self.status_details,
            "outcome": self.outcome,
            "question": self.question,
            "webhookStatus": self.webhook.status if self.webhook else None,
            "triggerParameters": self.trigger_parameters,
        }


@dataclass
class EngineConfig:
    """The knobs ``Sandbox`` exposes; read at the moment they are needed, so they may change."""

    execution_delay: float = 2.0
    webhook_url: str | None = None
    webhook_token: str | None = None
    webhook_timeout: float = 10.0
    expires_in_minutes: int = 1440
    #: seconds a waiting execution waits before it expires; None = ``expires_in_minutes``
    wait_expiry: float | None = None
    #: called with one line per request served and per question posted (``nexthink-bot sandbox``)
    report: Callable[[str], None] | None = None


class ExecutionEngine:
    """Creates executions, moves them along in background tasks, posts wait questions."""

    def __init__(self, catalogue: SandboxCatalogue, config: EngineConfig) -> None:
        self.catalogue = catalogue
        self.config = config
        self.executions: dict[str, Execution] = {}
        self.webhooks: list[WebhookDelivery] = []
        self._work: set[asyncio.Task[None]] = set()
        self._webhook_tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        #: cleared by ``hold()``: executions then stay in progress past their delay until
        #: ``release()``, for a test that must see a run while it is still going
        self._released = asyncio.Event()
        self._released.set()

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    # -- execute ------------------------------------------------------------------------

    def start(
        self,
        workflow: SandboxWorkflow,
        targets: list[Target],
        params: dict[str, str],
        source: str | None = None,
    ) -> tuple[str, list[Execution]]:
        """Create one execution per target and set them going; returns the request uuid."""
        request_uuid = str(uuid.uuid4())
        if workflow.dependency is WorkflowDependency.NONE:
            targets = [Target("none")]
        created = [self._create(request_uuid, workflow, t, params, source) for t in targets]
        running = [e for e in created if e.status is ExecutionStatus.IN_PROGRESS]
        waiting = [e for e in created if e.waiting]
        if running:
            self._spawn(self._work, self._finish_later(running))
        if waiting:
            self._spawn(self._timers, self._expire_later(waiting))
            if self.config.webhook_url:
                self._spawn(self._webhook_tasks, self._post_questions(waiting))
        return request_uuid, created

    def _create(
        self,
        request_uuid: str,
        workflow: SandboxWorkflow,
        target: Target,
        params: dict[str, str],
        source: str | None,
    ) -> Execution:
        user, device, failure = self._resolve(workflow, target)
        execution = Execution(
            uuid=str(uuid.uuid4()),
            request_uuid=request_uuid,
            workflow=workflow,
            target=target,
            params=dict(params),
            user=user,
            device=device,
            status=ExecutionStatus.IN_PROGRESS,
            source=source,
        )
        if failure is not None:
            details, outcome = failure
            execution._set(ExecutionStatus.FAILURE, details, outcome)
        elif workflow.pauses:
            execution.question = self._question(execution)
            execution._set(ExecutionStatus.WAITING, "waiting for a decision")
        self.executions[execution.uuid] = execution
        return execution

    def _resolve(
        self, workflow: SandboxWorkflow, target: Target
    ) -> tuple[SandboxUser | None, SandboxDevice | None, tuple[str, str] | None]:
        ids = target.identifiers
        user: SandboxUser | None = None
        device: SandboxDevice | None = None
        if target.kind == "user":
            user = self.catalogue.find_user(
                sid=ids.get("sid"), upn=ids.get("upn"), uid=ids.get("uid")
            )
            if user is None:
                return None, None, ("not found", f"{target.describe()} not found")
            if workflow.dependency in _NEEDS_DEVICE:
                device = self.catalogue.device_of(user)
                if device is None:
                    return user, None, ("no device found for the user", "")
        elif target.kind == "device":
            device = self.catalogue.find_device(
                name=ids.get("name"), collector_uid=ids.get("collectorUid"), uid=ids.get("uid")
            )
            if device is None:
                return None, None, ("not found", f"{target.describe()} not found")
            user = self.catalogue.owner_of(device)
            if user is None and workflow.dependency in _NEEDS_USER:
                return None, device, ("no user found on the device", "")
        return user, device, None

    def _question(self, execution: Execution) -> dict[str, Any]:
        """The JSON a Service/API thinklet posts when the execution reaches its Wait step."""
        params = execution.params
        upn = execution.user.upn if execution.user else None
        fields = {
            "software": "the requested software",
            **params,
            "user": execution.user.name if execution.user else "Someone",
            "upn": upn or "",
            "device": execution.device.name if execution.device else "their device",
        }
        question: dict[str, Any] = {
            "workflowUuid": execution.workflow.uuid,
            "executionUuid": execution.uuid,
        }
        if params.get("channel"):
            question["channel"] = params["channel"]
        elif upn:
            question["user"] = upn
        question["text"] = (execution.workflow.wait_text or "{user} is waiting. Go on?").format_map(
            fields
        )
        question["options"] = [dict(option) for option in DEFAULT_OPTIONS]
        approvers = [a.strip() for a in params.get("approvers", "").split(",") if a.strip()]
        if approvers:
            question["approvers"] = approvers
        if upn:
            question["requester"] = upn
        question["approverParameter"] = "approver"
        question["expiresInMinutes"] = self.config.expires_in_minutes
        for param, key in _NUDGE_PARAMS.items():
            try:
                question[key] = float(params[param])
            except (KeyError, ValueError):
                continue
        escalate_to = [a.strip() for a in params.get("escalate_to", "").split(",") if a.strip()]
        if escalate_to:
            question["escalateTo"] = escalate_to
        return question

    # -- trigger ------------------------------------------------------------------------

    def trigger(self, workflow_uuid: str, execution_uuid: str, parameters: dict[str, str]) -> str:
        """Resume a waiting execution; ``Refused`` if it does not exist or is not waiting."""
        workflow = self.catalogue.workflow_by_uuid(workflow_uuid)
        if workflow is None:
            raise Refused("WORKFLOW_NOT_FOUND", f"No workflow has the uuid {workflow_uuid}.")
        execution = self.executions.get(execution_uuid.lower())
        if execution is None or execution.workflow.uuid != workflow.uuid:
            raise Refused(
                "EXECUTION_NOT_FOUND",
                f"Workflow {workflow.id} has no execution {execution_uuid}.",
            )
        if not execution.waiting:
            raise Refused(
                "EXECUTION_NOT_WAITING",
                f"Execution {execution.uuid} is {execution.status.value}, not waiting for a trigger.",
            )
        execution.trigger_parameters = dict(parameters)
        execution._set(ExecutionStatus.IN_PROGRESS, "resumed by a trigger")
        self._spawn(self._work, self._finish_later([execution]))
        return str(uuid.uuid4())

    # -- background work ----------------------------------------------------------------

    def _spawn(self, tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_log_failure)

    async def _finish_later(self, executions: list[Execution]) -> None:
        await asyncio.sleep(self.config.execution_delay)
        await self._released.wait()
        for execution in executions:
            if execution.status is ExecutionStatus.IN_PROGRESS:
                _finish(execution)

    async def _expire_later(self, executions: list[Execution]) -> None:
        expiry = self.config.wait_expiry
        await asyncio.sleep(self.config.expires_in_minutes * 60 if expiry is None else expiry)
        for execution in executions:
            if execution.waiting:
                execution._set(
                    ExecutionStatus.EXPIRED,
                    f"no trigger within {self.config.expires_in_minutes} minutes",
                )

    async def _post_questions(self, executions: list[Execution]) -> None:
        for execution in executions:
            url = self.config.webhook_url
            if url and execution.question is not None:
                execution.webhook = await self._post(url, execution.uuid, execution.question)
                self.webhooks.append(execution.webhook)

    async def _post(
        self, url: str, execution_uuid: str, payload: dict[str, Any]
    ) -> WebhookDelivery:
        if self._http is None:
            self._http = httpx.AsyncClient()
        headers = {"Content-Type": "application/json"}
        if self.config.webhook_token:
            headers["Authorization"] = f"Bearer {self.config.webhook_token}"
        status: int | None = None
        answer: Any = None
        error: str | None = None
        try:
            response = await self._http.post(
                url, json=payload, headers=headers, timeout=self.config.webhook_timeout
            )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            status = response.status_code
            try:
                answer = response.json()
            except ValueError:
                answer = response.text
        if self.config.report is not None:
            self.config.report(
                f"wait question for execution {execution_uuid} posted to {url}: "
                + (f"HTTP {status}" if status is not None else f"failed ({error})")
            )
        return WebhookDelivery(
            execution_uuid, url, payload, status, answer, error, datetime.now(UTC)
        )

    async def _drain(
        self, pick: Callable[[ExecutionEngine], set[asyncio.Task[None]]], within: float
    ) -> None:
        """Until every task in the chosen set (and any started meanwhile) is done."""
        async with asyncio.timeout(within):
            while tasks := set(pick(self)):
                await asyncio.wait(tasks)

    async def wait_for_webhooks(self, within: float = 5.0) -> list[WebhookDelivery]:
        await self._drain(lambda engine: engine._webhook_tasks, within)
        return list(self.webhooks)

    async def settle(self, within: float = 5.0) -> None:
        await self._drain(lambda engine: engine._work | engine._webhook_tasks, within)

    async def close(self) -> None:
        tasks = self._work | self._webhook_tasks | self._timers
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- NQL ----------------------------------------------------------------------------

    def of_request(self, request_uuid: str) -> list[Execution]:
        return [e for e in self.executions.values() if e.request_uuid == request_uuid]


def _finish(execution: Execution) -> None:
    params = execution.params
    if params.get("simulate", "").lower() == "failure":
        execution._set(ExecutionStatus.FAILURE, "simulated failure (simulate=failure)")
        return
    decision = (execution.trigger_parameters or {}).get("decision", "")
    approver = (execution.trigger_parameters or {}).get("approver")
    by = f" by {approver}" if approver else ""
    if decision.lower() == "denied":
        execution._set(ExecutionStatus.CANCELLED, f"denied{by}")
        return
    where = [f"on {execution.device.name}"] if execution.device else []
    where += [f"for {execution.user.upn}"] if execution.user else []
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if k not in _CONTROL_PARAMS)
    outcome = " ".join([f"{execution.workflow.name} completed", *where])
    outcome += f" ({shown})" if shown else ""
    outcome += f"; approved{by}" if decision else ""
    execution._set(ExecutionStatus.SUCCESS, "completed", outcome)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error("sandbox.task_failed", error=repr(exc))
