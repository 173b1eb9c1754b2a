"""A sliding-window rate limit kept in the database, so that it holds for every replica at once.

One row per key (``rate_limits``): ``hits``, the times (epoch seconds) of the hits still inside
the window, and ``last_hit``, the newest. A check is one statement, an upsert whose update only
happens when fewer than ``limit`` hits are inside the window:

* PostgreSQL: ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE <count in window> < :limit
  RETURNING``. The conflicting row is locked and the ``WHERE`` is evaluated on its latest
  version, even under READ COMMITTED, so concurrent checks on one key queue on the row lock and
  each sees the hits of those before it: exactly ``limit`` pass in any window. ``hits`` is a
  ``double precision[]``.
* SQLite: the same upsert with ``hits`` as a JSON array; a write statement holds the database's
  write lock from its start, so it is atomic across processes too.

It is an exact sliding window (at most ``limit`` hits in any ``window`` seconds, as the
in-process limiter), not a fixed window that lets ``2 * limit`` through across a boundary: a row
holds at most ``limit`` times, pruned on every check. A refused hit is not counted. Times come
from the caller (the replicas' clocks: NTP-close is enough for a one-minute window).

Rows whose newest hit has left the window are dead; ``sweep_rate_limits`` deletes them with one
indexed statement (``ix_rate_limits_last_hit``); the limiter calls it every few hundred checks.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.types import Float, Integer

from ._base import StoreBase
from .schema import rate_limits

__all__ = ["RateLimitsMixin"]

_PARAMS = (
    bindparam("now", type_=Float),
    bindparam("cut", type_=Float),
    bindparam("limit", type_=Integer),
)

_POSTGRESQL = text(
    """
    INSERT INTO rate_limits AS r (key, hits, last_hit)
    VALUES (:key, ARRAY[CAST(:now AS double precision)], CAST(:now AS double precision))
    ON CONFLICT (key) DO UPDATE SET
        hits = array_append(
            ARRAY(SELECT h FROM unnest(r.hits) AS h
                  WHERE h > CAST(:cut AS double precision) ORDER BY h),
            CAST(:now AS double precision)),
        last_hit = greatest(r.last_hit, CAST(:now AS double precision))
    WHERE (SELECT count(*) FROM unnest(r.hits) AS h
           WHERE h > CAST(:cut AS double precision)) < CAST(:limit AS integer)
    RETURNING r.key
    """
).bindparams(*_PARAMS)

_SQLITE = text(
    """
    INSERT INTO rate_limits (key, hits, last_hit)
    VALUES (:key, json_array(:now), :now)
    ON CONFLICT (key) DO UPDATE SET
        hits = (SELECT json_group_array(h) FROM (
                    SELECT value AS h FROM json_each(rate_limits.hits) WHERE value > :cut
                    UNION ALL SELECT :now)),
        last_hit = max(rate_limits.last_hit, :now)
    WHERE (SELECT count(*) FROM json_each(rate_limits.hits) WHERE value > :cut) < :limit
    RETURNING key
    """
).bindparams(*_PARAMS)


class RateLimitsMixin(StoreBase):
    async def rate_hit(self, key: str, *, now: float, limit: int, window: float) -> float | None:
        """Count a hit for ``key`` at ``now`` (epoch seconds) and return None, or refuse it
        (uncounted) when ``limit`` hits are already inside the last ``window`` seconds and return
        the seconds until the oldest of them leaves it. One atomic statement decides."""
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 and window positive")
        cut = now - window
        statement = _POSTGRESQL if self.backend == "postgresql" else _SQLITE
        async with self._write() as conn:
            passed = (
                await conn.execute(statement, {"key": key, "now": now, "cut": cut, "limit": limit})
            ).first()
        if passed is not None:
            return None
        async with self._read() as conn:
            hits = (
                await conn.execute(select(rate_limits.c.hits).where(rate_limits.c.key == key))
            ).scalar()
        inside = [h for h in hits or () if h > cut]
        return max(min(inside) + window - now, 0.0) if inside else 0.0

    async def sweep_rate_limits(self, before: float) -> int:
        """Delete the keys whose newest hit is older than ``before``; how many were deleted."""
        async with self._write() as conn:
            result = await conn.execute(delete(rate_limits).where(rate_limits.c.last_hit < before))
        return int(result.rowcount or 0)
