"""Acknowledgements first: work spawned ``after_acks`` waits while Slack requests are being
acknowledged, and never longer than the gate's bound (``bot.tasks.AckGate``).

Plain asyncio objects, no socket: the gate is a scheduling rule of one event loop. The
server's part (``_slack_events`` marks each request) is exercised by every end-to-end test
and measured by ``bench/ack.py``.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from bot.tasks import AckGate, Tasks

PATIENCE = 30.0  # generous: these wait for events, never for the clock


async def test_work_after_acks_starts_once_the_acknowledgement_in_progress_is_sent() -> None:
    tasks = Tasks()
    started = asyncio.Event()

    async def work() -> None:
        started.set()

    with tasks.acks.acknowledging():
        tasks.spawn(work(), name="answer", after_acks=True)
        for _ in range(20):  # the loop runs other things meanwhile: the work stays held
            await asyncio.sleep(0)
        assert not started.is_set()
    await asyncio.wait_for(started.wait(), PATIENCE)


async def test_work_without_after_acks_is_not_held() -> None:
    tasks = Tasks()
    started = asyncio.Event()

    async def work() -> None:
        started.set()

    with tasks.acks.acknowledging():
        tasks.spawn(work(), name="modal")  # a trigger_id's 3 s: never held
        await asyncio.wait_for(started.wait(), PATIENCE)


async def test_a_stream_of_acknowledgements_holds_work_no_longer_than_most() -> None:
    """Requests that keep coming do not starve the work: it starts after ``most`` anyway."""
    tasks = Tasks()
    tasks.acks = AckGate(gap=0.005, most=0.05)
    started = asyncio.Event()

    async def work() -> None:
        started.set()

    with tasks.acks.acknowledging():  # never ends before the work has started
        tasks.spawn(work(), name="answer", after_acks=True)
        await asyncio.wait_for(started.wait(), PATIENCE)


async def test_once_hold_pieces_of_work_are_unfinished_the_next_starts_at_once() -> None:
    """Back-pressure: work is held only while fewer than ``hold`` pieces are unfinished."""
    tasks = Tasks()
    tasks.acks = AckGate(most=PATIENCE * 10, hold=3)
    started: list[int] = []
    third = asyncio.Event()

    async def work(n: int) -> None:
        started.append(n)
        if n == 3:
            third.set()

    with tasks.acks.acknowledging():
        for n in (1, 2, 3):
            tasks.spawn(work(n), name="answer", after_acks=True)
        await asyncio.wait_for(third.wait(), PATIENCE)
        assert started == [3]
    await asyncio.wait_for(tasks.drain(PATIENCE), PATIENCE)
    assert sorted(started) == [1, 2, 3]


async def test_work_already_running_counts_toward_hold() -> None:
    """A flood that outlasts a burst: the work still running counts, so new work is not held
    behind the acks once ``hold`` pieces are unfinished, and the acks share the loop again."""
    tasks = Tasks()
    tasks.acks = AckGate(most=PATIENCE * 10, hold=2)
    release = asyncio.Event()
    second = asyncio.Event()

    async def long_work() -> None:
        await release.wait()

    async def work() -> None:
        second.set()

    tasks.spawn(long_work(), name="answer", after_acks=True)  # the gate is open: it runs
    with tasks.acks.acknowledging():
        tasks.spawn(work(), name="answer", after_acks=True)
        await asyncio.wait_for(second.wait(), PATIENCE)
    release.set()
    await asyncio.wait_for(tasks.drain(PATIENCE), PATIENCE)


async def test_shutdown_releases_held_work_and_it_finishes() -> None:
    tasks = Tasks()
    tasks.acks = AckGate(most=PATIENCE * 10)
    done: list[str] = []

    async def work() -> None:
        done.append("answered")

    with tasks.acks.acknowledging():
        tasks.spawn(work(), name="answer", after_acks=True)
        finished, cancelled = await asyncio.wait_for(tasks.drain(PATIENCE), PATIENCE)
    assert (finished, cancelled, done) == (1, 0, ["answered"])


async def test_work_cancelled_while_held_never_starts_and_leaves_no_warning() -> None:
    tasks = Tasks()
    tasks.acks = AckGate(most=PATIENCE * 10)
    ran: list[str] = []

    async def work() -> None:
        ran.append("ran")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tasks.acks.acknowledging():
            task = tasks.spawn(work(), name="answer", after_acks=True)
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        gc.collect()
    assert ran == []
    assert not [w for w in caught if "never awaited" in str(w.message)]
