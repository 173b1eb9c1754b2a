"""Slack listeners. Each surface lives in its own module and exposes ``register(bot)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = ["register_all"]


def register_all(bot: Bot) -> None:
    from handlers import actions, approvals, commands, context, home, modals, shortcuts

    context.register(bot)
    commands.register(bot)
    modals.register(bot)
    actions.register(bot)
    approvals.register(bot)
    home.register(bot)
    shortcuts.register(bot)
