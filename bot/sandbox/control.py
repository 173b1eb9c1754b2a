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
=======  ===========================  =====================================================

``POST /_sandbox/faults`` takes JSON (a spec string, an object with ``endpoint``, ``kind``,
``times``, ``retry_after``, ``delay``, ``processed``, or a list of those), or plain text with one
spec per line, or ``?fault=SPEC`` query parameters:

    curl -X POST localhost:8088/_sandbox/faults -d 'execute_v2:429:times=2:retry_after=1'

Faults are added all or none. These routes need no token and are never faulted or journaled.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from bot.sandbox.catalogue import PAUSING_WORKFLOW_ID, SandboxCatalogue
from bot.sandbox.executions import Execution
from bot.sandbox.faults import ENDPOINTS, FAULT_KINDS, Fault, FaultSet, parse_fault
from bot.sandbox.journal import JournalEntry

__all__ = ["CONTROL_PREFIX", "ControlledSandbox", "SandboxControl"]

CONTROL_PREFIX = "/_sandbox"


class ControlledSandbox(Protocol):
    """What the switches read and change (`bot.sandbox.server.Sandbox` is one)."""

    catalogue: SandboxCatalogue
    faults: FaultSet
    journal: list[JournalEntry]

    @property
    def url(self) -> str: ...

    @property
    def client_id(self) -> str: ...

    @property
    def webhook_url(self) -> str | None: ...

    @property
    def executions(self) -> dict[str, Execution]: ...

    def expire_tokens(self) -> int: ...


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
