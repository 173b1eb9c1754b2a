"""Work that continues after Slack was acknowledged, tracked so shutdown can finish it.

Every handler acknowledges Slack first and then hands the slow part (Nexthink calls, replies)
to ``Tasks.spawn``. On SIGTERM the server stops taking requests and ``Tasks.drain`` waits,
within a bound, for what was already acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from bot.logging import get_logger

__all__ = ["Tasks"]

log = get_logger(__name__)


class Tasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = False
        #: background tasks that ended with an exception (a bug: they should answer, not raise)
        self.failures = 0

    def __len__(self) -> int:
        return len(self._tasks)

    def running(self) -> list[asyncio.Task[Any]]:
        """The tasks not finished yet (a snapshot)."""
        return [task for task in self._tasks if not task.done()]

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "work") -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.failures += 1
            log.error("background_task_failed", task=task.get_name(), exc_info=exc)

    async def drain(self, seconds: float) -> tuple[int, int]:
        """Wait up to ``seconds`` for running work, including work that running work spawns
        meanwhile; cancel what is left. Returns (finished, cancelled)."""
        self.closing = True
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
