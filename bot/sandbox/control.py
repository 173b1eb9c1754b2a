"""The sandbox's own switches, for a person pointing the bot at a sandbox in another process.

=======  ===========================  =====================================================
method   path                         effect
=======  ===========================  =====================================================
GET      ``/_sandbox``                what this is: endpoints, fault syntax, seeded ids
GET      ``/_sandbox/faults``         the armed faults (with uses remaining)
POST     ``/_sandbox/faults``         arm faults; 201 with what was added, 400 ``{"error"}``
DELETE   ``/_sandbox/faults``         disarm every fault: ``{"cleared": n}``
GET      ``/_sandbox/journal``        requests received (``?endpoint=execute_v2``), credentials masked
DELETE   ``/_sandbox/journal``        forget them
POST     ``/_sandbox/tokens/expire``  every token issued so far answers 401
GET      ``/_sandbox/catalogue``      seeded workflows (with dependency), users, devices
GET      ``/_sandbox/executions``     executions (``?request_id=``)
GET      ``/_sandbox/queries``        saved NQL queries listing targets: ``{id: rows}``
POST     ``/_sandbox/queries``        ``{"queryId": "#fleet", "devices": 999, "missing": 0}``:
                                     that many new devices and a saved query listing them
=======  ===========================  =====================================================

``POST /_sandbox/faults`` takes JSON (a spec string, an object with ``endpoint``, ``kind``,
``times``, ``retry_after``, ``delay``, ``processed``, or a list of those), or plain text with one
spec per line, or ``?fault=SPEC`` query parameters:

    curl -X POST localhost:8088/_sandbox/faults -d 'execute_v2:429:times=2:retry_after=1'

Faults are added all or none. These routes need no token and are never faulted or journaled.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from aiohttp import web

from bot.sandbox.catalogue import PAUSING_WORKFLOW_ID, SandboxCatalogue
from bot.sandbox.executions import Execution
from bot.sandbox.faults import ENDPOINTS, FAULT_KINDS, Fault, FaultSet, parse_fault
from bot.sandbox.journal import JournalEntry
from bot.sandbox.queries import SavedQueries, SavedQuery

__all__ = ["CONTROL_PREFIX", "ControlledSandbox", "SandboxControl"]

CONTROL_PREFIX = "/_sandbox"


class ControlledSandbox(Protocol):
    """What the switches read and change (`bot.sandbox.server.Sandbox` is one)."""

    catalogue: SandboxCatalogue
    faults: FaultSet
    journal: list[JournalEntry]
    queries: SavedQueries

    @property
    def url(self) -> str: ...

    @property
    def client_id(self) -> str: ...

    @property
    def webhook_url(self) -> str | None: ...

    @property
    def executions(self) -> dict[str, Execution]: ...

    def expire_tokens(self) -> int: ...

    def add_fleet(self, query_id: str, count: int, *, missing: int = 0) -> SavedQuery: ...


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


class SandboxControl:
    def __init__(self, sandbox: ControlledSandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        p = CONTROL_PREFIX
        return [
            web.get(p, self.index, allow_head=False),
            web.get(f"{p}/faults", self.list_faults, allow_head=False),
            web.post(f"{p}/faults", self.add_faults),
            web.delete(f"{p}/faults", self.clear_faults),
            web.get(f"{p}/journal", self.journal, allow_head=False),
            web.delete(f"{p}/journal", self.clear_journal),
            web.post(f"{p}/tokens/expire", self.expire_tokens),
            web.get(f"{p}/catalogue", self.catalogue, allow_head=False),
            web.get(f"{p}/executions", self.executions, allow_head=False),
            web.get(f"{p}/queries", self.list_queries, allow_head=False),
            web.post(f"{p}/queries", self.add_query),
        ]

    async def index(self, request: web.Request) -> web.Response:
        sb = self.sandbox
        return _json(
            {
                "sandbox": "Nexthink Workflows API stand-in",
                "url": sb.url,
                "tokenUrl": f"{sb.url}/oauth2/default/v1/token",
                "clientId": sb.client_id,
                "endpoints": list(ENDPOINTS),
                "faultKinds": list(FAULT_KINDS),
                "faultSyntax": "ENDPOINT:KIND[:times=N|always][:retry_after=S][:delay=S][:processed=true]",
                "pausingWorkflow": PAUSING_WORKFLOW_ID,
                "workflows": [w.id for w in sb.catalogue.workflows],
                "webhookUrl": sb.webhook_url,
            }
        )

    async def list_faults(self, request: web.Request) -> web.Response:
        return _json({"faults": self.sandbox.faults.to_json()})

    async def add_faults(self, request: web.Request) -> web.Response:
        try:
            faults = await _faults_from(request)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        if not faults:
            return _json({"error": "no fault given; send e.g. execute_v2:429:times=2"}, 400)
        for fault in faults:
            self.sandbox.faults.add(fault)
        return _json(
            {
                "added": [fault.to_json() for fault in faults],
                "faults": self.sandbox.faults.to_json(),
            },
            201,
        )

    async def clear_faults(self, request: web.Request) -> web.Response:
        return _json({"cleared": self.sandbox.faults.clear()})

    async def journal(self, request: web.Request) -> web.Response:
        endpoint = request.query.get("endpoint")
        entries = self.sandbox.journal
        if endpoint:
            entries = [entry for entry in entries if entry.endpoint == endpoint]
        return _json({"entries": [entry.to_json() for entry in entries]})

    async def clear_journal(self, request: web.Request) -> web.Response:
        count = len(self.sandbox.journal)
        self.sandbox.journal.clear()
        return _json({"cleared": count})

    async def expire_tokens(self, request: web.Request) -> web.Response:
        return _json({"expired": self.sandbox.expire_tokens()})

    async def catalogue(self, request: web.Request) -> web.Response:
        return _json(self.sandbox.catalogue.to_json())

    async def executions(self, request: web.Request) -> web.Response:
        request_id = request.query.get("request_id")
        found = [
            e.to_json()
            for e in self.sandbox.executions.values()
            if not request_id or e.request_uuid == request_id
        ]
        return _json({"executions": found})

    async def list_queries(self, request: web.Request) -> web.Response:
        return _json({q.query_id: len(q.rows) for q in self.sandbox.queries.queries.values()})

    async def add_query(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text() or "null")
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        query_id, devices, missing = (
            body.get("queryId"),
            body.get("devices"),
            body.get("missing", 0),
        )
        if not (
            isinstance(query_id, str)
            and _QUERY_ID.match("#" + query_id.removeprefix("#"))
            and isinstance(devices, int)
            and isinstance(missing, int)
            and 0 <= devices <= 20_000
            and 0 <= missing <= 20_000
        ):
            return _json(
                {
                    "error": 'send {"queryId": "#fleet", "devices": 999, "missing": 0} (at most 20,000)'
                },
                400,
            )
        saved = self.sandbox.add_fleet(query_id, devices, missing=missing)
        return _json({"queryId": saved.query_id, "rows": len(saved.rows)}, 201)


_QUERY_ID = re.compile(r"^#[a-z0-9_]{2,255}$")


async def _faults_from(request: web.Request) -> list[Fault]:
    specs: list[Any] = list(request.query.getall("fault", []))
    text = (await request.text()).strip()
    if text:
        if request.content_type == "application/json":
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"the body is not JSON: {exc}") from None
            if isinstance(data, dict) and isinstance(data.get("faults"), list):
                data = data["faults"]
            specs += data if isinstance(data, list) else [data]
        else:
            specs += [line for line in text.splitlines() if line.strip()]
    faults: list[Fault] = []
    for spec in specs:
        if isinstance(spec, str):
            faults.append(parse_fault(spec))
        elif isinstance(spec, dict):
            faults.append(Fault.from_json(spec))
        else:
            raise ValueError(f"a fault is a spec string or an object, got {spec!r}")
    return faults
