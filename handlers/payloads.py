"""Reading Slack payloads without trusting their shape.

Slack always sends ``user``, ``team``, ``view``, ``actions`` and the rest with the types its
reference gives, but a handler must not fail (losing the answer and logging a stack trace) on a
payload where one is missing or of another type: it reads it as empty and answers what it can.
"""

from __future__ import annotations

from typing import Any

__all__ = ["click_of", "enterprise_id", "first_action", "obj", "team_id", "text", "user_id"]


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str:
    """``value`` if it is a string, else ``""``."""
    return value if isinstance(value, str) else ""


def first_action(body: dict[str, Any]) -> dict[str, Any]:
    """The first of a ``block_actions`` payload's ``actions``, or an empty object."""
    actions = body.get("actions")
    return obj(actions[0]) if isinstance(actions, list) and actions else {}


def user_id(body: dict[str, Any]) -> str:
    """Who sent the payload: ``user.id`` (interactions) or ``user_id`` (commands)."""
    return text(obj(body.get("user")).get("id")) or text(body.get("user_id"))


def team_id(body: dict[str, Any]) -> str | None:
    """The workspace of the payload, when it says."""
    found = (
        text(obj(body.get("team")).get("id"))
        or text(body.get("team_id"))
        or text(obj(body.get("user")).get("team_id"))
    )
    return found or None


def enterprise_id(body: dict[str, Any]) -> str | None:
    """The Enterprise Grid org of the payload, when it says (``enterprise_id``, ``enterprise.id``,
    ``team.enterprise_id``, ``user.enterprise_id``)."""
    found = (
        text(body.get("enterprise_id"))
        or text(obj(body.get("enterprise")).get("id"))
        or text(obj(body.get("team")).get("enterprise_id"))
        or text(obj(body.get("user")).get("enterprise_id"))
    )
    return found or None


def click_of(body: dict[str, Any]) -> tuple[str, str | None, str | None, str]:
    """(user id, channel id, message ts, button value) of a block_actions payload; fields that
    are missing or of another type read as empty."""
    container = obj(body.get("container"))
    channel = text(container.get("channel_id")) or text(obj(body.get("channel")).get("id"))
    ts = text(container.get("message_ts")) or text(obj(body.get("message")).get("ts"))
    return user_id(body), channel or None, ts or None, text(first_action(body).get("value"))
