"""Socket Mode envelopes, for tests that feed the app what Slack sends over its WebSocket."""

from __future__ import annotations

import uuid

from bot.console.localslack import JSONDict

__all__ = ["socket_envelope"]

_SOCKET_TYPES = {
    "block_actions": "interactive",
    "block_suggestion": "interactive",
    "view_submission": "interactive",
    "view_closed": "interactive",
    "shortcut": "interactive",
    "message_action": "interactive",
    "event_callback": "events_api",
}


def socket_envelope(
    type: str,
    payload: JSONDict,
    *,
    envelope_id: str | None = None,
    accepts_response_payload: bool | None = None,
) -> JSONDict:
    """A Socket Mode envelope (``slash_commands``, ``interactive`` or ``events_api``) around ``payload``.

    ``type`` may also be a payload type (``block_actions``, ``event_callback``, ...).
    """
    kind = _SOCKET_TYPES.get(type, type)
    envelope: JSONDict = {
        "envelope_id": envelope_id or str(uuid.uuid4()),
        "type": kind,
        "payload": payload,
        "accepts_response_payload": (
            kind != "events_api" if accepts_response_payload is None else accepts_response_payload
        ),
    }
    if kind == "events_api":
        envelope.update(retry_attempt=0, retry_reason="")
    return envelope
