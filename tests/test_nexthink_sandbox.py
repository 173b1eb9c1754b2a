"""The Nexthink client end to end against the sandbox (``bot.sandbox``), over loopback.

Every request the sandbox journals is checked against the OpenAPI document when the test ends,
and so is every answer the document describes (list and get answers excepted: the reference's
``triggerMethods``/``versions`` schema is a documentation error, see NOTES.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.nexthink import (
    AuthenticationError,
    BadRequest,
    NexthinkClient,
    OutcomeUnknown,
    Throttled,
    UnexpectedResponse,
    completed_before,
)
from bot.nexthink.models import (
    DeviceData,
    ExecutionRequest,
    ExternalIdsExecutionRequest,
    UserData,
    WorkflowDependency,
)
from bot.sandbox import PAUSING_WORKFLOW_ID, Fault, Sandbox
from tests.support.openapi import validate_request, validate_response

CLIENT_ID = "chatops-bot"
CLIENT_SECRET = "Sandbox-Secret-Value-7f3a"
_DOCUMENTED = {"execute_v1", "execute_v2", "trigger", "list", "get"}
_DOCUMENTED_STATUSES = {200, 400, 401, 403}


def check_journal(sb: Sandbox) -> None:
    """Validate every documented request, and every documented answer, against the reference."""
    for entry in sb.journal:
        if entry.endpoint not in _DOCUMENTED:
            continue
        query = urlencode(entry.query)
        validate_request(
            entry.method, entry.path, query=query, headers=entry.headers, body=entry.body
        )
        answer_is_documented = (
            entry.fault is None
            and entry.status in _DOCUMENTED_STATUSES
            and not (entry.endpoint in {"list", "get"} and entry.status == 200)
        )
        if answer_is_documented:
            assert entry.status is not None
            validate_response(entry.method, entry.path, entry.status, entry.response, query=query)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, execution_delay=0.02
    ) as sandbox:
        yield sandbox
    check_journal(sandbox)


def make_client(sb: Sandbox, **overrides: Any) -> NexthinkClient:
    options: dict[str, Any] = {
        "base_url": sb.url,
        "token_url": f"{sb.url}/oauth2/default/v1/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "source": "slack-chatops-test",
        "backoff": 0.01,
        "max_retry_after": 0.2,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
    }
    options.update(overrides)
    return NexthinkClient(**options)


@pytest.fixture
async def client(sb: Sandbox) -> AsyncIterator[NexthinkClient]:
    async with make_client(sb) as nexthink:
        yield nexthink


def for_alice(workflow_id: str = "restart_teams") -> ExternalIdsExecutionRequest:
    return ExternalIdsExecutionRequest(
        workflow_id=workflow_id, users=[UserData(upn="alice@example.com")], params={"mode": "soft"}
    )


def statuses(sb: Sandbox, endpoint: str) -> list[int | None]:
    return [entry.status for entry in sb.requests(endpoint)]


# -- the five endpoints and NQL ---------------------------------------------------------------


async def test_api_workflows_of_the_seeded_catalogue(sb: Sandbox, client: NexthinkClient) -> None:
    """The API listing holds the active API-triggerable workflows, each with its dependency."""
    found = {w.id: w.dependency for w in await client.list_api_workflows()}
    assert found == {
        "clear_disk_space": "DEVICE",
        "license_reclamation": "NONE",
        "reimage_device": "DEVICE",
        "request_software": "USER_AND_DEVICE",
        "restart_teams": "USER_AND_DEVICE",
        "unlock_account": "USER",
    }
    assert len(sb.requests("list")) == 4
    assert len(sb.requests("token")) == 1


async def test_get_workflow_parses_the_sandbox_shape(sb: Sandbox, client: NexthinkClient) -> None:
    """Get workflow reads trigger methods given as booleans, versions and parameters."""
    found = await client.get_workflow("restart_teams")
    assert found is not None
    assert found.uuid == sb.catalogue.workflow("restart_teams").uuid  # type: ignore[union-attr]
    assert "API" in found.trigger_methods
    assert found.parameters == ("mode",)
    assert await client.get_workflow("no_such_workflow") is None


async def test_execute_v2_runs_once_per_target(sb: Sandbox, client: NexthinkClient) -> None:
    """A V2 execute for alice creates one execution, tagged with the Source header."""
    answer = await client.execute(for_alice())
    (execution_uuid,) = answer.executions_uuids
    assert sb.executions[execution_uuid].source == "slack-chatops-test"
    assert sb.requests("execute_v2")[0].headers["Source"] == "slack-chatops-test"


async def test_execute_v1_with_sids_and_collector_uuids(
    sb: Sandbox, client: NexthinkClient
) -> None:
    """A V1 execute with alice's SID and her laptop's Collector UUID creates two executions."""
    alice = sb.catalogue.find_user(upn="alice@example.com")
    laptop = sb.catalogue.find_device(name="LAPTOP-ALICE")
    assert alice is not None
    assert laptop is not None
    request = ExecutionRequest(
        workflow_id="clear_disk_space", users=[alice.sid], devices=[laptop.collector_uid]
    )
    answer = await client.execute_v1(request)
    assert len(answer.executions_uuids) == 2


async def test_trigger_resumes_a_waiting_execution_once(
    sb: Sandbox, client: NexthinkClient
) -> None:
    """Trigger resumes a paused execution; a second trigger is refused with Nexthink's code."""
    answer = await client.execute(for_alice(PAUSING_WORKFLOW_ID))
    (execution_uuid,) = answer.executions_uuids
    workflow_uuid = sb.catalogue.workflow(PAUSING_WORKFLOW_ID).uuid  # type: ignore[union-attr]
    resumed = await client.trigger(workflow_uuid, execution_uuid, {"decision": "approved"})
    assert len(resumed) == 1
    with pytest.raises(BadRequest) as caught:
        await client.trigger(workflow_uuid, execution_uuid, {"decision": "approved"})
    assert caught.value.code
    assert caught.value.details
    assert len(sb.requests("trigger")) == 2


