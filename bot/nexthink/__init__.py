"""The Nexthink Workflows API: models, token, client and errors."""

from .client import BulkExecution, NexthinkClient, NqlResult, completed_before
from .errors import (
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    NeedsV2,
    NexthinkError,
    OutcomeUnknown,
    PermissionDenied,
    RouteMissing,
    Throttled,
    Unavailable,
    UnexpectedResponse,
)

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BulkExecution",
    "ConfigurationError",
    "NeedsV2",
    "NexthinkClient",
    "NexthinkError",
    "NqlResult",
    "OutcomeUnknown",
    "PermissionDenied",
    "RouteMissing",
    "Throttled",
    "Unavailable",
    "UnexpectedResponse",
    "completed_before",
]
