"""What an operator relies on: ``/metrics`` after real traffic, ``/readyz`` as its dependencies
come and go, ``/healthz`` throughout. Each test runs a whole `World` (sandbox, local Slack, the
bot's HTTP server) over loopback.

Prometheus metrics live in the process-wide registry, so tests compare scrapes taken before and
after what they do rather than absolute values (pending gauges are set from the store at each
scrape, so those are absolute).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bot.console.world import WEBHOOK_TOKEN, World
from bot.server import SLACK_RECHECK_SECONDS
from tests.support.e2e import PatientWorld
from tests.support.relay import Relay

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
APPROVAL_POLICY = """\
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: self
workflows:
  reimage_device:
    approval: {channel: C0APPROVALS, approvers: ["@it-leads"], count: 1}
"""


@contextlib.asynccontextmanager
async def started(tmp_path: Path, **kwargs: Any) -> AsyncIterator[World]:
    kwargs.setdefault("database_url", f"sqlite:///{tmp_path}/bot.db")
    kwargs.setdefault("execution_delay", 0.05)
    async with PatientWorld(**kwargs) as world:
        yield world


class Scrape:
    """One ``GET /metrics``, parsed: ``value(name, label=...)`` sums the matching samples."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )


async def scrape(world: World) -> Scrape:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{world.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


async def get(world: World, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as http:
        return await http.get(f"{world.url}{path}")


async def readiness_becomes(world: World, status: int, within: float) -> dict[str, Any]:
    """Poll ``/readyz`` until it answers ``status``; its JSON body."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        response = await get(world, "/readyz")
        if response.status_code == status:
            body: dict[str, Any] = response.json()
            return body
        if loop.time() > deadline:
            raise AssertionError(
                f"/readyz still answers {response.status_code} {response.text} after {within:g} s; "
                f"expected {status}"
            )
        await asyncio.sleep(0.2)


async def assert_alive(world: World) -> None:
    response = await get(world, "/healthz")
    assert response.status_code == 200, "/healthz answers 200 while the process lives"


def assert_not_ready_because_of(body: dict[str, Any], culprit: str) -> None:
    assert body["ready"] is False
    assert body["checks"][culprit] != "ok"
    assert body["reason"].startswith(f"{culprit}: ")
    for other in {"store", "slack", "nexthink"} - {culprit}:
        assert body["checks"][other] == "ok", body


# -- metrics ------------------------------------------------------------------------------


async def test_a_run_is_counted_in_the_metrics(tmp_path: Path) -> None:
    """After one `/nexthink run`, /metrics shows the command, the 200 execute_v2 call and its latency, a token refresh and the ack latency."""
    async with started(tmp_path) as world:
        assert world.driver is not None
        before = await scrape(world)
        response = await world.driver.command("U0ALICE", "run restart_teams")
        assert response.status == 200
        await world.settle()
        after = await scrape(world)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("nexthink_bot_commands_total", outcome="ok") == 1
    assert delta("nexthink_bot_commands_total", command="run", outcome="ok") == 1
    assert delta("nexthink_bot_commands_total", outcome="crashed") == 0
    assert delta("nexthink_bot_nexthink_calls_total", endpoint="execute_v2", status="200") == 1
    assert delta("nexthink_bot_nexthink_call_seconds_count", endpoint="execute_v2") == 1
    assert delta("nexthink_bot_nexthink_call_seconds_sum", endpoint="execute_v2") > 0
    assert delta("nexthink_bot_nexthink_calls_total", endpoint="token", status="200") == 1
    assert delta("nexthink_bot_token_refreshes_total", result="success") == 1
    assert delta("nexthink_bot_ack_seconds_count", kind="command") == 1
    assert delta("nexthink_bot_ack_seconds_bucket", kind="command", le="+Inf") == 1


async def test_failed_nexthink_calls_and_token_failures_are_counted(tmp_path: Path) -> None:
    """A 503 from Nexthink is counted with its status, and a token that cannot be had as a failed refresh."""
    async with started(tmp_path) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        before = await scrape(world)
        world.sandbox.faults.add("token:500:times=always")
        response = await get(world, "/readyz")
        assert response.status_code == 503
        world.sandbox.faults.clear()
        world.sandbox.faults.add("execute_v2:503:times=3:retry_after=0.05")
        await world.driver.command("U0ALICE", "run restart_teams")
        await world.settle()
        after = await scrape(world)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("nexthink_bot_token_refreshes_total", result="failure") >= 1
    assert delta("nexthink_bot_nexthink_calls_total", endpoint="token", status="500") >= 1
    # the first try and two retries, each answered 503, then the user is told
    assert delta("nexthink_bot_nexthink_calls_total", endpoint="execute_v2", status="503") == 3
    assert delta("nexthink_bot_commands_total", outcome="nexthink_error") == 1


async def test_pending_gauges_follow_the_store(tmp_path: Path) -> None:
    """A posted wait and a requested approval show in nexthink_bot_pending; both are 0 before."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(APPROVAL_POLICY)
    async with started(tmp_path, policy_file=policy) as world:
        assert world.driver is not None
        empty = await scrape(world)
        assert empty.value("nexthink_bot_pending", kind="waits") == 0
        assert empty.value("nexthink_bot_pending", kind="approvals") == 0
        async with httpx.AsyncClient(timeout=15) as http:
            posted = await http.post(
                f"{world.url}/nexthink/waits",
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                json={
                    "workflowUuid": str(uuid.uuid4()),
                    "executionUuid": str(uuid.uuid4()),
                    "channel": "C0SUPPORT",
                    "text": "Approve the reinstall of Office on LAPTOP-42?",
                },
            )
        assert posted.status_code == 201, posted.text
        await world.driver.command("U0ALICE", "run reimage_device")
        await world.settle()
        after = await scrape(world)
    assert after.value("nexthink_bot_pending", kind="waits") == 1
    assert after.value("nexthink_bot_pending", kind="approvals") == 1


# -- readiness ----------------------------------------------------------------------------


async def test_ready_when_store_slack_and_nexthink_are_usable(tmp_path: Path) -> None:
    """/readyz answers 200 with every check ok, and /healthz 200."""
    async with started(tmp_path) as world:
        response = await get(world, "/readyz")
        assert response.status_code == 200
        assert response.json() == {
            "ready": True,
            "checks": {"store": "ok", "slack": "ok", "nexthink": "ok"},
        }
        await assert_alive(world)


async def test_not_ready_once_the_store_is_closed(tmp_path: Path) -> None:
    """With the store closed, /readyz answers 503 naming the store; /healthz stays 200."""
    async with started(tmp_path) as world:
        assert world.bot is not None
        await readiness_becomes(world, 200, within=60)
        # the expiry sweeps and follow-up loops first, so that no query of theirs is in flight
        # on a connection the close would leave open (the close is what this test is about)
        await world.bot.stop_background()
        await world.bot.store.close()
        body = await readiness_becomes(world, 503, within=60)
        assert_not_ready_because_of(body, "store")
        await assert_alive(world)


async def test_not_ready_while_slack_is_unreachable_and_ready_again_after(tmp_path: Path) -> None:
    """With the local Slack stopped, /readyz turns 503 naming Slack (within the re-check interval), and 200 once Slack is back."""
    async with started(tmp_path) as world:
        await readiness_becomes(world, 200, within=60)
        port = int(world.slack.url.rsplit(":", 1)[1])
        await world.slack.stop()
        body = await readiness_becomes(world, 503, within=SLACK_RECHECK_SECONDS + 60)
        assert_not_ready_because_of(body, "slack")
        await assert_alive(world)
        await world.slack.start("127.0.0.1", port)
        await readiness_becomes(world, 200, within=60)


async def test_not_ready_while_no_nexthink_token_can_be_had(tmp_path: Path) -> None:
    """A token endpoint that fails makes /readyz 503 naming Nexthink; once it answers, 200."""
    async with started(tmp_path) as world:
        assert world.sandbox is not None
        world.sandbox.faults.add("token:503:times=always:retry_after=0.05")
        body = await readiness_becomes(world, 503, within=60)
        assert_not_ready_because_of(body, "nexthink")
        await assert_alive(world)
        world.sandbox.faults.clear()
        await readiness_becomes(world, 200, within=60)
        assert len(world.sandbox.requests("token")) >= 2


async def test_not_ready_while_nexthink_is_down_and_ready_when_it_returns(tmp_path: Path) -> None:
    """With the sandbox stopped before any token was obtained, /readyz is 503 naming Nexthink; restarted on its port, 200."""
    async with started(tmp_path) as world:
        assert world.sandbox is not None
        port = int(world.sandbox.url.rsplit(":", 1)[1])
        await world.sandbox.stop()
        body = await readiness_becomes(world, 503, within=60)
        assert_not_ready_because_of(body, "nexthink")
        await assert_alive(world)
        await world.sandbox.start("127.0.0.1", port)
        await readiness_becomes(world, 200, within=60)


# -- readiness with PostgreSQL behind a proxy that can be cut -----------------------------


def _plain(url: Any) -> str:
    return str(
        make_url(str(url)).set(drivername="postgresql").render_as_string(hide_password=False)
    )


@pytest.fixture
async def isolated_postgresql() -> AsyncIterator[tuple[str, str, int]]:
    """(role, password, port) of a login role whose search_path is a fresh schema, dropped afterwards."""
    try:
        admin = await asyncpg.connect(_plain(PG_URL), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        where = make_url(PG_URL).render_as_string(hide_password=True)
        pytest.fail(f"PostgreSQL at {where} is unreachable ({type(exc).__name__}: {exc})")
    name = f"operations_{secrets.token_hex(6)}"
    password = secrets.token_hex(12)
    await admin.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
    await admin.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
    await admin.execute(f'ALTER ROLE "{name}" SET search_path = "{name}"')
    try:
        yield name, password, make_url(PG_URL).port or 5432
    finally:
        await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        await admin.execute(f'DROP ROLE "{name}"')
        await admin.close()


@pytest.mark.postgres
async def test_not_ready_while_postgresql_is_unreachable_and_ready_again_after(
    tmp_path: Path, isolated_postgresql: tuple[str, str, int]
) -> None:
    """With the connection to PostgreSQL cut, /readyz is 503 naming the store; restored, 200."""
    role, password, pg_port = isolated_postgresql
    proxy = Relay(make_url(PG_URL).host or "127.0.0.1", pg_port)
    port = await proxy.start()
    database = make_url(PG_URL).database
    url = f"postgresql://{role}:{password}@127.0.0.1:{port}/{database}"
    try:
        async with started(tmp_path, database_url=url) as world:
            await readiness_becomes(world, 200, within=60)
            await proxy.cut()
            body = await readiness_becomes(world, 503, within=60)
            assert_not_ready_because_of(body, "store")
            assert password not in str(body), "the database password never shows"
            await assert_alive(world)
            await proxy.start()  # the same port again
            await readiness_becomes(world, 200, within=60)
    finally:
        await proxy.stop()
