"""The CPU floor of a run command's work after the ack: what its libraries cost with no bot around.

    ./dev python bench/floor.py [--commands 3000] [--in-flight 50]

Once a ``/nexthink run`` is acknowledged, the bot (``bench/end_to_end.py`` measures it) records
the request, sends the V2 execute, records the answer and replies on the response URL. This
script does the same work through the same libraries, and nothing else: no policy, no records
or messages built, no tasks, metrics or redaction. Per command:

- ``store``: the two write transactions the store sends, on a SQLite file in WAL mode with the
  bot's schema and pragmas (``Store.open`` creates it): the request's INSERT with its
  ``run_requested`` event; then the executions' link, the UPDATE ... RETURNING of the request
  and its ``executed`` event. The SQL is SQLAlchemy's, compiled once from the bot's statements;
  each value goes through SQLAlchemy's bind processors and the returned row through its result
  processors; each transaction is one call on aiosqlite's thread (BEGIN IMMEDIATE ... COMMIT),
  as the store makes it (``bot.store.direct``).
- ``nexthink``: one POST of a V2 execute body (with a 1,000-character bearer token, the size of
  a real one) through httpx on the client's aiohttp transport (``bot.nexthink.transport``), the
  JSON answer read.
- ``audit lines``: two JSON lines through structlog and stdlib logging into a file.
- ``reply``: one POST of a result message (text and three blocks) through slack_sdk's
  ``AsyncWebhookClient`` on a pooled aiohttp session, as ``handlers.delivery`` sends it.

A plain aiohttp server in another process answers the execute and the reply. The figure is this
process's CPU time (``time.process_time``, aiosqlite's thread included) per command with
``--in-flight`` commands at once, after a warm-up; each part alone and all four together, in
rounds that alternate, twice. The difference between ``all`` and end_to_end's "CPU per command
after the ack" is the bot's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import httpx
import structlog
from _support import machine_lines, served
from aiohttp import web
from slack_sdk.webhook.async_client import AsyncWebhookClient
from sqlalchemy.ext.asyncio import create_async_engine

from bot.nexthink.transport import AiohttpTransport
from bot.store.audit import _PREPARED as AUDIT_INSERT
from bot.store.direct import _on_sqlite_thread
from bot.store.requests import _INSERT as REQUEST_INSERT
from bot.store.requests import _LINK, _update
from bot.store.store import Store

EXECUTE = "/api/v2/workflows/execute"
HOOK = "/hooks/reply"
BODY = {"workflowId": "restart_teams", "users": [{"upn": "bench001@example.com"}], "params": {}}
HEADERS = {
    "Accept": "application/json",
    "Authorization": "Bearer " + "x" * 1000,
    "Source": "slack-chatops",
}
REPLY: dict[str, Any] = {
    "text": "restart_teams was sent to Nexthink for bench001@example.com.",
    "response_type": "ephemeral",
    "replace_original": False,
    "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*restart_teams* was sent."}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "1 user · request r-1"}]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Status"},
                    "action_id": "status",
                    "value": "r-1",
                }
            ],
        },
    ],
}
PARTS = ("store", "nexthink", "audit lines", "reply")


def _serve(port: int) -> None:
    async def execute(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"requestUuid": str(uuid.uuid4()), "executionsUuids": ["e-1"]})

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(EXECUTE, execute)
    app.router.add_post(HOOK, hook)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class Work:
    """The four parts of a run's work after the ack, each callable alone."""

    def __init__(self, base: str, db: aiosqlite.Connection, log_file: Path) -> None:
        self.base = base
        #: used as the store uses it: one call on its thread per batch (``_execute``, private)
        self.db: Any = db
        #: SQLite takes one writer at a time: the store's write lock, as in ``StoreBase``
        self.write_lock = asyncio.Lock()
        self.dialect = create_async_engine("sqlite+aiosqlite://").dialect
        self.http = httpx.AsyncClient(
            base_url=base, transport=AiohttpTransport(), timeout=httpx.Timeout(30.0)
        )
        self.session = aiohttp.ClientSession()
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("floor")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
        self.log = structlog.get_logger("floor")
        self.update = _update(
            ("executions_uuids", "nexthink_request_uuids", "state", "updated_at")
        ).compiled(self.dialect)

    async def close(self) -> None:
        await self.http.aclose()
        await self.session.close()

    def _audit(self, event: str, request_id: str, at: datetime) -> tuple[Any, ...]:
        return AUDIT_INSERT.compiled(self.dialect).args(
            {
                "occurred_at": at,
                "event": event,
                "actor": "U0BENCH001",
                "actor_upn": "bench001@example.com",
                "workflow": "restart_teams",
                "targets": [{"kind": "user", "upn": "bench001@example.com"}],
                "params": {},
                "ticket": None,
                "request_uuid": None,
                "execution_uuids": [],
                "result": None,
                "detail": None,
                "request_id": request_id,
                "enterprise_id": None,
                "team_id": "T0BENCH",
            }
        )

    async def store_first(self, request_id: str) -> None:
        at = datetime.now(UTC)
        insert = REQUEST_INSERT.compiled(self.dialect)
        row = insert.args(
            {
                "id": request_id,
                "kind": "run",
                "created_at": at,
                "updated_at": at,
                "team_id": "T0BENCH",
                "enterprise_id": None,
                "channel_id": "D0BENCH",
                "user_id": "U0BENCH001",
                "user_upn": "bench001@example.com",
                "workflow_id": "restart_teams",
                "targets": [{"kind": "user", "upn": "bench001@example.com"}],
                "params": {},
                "state": "pending",
                "nexthink_request_uuids": [],
                "executions_uuids": [],
                "error": None,
                "approved_by": [],
                "response_url": None,
                "message_channel": None,
                "message_ts": None,
                "ticket": None,
            }
        )
        steps = [
            (insert.sql, row, False),
            (
                AUDIT_INSERT.compiled(self.dialect).sql,
                self._audit("run_requested", request_id, at),
                False,
            ),
        ]
        async with self.write_lock:
            await self.db._execute(_on_sqlite_thread, self.db._conn, True, steps, True)

    async def store_second(self, request_id: str, execution: str) -> None:
        at = datetime.now(UTC)
        link = _LINK.compiled(self.dialect)
        steps = [
            (
                link.sql,
                link.args(
                    {"execution_uuid": execution, "request_id": request_id, "created_at": at}
                ),
                False,
            ),
            (
                self.update.sql,
                self.update.args(
                    {
                        "executions_uuids_": [execution],
                        "nexthink_request_uuids_": ["r-1"],
                        "state_": "sent",
                        "updated_at_": at,
                        "request_id_": request_id,
                    }
                ),
                False,
            ),
        ]
        audit = [
            (
                AUDIT_INSERT.compiled(self.dialect).sql,
                self._audit("executed", request_id, at),
                False,
            )
        ]
        async with self.write_lock:
            rows = await self.db._execute(_on_sqlite_thread, self.db._conn, True, steps, False)
            self.update.row(rows[0])
            await self.db._execute(_on_sqlite_thread, self.db._conn, False, audit, True)

    async def nexthink(self) -> str:
        answer = (await self.http.post(EXECUTE, json=BODY, headers=HEADERS)).json()
        return str(answer["executionsUuids"][0])

    def line(self, event: str, request_id: str) -> None:
        self.log.info(event, request_id=request_id, workflow="restart_teams", actor="U0BENCH001")

    async def reply(self) -> None:
        webhook = AsyncWebhookClient(self.base + HOOK, session=self.session)
        await webhook.send_dict(REPLY)

    def command(self, part: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            request_id = str(uuid.uuid4())
            execution = str(uuid.uuid4())
            if part in ("all", "store"):
                await self.store_first(request_id)
            if part in ("all", "audit lines"):
                self.line("run_requested", request_id)
            if part in ("all", "nexthink"):
                await self.nexthink()
            if part in ("all", "store"):
                await self.store_second(request_id, execution)
            if part in ("all", "audit lines"):
                self.line("executed", request_id)
            if part in ("all", "reply"):
                await self.reply()

        return run


async def _round(run: Callable[[], Awaitable[None]], commands: int, in_flight: int) -> float:
    gate = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with gate:
            await run()

    await asyncio.gather(*(one() for _ in range(200)))
    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(commands)))
    return (time.process_time() - started) / commands


