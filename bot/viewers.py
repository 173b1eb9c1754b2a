"""Who opened the bot's Home tab lately, and a digest of what each was last shown.

Slack says when someone opens the Home tab (``app_home_opened``) but not when they leave it, so
the bot keeps their Home up to date for a while after (``keep`` seconds): a background pass
rebuilds those Homes and publishes the ones whose content changed. Kept in memory: after a
restart, a Home is rebuilt the next time its owner opens it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from bot.workspaces import Workspace

__all__ = ["HomeViewers"]


class HomeViewers:
    def __init__(
        self,
        *,
        keep: float = 30 * 60,
        limit: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keep = keep
        self._limit = limit
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._digests: dict[str, str] = {}
        self._workspaces: dict[str, Workspace] = {}

    def seen(self, user_id: str, workspace: Workspace | None = None) -> None:
        """``user_id`` is looking at their Home (or just used it), in ``workspace``."""
        if workspace is not None and workspace.known:
            self._workspaces[user_id] = workspace
        self._seen[user_id] = self._clock()
        self._seen.move_to_end(user_id)
        while len(self._seen) > self._limit:
            gone, _ = self._seen.popitem(last=False)
            self._digests.pop(gone, None)
            self._workspaces.pop(gone, None)

    def recent(self) -> list[str]:
        """The people seen within ``keep`` seconds, most recent first."""
        cutoff = self._clock() - self._keep
        for user_id in [u for u, at in self._seen.items() if at < cutoff]:
            del self._seen[user_id]
            self._digests.pop(user_id, None)
            self._workspaces.pop(user_id, None)
        return list(reversed(self._seen))

    def workspace_of(self, user_id: str) -> Workspace | None:
        """Where ``user_id`` last opened their Home: their Home is published there."""
        return self._workspaces.get(user_id)

    def shown(self, user_id: str) -> str | None:
        """The digest of the Home last published for ``user_id``."""
        return self._digests.get(user_id)

    def published(self, user_id: str, digest: str) -> None:
        self._digests[user_id] = digest
