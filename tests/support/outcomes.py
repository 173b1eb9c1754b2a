"""Helpers for the tests of outcome follow-up, the Home tab, shortcuts and threads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.console.localslack import View
from bot.console.world import World
from tests.support.e2e import text_of

QUERY_ID = "#chatops_execution_status"

#: a bot that follows outcomes quickly: looks after 50 ms, then every 50-200 ms
FOLLOW: dict[str, Any] = {
    "nexthink_status_query_id": QUERY_ID,
    "followup_first_poll_seconds": 0.05,
    "followup_max_interval_seconds": 0.2,
    "followup_tick_seconds": 0.05,
    "home_refresh_seconds": 0.05,
}


async def eventually(check: Callable[[], object], *, within: float = 60.0, what: str = "") -> None:
    """Wait until ``check()`` is true (the bot's background loops are not in ``settle()``).

    The time-out is generous: it only bounds a test that would otherwise hang, on a machine whose
    cores may be busy with other work. How fast things happen is measured in ``bench/``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within} s: {what or check}")
        await asyncio.sleep(0.02)


def home_of(world: World, user_id: str) -> View:
    view = world.slack.home(user_id)
    assert view is not None, f"no Home tab was published for {user_id}"
    return view


def home_text(world: World, user_id: str) -> str:
    view = world.slack.home(user_id)
    if view is None:
        return ""
    return "\n".join(_texts(view.view.get("blocks") or []))


def _texts(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                found.append(item)
            else:
                found += _texts(item)
    elif isinstance(value, list):
        for item in value:
            found += _texts(item)
    return found


def block_ids(view: View) -> list[str]:
    return [str(b.get("block_id")) for b in view.view.get("blocks") or []]


def reads(message: Any, *needles: str) -> bool:
    """Whether every needle is in what a person reads in ``message``."""
    text = text_of(message)
    return all(n in text for n in needles)
