"""LocalSlack, the project's local Slack Web API (the console's backend and every e2e test's Slack).

See `bot.console.localslack.server` for what it serves and the choices it makes.
"""

from bot.console.blockkit import validate_blocks, validate_view
from bot.console.localslack.records import (
    ApiCall,
    Channel,
    Event,
    EventKind,
    JSONDict,
    Message,
    SlackError,
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
    "JSONDict",
    "LocalSlack",
    "Message",
    "SlackError",
    "User",
    "Usergroup",
    "View",
    "validate_blocks",
    "validate_view",
]
