"""The Nexthink OAuth token, shared by every call (PRODUCT.md, "Sharing").

One ``TokenProvider`` per client. It asks the token endpoint (client credentials, Basic auth,
``scope=service:integration``) for a token and hands the same token to every caller until
``margin`` seconds before it expires (but for at least a tenth of its lifetime, so that even a
token shorter-lived than the margin is shared). However many callers need a token at once, one
request is made: the first caller starts it and the others await the same task (single
flight); a failure reaches every waiter, and the next call tries again. A waiter that is
cancelled does not cancel the shared request.

After a 401, a caller asks for ``refresh(stale)`` with the token that was refused: if another
caller has already replaced it, that newer token is returned and nothing is requested.

The token request is idempotent, so it is retried on throttling, transient failures and 5xx
(``_http.Sender``). Wrong credentials become ``AuthenticationError``. Neither the client secret
nor a token ever appears in a message, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from bot.logging import get_logger
from bot.metrics import TOKEN_REFRESHES

from ._http import Call, Sender, parse_json, parse_model, translate
from .errors import NexthinkError
from .models import TokenResponse

__all__ = ["TOKEN_FORM", "TokenProvider"]

log = get_logger(__name__)

#: the body of every token request
TOKEN_FORM = {"grant_type": "client_credentials", "scope": "service:integration"}


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    #: monotonic time after which the token is no longer handed out
    renew_at: float

    def __repr__(self) -> str:
        return f"_Token(renew_at={self.renew_at!r})"

    def fresh(self) -> bool:
        return time.monotonic() < self.renew_at


class TokenProvider:
    """A cached, single-flight client-credentials token."""

    def __init__(
        self,
        sender: Sender,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        margin: float = 60.0,
    ) -> None:
        self._sender = sender
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._margin = margin
        self._current: _Token | None = None
        self._inflight: asyncio.Task[str] | None = None
        #: monotonic time at which the last token was obtained (``/readyz``), None before any
        self.last_token_at: float | None = None

    def __repr__(self) -> str:
        return f"TokenProvider(token_url={self._token_url!r}, client_id={self._client_id!r})"

    async def token(self) -> str:
        """The shared token, renewed ``margin`` seconds before it expires."""
        current = self._current
        if current is not None and current.fresh():
            return current.value
        return await self._shared_fetch()

    async def refresh(self, stale: str | None) -> str:
        """A token other than ``stale`` (the one Nexthink just refused)."""
        current = self._current
        if current is not None and current.value != stale and current.fresh():
            return current.value
        if current is not None and current.value == stale:
            self._current = None  # nobody else gets the refused token from now on
        return await self._shared_fetch()

    async def aclose(self) -> None:
        """Cancel a token request in flight (the client is closing)."""
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])  # its outcome was retrieved by _done

    async def _shared_fetch(self) -> str:
        task = self._inflight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(), name="nexthink-token")
            self._inflight = task
            task.add_done_callback(self._done)
        # shield: a caller that is cancelled leaves the shared request running for the others
        return await asyncio.shield(task)

    def _done(self, task: asyncio.Task[str]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is never reported as lost

    async def _fetch(self) -> str:
        call = Call(
            endpoint="token",
            method="POST",
            url=self._token_url,
            what="token request",
            idempotent=True,
            data=TOKEN_FORM,
        )
        auth = httpx.BasicAuth(self._client_id, self._client_secret.get_secret_value())
        requested_at = time.monotonic()
        try:
            with translate(call):
                response = await self._sender.send(call, tokens=None, auth=auth)
                answer = parse_model(TokenResponse, parse_json(response), where="token answer")
        except NexthinkError as exc:
            TOKEN_REFRESHES.labels("failure").inc()
            log.warning("nexthink.token_failed", error=type(exc).__name__, reason=exc.message)
            raise
        lifetime = float(answer.expires_in)
        margin = min(self._margin, lifetime * 0.9)  # a short-lived token still serves a while
        self._current = _Token(answer.access_token, renew_at=requested_at + lifetime - margin)
        self.last_token_at = time.monotonic()
        TOKEN_REFRESHES.labels("success").inc()
        log.info("nexthink.token_obtained", expires_in=answer.expires_in)
        return answer.access_token
