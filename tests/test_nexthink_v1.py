"""V1 where V2 is missing, and NQL's 1,000-row cap: the client against the sandbox over loopback.

The sandbox plays an instance without the V2 execute (``Sandbox(without_v2=True)`` or its
``/_sandbox/api`` switch): that route answers 404 as a missing route does. Every request the
sandbox journals is checked against the OpenAPI document when a test ends (V1 bodies included),
as in ``test_nexthink_sandbox``. The cases that need an answer the sandbox never gives (a 404
carrying Nexthink's ErrorResponse; 25,000 targets) use the scripted ``FakeNexthink``, which
validates every request it receives the same way.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.nexthink import (
    BadRequest,
    NeedsV2,
    NexthinkClient,
    RouteMissing,
    completed_before,
)
from bot.nexthink.errors import may_have_run
from bot.nexthink.models import DeviceData, UserData
from bot.sandbox import Sandbox
from bot.settings import Settings
from tests.test_nexthink_client import FakeNexthink, Reply, fake  # noqa: F401 - the fixture
from tests.test_nexthink_client import make_client as make_fake_client
from tests.test_nexthink_sandbox import CLIENT_ID, CLIENT_SECRET, check_journal

ALICE_SID = "S-1-5-21-1004336348-1177238915-682003330-1101"
LAPTOP_ALICE = "9ce3f860-5f13-4475-ab6f-b2e1a2615d35"
LAPTOP_BOB = "11148096-8a4a-4958-9977-07c847d66ab5"


@pytest.fixture
async def no_v2() -> AsyncIterator[Sandbox]:
    async with Sandbox(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, execution_delay=0.02, without_v2=True
    ) as sandbox:
        yield sandbox
    check_journal(sandbox)


@pytest.fixture
async def with_v2() -> AsyncIterator[Sandbox]:
    async with Sandbox(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, execution_delay=0.02
    ) as sandbox:
        yield sandbox
    check_journal(sandbox)


def client_for(sb: Sandbox, **overrides: Any) -> NexthinkClient:
    options: dict[str, Any] = {
        "base_url": sb.url,
        "token_url": f"{sb.url}/oauth2/default/v1/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "backoff": 0.01,
        "max_retry_after": 0.2,
    }
    options.update(overrides)
    return NexthinkClient(**options)


def statuses(sb: Sandbox, endpoint: str) -> list[int | None]:
    return [entry.status for entry in sb.requests(endpoint)]


async def test_sandbox_checks_the_alice_sid() -> None:
    """The SID these tests use is alice's in the seeded catalogue (so V1 runs really resolve)."""
    async with Sandbox() as sandbox:
        assert any(u.sid == ALICE_SID for u in sandbox.catalogue.users)


# -- auto ---------------------------------------------------------------------------------------


async def test_auto_falls_back_to_v1_after_a_404_and_remembers_it(no_v2: Sandbox) -> None:
    """In auto, the V2 execute's 404 sends the same run through V1 (SIDs, Collector UUIDs); the
    client remembers it: the next run goes to V1 at once. Each run ran exactly once."""
    async with client_for(no_v2) as client:
        assert client.execute_api == "v2 (not yet probed)"
        first = await client.execute_many(
            "restart_teams",
            [UserData(sid=ALICE_SID)],
            [DeviceData(collector_uid=LAPTOP_BOB)],
            {"mode": "soft"},
        )
        assert client.execute_api == "v1"
        second = await client.execute_many(
            "clear_disk_space", [], [DeviceData(collector_uid=LAPTOP_ALICE)], {}
        )
    assert statuses(no_v2, "execute_v2") == [404]  # asked once, never again
    assert statuses(no_v2, "execute_v1") == [200, 200]
    v1_first, v1_second = (entry.body for entry in no_v2.requests("execute_v1"))
    assert v1_first == {
        "workflowId": "restart_teams",
        "users": [ALICE_SID],
        "devices": [LAPTOP_BOB],
        "params": {"mode": "soft"},
    }
    assert v1_second["devices"] == [LAPTOP_ALICE]
    ran = {e.request_uuid for e in no_v2.executions.values()}
    assert ran == {*first.request_uuids, *second.request_uuids}
    assert len(first.executions_uuids) == 2
    assert len(second.executions_uuids) == 1


