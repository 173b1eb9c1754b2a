"""Whom a run is for: a person (``UserTarget``) or a device (``DeviceTarget``), as the requester named them.

These are the plain values the Slack layer reads from a command or a form and the core resolves
through Nexthink (``bot.runs``); nothing here knows where they were typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DeviceTarget", "UserTarget"]


@dataclass(frozen=True)
class UserTarget:
    kind: Literal["mention", "upn", "sid"]
    value: str  #: a Slack user id for a mention


@dataclass(frozen=True)
class DeviceTarget:
    kind: Literal["collector_uid", "name"]
    value: str  #: a collectorUid is lower case
