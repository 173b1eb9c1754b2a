"""Fleet runs: the targets a saved NQL query returns (``/nexthink run <workflow> query:#id``).

``query_targets`` runs the query (``POST /api/v2/nql/execute``, no parameters) and reads one
target per row, as PRODUCT.md says: a column whose name ends in ``collector_uid``, ``uid`` or
``name`` is a device, one ending in ``upn`` or ``sid`` a user (``device.collector.uid``,
``device.name``, ``user.upn`` all work: names are compared lower case, with every run of
punctuation read as ``_``). A row with a device column is a device (the most precise identifier
is sent: Collector UUID, then UID, then name); otherwise a user (SID, then UPN). A row with no
usable value is left out and counted (``FleetTargets.skipped``); the same target twice is one.

Refused before anything runs (``QueryUnusable``, whose ``message`` is mrkdwn ready to show):
an answer of ``NQL_MAX_ROWS`` (1,000) rows or more, which NQL may have cut short without saying
so (the bot never runs on part of a fleet: narrow the query); no rows; rows without any column
the bot can read. Nothing here decides who may: that is ``Policy.may_target_query``, called by
``bot.runs.Runner``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bot.nexthink.client import NexthinkClient
from bot.nexthink.models import NQL_MAX_ROWS, DeviceData, UserData, is_uuid
from bot.policy import Policy, Principal
from bot.policy.mrkdwn import code
from bot.targets import Target

__all__ = ["FleetTargets", "QueryUnusable", "query_targets", "read_targets"]

_DEVICE_SUFFIXES = ("collector_uid", "uid", "name")
_USER_SUFFIXES = ("sid", "upn")


class QueryUnusable(Exception):
    """The query's answer cannot be run on; ``message`` (mrkdwn) says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class FleetTargets:
    query_id: str
    targets: tuple[Target, ...]  #: labelled with the device name or the UPN when the row has one
    rows: int  #: rows the query answered
    skipped: int = 0  #: rows without a usable device or user

    @property
    def devices(self) -> int:
        return sum(1 for t in self.targets if t.device is not None)

    @property
    def users(self) -> int:
        return sum(1 for t in self.targets if t.user is not None)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.casefold()).strip("_")


def _columns(row: Mapping[str, Any]) -> dict[str, str]:
    """identifier (``collector_uid``, ``uid``, ``name``, ``sid``, ``upn``) → the row's key."""
    found: dict[str, str] = {}
    for key in row:
        name = _norm(str(key))
        user_column = name == "user" or name.startswith("user_")
        for suffix in _USER_SUFFIXES:
            if name.endswith(suffix):
                found.setdefault(suffix, key)
                break
        else:
            if user_column:  # user.name, user.uid: not a device, and not what PRODUCT names
                continue
            for suffix in _DEVICE_SUFFIXES:
                if name.endswith(suffix):
                    found.setdefault(suffix, key)
                    break
    return found


def _value(row: Mapping[str, Any], key: str | None) -> str | None:
    if key is None:
        return None
    value = row.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _device(row: Mapping[str, Any], columns: Mapping[str, str]) -> Target | None:
    name = _value(row, columns.get("name"))
    for field in ("collector_uid", "uid"):
        value = _value(row, columns.get(field))
        if value is not None and is_uuid(value):
            data = DeviceData(**{field: value.lower()})
            return Target(label=name or f"device {value.lower()}", device=data)
    if name is not None:
        try:
            return Target(label=name, device=DeviceData(name=name))
        except ValidationError:
            return None
    return None


def _user(row: Mapping[str, Any], columns: Mapping[str, str]) -> Target | None:
    upn = _value(row, columns.get("upn"))
    sid = _value(row, columns.get("sid"))
    for data in (
        {"sid": sid} if sid else None,
        {"upn": upn} if upn else None,
    ):
        if data is None:
            continue
        try:
            user = UserData(**data)
        except ValidationError:
            continue
        return Target(label=upn or f"SID {sid}", user=user)
    return None


def read_targets(query_id: str, rows: Sequence[Mapping[str, Any]]) -> FleetTargets:
    """The targets in a query's ``data`` rows; ``QueryUnusable`` when there is nothing to run on
    or the answer may be cut short."""
    shown = code(query_id)
    if len(rows) >= NQL_MAX_ROWS:
        raise QueryUnusable(
            f"The query {shown} returned {len(rows):,} rows, the most Nexthink's NQL API answers, "
            "so its answer may be cut short and the bot does not run on part of a fleet. Narrow the "
            f"query (a `where` that keeps fewer than {NQL_MAX_ROWS:,} rows), or split it into several."
        )
    if not rows:
        raise QueryUnusable(f"The query {shown} returned no rows: there is nothing to run on.")
    targets: dict[str, Target] = {}
    skipped = 0
    seen_columns: set[str] = set()
    for row in rows:
        if not isinstance(row, Mapping):
            skipped += 1
            continue
        seen_columns.update(str(k) for k in row)
        columns = _columns(row)
        found = None
        if any(c in columns for c in _DEVICE_SUFFIXES):
            found = _device(row, columns)
        if found is None and any(c in columns for c in _USER_SUFFIXES):
            found = _user(row, columns)
        if found is None:
            skipped += 1
            continue
        data = found.device or found.user
        assert data is not None
        key = ("d" if found.device else "u") + repr(sorted(data.to_json().items()))
        targets.setdefault(key, found)
    if not targets:
        names = ", ".join(code(c) for c in sorted(seen_columns)[:8]) or "none"
        raise QueryUnusable(
            f"The query {shown} returned {len(rows):,} row{'' if len(rows) == 1 else 's'} but no "
            "device or user the bot can "
            f"read (columns: {names}). A fleet query lists devices (a column ending in "
            "`collector_uid`, `uid` or `name`, such as `device.name`) or users (`upn` or `sid`, "
            "such as `user.upn`)."
        )
    return FleetTargets(query_id, tuple(targets.values()), rows=len(rows), skipped=skipped)


async def query_targets(
    nexthink: NexthinkClient,
    policy: Policy,
    principal: Principal,
    channel_id: str | None,
    nql_id: str,
    query_id: str,
) -> FleetTargets:
    """``Policy.may_target_query`` first (a role that may not gets ``QueryUnusable`` and no
    query is sent), then the saved query's targets (``NexthinkError`` when Nexthink fails)."""
    decision = policy.may_target_query(principal, channel_id, nql_id, query_id)
    if not decision.allowed:
        raise QueryUnusable(decision.reason)
    result = await nexthink.nql_query(query_id, {})
    return read_targets(query_id, result.rows)
