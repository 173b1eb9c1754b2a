"""Which computer: a person's devices, from the NQL query ``NEXTHINK_DEVICES_QUERY_ID``.

The query takes ``$upn`` and returns one row per device; the bot reads the columns whose names
end in ``collector_uid`` (else ``uid``), ``name`` and ``last_seen`` (``device.collector.uid``
reads as ``device_collector_uid``). Devices come back most recently seen first. Answers are
cached per person for ``ttl`` seconds; a failing query is not cached and gives a ``DeviceList``
whose ``problem`` says what went wrong, so that callers fall back to Nexthink's own choice (the
person's most recently seen device) with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.logging import get_logger
from bot.nexthink.client import NexthinkClient
from bot.nexthink.errors import NexthinkError
from bot.nexthink.models import DeviceData, is_uuid

__all__ = ["Device", "DeviceList", "Devices", "read_devices"]

log = get_logger(__name__)

#: the most devices kept per person (a menu shows at most 100 options anyway)
MAX_DEVICES = 50


@dataclass(frozen=True)
class Device:
    name: str | None
    collector_uid: str | None
    last_seen: datetime | None = None

    @property
    def label(self) -> str:
        return self.name or self.collector_uid or "?"

    def data(self) -> DeviceData:
        """What Nexthink receives for this device: its Collector UUID when known (exactly this
        device, even when another has the same name), else its name."""
        if self.collector_uid:
            return DeviceData(collector_uid=self.collector_uid)
        return DeviceData(name=self.name)

    def matches(self, value: str) -> bool:
        folded = value.casefold()
        return folded in {(self.name or "").casefold(), (self.collector_uid or "").casefold()}


@dataclass(frozen=True)
class DeviceList:
    """A person's devices, most recently seen first; ``problem`` when the query failed."""

    devices: tuple[Device, ...] = ()
    problem: str | None = None

    def find(self, value: str) -> Device | None:
        return next((d for d in self.devices if d.matches(value)), None)

    @property
    def latest(self) -> Device | None:
        return self.devices[0] if self.devices else None


def _key(name: str) -> str:
    return name.strip().lower().replace(".", "_").replace(" ", "_")


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _row(row: Mapping[str, Any]) -> Device | None:
    name = uid = collector = None
    seen: datetime | None = None
    for column, value in row.items():
        key = _key(str(column))
        text = str(value).strip() if isinstance(value, str | int) else ""
        if key.endswith("collector_uid"):
            collector = text or collector
        elif key.endswith("last_seen"):
            seen = _when(value)
        elif key.endswith("uid"):
            uid = text or uid
        elif key.endswith("name"):
            name = text or name
    chosen = collector or uid
    chosen = chosen.lower() if chosen and is_uuid(chosen) else None
    if not name and not chosen:
        return None
    return Device(name=name or None, collector_uid=chosen, last_seen=seen)


def read_devices(rows: Iterable[Mapping[str, Any]]) -> tuple[Device, ...]:
    """The rows' devices, most recently seen first, each once."""
    found: dict[str, Device] = {}
    for row in rows:
        device = _row(row)
        if device is None:
            continue
        key = (device.collector_uid or device.name or "").casefold()
        old = found.get(key)
        if old is None or (device.last_seen or _EPOCH) > (old.last_seen or _EPOCH):
            found[key] = device
    ordered = sorted(found.values(), key=lambda d: d.last_seen or _EPOCH, reverse=True)
    return tuple(ordered[:MAX_DEVICES])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Devices:
    """The devices query; ``enabled`` only with ``NEXTHINK_DEVICES_QUERY_ID`` set."""

    def __init__(
        self,
        nexthink: NexthinkClient,
        query_id: str | None,
        *,
        ttl: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nexthink = nexthink
        self.query_id = query_id
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, DeviceList]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.query_id)

    async def of(self, upn: str) -> DeviceList:
        """``upn``'s devices (cached); never raises for Nexthink's failures."""
        if not self.query_id:
            return DeviceList(problem="no devices query is configured")
        key = upn.casefold()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        try:
            rows = await self._nexthink.nql(self.query_id, {"upn": upn})
        except NexthinkError as exc:
            log.warning("devices_query_failed", error=exc.summary)
            return DeviceList(problem=exc.summary)
        found = DeviceList(read_devices(rows))
        if self._ttl > 0:
            if len(self._cache) > 10_000:  # bounded: old entries go first
                self._cache.clear()
            self._cache[key] = (self._clock() + self._ttl, found)
        return found
