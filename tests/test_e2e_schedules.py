"""Scheduled runs end to end: `/nexthink run … in 5s` over real sockets (LocalSlack, the Nexthink
sandbox, a SQLite file), run once at their time, after a restart too; missed, cancelled and
refused runs never reach Nexthink.

The tests wait for events (an execute in the sandbox's journal, a message to the requester, a
state in the store), never for a fixed time; where a run's own time must pass, they wait until
the clock has passed it.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bot.console.localslack import LocalSlack, Message
from bot.console.world import World
from bot.sandbox import Sandbox
from bot.store import ScheduleRecord
from handlers import ids
from tests.support.e2e import (
    PATIENCE,
    PatientWorld,
    answers,
    executes,
    last_answer,
    seen_by,
    text_of,
)
from tests.support.outcomes import home_of
from tests.test_e2e_home import open_home

T = TypeVar("T")

POLICY = """\
roles:
  support:
    members: ["@it-support"]
    workflows: ["*"]
    targets: any
  auditors:
    members: ["U0CAROL"]
    workflows: ["restart_teams"]
    audit: true
schedule: {allowed: true, max_days: 14}
workflows:
  clear_disk_space:
    schedule: {allowed: false}
limits:
  runs_per_user_per_minute: 100
"""
CODE = re.compile(r"id `([2-9A-Z]{8})`")


def policy_file(tmp_path: Path, text: str = POLICY, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Wait (up to PATIENCE s) until ``check`` returns something, and return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while loop.time() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


async def until_past(moment: datetime) -> None:
    """Wait until the clock has passed ``moment``."""
    left = (moment - datetime.now(UTC)).total_seconds()
    while left >= 0:
        await asyncio.sleep(left + 0.05)
        left = (moment - datetime.now(UTC)).total_seconds()


async def schedule(world: World, user: str, text: str, channel: str = "C0SUPPORT") -> str:
    """Send the command; returns the scheduled run's code from the reply."""
    assert world.driver is not None
    response = await world.driver.command(user, text, channel_id=channel)
    assert response.status == 200
    await world.settle()
    reply = last_answer(world, user)
    found = CODE.search(text_of(reply))
    assert found, f"no scheduled run id in {text_of(reply)!r}"
    return found.group(1)


async def stored(world: World, code: str) -> ScheduleRecord:
    assert world.bot is not None
    record = await world.bot.store.get_schedule(code)
    assert record is not None
    return record


async def in_state(world: World, code: str, *states: str) -> ScheduleRecord:
    async def check() -> ScheduleRecord | None:
        record = await stored(world, code)
        return record if record.state in states else None

    return await eventually(check, f"schedule {code} to be {' or '.join(states)}")


async def told(world: World, user: str, words: str) -> list[Message]:
    """What the bot told ``user`` (ephemerals, direct messages) that contains ``words``."""
    return [m for m in seen_by(world, user) if words in text_of(m)]


async def events(world: World) -> list[str]:
    assert world.bot is not None
    return [e.event async for e in world.bot.store.iter_audit()]


async def test_a_run_asked_in_5s_runs_once_at_its_time(tmp_path: Path) -> None:
    """`run restart_teams in 5s` replies with its id, then one V2 execute no earlier than its
    time, and the requester is told it ran, with Nexthink's request id."""
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy_file(tmp_path),
        execution_delay=0.05,
    ) as world:
        assert world.sandbox is not None
        code = await schedule(world, "U0BOB", "run restart_teams mode=hard in 5s")
        asked = await stored(world, code)
        assert asked.state == "scheduled"
        assert timedelta(seconds=4) < asked.run_at - asked.created_at <= timedelta(seconds=6)
        reply = text_of(last_answer(world, "U0BOB"))
        assert f"<!date^{int(asked.run_at.timestamp())}^" in reply  # each reader's time zone

        done = await in_state(world, code, "ran")
        (execute,) = world.sandbox.requests("execute_v2")
        assert execute.at >= asked.run_at
        assert executes(world) == [
            {
                "workflowId": "restart_teams",
                "users": [{"upn": "bob@example.com"}],
                "devices": [],
                "params": {"mode": "hard"},
            }
        ]
        record = await world.bot.store.get_request(done.request_id)  # type: ignore[union-attr]
        assert record is not None
        assert record.state == "sent"
        request_uuid = execute.response["requestUuid"]
        news = await eventually(lambda: told(world, "U0BOB", request_uuid), "the requester's news")
        assert code in text_of(news[-1])
        await asyncio.sleep(0)  # the loop keeps running: still exactly one execute
        assert len(world.sandbox.requests("execute_v2")) == 1


