"""Fleet runs, part by part: the ``query:`` word, reading a query's rows into targets, the policy's
``query_targets``, the one atomic start in the store (SQLite and PostgreSQL, two stores racing
as two replicas would), and the sandbox's saved queries with their 1,000-row cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot import fleet
from bot.nexthink.models import DeviceData, UserData
from bot.policy import Policy, PolicyError, Principal
from bot.query_targets import QueryUnusable, read_targets
from bot.sandbox import Sandbox
from bot.store import Store
from handlers.grammar import GrammarError, Run, parse
from tests.support.sandbox_helpers import NQL, Caller, check_nql_answer
from tests.test_store import Backend, _postgresql

UID = "9ce3f860-5f13-4475-ab6f-b2e1a2615d35"
SID = "S-1-5-21-1004336348-1177238915-682003330-1101"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

# -- the word ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("run clear_disk_space query:#low_disk", "#low_disk"),
        ("run clear_disk_space query:low_disk", "#low_disk"),
        ("run clear_disk_space QUERY:#low_disk visible", "#low_disk"),
        ("run clear_disk_space query:<#C0123|low_disk>", "#low_disk"),  # Slack made it a link
    ],
)
def test_query_word(text: str, query: str) -> None:
    command = parse(text)
    assert isinstance(command, Run)
    assert command.query == query
    assert command.has_targets


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("run x query:#aa query:#bb", "one `query:`"),
        ("run x query:#low device:PC-1", "leave out `device:` and `user:`"),
        ("run x query:#Low-Disk", "names no saved query"),
        ("run x query:", "names no saved query"),
        ("run x query:<@U0ALICE>", "is not a query"),
    ],
)
def test_query_word_mistakes(text: str, problem: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(text)
    assert problem in caught.value.problem


# -- rows into targets ------------------------------------------------------------------------


def test_rows_become_devices_and_users_with_the_most_precise_identifier() -> None:
    rows = [
        {"device.name": "PC-1", "device.collector.uid": UID.upper()},
        {"device.name": "PC-2", "device.collector.uid": ""},
        {"Device Name": "PC-2"},  # the same device again
        {"user.upn": "alice@example.com", "user.sid": SID},
        {"user.upn": "bob@example.com"},
        {"user.name": "Carol", "os": "Windows"},  # nothing the bot can read: left out
    ]
    fleet = read_targets("#q", rows)
    assert [(t.label, t.device, t.user) for t in fleet.targets] == [
        ("PC-1", DeviceData(collector_uid=UID), None),
        ("PC-2", DeviceData(name="PC-2"), None),
        ("alice@example.com", None, UserData(sid=SID)),
        ("bob@example.com", None, UserData(upn="bob@example.com")),
    ]
    assert (fleet.rows, fleet.skipped, fleet.devices, fleet.users) == (6, 1, 2, 2)


def test_an_answer_of_1000_rows_may_be_cut_short() -> None:
    rows = [{"device.name": f"PC-{n}"} for n in range(1000)]
    with pytest.raises(QueryUnusable, match=r"returned 1,000 rows.*cut short"):
        read_targets("#q", rows)
    assert len(read_targets("#q", rows[:999]).targets) == 999


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([], "returned no rows"),
        ([{"device.count": 3}], "no device or user the bot can read (columns: `device.count`)"),
        ([{"device.collector.uid": "not-a-uuid"}], "no device or user"),
    ],
)
def test_rows_without_targets_are_refused(rows: list[dict[str, object]], problem: str) -> None:
    with pytest.raises(QueryUnusable) as caught:
        read_targets("#q", rows)
    assert problem in caught.value.message


def test_hostile_column_names_stay_inside_their_code_span() -> None:
    with pytest.raises(QueryUnusable) as caught:
        read_targets("#q", [{"<!here> `x`": "1"}])
    assert "<!here>" not in caught.value.message
    assert "`&lt;!here&gt; \u02cbx\u02cb`" in caught.value.message


# -- the policy -------------------------------------------------------------------------------

POLICY = """
roles:
  fleet: {members: ["alice@example.com"], workflows: ["clear_*"], targets: any, query_targets: true}
  support: {members: ["bob@example.com"], workflows: ["*"], targets: any}
