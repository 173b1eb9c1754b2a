"""Paused executions in the sandbox: the wait question posted to a webhook, then the trigger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.nexthink.models import ThinkletTriggerResponse
from bot.sandbox import DEFAULT_OPTIONS, PAUSING_WORKFLOW_ID, Execution, ExecutionStatus, Sandbox
from tests.support.sandbox_helpers import Caller, WebhookReceiver, eventually, trigger_path

REQUEST_SOFTWARE = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"
RESTART_TEAMS = "2e1f828a-7a75-47a5-a948-022d065a13e2"
UNKNOWN_UUID = "00000000-1111-4222-8333-444444444444"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as r:
        yield r


@pytest.fixture
async def sandbox(receiver: WebhookReceiver) -> AsyncIterator[Sandbox]:
    async with Sandbox(
        execution_delay=0.05, webhook_url=receiver.url, webhook_token="hook-secret"
    ) as sb:
        yield sb


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[Caller]:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5.0) as client:
        caller = Caller(client)
        await caller.get_token()
        yield caller


async def request_software(
    api: Caller, sandbox: Sandbox, upn: str = "alice@example.com", **params: str
) -> Execution:
    body = {
        "workflowId": PAUSING_WORKFLOW_ID,
        "users": [{"upn": upn}],
        "devices": [],
        "params": {"software": "Visio", **params},
    }
    response = await api.execute_v2(body)
    assert response.status_code == 200
    [uuid] = response.json()["executionsUuids"]
    return sandbox.executions[uuid]


async def test_paused_execution_posts_its_question_to_the_webhook(
    sandbox: Sandbox, api: Caller, receiver: WebhookReceiver
) -> None:
    """A pausing workflow's execution waits and POSTs the PRODUCT.md wait question with a bearer."""
    execution = await request_software(api, sandbox)
    assert execution.status is ExecutionStatus.WAITING
    [delivery] = await sandbox.wait_for_webhooks()
    [(headers, payload)] = receiver.received
    assert headers["Authorization"] == "Bearer hook-secret"
    assert headers["Content-Type"] == "application/json"
    assert payload == {
        "workflowUuid": REQUEST_SOFTWARE,
        "executionUuid": execution.uuid,
        "user": "alice@example.com",
        "text": "Alice Martin asks to install Visio on LAPTOP-ALICE. Approve?",
        "options": DEFAULT_OPTIONS,
        "requester": "alice@example.com",
        "approverParameter": "approver",
        "expiresInMinutes": 1440,
    }
    assert delivery.status == 201
    assert delivery.response["channel"] == "D0SANDBOX"
    assert execution.webhook == delivery
    assert execution.status is ExecutionStatus.WAITING


async def test_channel_and_approvers_params_reach_the_question(
    sandbox: Sandbox, api: Caller, receiver: WebhookReceiver
) -> None:
    """A channel param makes the question go to that channel; approvers become a list."""
    await request_software(
        api, sandbox, channel="C0APPROVALS", approvers="@it-leads, bob@example.com"
    )
    await sandbox.wait_for_webhooks()
    [(_, payload)] = receiver.received
    assert payload["channel"] == "C0APPROVALS"
    assert "user" not in payload
    assert payload["approvers"] == ["@it-leads", "bob@example.com"]
    assert payload["requester"] == "alice@example.com"


async def test_trigger_resumes_once_and_refuses_a_second_trigger(
    sandbox: Sandbox, api: Caller
) -> None:
    """The trigger answers an array of one request uuid and resumes; a second trigger is a 400."""
    execution = await request_software(api, sandbox)
    parameters = {"decision": "approved", "approver": "bob@example.com"}
    response = await api.trigger(REQUEST_SOFTWARE, execution.uuid, parameters)
    assert response.status_code == 200
    [answer] = response.json()
    ThinkletTriggerResponse.model_validate(answer)
    assert execution.status is ExecutionStatus.IN_PROGRESS
    assert execution.trigger_parameters == parameters
    again = await api.trigger(REQUEST_SOFTWARE, execution.uuid, parameters)
    assert again.status_code == 400
    assert again.json()["code"] == "EXECUTION_NOT_WAITING"
    await sandbox.settle()
    assert execution.status is ExecutionStatus.SUCCESS
    assert "approved by bob@example.com" in execution.outcome
    late = await api.trigger(REQUEST_SOFTWARE, execution.uuid, parameters)
    assert late.json()["code"] == "EXECUTION_NOT_WAITING"
    assert "success" in late.json()["details"]


async def test_denied_decision_cancels_the_execution(sandbox: Sandbox, api: Caller) -> None:
    """A trigger with decision=denied ends the execution as cancelled."""
    execution = await request_software(api, sandbox)
    await api.trigger(
        REQUEST_SOFTWARE, execution.uuid, {"decision": "denied", "approver": "bob@example.com"}
    )
    await sandbox.settle()
    assert execution.status is ExecutionStatus.CANCELLED
    assert execution.status_details == "denied by bob@example.com"


async def test_nql_shows_a_paused_execution_as_waiting(sandbox: Sandbox, api: Caller) -> None:
    """The NQL status of a paused execution is waiting_for_trigger."""
    execution = await request_software(api, sandbox)
    [row] = (await api.nql(execution.request_uuid)).json()["data"]
    assert row["workflow.executions.status"] == "waiting_for_trigger"