async def test_nql_reads_the_executions_of_a_request(sb: Sandbox, client: NexthinkClient) -> None:
    """The status query returns one row per execution with the four columns the bot reads."""
    answer = await client.execute(for_alice())
    rows = await client.nql("#chatops_execution_status", {"request_id": answer.request_uuid})
    assert [row["workflow.executions.execution_id"] for row in rows] == answer.executions_uuids
    assert {"workflow.executions.status", "workflow.executions.outcome"} <= set(rows[0])


async def test_unknown_workflow_is_a_bad_request_with_nexthinks_code(
    sb: Sandbox, client: NexthinkClient
) -> None:
    """The sandbox's 400 for an unknown workflow becomes BadRequest with its code, not retried."""
    with pytest.raises(BadRequest) as caught:
        await client.execute(for_alice("no_such_workflow"))
    assert caught.value.code == "WORKFLOW_NOT_FOUND"
    assert statuses(sb, "execute_v2") == [400]


# -- tokens -----------------------------------------------------------------------------------


async def test_one_token_for_a_hundred_concurrent_calls(
    sb: Sandbox, client: NexthinkClient
) -> None:
    """A hundred concurrent calls share a single token request."""
    sb.faults.add(Fault(endpoint="token", kind="latency", delay=0.05))
    await asyncio.gather(*(client.get_workflow("restart_teams") for _ in range(100)))
    assert len(sb.requests("token")) == 1
    assert len(sb.requests("get")) == 100


async def test_expired_tokens_are_refreshed_once_and_the_call_retried(
    sb: Sandbox, client: NexthinkClient
) -> None:
    """After the sandbox expires every token, one refresh serves ten concurrent calls."""
    await client.token()
    sb.expire_tokens()
    await asyncio.gather(*(client.execute(for_alice()) for _ in range(10)))
    assert len(sb.requests("token")) == 2
    assert statuses(sb, "execute_v2").count(401) == 10
    assert statuses(sb, "execute_v2").count(200) == 10


