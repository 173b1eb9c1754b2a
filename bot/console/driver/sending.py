"""Sign a request as Slack signs it and post it to the bot (over HTTP, or through a `Transport`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import httpx

from bot.console.localslack import JSONDict

__all__ = ["DriverResponse", "SignedSender", "Transport", "with_problems"]

# (body, headers) -> (status, headers, body): posts a signed request somewhere other than over HTTP
Transport = Callable[[bytes, dict[str, str]], Awaitable[tuple[int, Mapping[str, str], bytes]]]


@dataclass(frozen=True)
class DriverResponse:
    """The bot's answer: ``status`` 0 means never sent (Slack's client would refuse, see problems)."""

    status: int
    body: Any  # the JSON answer decoded, else its text ("" when empty)
    elapsed: float
    problems: tuple[str, ...] = ()


class SignedSender:
    """Posts bodies to the bot's ``events_url`` with Slack's signature headers, timing the answer."""

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
        ack_deadline: float = 3.0,
        transport: Transport | None = None,
    ) -> None:
        self.events_url = events_url
        self.clock = clock
        self.ack_deadline = ack_deadline
        self._secret = signing_secret.encode()
        self._transport = transport
        self._http = httpx.AsyncClient(timeout=timeout) if transport is None else None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- signing and sending ------------------------------------------------------------------

    def sign(self, body: bytes, timestamp: int) -> dict[str, str]:
        """The headers Slack adds: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
        base = b"v0:" + str(timestamp).encode() + b":" + body
        signature = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        return {"x-slack-signature": signature, "x-slack-request-timestamp": str(timestamp)}

    async def post(
        self, body: bytes, content_type: str = "application/x-www-form-urlencoded"
    ) -> DriverResponse:
        """Post a raw body to the bot, signed now."""
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **self.sign(body, int(self.clock())),
        }
        started = time.perf_counter()
        if self._transport is not None:
            status, answer_headers, content = await self._transport(body, headers)
        else:
            assert self._http is not None
            response = await self._http.post(self.events_url, content=body, headers=headers)
            status, answer_headers, content = (
                response.status_code,
                response.headers,
                response.content,
            )
        elapsed = time.perf_counter() - started
        late: tuple[str, ...] = ()
        if elapsed > self.ack_deadline:
            late = (
                f"operation_timeout: answered after {elapsed:.1f} s; Slack waits {self.ack_deadline:g} s",
            )
        body = _decode(content, answer_headers.get("content-type", ""))
        return DriverResponse(status, body, elapsed, late)

    async def post_interactive(self, payload: JSONDict) -> DriverResponse:
        return await self.post(
            urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        )


def _decode(content: bytes, content_type: str) -> Any:
    text = content.decode("utf-8", errors="replace")
    if "json" in content_type or text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def with_problems(response: DriverResponse, problems: list[str]) -> DriverResponse:
    combined = (*response.problems, *problems)
    return DriverResponse(response.status, response.body, response.elapsed, combined)