@pytest.mark.parametrize(
    ("workflow", "execution", "parameters", "code"),
    [
        (REQUEST_SOFTWARE, UNKNOWN_UUID, {}, "EXECUTION_NOT_FOUND"),
        (UNKNOWN_UUID, "own", {}, "WORKFLOW_NOT_FOUND"),
        (RESTART_TEAMS, "own", {}, "EXECUTION_NOT_FOUND"),
        (REQUEST_SOFTWARE, "own", {"decision": ""}, "INVALID_PARAMETER"),
        (REQUEST_SOFTWARE, "not-a-uuid", {}, "INVALID_PATH_PARAMETER"),
    ],
    ids=["unknown-execution", "unknown-workflow", "other-workflow", "empty-value", "bad-path-uuid"],
)
async def test_trigger_refuses_what_it_cannot_resume(
    sandbox: Sandbox,
    api: Caller,
    workflow: str,
    execution: str,
    parameters: dict[str, str],
    code: str,
) -> None:
    """Triggers of unknown executions, with empty values or malformed path ids answer a coded 400."""
    waiting = await request_software(api, sandbox)
    target = waiting.uuid if execution == "own" else execution
    valid = code not in {"INVALID_PARAMETER", "INVALID_PATH_PARAMETER"}
    response = await api.trigger(workflow, target, parameters, valid=valid)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert waiting.status is ExecutionStatus.WAITING


async def test_trigger_of_an_ordinary_execution_is_refused(sandbox: Sandbox, api: Caller) -> None:
    """An execution that never paused cannot be triggered: 400 EXECUTION_NOT_WAITING."""
    body = {"workflowId": "restart_teams", "users": [{"upn": "bob@example.com"}], "devices": []}
    [uuid] = (await api.execute_v2(body)).json()["executionsUuids"]
    response = await api.trigger(RESTART_TEAMS, uuid, {"decision": "approved"})
    assert response.status_code == 400
    assert response.json()["code"] == "EXECUTION_NOT_WAITING"


async def test_trigger_requires_a_json_body(sandbox: Sandbox, api: Caller) -> None:
    """A trigger without a body answers 400 (the reference marks the body required)."""
    execution = await request_software(api, sandbox)
    response = await api.call("POST", trigger_path(REQUEST_SOFTWARE, execution.uuid), valid=False)
    assert response.status_code == 400
    assert execution.waiting


async def test_unknown_requester_fails_without_a_question(
    sandbox: Sandbox, api: Caller, receiver: WebhookReceiver
) -> None:
    """A pausing workflow on an unknown user fails as not found and posts nothing."""
    execution = await request_software(api, sandbox, upn="zed@example.com")
    assert execution.status is ExecutionStatus.FAILURE
    assert await sandbox.wait_for_webhooks() == []
    assert receiver.received == []


async def test_without_webhook_url_executions_still_wait() -> None:
    """With no webhook URL nothing is posted, but the execution waits and can be triggered."""
    async with Sandbox(execution_delay=0.0) as sb, httpx.AsyncClient(base_url=sb.url) as client:
        api = Caller(client)
        await api.get_token()
        execution = await request_software(api, sb)
        assert execution.waiting
        assert execution.question is not None
        assert await sb.wait_for_webhooks() == []
        assert (await api.trigger(REQUEST_SOFTWARE, execution.uuid, {})).status_code == 200
        await sb.settle()
        assert execution.status is ExecutionStatus.SUCCESS


@pytest.mark.parametrize(
    ("receiver_kwargs", "status", "error"),
    [
        ({"status": 401}, 401, None),
        ({"delay": 0.3}, None, "ReadTimeout"),
    ],
    ids=["refused", "too-slow"],
)
async def test_a_failing_webhook_is_recorded_and_the_execution_waits(
    receiver_kwargs: dict[str, Any], status: int | None, error: str | None
) -> None:
    """A webhook that refuses or outlasts the thinklet timeout is recorded; the wait goes on."""
    async with (
        WebhookReceiver(**receiver_kwargs) as receiver,
        Sandbox(webhook_url=receiver.url, webhook_timeout=0.1) as sb,
        httpx.AsyncClient(base_url=sb.url) as client,
    ):
        api = Caller(client)
        await api.get_token()
        execution = await request_software(api, sb)
        [delivery] = await sb.wait_for_webhooks()
        assert delivery.status == status
        assert (delivery.error or "").startswith(error or "")
        assert (delivery.error is None) == (error is None)
        assert execution.waiting


async def test_an_unanswered_wait_expires() -> None:
    """A paused execution not triggered within its expiry turns expired and refuses triggers."""
    async with Sandbox(wait_expiry=0.05) as sb, httpx.AsyncClient(base_url=sb.url) as client:
        api = Caller(client)
        await api.get_token()
        execution = await request_software(api, sb)
        await eventually(lambda: not execution.waiting)
        assert execution.status is ExecutionStatus.EXPIRED
        response = await api.trigger(REQUEST_SOFTWARE, execution.uuid, {})
        assert response.json()["code"] == "EXECUTION_NOT_WAITING"
