"""The Slack layer: listeners (one module per surface, each with ``register(bot)``), views (the
``*_views`` modules and ``blocks``), delivery and the notifier the core reports through.

See ARCHITECTURE.md for where each surface lives.
"""

from __future__ import annotations

from handlers.services import Services

__all__ = ["register_all"]


def register_all(bot: Services) -> None:
    from handlers import (
        approval_buttons,
        commands,
        consent_buttons,
        fleet_buttons,
        home,
        installs,
        log_context,
        modals,
        schedules,
        shortcuts,
        wait_buttons,
        workspace_context,
    )

    log_context.register(bot)
    workspace_context.register(bot)
    # Bolt tries the listeners in this order, each match costing a look at the request: the
    # slash command, the bot's busiest entry, first
    commands.register(bot)
    installs.register(bot)
    modals.register(bot)
    wait_buttons.register(bot)
    approval_buttons.register(bot)
    consent_buttons.register(bot)
    fleet_buttons.register(bot)
    home.register(bot)
    shortcuts.register(bot)
    schedules.register(bot)
