"""``runs_per_user_per_minute`` across two ``nexthink-bot serve`` processes on one PostgreSQL:
the limit holds for the pair (kept in the store), not for each process."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.console.driver import SlackDriver
from bot.console.localslack import LocalSlack
from bot.console.world import WEBHOOK_TOKEN
from bot.sandbox import Sandbox
from tests.support.e2e import text_of
from tests.test_e2e_replicas import database_url  # noqa: F401 - the fixture
from tests.test_shutdown import SIGNING_SECRET, BotProcess, _add_people, until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LIMIT = 3
POLICY = f"""
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
limits:
  runs_per_user_per_minute: {LIMIT}
"""


@contextlib.asynccontextmanager
async def serve(
    tmp_path: Path, database: str, sandbox: Sandbox, slack: LocalSlack, policy: Path
) -> AsyncIterator[SlackDriver]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "NEXTHINK_BASE_URL": sandbox.url,
        "NEXTHINK_CLIENT_ID": sandbox.client_id,
        "NEXTHINK_CLIENT_SECRET": sandbox.client_secret,
        "NEXTHINK_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "DATABASE_URL": database,
        "POLICY_FILE": str(policy),
        "PORT": "0",
        "LOG_FORMAT": "json",
    }
    bot = BotProcess(env)
    try:
        await bot.start()
        serving = await bot.event("serving", within=30)
        url = f"http://127.0.0.1:{serving['port']}"
        async with SlackDriver(f"{url}/slack/events", SIGNING_SECRET, slack) as driver:
            yield driver
    finally:
        await bot.stop()


async def test_the_per_user_limit_holds_for_two_serve_processes(
    tmp_path: Path,
    database_url: str,  # noqa: F811 - the imported fixture
) -> None:
    """Eight runs by one person at once, half through each process: exactly the limit (3) reach
    Nexthink, the five others are refused with the limit's message; another person still runs."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async with (
        Sandbox(execution_delay=0.05, webhook_token=WEBHOOK_TOKEN) as sandbox,
        LocalSlack() as slack,
    ):
        _add_people(slack)
        async with (
            serve(tmp_path, database_url, sandbox, slack, policy) as one,
            serve(tmp_path, database_url, sandbox, slack, policy) as two,
        ):

            def refusals() -> int:
                return sum(
                    1
                    for messages in slack.messages.values()
                    for m in messages
                    if f"{LIMIT} runs in the last minute" in text_of(m)
                )

            acks = await asyncio.gather(
                *(
                    (one if i % 2 else two).command(
                        "U0ALICE", "run restart_teams", channel_id="C0GENERAL"
                    )
                    for i in range(8)
                )
            )
            assert [a.status for a in acks] == [200] * 8
            await until(lambda: refusals() == 5, 30, "five refusals")
            await until(lambda: len(sandbox.requests("execute_v2")) == LIMIT, 30, "three runs")
            await one.command("U0BOB", "run restart_teams", channel_id="C0GENERAL")
            await until(lambda: len(sandbox.requests("execute_v2")) == LIMIT + 1, 30, "bob's run")
            await asyncio.sleep(0.5)  # a run let through wrongly would have been sent by now
            assert refusals() == 5
            alice = [e for e in sandbox.requests("execute_v2") if "alice" in str(e.body["users"])]
            assert len(alice) == LIMIT
