"""The workflows a person may see and run: Nexthink's API-triggerable list, cached briefly.

Listing costs four calls to Nexthink (one per dependency), so the list is kept for ``ttl``
seconds and concurrent readers share one refresh.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.logging import get_logger
from bot.nexthink.client import NexthinkClient
from bot.nexthink.models import Workflow

__all__ = ["Catalogue", "Entry"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Entry:
    """A workflow as shown to people: Nexthink's record and the policy's alias, if any."""

    workflow: Workflow
    alias: str | None

    @property
    def id(self) -> str:
        return self.workflow.id

    def matches(self, needle: str) -> bool:
        needle = needle.casefold()
        return any(
            needle in (text or "").casefold()
            for text in (self.workflow.id, self.alias, self.workflow.name)
        )


class Catalogue:
    def __init__(
        self,
        client: NexthinkClient,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._workflows: list[Workflow] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def workflows(self) -> list[Workflow]:
        """Active, API-triggerable workflows (cached)."""
        if self._workflows is not None and self._clock() - self._fetched_at < self._ttl:
            return self._workflows
        async with self._lock:
            if self._workflows is not None and self._clock() - self._fetched_at < self._ttl:
                return self._workflows
            workflows = await self._client.list_api_workflows()
            self._workflows = sorted(
                (w for w in workflows if w.is_active), key=lambda w: w.display_name.casefold()
            )
            self._fetched_at = self._clock()
            return self._workflows

    async def display_name(self, workflow_id: str | None) -> str:
        """The workflow's display name (from the cache); its id if unknown or unreachable."""
        try:
            for workflow in await self.workflows():
                if workflow.id == workflow_id:
                    return workflow.display_name
        except Exception as exc:
            log.info("workflow_name_unavailable", error=type(exc).__name__)
        return workflow_id or "the workflow"

    def invalidate(self) -> None:
        self._workflows = None

    @staticmethod
    def closest(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
        lowered = {c.casefold(): c for c in candidates}
        hits = difflib.get_close_matches(name.casefold(), list(lowered), n=n, cutoff=0.5)
        near = [lowered[h] for h in hits]
        for c in candidates:  # substrings count as close too: "teams" → "restart_teams"
            if name.casefold() in c.casefold() and c not in near:
                near.append(c)
        return near[:n]
