"""The `/nexthink` command end to end: signed requests in, Web API calls and V2 executes out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.console.world import World
from tests.support.openapi import validate_request


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with World(database_url=f"sqlite:///{tmp_path}/bot.db", execution_delay=0.05) as w:
        yield w


async def test_self_service_run_sends_a_v2_execute_for_the_requester(world: World) -> None:
    """`/nexthink run restart_teams` with no target runs on the requester's own UPN."""
    assert world.driver is not None and world.sandbox is not None
    response = await world.driver.command("U0ALICE", "run restart_teams mode=hard", channel_id="C0GENERAL")
    assert response.status == 200
    await world.settle()
    executes = world.sandbox.requests("execute_v2")
    assert len(executes) == 1
    body = executes[0].body
    assert body == {
        "workflowId": "restart_teams",
        "users": [{"upn": "alice@example.com"}],
        "devices": [],
        "params": {"mode": "hard"},
    }
    validate_request("POST", "/api/v2/workflows/execute", headers=dict(executes[0].headers), body=body)
    replies = [m for ms in world.slack.messages.values() for m in ms]
    texts = " ".join(m.text for m in replies)
    assert "sent to Nexthink" in texts
