"""A burst of slash commands: every one acknowledged and run once, the shared token and profile
cache doing their job (ack latency is measured by ``bench/ack.py``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests.support.e2e import answers, executes, world_at

POLICY = """
roles:
  everyone:
    members: ["*"]
    workflows: ["*"]
limits:
  runs_per_user_per_minute: 1000
"""
PEOPLE = ("U0ALICE", "U0BOB", "U0CAROL", "U0DAVE")
COMMANDS = 200


async def test_two_hundred_commands_at_once_are_each_acknowledged_and_run_once(
    tmp_path: Path,
) -> None:
    """200 signed commands sent at once are each acknowledged (HTTP 200) and all run, each once,
    with one token request and one `users.info` per distinct user. How fast the acks come is
    measured by `bench/ack.py`, not here: this process also plays Slack and Nexthink."""
    async with world_at(tmp_path, POLICY) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        driver = world.driver
        senders = [PEOPLE[i % len(PEOPLE)] for i in range(COMMANDS)]
        responses = await asyncio.gather(
            *(driver.command(user, f"run restart_teams n={i}") for i, user in enumerate(senders))
        )
        assert [r.status for r in responses] == [200] * COMMANDS
        await world.settle(within=600)

        sent = executes(world)
        assert len(sent) == COMMANDS
        assert sorted(int(e["params"]["n"]) for e in sent) == list(range(COMMANDS))
        by_user = Counter(e["users"][0]["upn"] for e in sent)
        assert by_user == {f"{p[2:].lower()}@example.com": 50 for p in PEOPLE}
        assert len(world.sandbox.requests("token")) == 1
        looked_up = Counter(str(c.params.get("user")) for c in world.slack.calls_to("users.info"))
        assert looked_up == dict.fromkeys(PEOPLE, 1)
        for person in PEOPLE:
            replies = answers(world, person)
            assert len(replies) == 50
            assert all("sent to Nexthink" in m.text for m in replies)
