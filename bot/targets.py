"""Whom a run is for: a person (``UserTarget``) or a device (``DeviceTarget``), as the requester named them,
and ``Target``, one of them resolved.

These are the plain values the Slack layer reads from a command or a form and the core resolves
through Nexthink (``bot.runs``, or a saved query's rows: ``bot.query_targets``); nothing here
knows where they were typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.nexthink.models import DeviceData, UserData

__all__ = ["DeviceTarget", "Target", "UserTarget"]


@dataclass(frozen=True)
class Target:
    """One resolved target: what Nexthink receives and how a person reads it."""

    label: str
    user: UserData | None = None
    device: DeviceData | None = None
    #: the Slack user this target is, when known (a mention, or the person asked for consent)
    person: str | None = None


@dataclass(frozen=True)
class UserTarget:
    kind: Literal["mention", "upn", "sid"]
    value: str  #: a Slack user id for a mention


@dataclass(frozen=True)
class DeviceTarget:
    kind: Literal["collector_uid", "name"]
    value: str  #: a collectorUid is lower case
