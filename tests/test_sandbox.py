"""The sandbox's token endpoint and execute (V1 and V2), driven over loopback with httpx.

Every request meant to be valid is checked with ``validate_request`` before it is sent, and every
answer with ``validate_response`` (see ``tests/support/sandbox_helpers.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.nexthink.models import (
    MAX_TARGETS,
    ExecutionResponse,
    TokenResponse,
)
from bot.sandbox import ExecutionStatus, Sandbox
from tests.support.openapi import validate_request
from tests.support.sandbox_helpers import (
    DETAILS,
    EXECUTE_V1,
    EXECUTE_V2,
    LIST,
    NQL,
    TOKEN_PATH,
    Caller,
    FakeClock,
    basic,
    trigger_path,
)

ALICE_SID = "S-1-5-21-1004336348-1177238915-682003330-1101"
ALICE_UID = "4858cb88-8022-407d-aec5-24d6c784e81e"
LAPTOP_ALICE = "9ce3f860-5f13-4475-ab6f-b2e1a2615d35"
LAPTOP_ALICE_UID = "5ef24db7-bb30-4dfa-a02a-9d2698715dfb"
NEW_LAPTOP_42 = "875b9a44-d753-4d16-90a5-c6c3362eaffd"
UNKNOWN_UUID = "00000000-1111-4222-8333-444444444444"
FORM = {"grant_type": "client_credentials", "scope": "service:integration"}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(execution_delay=0.05) as sb:
        yield sb


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5.0) as client:
        yield client


@pytest.fixture
async def api(http: httpx.AsyncClient) -> Caller:
    caller = Caller(http)
    await caller.get_token()
    return caller


def execute_body(workflow: str = "restart_teams", **fields: Any) -> dict[str, Any]:
    return {"workflowId": workflow, "users": [], "devices": [], "params": {}} | fields


# -- token ---------------------------------------------------------------------------------


async def test_token_is_issued_for_the_right_client(http: httpx.AsyncClient) -> None:
    """Client credentials with Basic auth get a bearer token with the configured lifetime."""
    response = await http.post(
        TOKEN_PATH, data=FORM, headers={"Authorization": basic("sandbox", "sandbox")}
    )
    assert response.status_code == 200
    body = response.json()
    token = TokenResponse.model_validate(body)
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "service:integration"
    assert token.expires_in == 900
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "authorization",
    [basic("sandbox", "wrong"), basic("other", "sandbox"), None, "Basic !!!", "Bearer sandbox"],
    ids=["wrong-secret", "wrong-id", "missing", "not-base64", "not-basic"],
)
async def test_token_refuses_wrong_credentials(
    http: httpx.AsyncClient, authorization: str | None
) -> None:
    """Wrong or missing client credentials answer 401 invalid_client."""
    headers = {"Authorization": authorization} if authorization else {}
    response = await http.post(TOKEN_PATH, data=FORM, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "scope": "service:integration"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "invalid_scope"),
        ({"grant_type": "client_credentials", "scope": "openid"}, "invalid_scope"),
    ],
    ids=["grant-type", "no-scope", "wrong-scope"],
)
async def test_token_refuses_a_bad_form(
    http: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    """A grant type or scope other than client_credentials / service:integration answers 400."""
    response = await http.post(
        TOKEN_PATH, data=form, headers={"Authorization": basic("sandbox", "sandbox")}
    )
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_token_expires_after_its_lifetime() -> None:
    """A token is accepted until token_lifetime has passed on the sandbox's clock, then 401."""
    clock = FakeClock()
    async with (
        Sandbox(token_lifetime=60.0, clock=clock) as sb,
        httpx.AsyncClient(base_url=sb.url) as client,
    ):
        api = Caller(client)
        await api.get_token()
        query = "nqlId=restart_teams"
        clock.now += 59.9
        assert (await api.call("GET", DETAILS, query=query)).status_code == 200
        clock.now += 0.2
        assert (await api.call("GET", DETAILS, query=query)).status_code == 401
        await api.get_token()
        assert (await api.call("GET", DETAILS, query=query)).status_code == 200


async def test_expire_tokens_makes_every_issued_token_fail(sandbox: Sandbox, api: Caller) -> None:
    """expire_tokens() turns every token issued so far into a 401; a new token works."""
    assert sandbox.expire_tokens() == 1
    assert (await api.call("GET", DETAILS, query="nqlId=restart_teams")).status_code == 401
    await api.get_token()
    assert (await api.call("GET", DETAILS, query="nqlId=restart_teams")).status_code == 200