"""


def test_query_targets_is_granted_per_role_and_workflow() -> None:
    policy = Policy.from_yaml(POLICY)
    alice = Principal("U0ALICE", "alice@example.com")
    bob = Principal("U0BOB", "bob@example.com")
    assert policy.may_target_query(alice, None, "clear_disk_space", "#q").allowed
    assert not policy.may_target_query(alice, None, "reimage_device", "#q").allowed
    refused = policy.may_target_query(bob, None, "clear_disk_space", "#q")
    assert not refused.allowed
    assert "query_targets: true" in refused.reason
    assert not Policy.default().may_target_query(alice, None, "clear_disk_space", "#q").allowed


def test_query_targets_must_be_a_boolean() -> None:
    with pytest.raises(PolicyError, match="query_targets"):
        Policy.from_yaml("roles: {r: {members: ['*'], query_targets: 'yes'}}")


# -- the store: one start ---------------------------------------------------------------------


async def _fleet_run(store: Store, user: str = "U0BOB") -> str:
    record = await store.create_fleet_run(
        user_id=user,
        workflow_id="clear_disk_space",
        query_id="#q",
        row_count=2,
        skipped=0,
        targets=[{"kind": "device", "label": "PC-1", "name": "PC-1"}],
        params={},
        visible=False,
        expires_at=T0 + timedelta(minutes=15),
        now=T0,
    )
    return record.id


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'bot.db'}")
        return
    async with _postgresql() as postgresql:
        yield postgresql


async def test_a_fleet_run_starts_once_across_two_stores(backend: Backend) -> None:
    """Two stores on one database (two replicas) race 20 Run clicks: one wins."""
    first, second = await backend.open(), await backend.open()
    try:
        run_id = await _fleet_run(first)
        at = T0 + timedelta(minutes=1)
        results = await asyncio.gather(
            *(
                (first, second)[i % 2].decide_fleet_run(
                    run_id, user_id="U0BOB", state="started", now=at
                )
                for i in range(20)
            )
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0].state == "started"
        assert winners[0].targets == ({"kind": "device", "label": "PC-1", "name": "PC-1"},)
        assert await second.decide_fleet_run(run_id, user_id="U0BOB", state="cancelled") is None
        stored = await second.get_fleet_run(run_id)
        assert stored is not None
        assert stored.state == "started"
    finally:
        await first.close()
        await second.close()


async def test_only_the_requester_and_only_before_expiry(backend: Backend) -> None:
    store = await backend.open()
    try:
        run_id = await _fleet_run(store)
        late = T0 + timedelta(minutes=16)
        assert await store.decide_fleet_run(run_id, user_id="U0ALICE", state="started") is None
        assert (
            await store.decide_fleet_run(run_id, user_id="U0BOB", state="started", now=late) is None
        )
        assert (await store.get_fleet_run(run_id)).state == "pending"  # type: ignore[union-attr]
        assert await store.prune_fleet_runs(T0 + timedelta(seconds=1)) == 1
        assert await store.get_fleet_run(run_id) is None
    finally:
        await store.close()


# -- the sandbox ------------------------------------------------------------------------------


async def test_saved_queries_answer_their_rows_cut_at_1000() -> None:
    async with Sandbox(execution_delay=0.05) as sandbox:
        async with httpx.AsyncClient(base_url=sandbox.url, timeout=30) as client:
            made = await client.post("/_sandbox/queries", json={"queryId": "#big", "devices": 1200})
            assert made.status_code == 201
            assert made.json() == {"queryId": "#big", "rows": 1200}
            bad = await client.post("/_sandbox/queries", json={"queryId": "#B!", "devices": 1})
            assert bad.status_code == 400
            caller = Caller(client)
            await caller.get_token()
            for query_id, rows in (("#big", 1000), ("#low_disk_devices", 3), ("#vip_users", 2)):
                answer = await caller.call(
                    "POST", NQL, body={"queryId": query_id, "parameters": {}}
                )
                assert answer.status_code == 200
                body = answer.json()
                check_nql_answer(body)
                assert len(body["data"]) == rows
            listed = await client.get("/_sandbox/queries")
            assert listed.json()["#big"] == 1200
        [first] = [e for e in sandbox.requests("nql") if e.body["queryId"] == "#big"]
        assert first.path == NQL
        device = sandbox.catalogue.find_device(name="FLEET-01200")
        assert device is not None
        assert sandbox.catalogue.find_device(collector_uid=device.collector_uid) is device


async def test_the_sweep_forgets_previews_a_day_old(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        run_id = await _fleet_run(store)
        assert await fleet.prune(store, now=T0 + timedelta(hours=23)) == 0
        assert await store.get_fleet_run(run_id) is not None
        assert await fleet.prune(store, now=T0 + fleet.KEPT + timedelta(seconds=1)) == 1
        assert await store.get_fleet_run(run_id) is None
    finally:
        await store.close()