async def test_a_401_fault_costs_one_refresh_and_one_retry(
    sb: Sandbox, client: NexthinkClient
) -> None:
    """A 401 on execute: one new token, one more execute, one execution."""
    await client.token()
    sb.faults.add(Fault(endpoint="execute_v2", kind="401"))
    await client.execute(for_alice())
    assert len(sb.requests("token")) == 2
    assert statuses(sb, "execute_v2") == [401, 200]
    assert len(sb.executions) == 1


async def test_a_short_lived_token_is_renewed_before_it_expires() -> None:
    """With a 1-second token and a 0.7-second margin the client renews it and never sees a 401."""
    async with (
        Sandbox(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_lifetime=1.0) as sb,
        make_client(sb, token_margin=0.7) as client,
    ):
        await client.get_workflow("restart_teams")
        await client.get_workflow("restart_teams")
        await asyncio.sleep(0.35)
        await client.get_workflow("restart_teams")
    check_journal(sb)
    assert len(sb.requests("token")) == 2
    assert statuses(sb, "get") == [200, 200, 200]


async def test_wrong_credentials(sb: Sandbox) -> None:
    """A wrong secret: AuthenticationError after one token request, and no secret in any text."""
    async with make_client(sb, client_secret="not-the-" + CLIENT_SECRET) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.list_api_workflows()
    assert len(sb.requests("token")) == 1
    assert sb.requests("list") == []
    for text in (str(caught.value), repr(caught.value), repr(client)):
        assert CLIENT_SECRET not in text


# -- faults: exact request counts, never a duplicate execution -------------------------------


@pytest.mark.parametrize("kind", ["429", "503"])
async def test_throttling_on_execute_is_retried(
    sb: Sandbox, client: NexthinkClient, kind: Any
) -> None:
    """A 429 or 503 on execute is waited out and retried: two requests, one execution."""
    sb.faults.add(Fault(endpoint="execute_v2", kind=kind, retry_after=0.05))
    started = time.monotonic()
    await client.execute(for_alice())
    assert time.monotonic() - started >= 0.05
    assert statuses(sb, "execute_v2") == [int(kind), 200]
    assert len(sb.executions) == 1


async def test_throttling_that_lasts_is_throttled(sb: Sandbox, client: NexthinkClient) -> None:
    """Three 429s: two retries, then Throttled, and nothing executed."""
    sb.faults.add(Fault(endpoint="execute_v2", kind="429", times=3, retry_after=0.01))
    with pytest.raises(Throttled):
        await client.execute(for_alice())
    assert statuses(sb, "execute_v2") == [429, 429, 429]
    assert sb.executions == {}


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("timeout", "no answer within the read timeout"),
        ("reset", "reset|closed without an answer"),
        ("500", "HTTP 500"),
        ("html", "HTTP 502"),
    ],
)
async def test_execute_that_may_have_run_is_outcome_unknown(
    sb: Sandbox, kind: Any, match: str
) -> None:
    """Timeout, reset, 500 or an HTML 502 after an execute: OutcomeUnknown, exactly one request."""
    sb.faults.add(Fault(endpoint="execute_v2", kind=kind, delay=0.5, processed=True))
    async with make_client(sb, read_timeout=0.1) as client:
        with pytest.raises(OutcomeUnknown, match=match) as caught:
            await client.execute(for_alice())
    assert "restart_teams" in str(caught.value)
    assert len(sb.requests("execute_v2")) == 1
    assert len(sb.executions) == 1  # it did run: the person is told to check


async def test_trigger_that_may_have_run_is_outcome_unknown(
    sb: Sandbox, client: NexthinkClient
) -> None:
    """A reset after a trigger: OutcomeUnknown naming the execution, one trigger request."""
    answer = await client.execute(for_alice(PAUSING_WORKFLOW_ID))
    (execution_uuid,) = answer.executions_uuids
    workflow_uuid = sb.catalogue.workflow(PAUSING_WORKFLOW_ID).uuid  # type: ignore[union-attr]
    sb.faults.add(Fault(endpoint="trigger", kind="reset", processed=True))
    with pytest.raises(OutcomeUnknown, match=execution_uuid):
        await client.trigger(workflow_uuid, execution_uuid, {"decision": "approved"})
    assert len(sb.requests("trigger")) == 1


