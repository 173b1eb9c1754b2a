"""The sandbox's list, get and NQL endpoints, its seeded catalogue and its journal, over loopback.

Every request meant to be valid is checked with ``validate_request`` before it is sent, and every
answer with ``validate_response`` (see ``tests/support/sandbox_helpers.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.nexthink.models import TriggerMethod, Workflow, WorkflowDependency
from bot.sandbox import Sandbox
from tests.support.sandbox_helpers import DETAILS, EXECUTE_V2, LIST, NQL, Caller

UNKNOWN_UUID = "00000000-1111-4222-8333-444444444444"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(execution_delay=0.05) as sb:
        yield sb


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[Caller]:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5.0) as client:
        caller = Caller(client)
        await caller.get_token()
        yield caller


def execute_body(workflow: str = "restart_teams", **fields: Any) -> dict[str, Any]:
    return {"workflowId": workflow, "users": [], "devices": [], "params": {}} | fields


# -- list and get ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("dependency=USER_AND_DEVICE&triggerMethod=API", {"restart_teams", "request_software"}),
        (
            "dependency=DEVICE&triggerMethod=API",
            {"clear_disk_space", "reimage_device", "legacy_vpn_reset"},
        ),
        (
            "dependency=DEVICE&triggerMethod=API&fetchOnlyActiveWorkflows=true",
            {"clear_disk_space", "reimage_device"},
        ),
        ("dependency=DEVICE&triggerMethod=MANUAL_MULTIPLE", {"clear_disk_space", "update_drivers"}),
        ("dependency=DEVICE&triggerMethod=SCHEDULER", {"weekly_health_check"}),
        ("dependency=NONE&triggerMethod=API", {"license_reclamation"}),
        ("dependency=USER&triggerMethod=API", {"unlock_account"}),
        ("dependency=USER&triggerMethod=SCHEDULER", set()),
    ],
    ids=[
        "user-and-device",
        "device-api",
        "only-active",
        "manual-multiple",
        "scheduler",
        "none",
        "user",
        "empty",
    ],
)
async def test_list_filters_by_dependency_and_trigger_method(
    api: Caller, query: str, expected: set[str]
) -> None:
    """List answers the workflows with that dependency and trigger method (active only on request)."""
    response = await api.call("GET", LIST, query=query)
    assert response.status_code == 200
    assert {w["id"] for w in response.json()} == expected


async def test_listed_workflows_parse_and_carry_parameters(api: Caller) -> None:
    """Listed workflows parse with the bot's model: trigger methods, versions, parameters."""
    response = await api.call("GET", LIST, query="dependency=USER_AND_DEVICE&triggerMethod=API")
    by_id = {item["id"]: Workflow.model_validate(item) for item in response.json()}
    teams = by_id["restart_teams"]
    assert teams.name == "Restart Teams"
    assert teams.trigger_methods == {"API", "MANUAL"}
    assert teams.parameters == ("mode",)
    assert teams.versions[0] == {
        "versionNumber": 3,
        "isActive": True,
        "lastUpdateTime": "2025-03-14T09:26:53Z",
    }
    assert by_id["request_software"].parameters == ("software",)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("triggerMethod=API", "MISSING_PARAMETER"),
        ("dependency=USER", "MISSING_PARAMETER"),
        ("dependency=EVERYONE&triggerMethod=API", "INVALID_PARAMETER"),
        ("dependency=USER&triggerMethod=EMAIL", "INVALID_PARAMETER"),
        ("dependency=USER&triggerMethod=API&fetchOnlyActiveWorkflows=maybe", "INVALID_PARAMETER"),
    ],
    ids=["no-dependency", "no-trigger-method", "bad-dependency", "bad-trigger-method", "bad-flag"],
)
async def test_list_refuses_missing_or_bad_filters(api: Caller, query: str, code: str) -> None:
    """Both list filters are required and must be one of the reference's values, else 400."""
    response = await api.call("GET", LIST, query=query, valid=False)
    assert response.status_code == 400
    assert response.json()["code"] == code


async def test_get_answers_an_array_with_the_workflow(api: Caller) -> None:
    """Get by NQL id answers an array holding that workflow (with or without a leading #)."""
    for nql_id in ("restart_teams", "%23restart_teams"):
        response = await api.call("GET", DETAILS, query=f"nqlId={nql_id}")
        assert response.status_code == 200
        [item] = response.json()
        assert item["uuid"] == "2e1f828a-7a75-47a5-a948-022d065a13e2"
        assert item["parameters"] == [{"name": "mode"}]
        assert item["triggerMethods"] == {
            "api": True,
            "manual": True,
            "manualMultiple": False,
            "scheduler": False,
        }


async def test_get_answers_inactive_workflows_and_nothing_for_unknown_ids(api: Caller) -> None:
    """Get answers an inactive workflow as INACTIVE and an unknown NQL id with an empty array."""
    [legacy] = (await api.call("GET", DETAILS, query="nqlId=legacy_vpn_reset")).json()
    assert legacy["status"] == "INACTIVE"
    assert (await api.call("GET", DETAILS, query="nqlId=no_such_flow")).json() == []


