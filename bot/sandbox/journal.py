"""The journal: every request made to the sandbox's Nexthink endpoints, and what it answered.

Entries are kept in memory in arrival order (``Sandbox.journal``) with headers and bodies as
received, so tests can assert on exactly what the bot sent. ``GET /_sandbox/journal`` shows the
same entries with credentials masked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["JournalEntry", "decode_body"]


@dataclass(frozen=True)
class JournalEntry:
    #: endpoint name (``token``, ``execute_v1``, ``execute_v2``, ``trigger``, ``list``, ``get``,
    #: ``nql``), or ``unknown`` for a path or method the API does not have
    endpoint: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    #: parsed JSON, a dict for a form, text otherwise, None when empty
    body: Any
    #: None when no answer was sent (``timeout`` and ``reset`` faults)
    status: int | None
    response: Any
    at: datetime
    #: the injected fault that shaped the answer, in its text form
    fault: str | None = None
    #: with a ``processed=true`` fault: the answer the fault hid (e.g. the execute's requestUuid)
    processed_response: Any = None

    def to_json(self) -> dict[str, Any]:
        """For ``GET /_sandbox/journal``: as stored, but credentials masked."""
        headers = {
            name: _mask(value) if name.lower() == "authorization" else value
            for name, value in self.headers.items()
        }
        body = self.body
        if isinstance(body, dict) and "client_secret" in body:
            body = body | {"client_secret": "***"}
        response = self.response
        if isinstance(response, dict) and "access_token" in response:
            response = response | {"access_token": _mask_token(str(response["access_token"]))}
        return {
            "endpoint": self.endpoint,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": headers,
            "body": body,
            "status": self.status,
            "response": response,
            "at": self.at.isoformat(),
            "fault": self.fault,
            "processedResponse": self.processed_response,
        }


def _mask(value: str) -> str:
    scheme, _, credential = value.partition(" ")
    if not credential or scheme.lower() != "bearer":
        return f"{scheme} ***" if credential else "***"
    return f"{scheme} {_mask_token(credential)}"


def _mask_token(token: str) -> str:
    return f"***{token[-4:]}" if len(token) > 12 else "***"


def decode_body(raw: bytes, content_type: str) -> Any:
    """A request or response body as the journal keeps it."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True))
    if content_type.endswith("json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
