"""Helpers for the end-to-end tests of the Slack surface: a `World` per test, what people saw,
and the V2 executes the sandbox received (each checked against the OpenAPI document)."""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from bot.console.driver import DriverResponse, SlackDriver
from bot.console.localslack import Message
from bot.console.world import SIGNING_SECRET, World
from tests.support.openapi import validate_request

EXECUTE_V2 = "/api/v2/workflows/execute"

#: how long the tests' Slack waits for an HTTP answer: generous, so that busy cores slow a test
#: down instead of failing it (Slack's 3 s acknowledgement deadline is measured in bench/)
PATIENCE = 120.0


@contextlib.asynccontextmanager
async def world_at(
    tmp_path: Path, policy: str | None = None, **kwargs: Any
) -> AsyncIterator[World]:
    """A started `World` on a fresh database; ``policy`` is YAML written to a policy file."""
    policy_file = None
    if policy is not None:
        policy_file = tmp_path / "policy.yaml"
        policy_file.write_text(textwrap.dedent(policy))
    kwargs.setdefault("execution_delay", 0.05)
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db", policy_file=policy_file, **kwargs
    ) as world:
        yield world
        assert world.bot is not None
        assert world.bot.tasks.failures == 0, "a background task of the bot raised"


class PatientWorld(World):
    """A `World` for tests on busy cores: ``patience`` defaults to ``PATIENCE`` (its Slack waits
    that long for each answer without calling it late; ``settle()`` waits that long for the bot's
    work). Both bound a hung test only."""

    def __init__(self, *args: Any, patience: float | None = PATIENCE, **kwargs: Any) -> None:
        super().__init__(*args, patience=patience, **kwargs)


def patient_driver(world: World) -> SlackDriver:
    """The world's Slack, signing as it does, but waiting ``PATIENCE`` s for each answer and not
    calling an answer late (a test checks what the bot does; bench/ack.py checks how fast)."""
    return SlackDriver(
        f"{world.url}/slack/events",
        SIGNING_SECRET,
        world.slack,
        timeout=PATIENCE,
        ack_deadline=math.inf,
    )


def ack_problems(response: DriverResponse) -> tuple[str, ...]:
    """What Slack would refuse in an acknowledgement, leaving out lateness (measured in bench/)."""
    return tuple(p for p in response.problems if not p.startswith("operation_timeout:"))


def executes(world: World) -> list[dict[str, Any]]:
    """The bodies of the V2 executes the sandbox received, each valid per the OpenAPI document."""
    assert world.sandbox is not None
    bodies = []
    for entry in world.sandbox.requests("execute_v2"):
        validate_request("POST", EXECUTE_V2, headers=dict(entry.headers), body=entry.body)
        bodies.append(entry.body)
    return bodies


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def text_of(message: Message) -> str:
    """Everything a person reads in a message: its text and the text of its blocks."""
    return "\n".join([message.text, *_texts(message.blocks or [])])


def seen_by(world: World, user_id: str, *, via: str | None = None) -> list[Message]:
    """The bot's messages ``user_id`` can see (their ephemerals, their DMs, channel messages),
    oldest first."""
    found = [
        m
        for channel, messages in world.slack.messages.items()
        for m in messages
        if m.author == world.slack.bot_user_id
        and (m.user == user_id if m.ephemeral else _can_read(world, channel, user_id))
    ]
    found.sort(key=lambda m: float(m.ts))
    return [m for m in found if via is None or m.via == via]


def _can_read(world: World, channel_id: str, user_id: str) -> bool:
    channel = world.slack.channels.get(channel_id)
    return channel is None or not channel.is_im or channel.user == user_id


def answers(world: World, user_id: str) -> list[Message]:
    """What the bot told ``user_id`` after the acknowledgement."""
    return [m for m in seen_by(world, user_id) if m.via != "ack"]


def last_answer(world: World, user_id: str) -> Message:
    found = answers(world, user_id)
    assert found, f"the bot told {user_id} nothing after the acknowledgement"
    return found[-1]
