"""Two ``nexthink-bot serve`` processes on one PostgreSQL database, as behind a load balancer."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.console.driver import SlackDriver
from bot.console.localslack import LocalSlack, Message
from bot.console.world import WEBHOOK_TOKEN
from bot.sandbox import Sandbox
from handlers.wait_views import decision_action_id
from tests.test_e2e_replicas import database_url  # noqa: F401 - the fixture
from tests.test_shutdown import SIGNING_SECRET, BotProcess, _add_people, until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@contextlib.asynccontextmanager
async def replica(
    tmp_path: Path, database: str, sandbox: Sandbox, slack: LocalSlack
) -> AsyncIterator[tuple[str, SlackDriver]]:
    """``nexthink-bot serve`` in its own process; yields its URL and a driver signing for it."""
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
        "PORT": "0",
        "LOG_FORMAT": "json",
    }
    bot = BotProcess(env)
    try:
        await bot.start()
        serving = await bot.event("serving", within=30)
        url = f"http://127.0.0.1:{serving['port']}"
        async with SlackDriver(f"{url}/slack/events", SIGNING_SECRET, slack, timeout=120) as driver:
            yield url, driver
    finally:
        await bot.stop()


def _button_value(message: Message, action_id: str) -> str:
    for block in message.blocks or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no button {action_id} in {message.blocks}")


async def test_two_serve_processes_share_commands_and_decide_a_wait_once(
    tmp_path: Path,
    database_url: str,  # noqa: F811 - the imported fixture
) -> None:
    """Commands work through either process; a wait posted through one and clicked by six people
    through both at once is resumed exactly once."""
    async with (
        Sandbox(execution_delay=0.05, webhook_token=WEBHOOK_TOKEN) as sandbox,
        LocalSlack() as slack,
    ):
        _add_people(slack)
        async with (
            replica(tmp_path, database_url, sandbox, slack) as (url_one, one),
            replica(tmp_path, database_url, sandbox, slack) as (_url_two, two),
        ):
            assert (
                await one.command("U0ALICE", "run restart_teams", channel_id="C0GENERAL")
            ).status == 200
            assert (
                await two.command("U0BOB", "run clear_disk_space", channel_id="C0GENERAL")
            ).status == 200
            await until(lambda: len(sandbox.requests("execute_v2")) == 2, 60, "two executes")

            # the paused execution posts its question through process one
            sandbox.webhook_url = f"{url_one}/nexthink/waits"
            await one.command(
                "U0ALICE",
                "run request_software software=Visio channel=C0SUPPORT",
                channel_id="C0GENERAL",
            )

            def question() -> Message | None:
                return next(
                    (m for m in slack.messages.get("C0SUPPORT", []) if "Visio" in m.text), None
                )

            await until(lambda: question() is not None, 60, "the question in #it-support")
            message = question()
            assert message is not None
            wait_value = _button_value(message, decision_action_id(0))
            clickers = ["U0BOB", "U0CAROL", "U0DAVE", "U0ERIN", "U0BOB", "U0CAROL"]
            answers = await asyncio.gather(
                *(
                    (one if i % 2 else two).click(user, message, decision_action_id(0), wait_value)
                    for i, user in enumerate(clickers)
                )
            )
            assert all(a.status == 200 for a in answers)
            await until(
                lambda: "decided by" in str((question() or message).blocks),
                60,
                "the decision shown",
            )
            await asyncio.sleep(0.5)  # any second trigger would have been sent by now
            assert len(sandbox.requests("trigger")) == 1
            async with httpx.AsyncClient(timeout=30) as http:
                ready = await http.get(f"{url_one}/readyz")
            assert ready.status_code == 200


async def test_copies_of_one_webhook_at_two_processes_leave_one_question(
    tmp_path: Path,
    database_url: str,  # noqa: F811 - the imported fixture
) -> None:
    """The same question reaching both processes while Slack is slow is posted by both, answered
    alike by both, and only one message of it stays in Slack."""
    async with (
        Sandbox(execution_delay=0.05, webhook_token=WEBHOOK_TOKEN) as sandbox,
        LocalSlack() as slack,
    ):
        _add_people(slack)
        async with (
            replica(tmp_path, database_url, sandbox, slack) as (url_one, one),
            replica(tmp_path, database_url, sandbox, slack) as (url_two, _two),
        ):
            # a paused execution whose question the test delivers itself, to both processes
            await one.command(
                "U0ALICE",
                "run request_software software=Visio channel=C0SUPPORT",
                channel_id="C0GENERAL",
            )
            await until(
                lambda: any(e.question for e in sandbox.executions.values()), 15, "a paused run"
            )
            (execution,) = [e for e in sandbox.executions.values() if e.question is not None]
            slack.slow("chat.postMessage", 0.5, times=2)  # both posts are in flight together
            async with httpx.AsyncClient(timeout=15) as http:
                answers = await asyncio.gather(
                    *(
                        http.post(
                            f"{url}/nexthink/waits",
                            json=execution.question,
                            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                        )
                        for url in (url_one, url_two)
                    )
                )
            assert [a.status_code for a in answers] == [201, 201]
            assert answers[0].json() == answers[1].json()
            assert len(slack.calls_to("chat.postMessage")) == 2  # both processes did post
            kept = (answers[0].json()["channel"], answers[0].json()["ts"])
            await until(
                lambda: (
                    [
                        (m.channel, m.ts)
                        for m in slack.messages.get("C0SUPPORT", [])
                        if "Visio" in m.text
                    ]
                    == [kept]
                ),
                60,
                "one question left in Slack",
            )
