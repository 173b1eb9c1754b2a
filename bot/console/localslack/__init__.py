"""LocalSlack, the project's local Slack Web API (the console's backend and every e2e test's Slack).

See `bot.console.localslack.server` for what it serves and the choices it makes.
"""

from bot.console.blockkit import validate_blocks, validate_view
from bot.console.localslack.records import (
    ApiCall,
    Channel,
    Event,
    EventKind,
    Installation,
    JSONDict,
    Message,
    SlackError,
    Team,
    User,
    Usergroup,
    View,
)
from bot.console.localslack.server import LocalSlack

__all__ = [
    "ApiCall",
    "Channel",
    "Event",
    "EventKind",
    "Installation",
    "JSONDict",
    "LocalSlack",
    "Message",
    "SlackError",
    "Team",
    "User",
    "Usergroup",
    "View",
    "validate_blocks",
    "validate_view",
]