async def test_get_requires_nql_id(api: Caller) -> None:
    """Get without nqlId answers 400 MISSING_PARAMETER."""
    response = await api.call("GET", DETAILS, valid=False)
    assert response.status_code == 400
    assert response.json()["code"] == "MISSING_PARAMETER"


def test_catalogue_covers_every_dependency_and_trigger_method() -> None:
    """The seeded catalogue has the named workflows, users and devices the docs rely on."""
    catalogue = Sandbox().catalogue
    assert len(catalogue.workflows) >= 8
    assert {w.dependency for w in catalogue.workflows} == set(WorkflowDependency)
    assert set().union(*(w.trigger_methods for w in catalogue.workflows)) == set(TriggerMethod)
    ids = {w.id for w in catalogue.workflows}
    assert {"restart_teams", "clear_disk_space", "reimage_device", "request_software"} <= ids
    assert any(not w.is_active for w in catalogue.workflows)
    assert any(w.is_active and not w.api_triggerable for w in catalogue.workflows)
    assert any(w.pauses for w in catalogue.workflows)
    upns = {u.upn for u in catalogue.users}
    assert {"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"} <= upns
    names = [d.name for d in catalogue.devices]
    assert "LAPTOP-ALICE" in names
    assert any(names.count(name) > 1 for name in names)
    assert len({w.uuid for w in catalogue.workflows}) == len(catalogue.workflows)


# -- NQL -------------------------------------------------------------------------------------


async def test_nql_follows_a_requests_executions(sandbox: Sandbox, api: Caller) -> None:
    """The NQL status query lists each execution of a request with its current status."""
    body = execute_body(users=[{"upn": "alice@example.com"}, {"upn": "zed@example.com"}])
    answer = (await api.execute_v2(body)).json()
    first = (await api.nql(answer["requestUuid"])).json()
    assert first["rows"] == 2
    statuses = {
        r["workflow.executions.execution_id"]: r["workflow.executions.status"]
        for r in first["data"]
    }
    ok, missing = answer["executionsUuids"]
    assert statuses == {ok: "in_progress", missing: "failure"}
    await sandbox.settle()
    later = (await api.nql(answer["requestUuid"])).json()
    rows = {r["workflow.executions.execution_id"]: r for r in later["data"]}
    assert rows[ok]["workflow.executions.status"] == "success"
    assert rows[ok]["workflow.executions.outcome"]
    assert rows[missing]["workflow.executions.status_details"] == "not found"


async def test_nql_answers_no_rows_for_an_unknown_request(api: Caller) -> None:
    """A request id that no execute produced gives zero rows."""
    body = (await api.nql(UNKNOWN_UUID)).json()
    assert body["rows"] == 0
    assert body["data"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"queryId": "chatops", "parameters": {"request_id": "x"}}, "INVALID_QUERY_ID"),
        ({"queryId": "#Bad-Id", "parameters": {"request_id": "x"}}, "INVALID_QUERY_ID"),
        ({"queryId": "#chatops_status", "parameters": {}}, "MISSING_PARAMETER"),
        ({"queryId": "#chatops_status", "parameters": {"request_id": 1}}, "INVALID_PARAMETERS"),
    ],
    ids=["no-hash", "bad-characters", "no-request-id", "not-strings"],
)
async def test_nql_refuses_bad_queries(api: Caller, body: dict[str, Any], code: str) -> None:
    """An NQL call with a malformed query id or without request_id answers 400."""
    response = await api.call("POST", NQL, body=body)
    assert response.status_code == 400
    assert response.json()["code"] == code


# -- journal ---------------------------------------------------------------------------------


async def test_journal_records_what_was_sent_and_answered(sandbox: Sandbox, api: Caller) -> None:
    """Each API request is journaled with its endpoint, headers, parsed body, status and answer."""
    body = execute_body(users=[{"upn": "bob@example.com"}])
    answer = (await api.execute_v2(body)).json()
    [token] = sandbox.requests("token")
    assert token.body == {"grant_type": "client_credentials", "scope": "service:integration"}
    [entry] = sandbox.requests("execute_v2")
    assert entry.method == "POST"
    assert entry.path == EXECUTE_V2
    assert entry.headers["Source"] == "sandbox-tests"
    assert entry.headers["Authorization"] == f"Bearer {api.token}"
    assert entry.body == body
    assert (entry.status, entry.response, entry.fault) == (200, answer, None)
    with pytest.raises(ValueError, match="unknown endpoint"):
        sandbox.requests("execute")


async def test_unknown_paths_answer_404_and_are_journaled(sandbox: Sandbox, api: Caller) -> None:
    """A path the API does not have answers a 404 ErrorResponse and is journaled as unknown."""
    response = await api.client.post("/api/v3/workflows/execute", json={}, headers=api.headers())
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    wrong_method = await api.client.get(EXECUTE_V2, headers=api.headers())
    assert wrong_method.status_code == 405
    assert [e.path for e in sandbox.requests("unknown")] == [
        "/api/v3/workflows/execute",
        EXECUTE_V2,
    ]
