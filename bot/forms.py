"""Forms carry no authority: what a modal keeps between opening and submitting is sealed, and a
reply goes only to Slack.

Slack signs the request that submits a form, not what the form carried: ``private_metadata``
comes back as the bot wrote it only if nobody changed it on the way (a modified client, a replayed
payload). So the bot seals it: ``FormSeal.seal`` writes the data with an HMAC-SHA256 tag (key
derived from the bot's Slack secrets, the same on every replica), ``FormSeal.open`` returns it
only when the tag matches and the form is submitted by the person it was opened for, and raises
``TamperedForm`` otherwise. The channel a form was opened in (which a channel-limited role
depends on) and the response URL the answer goes to are therefore what Slack gave the bot.

``slack_response_url`` is the one check every response-URL post passes: only
``https://hooks.slack.com/`` and ``https://hooks.slack-gov.com/`` (and the configured Web API's
own origin, where a local Slack serves both).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["TAMPERED", "FormSeal", "TamperedForm", "slack_response_url"]

TAMPERED = (
    "This form was changed after the bot opened it, so the bot did nothing. "
    "Open a new one with `/nexthink`."
)

_LABEL = b"nexthink-bot form seal v1"
_SLACK_HOOKS = ("hooks.slack.com", "hooks.slack-gov.com")


class TamperedForm(Exception):
    """A form's metadata that the bot did not write, or written for someone else."""


class FormSeal:
    """Seals and opens form metadata with one key (``from_secrets``: derived from the bot's
    secrets, so every replica opens what another sealed)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a form seal key needs at least 16 bytes")
        self._key = key

    @classmethod
    def from_secrets(cls, values: Iterable[str | None]) -> FormSeal:
        """A key derived from the first of the given secrets that is set, or a random one for
        this process when none is (its forms then open only here)."""
        first = next((v for v in values if v), None)
        if first is None:
            return cls(secrets.token_bytes(32))
        return cls(hmac.new(first.encode(), _LABEL, hashlib.sha256).digest())

    def _tag(self, body: bytes) -> str:
        digest = hmac.new(self._key, body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def seal(self, data: Mapping[str, Any], *, user_id: str) -> str:
        """``data`` (JSON values) for the form opened by ``user_id``, as ``body.tag``."""
        payload = json.dumps({"u": user_id, "d": dict(data)}, separators=(",", ":"))
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{body}.{self._tag(body.encode())}"

    def open(self, text: object, *, user_id: str) -> dict[str, Any]:
        """The data sealed for ``user_id``; raises ``TamperedForm`` for anything else."""
        if not isinstance(text, str) or text.count(".") != 1 or len(text) > 3000:
            raise TamperedForm("not a sealed form")
        body, tag = text.split(".")
        if not hmac.compare_digest(tag.encode(), self._tag(body.encode()).encode()):
            raise TamperedForm("the seal does not match")
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:  # cannot happen for a body the bot sealed
            raise TamperedForm("unreadable") from None
        if not isinstance(payload, dict) or payload.get("u") != user_id:
            raise TamperedForm("opened for someone else")
        data = payload.get("d")
        if not isinstance(data, dict):
            raise TamperedForm("no data")
        return data


def slack_response_url(url: object, api_url: str | None = None) -> str | None:
    """``url`` if it is a response URL of Slack's (``https://hooks.slack.com/``,
    ``https://hooks.slack-gov.com/``, or the origin of the configured Web API ``api_url``), else
    None."""
    if not isinstance(url, str) or not url or len(url) > 2000:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.username or parts.password:
        return None
    if parts.scheme == "https" and parts.hostname in _SLACK_HOOKS and port in (None, 443):
        return url
    if api_url:
        try:
            api = urlsplit(api_url)
            same = (parts.scheme, parts.hostname, port) == (api.scheme, api.hostname, api.port)
        except ValueError:
            return None
        if same and parts.scheme in ("http", "https"):
            return url
    return None
