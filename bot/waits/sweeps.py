"""The expiry sweeps of paused executions: close what expired, give back what a crash left."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.notifier import WaitNews
from bot.waits.deps import WaitDeps
from bot.waits.posting import mention_of

__all__ = ["STALE_AFTER", "sweep_expired", "sweep_stale"]

#: a wait still claimed after this long was abandoned by a crashed process (one trigger call,
#: with its retries, takes about two minutes at the very most)
STALE_AFTER = timedelta(minutes=10)


async def sweep_expired(deps: WaitDeps, *, now: datetime | None = None) -> int:
    """Close the messages of waits that expired by ``now`` (default: the current time); returns
    how many."""
    expired = await deps.store.expire_waits(now)
    for wait in expired:
        await deps.audit.record_wait("question_expired", wait, result="expired")
        await deps.notifier.wait_changed(wait, WaitNews("expired"))
    return len(expired)


async def sweep_stale(
    deps: WaitDeps, *, now: datetime | None = None, older_than: timedelta = STALE_AFTER
) -> int:
    """Give back to their deciders the waits whose decision a crashed process left half done
    (claimed for too long): their buttons come back with a note. Returns how many."""
    released = await deps.store.release_stale_claims(older_than, now)
    for wait in released:
        news = WaitNews("stale", mention=await mention_of(deps, wait))
        await deps.notifier.wait_changed(wait, news)
    return len(released)
