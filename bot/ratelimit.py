"""A sliding-window rate limit per key (a Slack user id): at most ``per_minute`` hits in any 60 s.

State lives in this process's memory only: a restart forgets it, and several replicas each keep
their own count (so N replicas allow up to N times the limit). That is enough to stop a runaway
loop or a fat finger, which is its purpose; it is not an accounting of runs (the store is).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """``hit(key)`` counts a hit and returns ``None``, or refuses it (uncounted) and returns the
    seconds until the oldest hit in the window leaves it."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        window: float = 60.0,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        self.per_minute = per_minute
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._calls = 0

    def hit(self, key: str) -> float | None:
        now = self._clock()
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

    def __len__(self) -> int:
        """How many keys are held in memory (idle ones are swept every 1,024 hits)."""
        return len(self._hits)

    def _sweep(self, now: float) -> None:
        """Forget keys whose hits have all left the window, so memory follows active users."""
        stale = [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]
        for key in stale:
            del self._hits[key]
