"""One call to Nexthink: headers, the retry policy, metrics, and translation into the error tree.

The retry policy (PRODUCT.md, "Retries toward Nexthink") is the loop in ``Sender.send``. A call
is *idempotent* when repeating it can never duplicate work: the GETs, NQL queries and the token
request. Execute and trigger are not: they are retried only when Nexthink surely did not process
them.

    what happened                             idempotent call          execute, trigger
    ----------------------------------------  -----------------------  --------------------------
    429 or 503                                wait Retry-After, retry  wait Retry-After, retry
    nothing was sent: connection refused or   backoff, retry           backoff, retry
      failed, connect timeout, pool timeout
    sent, no answer: read or write timeout,   backoff, retry           OutcomeUnknown, at once
      reset, protocol error
    any other 5xx                             backoff, retry           OutcomeUnknown, at once
    401 on an API call                        new token once (shared by all callers), retry once
    404 without an ErrorResponse              RouteMissing, never      (V2 execute in ``auto``:
      (the route is not there)                  retried here             the client sends that run
                                                                         once more, through V1)
    any other 4xx, 1xx, 3xx                   translated, never retried

The V1 retry after a V2 execute's 404 (``NexthinkClient.execute_many`` with
``NEXTHINK_EXECUTE_API=auto``) is safe: a 404 without Nexthink's ``ErrorResponse`` means no
Workflows API route answered, so nothing ran; a 404 that carries one (Nexthink's application
speaking, e.g. about a workflow) is a plain ``BadRequest`` and is never retried through V1.

A call is retried at most ``RetryPolicy.retries`` times (the one 401 refresh aside); when the
retries run out, 429 becomes ``Throttled``, 503 and failures to connect ``Unavailable``.
``Retry-After`` is read as seconds or as an HTTP date, capped at ``max_retry_after``; without it
the wait is the backoff: ``backoff * 2**n`` seconds, drawn at random from its upper half.

Every HTTP attempt is counted in ``NEXTHINK_CALLS{endpoint,status}`` (status is the HTTP code or
the kind of transport failure) and timed in ``NEXTHINK_SECONDS{endpoint}``.

``translate`` is the one place where httpx failures, error statuses and malformed answers become
``NexthinkError``s, always ``raise ... from``. No message ever holds a token or the client secret:
messages are built from the call's description, status codes and Nexthink's ``code``/``details``,
never from request headers or from a token answer's content.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from bot.logging import get_logger
from bot.metrics import NEXTHINK_CALLS, NEXTHINK_SECONDS

from .errors import (
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    NexthinkError,
    OutcomeUnknown,
    PermissionDenied,
    RouteMissing,
    Throttled,
    Unavailable,
    UnexpectedResponse,
)
from .models import ErrorResponse

__all__ = [
    "Call",
    "RetryPolicy",
    "Sender",
    "Tokens",
    "describe_validation_error",
    "local_error",
    "malformed",
    "parse_json",
    "parse_model",
    "parse_retry_after",
    "translate",
]

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

#: failures after which the request surely never reached Nexthink
_NOT_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

#: metric label and human phrase for each kind of transport failure (first match wins)
_KINDS: tuple[tuple[type[httpx.TransportError], str, str], ...] = (
    (httpx.ConnectTimeout, "connect_timeout", "connecting timed out"),
    (httpx.PoolTimeout, "pool_timeout", "no connection became free in time"),
    (httpx.ReadTimeout, "read_timeout", "no answer within the read timeout"),
    (httpx.WriteTimeout, "write_timeout", "sending the request timed out"),
    (httpx.ConnectError, "connect_error", "the connection was refused or could not be made"),
    (httpx.ReadError, "read_error", "the connection was reset"),
    (httpx.WriteError, "write_error", "the connection was reset while sending"),
    (httpx.RemoteProtocolError, "protocol_error", "the connection was closed without an answer"),
)


def _kind(exc: httpx.TransportError) -> tuple[str, str]:
    for cls, label, phrase in _KINDS:
        if isinstance(exc, cls):
            return label, phrase
    return "transport_error", f"the connection failed ({type(exc).__name__})"


# -- the policy's numbers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times and how long to wait; *whether* to retry is decided by ``Sender.send``."""

    retries: int = 2
    backoff: float = 0.5
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_retry_after < 0:
            raise ValueError("retries, backoff and max_retry_after must not be negative")

    def backoff_delay(self, retry: int) -> float:
        """Exponential backoff with jitter for the ``retry``-th retry (0-based)."""
        ceiling = min(self.backoff * 2**retry, self.max_retry_after)
        # jitter spreads callers apart; it is not security-sensitive
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311

    def throttle_delay(self, retry_after: float | None, retry: int) -> float:
        """The wait before retrying a 429/503: Retry-After (capped), else the backoff."""
        if retry_after is None:
            return self.backoff_delay(retry)
        return min(retry_after, self.max_retry_after)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delta-seconds or an HTTP date).

    ``None`` when the header is absent or unreadable; never negative.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