async def test_auto_refuses_a_run_by_upn_clearly_and_sends_nothing_through_v1(
    no_v2: Sandbox,
) -> None:
    """A run that names people by UPN (or devices by name) cannot go through V1: NeedsV2 names
    them, nothing is sent through V1, nothing ran."""
    async with client_for(no_v2) as client:
        with pytest.raises(NeedsV2) as caught:
            await client.execute_many(
                "restart_teams",
                [UserData(upn="alice@example.com"), UserData(sid=ALICE_SID)],
                [DeviceData(name="LAPTOP-BOB")],
                {},
            )
        assert client.execute_api == "v1"
    message = caught.value.message
    assert "this Nexthink instance has no V2 execute" in message
    assert "V1 cannot target people by UPN or devices by name" in message
    assert "alice@example.com, LAPTOP-BOB" in message
    assert caught.value.unexpressible == ("alice@example.com", "LAPTOP-BOB")
    assert not may_have_run(caught.value)
    completed = completed_before(caught.value)
    assert completed is not None
    assert completed.request_uuids == []
    assert statuses(no_v2, "execute_v2") == [404]
    assert no_v2.requests("execute_v1") == []
    assert no_v2.executions == {}


async def test_auto_with_v2_never_touches_v1(with_v2: Sandbox) -> None:
    """Where V2 answers, auto stays on V2, and a refusal from V2 (unknown workflow, 400) is a
    plain BadRequest: no V1 retry."""
    async with client_for(with_v2) as client:
        await client.execute_many("restart_teams", [UserData(upn="alice@example.com")], [], {})
        assert client.execute_api == "v2"
        with pytest.raises(BadRequest) as caught:
            await client.execute_many("no_such_workflow", [UserData(sid=ALICE_SID)], [], {})
        assert not isinstance(caught.value, RouteMissing)
        assert caught.value.code == "WORKFLOW_NOT_FOUND"
        assert client.execute_api == "v2"
    assert statuses(with_v2, "execute_v2") == [200, 400]
    assert with_v2.requests("execute_v1") == []


async def test_a_404_that_carries_an_error_response_is_not_a_missing_route(
    fake: FakeNexthink,  # noqa: F811 - the imported fixture
) -> None:
    """A 404 with Nexthink's {code, details} is the Workflows API speaking (the route is there):
    BadRequest with its code, never retried through V1."""
    fake.queue(
        "execute_v2",
        Reply(404, json={"code": "WORKFLOW_NOT_FOUND", "details": "no workflow #nope"}),
    )
    async with make_fake_client(fake) as client:
        with pytest.raises(BadRequest) as caught:
            await client.execute_many("nope", [UserData(sid=ALICE_SID)], [], {})
        assert client.execute_api == "v2"
    assert not isinstance(caught.value, RouteMissing)
    assert caught.value.code == "WORKFLOW_NOT_FOUND"
    assert len(fake.requests("execute_v2")) == 1
    assert fake.requests("execute_v1") == []


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404),
        Reply(404, body=b"<html>404 Not Found</html>", content_type="text/html"),
        Reply(404, json={"message": "Not Found"}),
    ],
    ids=["empty", "html", "gateway-json"],
)
async def test_any_404_without_an_error_response_is_a_missing_route(
    fake: FakeNexthink,  # noqa: F811 - the imported fixture
    reply: Reply,
) -> None:
    """Empty, HTML or a gateway's JSON: the route is missing, and the run goes through V1."""
    fake.queue("execute_v2", reply)
    async with make_fake_client(fake) as client:
        answer = await client.execute_many("wf", [UserData(sid=ALICE_SID)], [], {})
    assert len(answer.request_uuids) == 1
    assert [s.body["users"] for s in fake.requests("execute_v1")] == [[ALICE_SID]]


async def test_v1_requests_are_chunked_by_ten_thousand(
    fake: FakeNexthink,  # noqa: F811 - the imported fixture
) -> None:
    """25,000 Collector UUIDs after the 404: three V1 requests (10,000, 10,000, 5,000), each valid
    against the reference; the V2 request was sent once."""
    fake.queue("execute_v2", Reply(404))
    devices = [DeviceData(collector_uid=str(uuid.uuid4())) for _ in range(25_000)]
    async with make_fake_client(fake) as client:
        answer = await client.execute_many("wf", [], devices, {})
    sizes = [len(s.body["devices"]) for s in fake.requests("execute_v1")]
    assert sizes == [10_000, 10_000, 5_000]
    assert len(fake.requests("execute_v2")) == 1
    assert len(answer.request_uuids) == 3
    sent = [d for s in fake.requests("execute_v1") for d in s.body["devices"]]
    assert sent == [d.collector_uid for d in devices]


async def test_a_sid_is_used_when_a_user_has_a_upn_too(no_v2: Sandbox) -> None:
    """A user named by SID and UPN goes through V1 by SID."""
    async with client_for(no_v2) as client:
        await client.execute_many(
            "unlock_account", [UserData(sid=ALICE_SID, upn="alice@example.com")], [], {}
        )
    (v1,) = no_v2.requests("execute_v1")
    assert v1.body["users"] == [ALICE_SID]


# -- v1 and v2 ----------------------------------------------------------------------------------


