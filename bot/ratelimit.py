"""A sliding-window rate limit per key (a Slack user id): at most ``per_minute`` hits in any 60 s.

Where it is kept depends on the store:

* PostgreSQL (several replicas may share it): in the store, ``rate_limits`` (see
  ``bot.store.ratelimits``): one atomic statement per check, so the limit holds for the whole
  deployment, and survives a restart.
* SQLite, or no store: in this process's memory. A SQLite deployment is one process (several
  replicas need PostgreSQL), so a count in memory is the deployment's count, and a check costs
  no write transaction on the one writer's database. A restart forgets it.

``RateLimiter(..., store=store, shared=True)`` keeps it in the store on SQLite too (tests do).
If the store fails during a check, that check falls back to this process's own count (logged):
the limit then holds per process until the store is back, rather than failing the command.

It stops a runaway loop or a fat finger; it is not an accounting of runs (the request audit is).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.logging import get_logger
from bot.store.errors import StoreError

if TYPE_CHECKING:
    from bot.store import Store

__all__ = ["RateLimiter"]

log = get_logger(__name__)

#: the store's dead rows (every hit out of the window) are swept every this many checks
_SWEEP_EVERY = 512


class RateLimiter:
    """``await hit(key)`` counts a hit and returns ``None``, or refuses it (uncounted) and returns
    the seconds until the oldest hit in the window leaves it."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] | None = None,
        *,
        window: float = 60.0,
        store: Store | None = None,
        shared: bool | None = None,
        scope: str = "runs",
    ) -> None:
        """``shared`` (default: whether ``store`` is PostgreSQL) keeps the count in ``store``;
        ``clock`` defaults to ``time.time`` then (one clock for all replicas), else to
        ``time.monotonic``; ``scope`` prefixes the store's keys (one table, several limits)."""
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        if shared and store is None:
            raise ValueError("a shared rate limit needs a store")
        self.per_minute = per_minute
        self.window = window
        self.scope = scope
        self._store = store
        self.shared = store is not None and (
            shared if shared is not None else store.backend == "postgresql"
        )
        self._clock = clock or (time.time if self.shared else time.monotonic)
        self._hits: dict[str, deque[float]] = {}
        self._calls = 0

    @property
    def kept_in(self) -> str:
        """``"store"`` or ``"process"``: where the count is kept."""
        return "store" if self.shared else "process"

    async def hit(self, key: str) -> float | None:
        now = self._clock()
        store = self._store
        if not self.shared or store is None:
            return self._hit_here(key, now)
        self._calls += 1
        try:
            wait = await store.rate_hit(
                f"{self.scope}:{key}", now=now, limit=self.per_minute, window=self.window
            )
            if self._calls % _SWEEP_EVERY == 0:
                await store.sweep_rate_limits(now - self.window)
        except StoreError as exc:
            log.warning("ratelimit.store_failed", error=str(exc), fallback="this process's count")
            return self._hit_here(key, now)
        return wait

    def __len__(self) -> int:
        """How many keys are held in this process's memory (idle ones are swept every 1,024
        hits); 0 while the count is kept in the store."""
        return len(self._hits)

    def _hit_here(self, key: str, now: float) -> float | None:
        self._calls += 1
        if self._calls % 1024 == 0:
            self._sweep(now)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return max(hits[0] + self.window - now, 0.0)
        hits.append(now)
        return None

    def _sweep(self, now: float) -> None:
        """Forget keys whose hits have all left the window, so memory follows active users."""
        stale = [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]
        for key in stale:
            del self._hits[key]