async def _measure(args: argparse.Namespace, base: str, workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'floor.db'}"
    store = await Store.open(url)  # the bot's schema, WAL mode
    await store.close()
    db = await aiosqlite.connect(workdir / "floor.db", isolation_level=None)
    await db.execute("PRAGMA busy_timeout = 10000")
    await db.execute("PRAGMA synchronous = NORMAL")
    await db.execute("PRAGMA foreign_keys = ON")
    work = Work(base, db, workdir / "floor.log")
    try:
        figures: dict[str, list[float]] = {part: [] for part in ("all", *PARTS)}
        for _ in range(2):
            for part in figures:
                figures[part].append(
                    await _round(work.command(part), args.commands, args.in_flight)
                )
        mean = {part: statistics.mean(v) * 1e3 for part, v in figures.items()}
        for part in PARTS:
            print(f"  {part:12s} {mean[part]:.2f} ms  (rounds: {_rounds(figures[part])})")
        print(f"  {'sum':12s} {sum(mean[p] for p in PARTS):.2f} ms")
        print(
            f"  {'all':12s} {mean['all']:.2f} ms  (rounds: {_rounds(figures['all'])}): "
            "the floor; the bot's 'CPU per command after the ack' (goal <= 2 ms) less this is "
            "the bot's own work"
        )
    finally:
        await work.close()
        await db.close()


def _rounds(values: list[float]) -> str:
    return ", ".join(f"{v * 1e3:.2f}" for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=3000, help="commands per round")
    parser.add_argument("--in-flight", type=int, default=50, help="commands at once (default 50)")
    args = parser.parse_args()
    print(
        f"bench/floor.py: {args.commands} commands per round, {args.in_flight} in flight, each "
        "part alone and all together, two rounds alternating; CPU of this process per command "
        "(the server is another process)"
    )
    for line in machine_lines():
        print(line)
    try:
        with served(_serve, HOOK) as base, tempfile.TemporaryDirectory(prefix="floor-") as tmp:
            asyncio.run(_measure(args, base, Path(tmp)))
    except RuntimeError as exc:
        print(f"bench/floor.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