REQUESTS = [
    ("POST", EXECUTE_V2, execute_body(users=[{"upn": "alice@example.com"}]), ""),
    ("POST", EXECUTE_V1, execute_body(users=[ALICE_SID]), ""),
    ("POST", trigger_path(UNKNOWN_UUID, UNKNOWN_UUID), {"parameters": {}}, ""),
    ("GET", LIST, None, "dependency=USER&triggerMethod=API"),
    ("GET", DETAILS, None, "nqlId=restart_teams"),
    ("POST", NQL, {"queryId": "#status", "parameters": {"request_id": UNKNOWN_UUID}}, ""),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "query"),
    REQUESTS,
    ids=["execute_v2", "execute_v1", "trigger", "list", "get", "nql"],
)
@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["no-token", "unknown-token"])
async def test_api_without_a_valid_token_answers_401_without_body(
    sandbox: Sandbox,
    api: Caller,
    method: str,
    path: str,
    body: Any,
    query: str,
    token: str | None,
) -> None:
    """Every API endpoint answers 401 with an empty body to a missing or unknown bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.call(method, path, body=body, query=query, headers=headers, valid=False)
    assert response.status_code == 401
    assert response.content == b""
    assert sandbox.executions == {}


# -- execute V2 ------------------------------------------------------------------------------


async def test_execute_v2_runs_on_the_users_most_recent_device(
    sandbox: Sandbox, api: Caller
) -> None:
    """A V2 execute answers a request uuid and one execution per target, which later succeeds."""
    body = execute_body(users=[{"upn": "alice@example.com"}], params={"mode": "hard"})
    response = await api.execute_v2(body)
    assert response.status_code == 200
    answer = ExecutionResponse.model_validate(response.json())
    [uuid] = answer.executions_uuids
    execution = sandbox.executions[uuid]
    assert execution.request_uuid == answer.request_uuid
    assert execution.status is ExecutionStatus.IN_PROGRESS
    assert execution.user is not None
    assert execution.user.upn == "alice@example.com"
    assert execution.device is not None
    assert execution.device.name == "LAPTOP-ALICE"
    assert execution.source == "sandbox-tests"
    await sandbox.settle()
    assert execution.status is ExecutionStatus.SUCCESS
    assert "LAPTOP-ALICE" in execution.outcome
    assert "mode=hard" in execution.outcome


@pytest.mark.parametrize(
    ("target", "kind", "expected"),
    [
        ({"upn": "alice@example.com"}, "users", ALICE_UID),
        ({"upn": "ALICE@EXAMPLE.COM"}, "users", ALICE_UID),
        ({"sid": ALICE_SID}, "users", ALICE_UID),
        ({"uid": ALICE_UID}, "users", ALICE_UID),
        ({"upn": "erin@example.com"}, "users", "be57681c-4b12-4774-8ad1-9ec6ba2a4fb2"),
        ({"name": "LAPTOP-ALICE"}, "devices", LAPTOP_ALICE),
        ({"collectorUid": LAPTOP_ALICE}, "devices", LAPTOP_ALICE),
        ({"uid": LAPTOP_ALICE_UID}, "devices", LAPTOP_ALICE),
        ({"name": "LAPTOP-42"}, "devices", NEW_LAPTOP_42),
        ({"name": "laptop-42"}, "devices", NEW_LAPTOP_42),
    ],
    ids=[
        "upn",
        "upn-any-case",
        "sid",
        "uid",
        "two-users-share-a-upn",
        "device-name",
        "collector-uid",
        "device-uid",
        "two-devices-share-a-name",
        "name-any-case",
    ],
)
async def test_execute_v2_resolves_identifiers_to_the_most_recently_seen(
    sandbox: Sandbox, api: Caller, target: dict[str, str], kind: str, expected: str
) -> None:
    """V2 users match by sid/upn/uid, devices by collectorUid/name/uid; several: latest seen."""
    response = await api.execute_v2(
        execute_body(
            "clear_disk_space" if kind == "devices" else "unlock_account", **{kind: [target]}
        )
    )
    [uuid] = response.json()["executionsUuids"]
    execution = sandbox.executions[uuid]
    if kind == "users":
        assert execution.user is not None
        assert execution.user.uid == expected
    else:
        assert execution.device is not None
        assert execution.device.collector_uid == expected


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("users", {"upn": "zed@example.com"}),
        ("users", {"sid": "S-1-5-21-1-2-3-9999"}),
        ("users", {"uid": UNKNOWN_UUID}),
        ("devices", {"name": "LAPTOP-NOBODY"}),
        ("devices", {"collectorUid": UNKNOWN_UUID}),
    ],
    ids=["upn", "sid", "user-uid", "device-name", "collector-uid"],
)
async def test_unknown_targets_fail_per_target(
    sandbox: Sandbox, api: Caller, kind: str, target: dict[str, str]
) -> None:
    """Unknown but well-formed identifiers are accepted; their execution fails as "not found"."""
    known = {"users": [{"upn": "bob@example.com"}], "devices": []}
    known[kind] = [*known[kind], target]
    response = await api.execute_v2(execute_body("restart_teams", **known))
    assert response.status_code == 200
    found, missing = (sandbox.executions[u] for u in response.json()["executionsUuids"])
    assert missing.status is ExecutionStatus.FAILURE
    assert missing.status_details == "not found"
    await sandbox.settle()
    assert found.status is ExecutionStatus.SUCCESS


async def test_user_without_device_fails_on_a_device_workflow(
    sandbox: Sandbox, api: Caller
) -> None:
    """A user target on a device workflow fails when the user has no device."""
    sandbox.catalogue.devices = [
        d for d in sandbox.catalogue.devices if d.owner != "bob@example.com"
    ]
    response = await api.execute_v2(
        execute_body("clear_disk_space", users=[{"upn": "bob@example.com"}])
    )
    [uuid] = response.json()["executionsUuids"]
    assert sandbox.executions[uuid].status is ExecutionStatus.FAILURE
    assert sandbox.executions[uuid].status_details == "no device found for the user"


async def test_simulate_failure_param_makes_executions_fail(sandbox: Sandbox, api: Caller) -> None:
    """params simulate=failure makes an otherwise good execution end in failure."""
    body = execute_body(users=[{"upn": "carol@example.com"}], params={"simulate": "failure"})
    [uuid] = (await api.execute_v2(body)).json()["executionsUuids"]
    await sandbox.settle()
    assert sandbox.executions[uuid].status is ExecutionStatus.FAILURE


async def test_workflow_id_may_carry_a_leading_hash(sandbox: Sandbox, api: Caller) -> None:
    """workflowId "#restart_teams" (as Nexthink's examples write it) names restart_teams."""
    response = await api.execute_v2(
        execute_body("#restart_teams", users=[{"upn": "dave@example.com"}])
    )
    assert response.status_code == 200


async def test_workflow_without_dependency_runs_once_without_targets(
    sandbox: Sandbox, api: Caller
) -> None:
    """A NONE-dependency workflow executed with no targets gets one execution, which succeeds."""
    [uuid] = (await api.execute_v2(execute_body("license_reclamation"))).json()["executionsUuids"]
    await sandbox.settle()
    assert sandbox.executions[uuid].status is ExecutionStatus.SUCCESS


# -- execute V1 ------------------------------------------------------------------------------


async def test_execute_v1_takes_sids_and_collector_uuids(sandbox: Sandbox, api: Caller) -> None:
    """V1 resolves users by SID and devices by Collector UUID, one execution each."""
    body = execute_body(users=[ALICE_SID], devices=[LAPTOP_ALICE, UNKNOWN_UUID])
    response = await api.execute_v1(body)
    assert response.status_code == 200
    user, device, unknown = (sandbox.executions[u] for u in response.json()["executionsUuids"])
    assert user.user is not None
    assert user.user.upn == "alice@example.com"
    assert device.device is not None
    assert device.device.name == "LAPTOP-ALICE"
    assert unknown.status_details == "not found"


# -- execute: 400s ---------------------------------------------------------------------------

_MANY_USERS = [{"upn": f"user{i}@example.com"} for i in range(MAX_TARGETS + 1)]
_MANY_SIDS = [f"S-1-5-21-{i}" for i in range(MAX_TARGETS + 1)]

BAD_V2: list[tuple[str, Any, str, bool]] = [
    # id, body (bytes: sent as is), code, whether the reference itself forbids the body
    ("not-json", b"{not json", "INVALID_JSON", True),
    ("not-an-object", b"[]", "INVALID_JSON", True),
    ("no-users", {"workflowId": "restart_teams", "devices": []}, "MISSING_FIELD", True),
    ("no-devices", {"workflowId": "restart_teams", "users": []}, "MISSING_FIELD", True),
    ("bad-upn", execute_body(users=[{"upn": "alice"}]), "INVALID_TARGET", True),
    ("bad-sid", execute_body(users=[{"sid": "S-1"}]), "INVALID_TARGET", True),
    ("bad-uid", execute_body(users=[{"uid": "nope"}]), "INVALID_TARGET", True),
    ("bad-collector", execute_body(devices=[{"collectorUid": "x"}]), "INVALID_TARGET", True),
    ("empty-user", execute_body(users=[{}]), "INVALID_TARGET", False),
    ("over-10000", execute_body(users=_MANY_USERS), "TOO_MANY_TARGETS", True),
    (
        "params-not-strings",
        execute_body(users=[{"upn": "a@b.co"}], params={"n": 1}),
        "INVALID_PARAMETERS",
        True,
    ),
    ("users-not-a-list", execute_body(users="alice@example.com"), "INVALID_REQUEST", True),
    ("unknown-field", execute_body(users=[{"upn": "a@b.co"}], device=[]), "UNKNOWN_FIELD", False),
    (
        "unknown-workflow",
        execute_body("no_such_flow", users=[{"upn": "a@b.co"}]),
        "WORKFLOW_NOT_FOUND",
        False,
    ),
    (
        "inactive",
        execute_body("legacy_vpn_reset", devices=[{"name": "LAPTOP-BOB"}]),
        "WORKFLOW_INACTIVE",
        False,
    ),
    (
        "not-api",
        execute_body("update_drivers", devices=[{"name": "LAPTOP-BOB"}]),
        "WORKFLOW_NOT_API_TRIGGERABLE",
        False,
    ),
    (
        "scheduled-only",
        execute_body("weekly_health_check", devices=[{"name": "LAPTOP-BOB"}]),
        "WORKFLOW_NOT_API_TRIGGERABLE",
        False,
    ),
    ("no-targets", execute_body("restart_teams"), "NO_TARGETS", False),
]


@pytest.mark.parametrize(
    ("body", "code", "forbidden"), [case[1:] for case in BAD_V2], ids=[case[0] for case in BAD_V2]
)
async def test_execute_v2_refuses_bad_requests_with_400(
    sandbox: Sandbox, api: Caller, body: Any, code: str, forbidden: bool
) -> None:
    """A V2 execute that breaks the reference or names an unusable workflow answers a coded 400."""
    if forbidden and not isinstance(body, bytes):
        with pytest.raises(Exception):  # noqa: B017, PT011 - openapi-core's error types vary
            validate_request("POST", EXECUTE_V2, headers=api.headers(), body=body)
    raw = body if isinstance(body, bytes) else None
    response = await api.call(
        "POST", EXECUTE_V2, body=None if raw else body, raw=raw, valid=not forbidden
    )
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["details"]
    assert sandbox.executions == {}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (execute_body(users=["alice@example.com"]), "INVALID_TARGET"),
        (execute_body(devices=["LAPTOP-ALICE"]), "INVALID_TARGET"),
        (execute_body(users=_MANY_SIDS), "TOO_MANY_TARGETS"),
        (execute_body(devices=[LAPTOP_ALICE] * (MAX_TARGETS + 1)), "TOO_MANY_TARGETS"),
    ],
    ids=[
        "upn-is-not-a-sid",
        "name-is-not-a-collector-uuid",
        "over-10000-users",
        "over-10000-devices",
    ],
)
async def test_execute_v1_refuses_what_is_not_a_sid_or_uuid(
    sandbox: Sandbox, api: Caller, body: dict[str, Any], code: str
) -> None:
    """V1 accepts only SIDs and Collector UUIDs, at most 10,000 of each."""
    response = await api.execute_v1(body, valid=False)
    assert response.status_code == 400
    assert response.json()["code"] == code


async def test_execute_requires_a_json_content_type(sandbox: Sandbox, api: Caller) -> None:
    """An execute body not sent as application/json answers 400 INVALID_CONTENT_TYPE."""
    response = await api.client.post(
        EXECUTE_V2,
        content=b"workflowId=restart_teams",
        headers=api.headers() | {"Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_CONTENT_TYPE"
