"""The local Slack stand-in and driver behind ``nexthink-bot console`` and the test suite."""

from bot.console.driver import DriverResponse, SlackDriver, Transport, socket_envelope
from bot.console.localslack import (
    ApiCall,
    Channel,
    Event,
    EventKind,
    LocalSlack,
    Message,
    SlackError,
    User,
    Usergroup,
    View,
    validate_blocks,
    validate_view,
)

__all__ = [
    "ApiCall",
    "Channel",
    "DriverResponse",
    "Event",
    "EventKind",
    "LocalSlack",
    "Message",
    "SlackDriver",
    "SlackError",
    "Transport",
    "User",
    "Usergroup",
    "View",
    "socket_envelope",
    "validate_blocks",
    "validate_view",
]
