"""The loop that runs scheduled runs when they fall due, at Nexthink's pace.

Every ``SCHEDULE_TICK_SECONDS`` (and at once when this process schedules a run) it claims due
runs from the store (``claim_due_runs``: one replica per run, a batch of up to
``SCHEDULE_CONCURRENCY`` runs and their requests in one transaction) and runs them with
``bot.schedules.run_due``, at most ``SCHEDULE_CONCURRENCY`` at a time; the rest of a batch waits
here for a free slot, and the next batch is claimed only once it has run dry. So 10,000 runs
falling due together are taken a few at a time from the database (at most twice
``SCHEDULE_CONCURRENCY`` held here), never all held in memory, and each claim's transaction is
shared by a batch. When Nexthink answers 429 beyond the client's own retries, the run is given
back untouched and every slot waits for Nexthink's ``Retry-After`` before the next execute: the
pace is Nexthink's.

A run cut off by a stop before its execute was sent, or still waiting for a slot, is given back
at once; one left ``running`` by a process that died is found by ``sweep_stale``: given back if
its execute was never sent, else closed (outcome unknown) and its requester told; never sent
twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta

from bot.logging import get_logger
from bot.notifier import ScheduleNews
from bot.schedules import ScheduleDeps, run_due
from bot.store import RequestRecord, ScheduleRecord

__all__ = ["STALE_AFTER", "ScheduleLoop", "sweep_stale"]

log = get_logger(__name__)

#: a run claimed this long ago and still ``running`` was abandoned by a process that died
STALE_AFTER = timedelta(minutes=10)
_STALE_EVERY = 60.0
_UNAPPROVED_EVERY = 5.0
_DEFAULT_RETRY_AFTER = 1.0


async def sweep_stale(deps: ScheduleDeps, *, older_than: timedelta = STALE_AFTER) -> int:
    """Give back or close the runs a dead process left ``running``; returns how many."""
    released, closed = await deps.store.release_stale_schedules(older_than)
    for schedule in released:
        log.warning("schedule_released", schedule=schedule.id)
    for schedule in closed:
        error = "interrupted: the bot stopped while sending the execute; the outcome is unknown"
        record = await deps.store.update_request(schedule.request_id, state="unknown", error=error)
        await deps.audit.record_request("execute_failed", record, result="unknown", detail=error)
        await deps.notifier.schedule_changed(schedule, record, ScheduleNews("interrupted"))
    return len(released) + len(closed)


@dataclass
class ScheduleLoop:
    """Claims and runs due schedules; ``wake()`` after scheduling one makes it look at once."""

    deps: ScheduleDeps
    concurrency: int = 4
    tick: float = 1.0
    stale_after: timedelta = STALE_AFTER
    #: counts since start, for /metrics-like reading in tests and bench/
    counts: dict[str, int] = field(default_factory=dict)
    peak_in_flight: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _paused_until: float = 0.0
    _running: set[asyncio.Task[None]] = field(default_factory=set)
    #: claimed runs (and their requests) waiting for a slot
    _queue: deque[tuple[ScheduleRecord, RequestRecord | None]] = field(default_factory=deque)

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        next_stale = next_unapproved = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_unapproved:  # denied or expired approvals
                    next_unapproved = time.monotonic() + _UNAPPROVED_EVERY
                    try:
                        for closed in await self.deps.store.close_unapproved_schedules():
                            log.info("schedule_not_approved", schedule=closed.id)
                    except Exception:
                        log.exception("schedule_unapproved_sweep_failed")
                if time.monotonic() >= next_stale:
                    next_stale = time.monotonic() + _STALE_EVERY
                    try:
                        await sweep_stale(self.deps, older_than=self.stale_after)
                    except Exception:
                        log.exception("schedule_stale_sweep_failed")
                full = False
                self._wake.clear()  # a wake-up from now on is kept for _idle
                try:
                    full = await self._claim()
                except Exception:
                    log.exception("schedule_claim_failed")
                await self._idle(stop, busy=full)
        finally:
            await self._finish()

    async def _claim(self) -> bool:
        """Start claimed runs in the free slots, claiming a batch when none is left waiting;
        whether every slot is now busy."""
        if time.monotonic() < self._paused_until:
            return len(self._running) >= self.concurrency
        if not self._queue and len(self._running) < self.concurrency:
            self._queue.extend(await self.deps.store.claim_due_runs(limit=self.concurrency))
        while self._queue and len(self._running) < self.concurrency:
            schedule, record = self._queue.popleft()
            task = asyncio.get_running_loop().create_task(
                self._one(schedule, record), name="schedule"
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        self.peak_in_flight = max(self.peak_in_flight, len(self._running))
        return len(self._running) >= self.concurrency

    async def _one(self, schedule: ScheduleRecord, record: RequestRecord | None) -> None:
        retry_after: float | None = None
        try:
            outcome: str
            outcome, retry_after = await run_due(self.deps, schedule, record=record)
        except asyncio.CancelledError:  # stopping: give it back at once if nothing was sent
            assert schedule.claim_token is not None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.shield(
                        self.deps.store.release_schedule(schedule.id, schedule.claim_token)
                    ),
                    timeout=1.0,
                )
            raise
        except Exception:  # stays running: sweep_stale gives it back or closes it
            log.exception("schedule_run_failed", schedule=schedule.id)
            outcome = "crashed"
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome == "throttled":
            wait = retry_after if retry_after is not None else _DEFAULT_RETRY_AFTER
            self._paused_until = max(self._paused_until, time.monotonic() + wait)
        self._wake.set()  # a slot is free

    async def _idle(self, stop: asyncio.Event, *, busy: bool) -> None:
        """Wait for a tick, a wake-up, a free slot (when busy) or ``stop``."""
        timeout = self.tick
        paused = self._paused_until - time.monotonic()
        if paused > 0:
            timeout = paused if busy else min(timeout, paused)
        stopping = asyncio.ensure_future(stop.wait())
        waking = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stopping, waking}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for waiter in (stopping, waking):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter

    async def _finish(self) -> None:
        """On stop: give back the claimed runs still waiting for a slot, and let the runs in
        flight end, within a bound (they are recorded as they go)."""
        while self._queue:
            schedule, _ = self._queue.popleft()
            assert schedule.claim_token is not None
            with contextlib.suppress(Exception):  # else sweep_stale gives it back later
                await asyncio.wait_for(
                    self.deps.store.release_schedule(schedule.id, schedule.claim_token), 1.0
                )
        running = set(self._running)
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=2.5)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task