async def test_a_restart_before_its_time_still_runs_it_once(tmp_path: Path) -> None:
    """A run scheduled by a bot that stops before its time is run once by the next one."""
    url = f"sqlite:///{tmp_path}/bot.db"
    policy = policy_file(tmp_path)
    async with (
        Sandbox(execution_delay=0.05) as sandbox,
        LocalSlack() as slack,
    ):
        common: dict[str, Any] = {"sandbox": sandbox, "slack": slack, "policy_file": policy}
        async with PatientWorld(database_url=url, **common) as first:
            code = await schedule(first, "U0BOB", "run restart_teams in 15s")
            asked = await stored(first, code)
        assert datetime.now(UTC) < asked.run_at, "the first bot stopped after the run's time"
        assert sandbox.requests("execute_v2") == []
        async with PatientWorld(database_url=url, **common) as second:
            await in_state(second, code, "ran")
            assert len(sandbox.requests("execute_v2")) == 1
            assert sandbox.requests("execute_v2")[0].at >= asked.run_at


async def test_a_run_missed_beyond_max_late_minutes_is_reported_not_run(tmp_path: Path) -> None:
    """A run whose time passed more than `max_late_minutes` ago while the bot was down is not
    sent; its requester is told it was missed, and the audit trail says so."""
    url = f"sqlite:///{tmp_path}/bot.db"
    policy = policy_file(
        tmp_path, POLICY.replace("max_days: 14}", "max_days: 14, max_late_minutes: 0.05}")
    )
    async with (
        Sandbox(execution_delay=0.05) as sandbox,
        LocalSlack() as slack,
    ):
        common: dict[str, Any] = {"sandbox": sandbox, "slack": slack, "policy_file": policy}
        async with PatientWorld(database_url=url, **common) as first:
            # far enough ahead that this bot is down before the run is due, however busy the cores
            code = await schedule(first, "U0BOB", "run restart_teams in 20s")
            asked = await stored(first, code)
        await until_past(asked.run_at + timedelta(minutes=0.05, seconds=1))
        async with PatientWorld(database_url=url, **common) as second:
            missed = await in_state(second, code, "missed")
            news = await eventually(
                lambda: told(second, "U0BOB", "did not run"), "the missed-run news"
            )
            assert code in text_of(news[-1])
            assert second.bot is not None
            record = await second.bot.store.get_request(missed.request_id)
            assert record is not None
            assert record.state == "missed"
            trail = await events(second)
            assert "scheduled" in trail
            assert "run_refused" in trail
        assert sandbox.requests("execute_v2") == []


async def test_a_cancelled_run_never_runs(tmp_path: Path) -> None:
    """`/nexthink cancel <id>` cancels; the Cancel button of another reply cancels too; a run
    scheduled after them runs, so the loop has passed their time without running them."""
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy_file(tmp_path),
        execution_delay=0.05,
    ) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        first = await schedule(world, "U0BOB", "run restart_teams in 15s")
        second = await schedule(world, "U0BOB", "run restart_teams mode=soft in 15s")
        button_reply = last_answer(world, "U0BOB")
        later = await schedule(world, "U0BOB", "run restart_teams mode=hard in 17s")

        await world.driver.command("U0DAVE", f"cancel {first}", channel_id="C0SUPPORT")
        await world.settle()
        assert "no scheduled run" in text_of(last_answer(world, "U0DAVE"))  # not theirs
        await world.driver.command("U0BOB", f"cancel {first.lower()}", channel_id="C0SUPPORT")
        await world.settle()
        assert "is cancelled" in text_of(last_answer(world, "U0BOB"))
        await world.driver.click("U0BOB", button_reply, ids.SCHEDULE_CANCEL)
        await world.settle()
        assert "is cancelled" in text_of(last_answer(world, "U0BOB"))
        await world.driver.command("U0BOB", f"cancel {second}", channel_id="C0SUPPORT")
        await world.settle()
        assert "already cancelled" in text_of(last_answer(world, "U0BOB"))

        assert (await stored(world, first)).run_at < (await stored(world, later)).run_at
        await in_state(world, later, "ran")  # claimed in time order: the others' time is past
        assert [e["params"] for e in executes(world)] == [{"mode": "hard"}]
        assert world.bot is not None
        assert (
            await world.bot.store.claim_due_schedules(datetime.now(UTC) + timedelta(days=30)) == []
        )
        for code in (first, second):
            assert (await stored(world, code)).state == "cancelled"
        assert (await events(world)).count("schedule_cancelled") == 2


