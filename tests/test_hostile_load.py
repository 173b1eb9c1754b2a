"""Load with faults: 500 slash commands and 200 clicks, mixed, 50 at a time, while Nexthink
throttles, expires a token and answers slowly and Slack rate-limits message updates.

Every request is acknowledged (200); the executes Nexthink processed
are exactly the commands the policy and the rate limit allowed (each once, on its requester);
every other command got its refusal; each question is resumed exactly once however many
people click it at the same time. The load generator, LocalSlack and the sandbox share the bot's
event loop here, so this test checks what happens, not how fast: ack latency under load is
measured from another process by ``bench/ack.py`` (see the README's Performance section).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from pathlib import Path

from bot.console.driver import DriverResponse
from bot.console.localslack import Message
from bot.sandbox import Fault
from handlers.wait_views import decision_action_id
from tests.support.e2e import executes, world_at
from tests.test_e2e_waits import BOT_SOURCE, ask, paused, question

POLICY = """
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
    targets: self
limits:
  runs_per_user_per_minute: 80
"""
LIMIT = 80
PEOPLE = ("U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN")  # Erin's profile has no email
UPN = {p: f"{p[2:].lower()}@example.com" for p in PEOPLE[:4]}
COMMANDS = 500
QUESTIONS = 40
CLICKERS = ("U0BOB", "U0CAROL", "U0DAVE", "U0BOB", "U0CAROL")  # 5 clicks on each question
CONCURRENCY = 50


def command(i: int) -> tuple[str, str]:
    """The i-th command and who sends it: 60% runs on oneself, then a device target the policy
    refuses, an unknown workflow, help, and a command the grammar refuses. (Not `list`: a listing
    counts toward the per-user run limit since the seams work, and which of a person's runs and
    listings hit the limit first would depend on the shuffle.)"""
    user = PEOPLE[i % len(PEOPLE)]
    kind = i % 10
    if kind <= 5:
        return user, f"run restart_teams n={i}"
    return user, {
        6: "run restart_teams device:LAPTOP-42",
        7: "run no_such_workflow",
        8: "help",
        9: 'run restart_teams note="unterminated',
    }[kind]


def expected_runs() -> Counter[str]:
    """How many runs each person may start: their runs on themselves, up to the limit."""
    asked = Counter(user for i in range(COMMANDS) for user, text in [command(i)] if "n=" in text)
    return Counter({user: min(count, LIMIT) for user, count in asked.items() if user in UPN})


async def test_five_hundred_commands_and_two_hundred_clicks_under_faults(tmp_path: Path) -> None:
    """500 commands and 200 clicks at concurrency 50, with throttling, a token expiry, slow
    answers and Slack 429s: every ack is a 200, executes equal the allowed runs (each
    once, on its requester), and each of the 40 questions is resumed exactly once."""
    async with world_at(tmp_path, POLICY) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        assert world.bot is not None
        sandbox, driver = world.sandbox, world.driver
        questions: list[Message] = []
        for _ in range(QUESTIONS):
            execution = await paused(world)
            shown = await ask(world, question(execution))
            questions.append(dataclasses.replace(shown))  # as every clicker's screen shows it
        triggers_before = len(sandbox.requests("trigger"))

        sandbox.faults.add(Fault(endpoint="execute_v2", kind="429", times=2, retry_after=0.1))
        sandbox.faults.add(Fault(endpoint="execute_v2", kind="401", times=1))
        sandbox.faults.add(Fault(endpoint="execute_v2", kind="latency", times=30, delay=0.3))
        sandbox.faults.add(Fault(endpoint="trigger", kind="503", times=2, retry_after=0.1))
        sandbox.faults.add(Fault(endpoint="trigger", kind="latency", times=20, delay=0.2))
        world.slack.fail("chat.update", "ratelimited", times=3, retry_after=1)

        work: list[tuple[str, object]] = [("command", command(i)) for i in range(COMMANDS)]
        work += [("click", (clicker, message)) for message in questions for clicker in CLICKERS]
        random.Random(8).shuffle(work)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def send(kind: str, item: object) -> tuple[str, DriverResponse]:
            async with gate:
                if kind == "command":
                    user, text = item  # type: ignore[misc]
                    return kind, await driver.command(user, text)
                clicker, message = item  # type: ignore[misc]
                return kind, await driver.click(clicker, message, decision_action_id(0))

        results = await asyncio.gather(*(send(kind, item) for kind, item in work))
        await world.settle(within=600)

        assert len(results) == COMMANDS + QUESTIONS * len(CLICKERS)
        assert list(sandbox.faults) == [], "every injected Nexthink fault was hit"
        assert [c.status for c in world.slack.calls_to("chat.update")].count(429) == 3
        statuses = Counter(r.status for _, r in results)
        assert set(statuses) == {200}, statuses

        # executes: exactly the allowed runs, each once, each on its requester
        from_bot = [
            e for e in sandbox.requests("execute_v2") if e.headers.get("Source") == BOT_SOURCE
        ]
        processed = [e for e in from_bot if e.status == 200]
        runs = [e.body for e in processed]
        by_user = Counter(str(b["users"][0]["upn"]) for b in runs)
        expected = expected_runs()
        assert by_user == Counter({UPN[u]: n for u, n in expected.items()})
        numbers = [b["params"]["n"] for b in runs]
        assert len(numbers) == len(set(numbers)), "a command ran twice"
        for body in runs:
            user, _ = command(int(body["params"]["n"]))
            assert body["users"] == [{"upn": UPN[user]}]
            assert body["devices"] == []
        assert len(from_bot) == len(runs) + 3  # and the two 429s and the 401
        assert len(executes(world)) == len(runs) + 3 + QUESTIONS  # the test's own paused ones

        # every command was answered: refusals in the ack or by message, runs by message
        answered = Counter(
            m.user for ms in world.slack.messages.values() for m in ms if m.via == "response_url"
        )
        in_ack = Counter(
            user
            for i in range(COMMANDS)
            for user, text in [command(i)]
            if "unterminated" in text or text == "help"
        )
        for person in PEOPLE:
            sent_by = sum(1 for i in range(COMMANDS) if command(i)[0] == person)
            assert answered[person] == sent_by - in_ack[person], person

        # clicks: each question resumed exactly once
        triggers = [e for e in sandbox.requests("trigger")[triggers_before:] if e.status == 200]
        per_question = Counter(e.path for e in triggers)
        assert len(per_question) == QUESTIONS
        assert set(per_question.values()) == {1}
        for message in questions:
            final = world.slack.find_message(message.channel, message.ts)
            assert final is not None
            assert "resumed the execution" in "\n".join(
                str(b.get("elements") or b.get("text")) for b in final.blocks or []
            )
        assert world.bot.tasks.failures == 0
