"""Everything that can go wrong when talking to Nexthink, as one small tree.

    NexthinkError
    ├── ConfigurationError     the bot is not set up to reach Nexthink (no URL, no credentials)
    ├── AuthenticationError    the token endpoint refused the credentials, or 401 persisted after a refresh
    ├── PermissionDenied       403: the credential lacks the "Workflows API" permission (code, details)
    ├── BadRequest             400: Nexthink refused the request as invalid (code, details)
    │   └── RouteMissing       404 without Nexthink's ErrorResponse: the instance has no such endpoint
    ├── Throttled              429 that outlasted the retries (retry_after)
    ├── Unavailable            Nexthink could not be reached or answered 5xx; nothing was processed
    ├── OutcomeUnknown         an execute or trigger was sent and got no answer, or a 5xx: it may have run
    ├── NeedsV2                no V2 execute here (or NEXTHINK_EXECUTE_API=v1), and V1 cannot take
    │                          the run's targets (UPNs, UIDs, device names); nothing ran
    └── UnexpectedResponse     Nexthink answered something the reference does not allow

Lower-level errors (httpx's, pydantic's) are translated into these in one place,
``bot.nexthink._http.translate``, always with ``raise ... from exc``. Every error carries the
endpoint it concerns, so a person can be told what to check in Nexthink.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "ConfigurationError",
    "NeedsV2",
    "NexthinkError",
    "OutcomeUnknown",
    "PermissionDenied",
    "RouteMissing",
    "Throttled",
    "Unavailable",
    "UnexpectedResponse",
    "answered",
    "may_have_run",
]


class NexthinkError(Exception):
    """Base of every error raised by the Nexthink client."""

    #: a short phrase a person can read, e.g. "Nexthink refused the request"
    summary = "Nexthink call failed"

    #: for a chunked execute that failed part-way: the chunks that did run (a ``BulkExecution``),
    #: and which chunk of how many failed; None otherwise
    completed: Any = None
    chunk: int | None = None
    chunks: int | None = None

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint


class ConfigurationError(NexthinkError):
    summary = "the bot is not configured to reach Nexthink"


class AuthenticationError(NexthinkError):
    summary = "Nexthink did not accept the bot's API credentials"


class _CodedError(NexthinkError):
    """An error answer that carries Nexthink's ``ErrorResponse`` (``code`` and ``details``)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.code = code
        self.details = details


class PermissionDenied(_CodedError):
    summary = "Nexthink denied permission"


class BadRequest(_CodedError):
    summary = "Nexthink refused the request"


class RouteMissing(BadRequest):
    """HTTP 404 without Nexthink's ``{"code", "details"}``: the instance has no such endpoint.

    The reference documents no 404 for any of its endpoints; its own refusals (an unknown
    workflow among them) are 400/403 answers carrying an ``ErrorResponse``. A 404 that carries one
    is Nexthink's application speaking and stays a plain ``BadRequest``; a 404 without one (empty,
    HTML, a gateway's ``{"message": "Not Found"}``) comes from in front of the Workflows API: the
    route is not there, so nothing was processed.
    """

    summary = "this Nexthink instance has no such endpoint"


class NeedsV2(NexthinkError):
    """The run must go through V1 (no V2 execute on this instance, or ``NEXTHINK_EXECUTE_API=v1``)
    and V1 cannot express some of its targets: it takes only SIDs and Collector UUIDs. Nothing
    was sent through V1; ``unexpressible`` names the targets it could not take (at most a few)."""

    summary = "V1 execute cannot target people by UPN or UID, nor devices by name or UID"

    def __init__(
        self,
        message: str,
        *,
        unexpressible: tuple[str, ...] = (),
        endpoint: str | None = "execute_v1",
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.unexpressible = unexpressible


class Throttled(NexthinkError):
    summary = "Nexthink is throttling requests"

    def __init__(
        self, message: str, *, retry_after: float | None = None, endpoint: str | None = None
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.retry_after = retry_after


class Unavailable(NexthinkError):
    summary = "Nexthink is unavailable"


class OutcomeUnknown(NexthinkError):
    """An execute or trigger that may or may not have done its work. ``status`` is the HTTP
    status Nexthink answered (a 5xx); None when no answer came back at all (a read timeout, a
    reset or closed connection after the request was sent)."""

    summary = "the request reached Nexthink but no answer came back: it may or may not have run"

    def __init__(
        self, message: str, *, endpoint: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status
        if status is not None:
            self.summary = f"{answered(status)}: it may or may not have run"


#: how a person reads the 5xx statuses an execute or trigger may get
_SERVER_ERRORS = {
    500: "server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


def answered(status: int) -> str:
    """What Nexthink answered, for a person: "Nexthink answered HTTP 500 (server error)"."""
    phrase = _SERVER_ERRORS.get(status, "server error" if 500 <= status < 600 else "")
    return f"Nexthink answered HTTP {status}" + (f" ({phrase})" if phrase else "")


class UnexpectedResponse(NexthinkError):
    summary = "Nexthink answered unexpectedly"


#: endpoints whose calls do work that must never be repeated blindly
_ACTING = frozenset({"execute_v1", "execute_v2", "trigger"})


def may_have_run(exc: NexthinkError) -> bool:
    """Whether the failed call may have done its work anyway: no answer came back
    (``OutcomeUnknown``), or an execute or trigger got an answer that breaks the reference
    (Nexthink, or something in front of it, received the request and answered)."""
    return isinstance(exc, OutcomeUnknown) or (
        isinstance(exc, UnexpectedResponse) and exc.endpoint in _ACTING
    )