async def test_the_policy_is_checked_again_when_it_runs(tmp_path: Path) -> None:
    """Bob schedules a run as a member of @it-support, then leaves the group: at its time nothing
    is sent and Bob is told why."""
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy_file(tmp_path),
        execution_delay=0.05,
        overrides={"profile_cache_seconds": 0},
    ) as world:
        assert world.sandbox is not None
        code = await schedule(world, "U0BOB", "run restart_teams in 3s")
        world.slack.usergroups["S0SUPPORT"].members.remove("U0BOB")
        refused = await in_state(world, code, "refused", "ran")
        assert refused.state == "refused"
        assert world.sandbox.requests("execute_v2") == []
        news = await eventually(lambda: told(world, "U0BOB", "did not run"), "the refusal news")
        assert "no workflow `restart_teams` that you may run" in text_of(news[-1])


async def test_scheduling_refusals_say_what_is_wrong(tmp_path: Path) -> None:
    """Not allowed by the policy, a time in the past, too far ahead: clear replies, nothing kept."""
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy_file(tmp_path),
        execution_delay=0.05,
    ) as world:
        assert world.driver is not None
        assert world.bot is not None
        cases = {
            "run clear_disk_space in 1h": "cannot be scheduled",
            "run restart_teams at 2020-01-01 10:00": "has already passed",
            "run restart_teams in 20d": "more than 14 days away",
        }
        for command, expected in cases.items():
            await world.driver.command("U0BOB", command, channel_id="C0SUPPORT")
            await world.settle()
            assert expected in text_of(last_answer(world, "U0BOB")), command
        response = await world.driver.command("U0BOB", "run restart_teams at 25:00")
        assert isinstance(response.body, dict)
        assert "is not a time" in response.body["text"]
        assert await world.bot.store.open_schedules() == []
        assert [m for m in answers(world, "U0BOB") if CODE.search(text_of(m))] == []


async def test_scheduled_lists_yours_and_auditors_may_list_others(tmp_path: Path) -> None:
    """`/nexthink scheduled` lists your runs with Cancel buttons; `scheduled @bob` is for
    auditors only."""
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy_file(tmp_path),
        execution_delay=0.05,
    ) as world:
        assert world.driver is not None
        code = await schedule(world, "U0BOB", "run restart_teams in 2d")
        await world.driver.command("U0BOB", "scheduled", channel_id="C0SUPPORT")
        await world.settle()
        listed = last_answer(world, "U0BOB")
        assert code in text_of(listed)
        assert ids.SCHEDULE_CANCEL in str(listed.blocks)
        await world.driver.command("U0CAROL", "scheduled <@U0BOB|bob>", channel_id="C0SUPPORT")
        await world.settle()
        assert code in text_of(last_answer(world, "U0CAROL"))
        await world.driver.command("U0DAVE", "scheduled <@U0BOB|bob>", channel_id="C0SUPPORT")
        await world.settle()
        assert code not in text_of(last_answer(world, "U0DAVE"))
        assert "audit: true" in text_of(last_answer(world, "U0DAVE"))


async def test_the_home_tab_lists_scheduled_runs_with_cancel(tmp_path: Path) -> None:
    """Bob's Home lists his scheduled run; its Cancel button cancels it and the Home drops it."""
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy_file(tmp_path),
        execution_delay=0.05,
    ) as world:
        assert world.driver is not None
        code = await schedule(world, "U0BOB", "run restart_teams in 3d")
        home = await open_home(world, "U0BOB")
        assert code in str(home.view["blocks"])
        (cancel,) = [
            b["accessory"]
            for b in home.view["blocks"]
            if (b.get("accessory") or {}).get("action_id") == ids.SCHEDULE_CANCEL
        ]
        await world.driver.click("U0BOB", home, ids.SCHEDULE_CANCEL, cancel["value"])
        await world.settle()
        assert (await stored(world, code)).state == "cancelled"
        assert code not in str(home_of(world, "U0BOB").view["blocks"])
        assert "is cancelled" in text_of(last_answer(world, "U0BOB"))