# -- a call -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One logical request to Nexthink; its attempts share it. Holds no credential."""

    #: metric label: token, execute_v1, execute_v2, trigger, list, get, nql
    endpoint: str
    method: str
    url: str
    #: what a person is told, e.g. "execute of workflow 'restart_teams' (1 user, 0 devices)"
    what: str
    #: True when repeating the call can never duplicate work (GET, NQL, token)
    idempotent: bool
    params: Mapping[str, str] | None = None
    json: Any = field(default=None, repr=False)
    data: Mapping[str, str] | None = field(default=None, repr=False)


class Tokens(Protocol):
    """What ``Sender`` needs from the token cache (``bot.nexthink.auth.TokenProvider``)."""

    async def token(self) -> str: ...

    async def refresh(self, stale: str | None) -> str: ...


class _Refused(Exception):
    """Internal: Nexthink answered with a status the policy does not retry (any more)."""

    def __init__(self, response: httpx.Response, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after


class _Malformed(Exception):
    """Internal: the answer breaks the reference. The text never quotes a token answer."""


def malformed(reason: str) -> _Malformed:
    """The exception to raise (inside ``translate``) for an answer that breaks the reference."""
    return _Malformed(reason)


class Sender:
    """Sends ``Call``s on one pooled ``httpx.AsyncClient`` under the retry policy."""

    def __init__(self, http: httpx.AsyncClient, policy: RetryPolicy, *, source: str) -> None:
        self.http = http
        self.policy = policy
        self.source = source
        #: URLs resolved as ``build_request`` does, each once (at most 256: trigger URLs vary)
        self._urls: dict[str, httpx.URL] = {}

    def _url(self, url: str) -> httpx.URL:
        found = self._urls.get(url)
        if found is None:
            found = self.http.build_request("GET", url).url
            if len(self._urls) < 256:
                self._urls[url] = found
        return found

    async def send(
        self, call: Call, *, tokens: Tokens | None, auth: httpx.Auth | None = None
    ) -> httpx.Response:
        """Send ``call`` until it succeeds or the policy says stop; return the 2xx answer.

        ``tokens`` is None only for the token request itself (which authenticates with ``auth``).
        Raises ``httpx.TransportError`` or ``_Refused``: call it inside ``translate(call)``.
        """
        retry = 0  # retries done so far (the 401 refresh is not one)
        refreshed = False
        while True:
            token = await tokens.token() if tokens is not None else None
            try:
                response = await self._attempt(call, token, auth)
            except httpx.TransportError as exc:
                if retry >= self.policy.retries or not (
                    call.idempotent or isinstance(exc, _NOT_SENT)
                ):
                    raise
                delay = self.policy.backoff_delay(retry)
                reason = _kind(exc)[0]
            else:
                status = response.status_code
                if status == 401 and tokens is not None and not refreshed:
                    # one new token (single flight: callers share it), then one more try
                    refreshed = True
                    log.info("nexthink.token_rejected", endpoint=call.endpoint)
                    await tokens.refresh(token)
                    continue
                if status in (429, 503):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    if retry >= self.policy.retries:
                        raise _Refused(response, retry_after)
                    delay = self.policy.throttle_delay(retry_after, retry)
                elif status >= 500 and call.idempotent and retry < self.policy.retries:
                    delay = self.policy.backoff_delay(retry)
                elif not 200 <= status < 300:
                    raise _Refused(response)
                else:
                    return response
                reason = str(status)
            retry += 1
            log.info(
                "nexthink.retry",
                endpoint=call.endpoint,
                reason=reason,
                retry=retry,
                delay=round(delay, 3),
            )
            await asyncio.sleep(delay)

    async def _attempt(
        self, call: Call, token: str | None, auth: httpx.Auth | None
    ) -> httpx.Response:
        """One HTTP exchange, counted and timed.

        The request is built here rather than by ``http.request``: the same URL, headers (the
        client's defaults, its User-Agent), cookies and timeouts (``send`` adds them), without
        parsing and merging the URLs again for every call, a fifth of its CPU (``transport.py``).
        """
        headers = httpx.Headers(self.http.headers)
        headers["Accept"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
            headers["Source"] = self.source
        status = "cancelled"
        started = time.perf_counter()
        try:
            request = httpx.Request(
                call.method,
                self._url(call.url),
                params=dict(call.params) if call.params is not None else None,
                json=call.json,
                data=dict(call.data) if call.data is not None else None,
                headers=headers,
            )
            if self.http.cookies:  # any a Nexthink load balancer set, sent back as before
                self.http.cookies.set_cookie_header(request)
            response = await self.http.send(
                request, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT
            )
        except httpx.TransportError as exc:
            status = _kind(exc)[0]
            raise
        except Exception:
            status = "error"
            raise
        else:
            status = str(response.status_code)
            return response
        finally:
            NEXTHINK_CALLS.labels(call.endpoint, status).inc()
            NEXTHINK_SECONDS.labels(call.endpoint).observe(time.perf_counter() - started)


# -- answers ----------------------------------------------------------------------------------


def parse_json(response: httpx.Response) -> Any:
    """The answer's JSON body; ``_Malformed`` when it is empty, HTML or not JSON."""
    if not response.content:
        raise _Malformed(f"an empty body (HTTP {response.status_code})")
    content_type = response.headers.get("Content-Type", "")
    try:
        return response.json()
    except ValueError:
        kind = "an HTML page" if "html" in content_type.lower() else "a body that is not JSON"
        raise _Malformed(f"{kind} (HTTP {response.status_code})") from None


def describe_validation_error(exc: ValidationError) -> str:
    """Where and what, from pydantic's first errors, without echoing the input values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_model(model: type[M], data: Any, *, where: str = "") -> M:
    """``data`` validated as ``model``; ``_Malformed`` (naming the first problems) if it breaks."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        prefix = f"{where}: " if where else ""
        raise _Malformed(f"{prefix}{describe_validation_error(exc)}") from None


def _error_body(response: httpx.Response) -> ErrorResponse | None:
    """Nexthink's ``{"code", "details"}``, when the answer carries one."""
    try:
        return ErrorResponse.model_validate(response.json())
    except ValueError:  # not JSON, or JSON that is not an ErrorResponse
        return None


def _oauth_error(response: httpx.Response) -> str | None:
    """The ``error`` of an OAuth error answer (e.g. ``invalid_client``); never a token."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) and len(error) <= 64 else None


# -- translation: the one place -------------------------------------------------------------


@contextmanager
def translate(call: Call) -> Iterator[None]:
    """Turn whatever escapes the block into the ``NexthinkError`` a person can act on."""
    try:
        yield
    except NexthinkError:
        raise
    except _Refused as exc:
        raise _from_status(call, exc.response, exc.retry_after) from exc
    except _Malformed as exc:
        may_have_run = (
            "" if call.idempotent else f"; the {call.what} may have run: check in Nexthink"
        )
        raise UnexpectedResponse(
            f"Nexthink answered unexpectedly to the {call.what}: {exc}{may_have_run}",
            endpoint=call.endpoint,
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ConfigurationError(
            f"the Nexthink URL for the {call.endpoint} call is not usable: {exc}",
            endpoint=call.endpoint,
        ) from exc
    except httpx.TransportError as exc:
        phrase = _kind(exc)[1]
        if isinstance(exc, _NOT_SENT):
            raise Unavailable(
                f"Nexthink could not be reached for the {call.what} ({phrase}); nothing was sent",
                endpoint=call.endpoint,
            ) from exc
        if call.idempotent:
            raise Unavailable(
                f"Nexthink did not answer the {call.what} ({phrase})", endpoint=call.endpoint
            ) from exc
        raise OutcomeUnknown(
            f"The {call.what} was sent to Nexthink but no answer came back ({phrase}): it may "
            "or may not have run. Check its executions in Nexthink before trying again.",
            endpoint=call.endpoint,
        ) from exc


def _from_status(call: Call, response: httpx.Response, retry_after: float | None) -> NexthinkError:
    status = response.status_code
    endpoint = call.endpoint
    if endpoint == "token" and status in (400, 401, 403):
        error = _oauth_error(response)
        return AuthenticationError(
            f"Nexthink refused the API credentials (HTTP {status}"
            + (f", {error}" if error else "")
            + "): check NEXTHINK_CLIENT_ID and NEXTHINK_CLIENT_SECRET",
            endpoint=endpoint,
        )
    if status == 401:
        return AuthenticationError(
            f"Nexthink refused the bot's token for the {call.what} (HTTP 401, even with a new "
            "token): check that the API credential has the Workflows API permission",
            endpoint=endpoint,
        )
    if status == 429:
        return Throttled(
            f"Nexthink kept throttling the {call.what} (HTTP 429); try again later",
            retry_after=retry_after,
            endpoint=endpoint,
        )
    if status == 503:
        return Unavailable(
            f"Nexthink was unavailable for the {call.what} (HTTP 503); nothing was processed",
            endpoint=endpoint,
        )
    if status >= 500:
        if call.idempotent:
            return Unavailable(
                f"Nexthink failed to answer the {call.what} (HTTP {status})", endpoint=endpoint
            )
        return OutcomeUnknown(
            f"The {call.what} was sent to Nexthink, which answered HTTP {status}: it may or "
            "may not have run. Check its executions in Nexthink before trying again.",
            endpoint=endpoint,
            status=status,
        )
    if 400 <= status < 500:
        body = _error_body(response)
        code = body.code if body else None
        details = body.details if body else None
        said = f": {code}" + (f" ({details})" if details else "") if body else ""
        if status == 404 and body is None:
            return RouteMissing(
                f"Nexthink refused the {call.what} (HTTP 404): this instance has no "
                f"{call.method} {call.url}",
                endpoint=endpoint,
            )
        if status == 403:
            return PermissionDenied(
                f"Nexthink denied permission for the {call.what} (HTTP 403){said}",
                code=code,
                details=details,
                endpoint=endpoint,
            )
        return BadRequest(
            f"Nexthink refused the {call.what} (HTTP {status}){said}",
            code=code,
            details=details,
            endpoint=endpoint,
        )
    return UnexpectedResponse(
        f"Nexthink answered unexpectedly to the {call.what}: HTTP {status}", endpoint=endpoint
    )


def local_error(call: Call, exc: ValidationError) -> BadRequest:
    """A request that breaks the reference, found before anything was sent."""
    reason = describe_validation_error(exc)
    return BadRequest(
        f"The {call.what} was not sent: it breaks the Nexthink reference ({reason})",
        code=None,
        details=reason,
        endpoint=call.endpoint,
    )