async def test_v1_mode_never_sends_v2(with_v2: Sandbox) -> None:
    """NEXTHINK_EXECUTE_API=v1: V1 always, even where V2 exists; a UPN is refused before anything
    is sent, naming the setting."""
    async with client_for(with_v2, execute_api="v1") as client:
        assert client.execute_api == "v1"
        await client.execute_many("unlock_account", [UserData(sid=ALICE_SID)], [], {})
        with pytest.raises(
            NeedsV2, match="NEXTHINK_EXECUTE_API=v1; V1 cannot target people by UPN"
        ):
            await client.execute_many("unlock_account", [UserData(upn="bob@example.com")], [], {})
    assert with_v2.requests("execute_v2") == []
    assert statuses(with_v2, "execute_v1") == [200]


async def test_v2_mode_reports_the_missing_route_without_falling_back(no_v2: Sandbox) -> None:
    """NEXTHINK_EXECUTE_API=v2 against an instance without V2: RouteMissing (a BadRequest), no V1."""
    async with client_for(no_v2, execute_api="v2") as client:
        with pytest.raises(RouteMissing, match="HTTP 404"):
            await client.execute_many("unlock_account", [UserData(sid=ALICE_SID)], [], {})
        assert client.execute_api == "v2"
    assert no_v2.requests("execute_v1") == []


def test_the_setting_reaches_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """NEXTHINK_EXECUTE_API is read case-insensitively and handed to the client; a bad value is
    one line naming the setting."""
    base = {
        "NEXTHINK_BASE_URL": "https://acme.api.eu.nexthink.cloud",
        "NEXTHINK_CLIENT_ID": "id",
        "NEXTHINK_CLIENT_SECRET": "secret",
    }
    for name, value in base.items():
        monkeypatch.setenv(name, value)
    assert Settings.load("console").nexthink_execute_api == "auto"
    monkeypatch.setenv("NEXTHINK_EXECUTE_API", "V1")
    client = NexthinkClient.from_settings(Settings.load("console"))
    assert client.execute_api == "v1"
    monkeypatch.setenv("NEXTHINK_EXECUTE_API", "v3")
    from bot.settings import SettingsError

    try:
        Settings.load("console")
    except SettingsError as exc:
        message = str(exc)
    else:
        pytest.fail("NEXTHINK_EXECUTE_API=v3 was accepted")
    # the half-built Settings must not outlive the test (the secret scan inspects live ones)
    gc.collect()
    assert message == "NEXTHINK_EXECUTE_API: must be auto, v2 or v1, got 'v3'"


# -- the sandbox's switch -----------------------------------------------------------------------


async def test_the_v2_switch_at_run_time(with_v2: Sandbox) -> None:
    """POST /_sandbox/api removes and restores the V2 execute; a bad switch is a 400."""
    async with httpx.AsyncClient(base_url=with_v2.url) as http:
        assert (await http.get("/_sandbox/api")).json() == {"v2Execute": True}
        off = await http.post("/_sandbox/api", content="without-v2")
        assert off.json() == {"v2Execute": False}
        async with client_for(with_v2) as client:
            await client.execute_many("unlock_account", [UserData(sid=ALICE_SID)], [], {})
            assert client.execute_api == "v1"
        assert statuses(with_v2, "execute_v2") == [404]
        (missing,) = with_v2.requests("execute_v2")
        assert missing.response == {"message": "Not Found"}
        on = await http.post("/_sandbox/api", json={"v2Execute": True})
        assert on.json() == {"v2Execute": True}
        bad = await http.post("/_sandbox/api", content="maybe")
        assert bad.status_code == 400
        assert "without-v2" in bad.json()["error"]
    async with client_for(with_v2) as fresh:
        await fresh.execute_many("unlock_account", [UserData(upn="alice@example.com")], [], {})
        assert fresh.execute_api == "v2"
    assert statuses(with_v2, "execute_v2") == [404, 200]


# -- NQL's 1,000 rows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("targets", "rows", "cut"), [(999, 999, False), (1_000, 1_000, True), (1_200, 1_000, True)]
)
async def test_nql_answers_at_most_1000_rows_and_the_client_says_it_may_be_cut(
    with_v2: Sandbox, targets: int, rows: int, cut: bool
) -> None:
    """The sandbox's NQL execute stops at 1,000 rows, silently; the client flags an answer of
    1,000 rows as possibly cut short, and one below it as whole."""
    devices = [DeviceData(collector_uid=str(uuid.uuid4())) for _ in range(targets)]
    async with client_for(with_v2) as client:
        ran = await client.execute_many("clear_disk_space", [], devices, {})
        (request_uuid,) = ran.request_uuids
        result = await client.nql_query("#chatops_execution_status", {"request_id": request_uuid})
        assert (
            await client.nql("#chatops_execution_status", {"request_id": request_uuid})
            == result.rows
        )
    assert len(ran.executions_uuids) == targets
    assert len(result.rows) == rows
    assert result.maybe_truncated is cut
    (answer, _again) = (entry.response for entry in with_v2.requests("nql"))
    assert answer["rows"] == rows