APPROVALS = POLICY.replace(
    "workflows:\n",
    "workflows:\n  reimage_device:\n"
    '    approval: {channel: "C0APPROVALS", approvers: ["@it-leads"], count: 1}\n',
)


async def test_a_scheduled_run_that_needs_approval_asks_now_and_runs_at_its_time(
    tmp_path: Path,
) -> None:
    """The approval is asked when the run is scheduled; Carol's approval does not run it at
    once: it runs at its time, once; a denied one never runs."""
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy_file(tmp_path, APPROVALS),
        execution_delay=0.05,
    ) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        code = await schedule(world, "U0BOB", "run reimage_device device:LAPTOP-BOB in 8s")
        denied = await schedule(world, "U0BOB", "run reimage_device device:LAPTOP-DAVE in 8s")
        assert (await stored(world, code)).state == "awaiting_approval"
        asked = [m for m in world.slack.messages_in("C0APPROVALS") if not m.ephemeral]
        assert len(asked) == 2
        assert all("Scheduled for <!date^" in text_of(m) for m in asked)
        first, second = asked
        await world.driver.click("U0CAROL", first, ids.APPROVAL_APPROVE)
        await world.settle()
        assert "it runs at" in text_of(first)
        assert (await stored(world, code)).state == "scheduled"
        assert world.sandbox.requests("execute_v2") == []  # approved: not now, at its time
        world.slack.fail("views.open", "expired_trigger_id")  # Deny without the reason form
        await world.driver.click("U0DAVE", second, ids.APPROVAL_DENY)
        await world.settle()
        await in_state(world, code, "ran")
        await in_state(world, denied, "closed")
        (execute,) = executes(world)
        assert execute["devices"] == [{"name": "LAPTOP-BOB"}]


async def test_the_run_form_schedules_with_its_date_and_time_pickers(tmp_path: Path) -> None:
    """The form offers When (date, time) for a workflow that may be scheduled; a date without a
    time is refused inline; date and time schedule it in the person's Slack time zone
    (LocalSlack's people are in Europe/Zurich)."""
    from zoneinfo import ZoneInfo

    from tests.test_e2e_modal import block_ids, choose, open_modal, submit

    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy_file(tmp_path),
        execution_delay=0.05,
    ) as world:
        assert world.bot is not None
        view = await open_modal(world, "U0BOB")
        view = await choose(world, "U0BOB", view, "clear_disk_space")
        assert ids.MODAL_WHEN_DATE_BLOCK not in block_ids(view)  # schedule: {allowed: false}
        view = await choose(world, "U0BOB", view, "restart_teams")
        assert ids.MODAL_WHEN_DATE_BLOCK in block_ids(view)
        assert ids.MODAL_WHEN_TIME_BLOCK in block_ids(view)
        zurich = ZoneInfo("Europe/Zurich")
        tomorrow = (datetime.now(zurich) + timedelta(days=1)).date()
        chosen = {ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "restart_teams"}}
        only_date = {
            **chosen,
            ids.MODAL_WHEN_DATE_BLOCK: {ids.MODAL_WHEN_DATE: tomorrow.isoformat()},
        }
        answer = await submit(world, "U0BOB", view, only_date)
        assert answer["response_action"] == "errors"
        assert ids.MODAL_WHEN_TIME_BLOCK in answer["errors"]
        assert await world.bot.store.open_schedules() == []
        both = {**only_date, ids.MODAL_WHEN_TIME_BLOCK: {ids.MODAL_WHEN_TIME: "10:30"}}
        assert await submit(world, "U0BOB", view, both) == {}
        (kept,) = await world.bot.store.open_schedules()
        assert kept.run_at == datetime.combine(tomorrow, time(10, 30), tzinfo=zurich)
        assert kept.code in text_of(last_answer(world, "U0BOB"))
