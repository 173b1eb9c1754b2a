"""The sandbox's saved NQL queries that list devices or users: what a fleet run targets.

Nexthink runs only queries saved in its administration (``POST /api/v2/nql/execute`` with a
``queryId``). The sandbox knows two kinds: the ones saved here (``SavedQueries``), which answer
their rows, and any other well-formed id, which answers as the execution status query (by
``request_id``, see ``bot.sandbox.api``). Every answer stops at ``NQL_MAX_ROWS`` (1,000) rows,
silently, as Nexthink's NQL API is reported to.

Seeded (``SavedQueries.seeded``):

- ``#low_disk_devices``: LAPTOP-BOB, LAPTOP-CAROL and KIOSK-LOBBY (``device.name``,
  ``device.collector.uid``);
- ``#vip_users``: alice and carol (``user.upn``, ``user.sid``).

``add_fleet(catalogue, queries, query_id, count)`` adds ``count`` devices ``FLEET-00001`` … to
the catalogue (so that their executions succeed) and a saved query listing them, optionally
with ``missing`` rows naming devices the tenant does not have (their executions fail "not
found"): how the tests and ``bench/fleet.py`` make a fleet of 10, 999 or 1,500 devices.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.nexthink.models import NQL_MAX_ROWS
from bot.sandbox.catalogue import SandboxCatalogue, SandboxDevice

__all__ = ["SavedQueries", "SavedQuery", "add_fleet"]

_DEVICE_COLUMNS = ("device.name", "device.collector.uid")
_USER_COLUMNS = ("user.upn", "user.sid")


@dataclass(frozen=True)
class SavedQuery:
    query_id: str
    headers: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]

    def answer(self) -> dict[str, Any]:
        """The NQL execute's answer: at most ``NQL_MAX_ROWS`` rows, nothing said of the rest."""
        data = [dict(r) for r in self.rows[:NQL_MAX_ROWS]]
        return {
            "queryId": self.query_id,
            "executedQuery": f"(saved query {self.query_id})",
            "rows": len(data),
            "executionDateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "headers": list(self.headers),
            "data": data,
        }


@dataclass
class SavedQueries:
    """Saved queries by id (with its ``#``)."""

    queries: dict[str, SavedQuery] = field(default_factory=dict)

    def add(
        self, query_id: str, rows: list[dict[str, Any]], headers: tuple[str, ...] = ()
    ) -> SavedQuery:
        query_id = "#" + query_id.removeprefix("#")
        names = headers or tuple(dict.fromkeys(k for r in rows for k in r))
        saved = SavedQuery(query_id, names, tuple(dict(r) for r in rows))
        self.queries[query_id] = saved
        return saved

    def get(self, query_id: str) -> SavedQuery | None:
        return self.queries.get(query_id)

    @classmethod
    def seeded(cls, catalogue: SandboxCatalogue) -> SavedQueries:
        queries = cls()
        devices = [
            catalogue.find_device(name=n) for n in ("LAPTOP-BOB", "LAPTOP-CAROL", "KIOSK-LOBBY")
        ]
        queries.add(
            "#low_disk_devices",
            [
                {"device.name": d.name, "device.collector.uid": d.collector_uid}
                for d in devices
                if d
            ],
            _DEVICE_COLUMNS,
        )
        users = [catalogue.find_user(upn=u) for u in ("alice@example.com", "carol@example.com")]
        queries.add(
            "#vip_users",
            [{"user.upn": u.upn, "user.sid": u.sid} for u in users if u],
            _USER_COLUMNS,
        )
        return queries


def add_fleet(
    catalogue: SandboxCatalogue,
    queries: SavedQueries,
    query_id: str,
    count: int,
    *,
    missing: int = 0,
    prefix: str = "FLEET",
) -> SavedQuery:
    """``count`` new devices in the catalogue and a saved query listing them by name and
    Collector UUID, then ``missing`` rows of devices that do not exist."""
    start = sum(1 for d in catalogue.devices if d.name.startswith(prefix + "-"))
    seen = datetime(2025, 6, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    for n in range(start + 1, start + count + 1):
        device = SandboxDevice(f"{prefix}-{n:05d}", str(uuid.uuid4()), str(uuid.uuid4()), seen)
        catalogue.devices.append(device)
        catalogue.fleet[device.name.lower()] = device
        catalogue.fleet[device.collector_uid] = device
        rows.append({"device.name": device.name, "device.collector.uid": device.collector_uid})
    for n in range(1, missing + 1):
        rows.append({"device.name": f"GONE-{prefix}-{n:05d}", "device.collector.uid": ""})
    return queries.add(query_id, rows, _DEVICE_COLUMNS)
