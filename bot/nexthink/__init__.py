"""The Nexthink Workflows API: models, token, client and errors."""

from .client import BulkExecution, NexthinkClient, completed_before
from .errors import (
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    NexthinkError,
    OutcomeUnknown,
    PermissionDenied,
    Throttled,
    Unavailable,
    UnexpectedResponse,
)

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BulkExecution",
    "ConfigurationError",
    "NexthinkClient",
    "NexthinkError",
    "OutcomeUnknown",
    "PermissionDenied",
    "Throttled",
    "Unavailable",
    "UnexpectedResponse",
    "completed_before",
]
