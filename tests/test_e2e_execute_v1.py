"""What a person sees when the Nexthink instance has no V2 execute (the sandbox without it): a run
by SID goes through V1 and is sent; a run that names a person by UPN gets a clear reply, and
nothing runs. Every V1 body the sandbox receives is checked against the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox import Sandbox
from tests.support.e2e import last_answer, text_of, world_at
from tests.support.openapi import validate_request

ALICE_SID = "S-1-5-21-1004336348-1177238915-682003330-1101"
POLICY = """
    roles:
      everyone:
        members: ["*"]
        workflows: ["*"]
        targets: any
"""


async def test_a_bot_on_an_instance_without_v2(tmp_path: Path) -> None:
    """By SID: sent through V1 (after one V2 404), and the next run goes to V1 at once. By UPN
    (the person's own, the default target): refused with why, and nothing is sent."""
    async with (
        Sandbox(execution_delay=0.05, without_v2=True) as sandbox,
        world_at(tmp_path, POLICY, sandbox=sandbox) as world,
    ):
        assert world.driver is not None
        for _ in range(2):
            ack = await world.driver.command("U0ALICE", f"run unlock_account user:{ALICE_SID}")
            assert ack.status == 200
            await world.settle()
            assert "sent to Nexthink" in text_of(last_answer(world, "U0ALICE"))
        await world.driver.command("U0BOB", "run restart_teams")
        await world.settle()
        shown = text_of(last_answer(world, "U0BOB"))
        assert "no V2 execute" in shown
        assert "V1 cannot target people by UPN" in shown
        assert "bob@example.com" in shown
        assert [e.status for e in sandbox.requests("execute_v2")] == [404]
        bodies = [e.body for e in sandbox.requests("execute_v1")]
        for entry in sandbox.requests("execute_v1"):
            validate_request("POST", entry.path, headers=dict(entry.headers), body=entry.body)
        assert [b["users"] for b in bodies] == [[ALICE_SID], [ALICE_SID]]
        assert {e.workflow.id for e in sandbox.executions.values()} == {"unlock_account"}
