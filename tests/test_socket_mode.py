"""Socket Mode: the same app, fed Slack's Socket Mode envelopes instead of signed HTTP requests,
sends the same V2 executes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.app import Bot
from bot.console.driver import socket_envelope
from bot.console.world import World
from bot.settings import Settings
from handlers import ids
from tests.support.e2e import executes, last_answer, text_of, world_at

POLICY = """
roles:
  engineers:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path, POLICY) as w:
        yield w


@pytest.fixture
async def socket_bot(world: World, tmp_path: Path) -> AsyncIterator[Bot]:
    """A second bot on the world's Slack and sandbox, built for Socket Mode (no signing secret,
    request verification off), fed envelopes directly rather than over a WebSocket."""
    assert world.sandbox is not None
    assert world.bot is not None
    settings = Settings.load(
        "serve",
        _env_file=None,
        slack_bot_token=world.slack.bot_token,
        slack_app_token="xapp-1-A0LOCAL-1-local",
        slack_api_url=world.slack.api_url,
        nexthink_base_url=world.sandbox.url,
        nexthink_client_id=world.sandbox.client_id,
        nexthink_client_secret=world.sandbox.client_secret,
        database_url=f"sqlite:///{tmp_path}/socket.db",
        policy_file=world.bot.settings.policy_file,
    )
    assert settings.socket_mode
    bot = await Bot.create(settings)
    try:
        yield bot
        await settle(bot)
        assert bot.tasks.failures == 0
    finally:
        await bot.close()


async def settle(bot: Bot) -> None:
    """Wait for the work the bot acknowledged (generous: it bounds a hung test)."""
    async with asyncio.timeout(60):
        while pending := bot.tasks.running():
            await asyncio.wait(pending)


async def feed(bot: Bot, kind: str, payload: dict[str, Any]) -> BoltResponse:
    """Hand the app one envelope, as the Socket Mode client does, and return its answer."""
    envelope = socket_envelope(kind, payload)
    response = await run_async_bolt_app(bot.app, SocketModeRequest.from_dict(envelope))
    assert isinstance(response, BoltResponse)
    assert response.status == 200, response.body
    return response


def body_of(response: BoltResponse) -> dict[str, Any]:
    loaded = json.loads(response.body) if response.body else {}
    assert isinstance(loaded, dict)
    return loaded


async def test_a_slash_command_envelope_runs_the_workflow(world: World, socket_bot: Bot) -> None:
    """A `slash_commands` envelope sends the same V2 execute and replies through the response URL."""
    assert world.driver is not None
    payload = world.driver.command_payload(
        "U0BOB", "run restart_teams user:<@U0ALICE|alice> device:LAPTOP-BOB mode=hard"
    )
    await feed(socket_bot, "slash_commands", payload)
    await settle(socket_bot)
    assert executes(world) == [
        {
            "workflowId": "restart_teams",
            "users": [{"upn": "alice@example.com"}],
            "devices": [{"name": "LAPTOP-BOB"}],
            "params": {"mode": "hard"},
        }
    ]
    reply = last_answer(world, "U0BOB")
    assert reply.via == "response_url"
    assert reply.ephemeral
    assert "sent to Nexthink" in reply.text


async def test_help_is_answered_in_the_envelope_acknowledgement(
    world: World, socket_bot: Bot
) -> None:
    """`help` over Socket Mode is answered in the acknowledgement's payload, ephemeral."""
    assert world.driver is not None
    response = await feed(
        socket_bot, "slash_commands", world.driver.command_payload("U0ALICE", "help")
    )
    answer = body_of(response)
    assert answer["response_type"] == "ephemeral"
    assert "run" in answer["text"] or "run" in json.dumps(answer["blocks"])
    await settle(socket_bot)
    assert executes(world) == []


async def test_a_refusal_over_socket_mode_sends_nothing(world: World, socket_bot: Bot) -> None:
    """The policy applies the same way: a self-only role cannot target another user."""
    assert world.driver is not None
    payload = world.driver.command_payload("U0ALICE", "run restart_teams user:<@U0BOB>")
    await feed(socket_bot, "slash_commands", payload)
    await settle(socket_bot)
    assert "on yourself" in text_of(last_answer(world, "U0ALICE"))
    assert executes(world) == []


async def test_the_modal_over_socket_mode_opens_refreshes_and_runs(
    world: World, socket_bot: Bot
) -> None:
    """Modal open, workflow choice and submission as `interactive` envelopes send the execute."""
    driver = world.driver
    assert driver is not None
    await feed(socket_bot, "slash_commands", driver.command_payload("U0ALICE", ""))
    await settle(socket_bot)
    (view,) = [v for v in world.slack.views.values() if v.user_id == "U0ALICE"]
    await feed(
        socket_bot,
        "block_actions",
        driver.click_payload("U0ALICE", view, ids.MODAL_WORKFLOW, "clear_disk_space"),
    )
    await settle(socket_bot)
    view = world.slack.views[view.id]
    response = await feed(
        socket_bot,
        "view_submission",
        driver.view_submission_payload(
            "U0ALICE", view.id, {ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "clear_disk_space"}}
        ),
    )
    assert body_of(response).get("response_action") is None  # the modal closes
    await settle(socket_bot)
    assert executes(world) == [
        {
            "workflowId": "clear_disk_space",
            "users": [{"upn": "alice@example.com"}],
            "devices": [],
            "params": {},
        }
    ]
    assert "sent to Nexthink" in last_answer(world, "U0ALICE").text