async def test_garbage_after_execute_is_unexpected_and_may_have_run(
    sb: Sandbox, client: NexthinkClient
) -> None:
    """A 200 with truncated JSON after an execute is UnexpectedResponse warning that it may have run."""
    sb.faults.add(Fault(endpoint="execute_v2", kind="garbage", processed=True))
    with pytest.raises(UnexpectedResponse, match="may have run"):
        await client.execute(for_alice())
    assert len(sb.requests("execute_v2")) == 1


@pytest.mark.parametrize("kind", ["500", "html", "timeout", "reset", "503"])
async def test_failures_on_list_are_retried(sb: Sandbox, kind: Any) -> None:
    """A 500, an HTML 502, a timeout, a reset or a 503 on a listing is retried once and succeeds."""
    sb.faults.add(Fault(endpoint="list", kind=kind, delay=0.5, retry_after=0.01))
    async with make_client(sb, read_timeout=0.1) as client:
        found = await client.list_workflows(WorkflowDependency.USER)
    assert [w.id for w in found] == ["unlock_account"]
    assert len(sb.requests("list")) == 2


async def test_garbage_on_get_is_unexpected(sb: Sandbox, client: NexthinkClient) -> None:
    """A 200 with invalid JSON on a GET is UnexpectedResponse (a 200 is not retried)."""
    sb.faults.add(Fault(endpoint="get", kind="garbage"))
    with pytest.raises(UnexpectedResponse, match="not JSON"):
        await client.get_workflow("restart_teams")
    assert len(sb.requests("get")) == 1


async def test_latency_within_the_read_timeout_is_fine(sb: Sandbox) -> None:
    """A slow answer that arrives within the read timeout is simply waited for."""
    sb.faults.add(Fault(endpoint="execute_v2", kind="latency", delay=0.05))
    async with make_client(sb, read_timeout=1.0) as client:
        await client.execute(for_alice())
    assert statuses(sb, "execute_v2") == [200]


# -- chunking ---------------------------------------------------------------------------------


async def test_25000_devices_are_three_requests(sb: Sandbox, client: NexthinkClient) -> None:
    """25,000 devices go out as 10,000 + 10,000 + 5,000 and every one becomes an execution."""
    devices = [DeviceData(name=f"LAPTOP-{i:05d}") for i in range(25_000)]
    bulk = await client.execute_many("clear_disk_space", [], devices, {})
    assert [len(e.body["devices"]) for e in sb.requests("execute_v2")] == [10_000, 10_000, 5_000]
    assert len(bulk.request_uuids) == 3
    assert len(bulk.executions_uuids) == 25_000
    assert set(bulk.executions_uuids) == set(sb.executions)


async def test_a_failure_in_chunk_two_tells_what_ran(sb: Sandbox, client: NexthinkClient) -> None:
    """Chunk 2 of 3 answered 500: OutcomeUnknown carrying chunk 1's answer; chunk 3 is never sent."""
    sb.faults.add(Fault(endpoint="execute_v2", kind="latency", delay=0.0))  # chunk 1 answers
    sb.faults.add(Fault(endpoint="execute_v2", kind="500"))  # chunk 2 fails
    devices = [DeviceData(name=f"LAPTOP-{i:05d}") for i in range(25_000)]
    with pytest.raises(OutcomeUnknown) as caught:
        await client.execute_many("clear_disk_space", [], devices, {})
    completed = completed_before(caught.value)
    assert completed is not None
    assert completed.request_uuids == [sb.requests("execute_v2")[0].response["requestUuid"]]
    assert len(completed.executions_uuids) == 10_000
    assert statuses(sb, "execute_v2") == [200, 500]
