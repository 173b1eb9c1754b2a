"""Work that continues after Slack was acknowledged, tracked so shutdown can finish it.

Every handler acknowledges Slack first and then hands the slow part (Nexthink calls, replies)
to ``Tasks.spawn``. On SIGTERM the server stops taking requests and ``Tasks.drain`` waits,
within a bound, for what was already acknowledged.

Acknowledgements come first: work spawned with ``after_acks=True`` (a slash command's answer)
starts once no Slack request has been in the middle of its acknowledgement for ``AckGate.gap``
(the server marks each one with ``Tasks.acks.acknowledging()``), or after ``AckGate.most`` at
the latest. During a burst of commands the loop then answers Slack first, which is what has a
deadline (3 s), and the work follows. Only while fewer than ``AckGate.hold`` pieces of such work
are unfinished: beyond, work starts at once and shares the loop with the acks again, which slows
them down (back-pressure), so a flood that outlasts a burst does not pile up work in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from bot.logging import get_logger
from bot.metrics import WORK

__all__ = ["AckGate", "Tasks"]

log = get_logger(__name__)


class AckGate:
    """Open while no Slack request is being acknowledged (and ``gap`` has passed since one was)."""

    def __init__(self, *, gap: float = 0.005, most: float = 1.0, hold: int = 500) -> None:
        self.gap = gap
        self.most = most
        self.hold = hold
        self._busy = 0
        self._held = 0
        self._open = asyncio.Event()
        self._open.set()
        self._timer: asyncio.TimerHandle | None = None

    @contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Around one Slack request's handling, up to its acknowledgement."""
        self._busy += 1
        self._open.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._timer = asyncio.get_running_loop().call_later(self.gap, self._opened)

    def _opened(self) -> None:
        self._timer = None
        if not self._busy:
            self._open.set()

    def release(self) -> None:
        """Open for good (shutting down: nothing waits any more)."""
        self.hold = 0
        self._open.set()

    async def passed(self, unfinished: int = 0) -> None:
        """Return once the gate is open, after ``most`` at the latest; at once if ``unfinished``
        (the work after acks not done yet, this one included) or the work held reach ``hold``."""
        if self._open.is_set() or max(self._held, unfinished) >= self.hold:
            return
        self._held += 1
        WORK.labels("held").inc()
        try:
            async with asyncio.timeout(self.most):
                await self._open.wait()
        except TimeoutError:
            pass
        finally:
            self._held -= 1
            WORK.labels("held").dec()


class Tasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = False
        #: the acknowledgements' priority over ``after_acks`` work
        self.acks = AckGate()
        self._after_acks_unfinished = 0
        #: background tasks that ended with an exception (a bug: they should answer, not raise)
        self.failures = 0

    def __len__(self) -> int:
        return len(self._tasks)

    def running(self) -> list[asyncio.Task[Any]]:
        """The tasks not finished yet (a snapshot)."""
        return [task for task in self._tasks if not task.done()]

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str = "work", after_acks: bool = False
    ) -> asyncio.Task[Any]:
        """Run ``coro`` as tracked work; with ``after_acks``, once the acks in progress are sent
        (``AckGate``): only for work with no deadline of its own (not a ``trigger_id``'s 3 s)."""
        work = self._after_acks(coro) if after_acks else coro
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        WORK.labels("unfinished").inc()
        task.add_done_callback(self._done)
        return task

    async def _after_acks(self, coro: Coroutine[Any, Any, Any]) -> Any:
        self._after_acks_unfinished += 1
        try:
            try:
                await self.acks.passed(self._after_acks_unfinished)
            except BaseException:
                coro.close()  # cancelled while waiting: it never started
                raise
            return await coro
        finally:
            self._after_acks_unfinished -= 1

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        WORK.labels("unfinished").dec()
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.failures += 1
            log.error("background_task_failed", task=task.get_name(), exc_info=exc)

    async def drain(self, seconds: float) -> tuple[int, int]:
        """Wait up to ``seconds`` for running work, including work that running work spawns
        meanwhile; cancel what is left. Returns (finished, cancelled)."""
        self.closing = True
        self.acks.release()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        finished = 0
        while self._tasks and (left := deadline - loop.time()) > 0:
            done, _ = await asyncio.wait(set(self._tasks), timeout=left)
            finished += len(done)
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
            log.warning("shutdown_cancelled_work", tasks=len(pending))
        return finished, len(pending)
