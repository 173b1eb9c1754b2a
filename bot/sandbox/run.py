"""``nexthink-bot sandbox``: serve the sandbox until cancelled, saying how to use it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from bot.sandbox.catalogue import PAUSING_WORKFLOW_ID
from bot.sandbox.faults import Fault, parse_fault
from bot.sandbox.server import Sandbox

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "DEFAULT_PORT", "run_sandbox"]

DEFAULT_PORT = 8088
DEFAULT_CLIENT_ID = "sandbox"
DEFAULT_CLIENT_SECRET = "sandbox"


async def run_sandbox(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    faults: Sequence[str | Fault] = (),
    webhook_url: str | None = None,
    webhook_token: str | None = None,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    token_lifetime: float = 900.0,
    execution_delay: float = 2.0,
    without_v2: bool = False,
    out: Callable[[str], None] = print,
) -> None:
    """Serve a sandbox on ``host:port`` until cancelled; ``out`` gets a few lines of usage, the
    first naming the URL, the credentials and the fault switch, then one line per request
    served and per wait question posted.

    Fault specs are parsed before anything starts: a bad one raises ``ValueError`` whose message
    says how to write it (for the CLI to print as a usage error).
    """
    parsed = [parse_fault(f) if isinstance(f, str) else f for f in faults]
    sandbox = Sandbox(
        client_id=client_id,
        client_secret=client_secret,
        token_lifetime=token_lifetime,
        webhook_url=webhook_url,
        webhook_token=webhook_token,
        execution_delay=execution_delay,
        faults=parsed,
        without_v2=without_v2,
        report=lambda line: out(f"{datetime.now().strftime('%H:%M:%S')} {line}"),
    )
    url = await sandbox.start(host, port)
    try:
        secret = client_secret if client_secret == DEFAULT_CLIENT_SECRET else "(as given)"
        out(
            f"Nexthink sandbox on {url} - client id {client_id!r}, secret {secret!r} - "
            f"fault switch: curl -X POST {url}/_sandbox/faults -d 'execute_v2:429:times=2'"
        )
        shown = client_secret if client_secret == DEFAULT_CLIENT_SECRET else "..."
        out(
            f"  point the bot at it: NEXTHINK_BASE_URL={url} NEXTHINK_CLIENT_ID={client_id} "
            f"NEXTHINK_CLIENT_SECRET={shown}"
        )
        workflows = ", ".join(w.id for w in sandbox.catalogue.workflows)
        out(f"  workflows: {workflows}; {PAUSING_WORKFLOW_ID} pauses for a decision")
        users = ", ".join(sorted({u.upn for u in sandbox.catalogue.users}))
        out(f"  users: {users}")
        if webhook_url:
            out(f"  paused executions post their question to {webhook_url}")
        else:
            out("  no webhook: paused executions wait silently (see GET /_sandbox/executions)")
        if without_v2:
            out(
                "  no V2 execute: POST /api/v2/workflows/execute answers 404 (V1 is served); "
                f"restore it with curl -X POST {url}/_sandbox/api -d with-v2"
            )
        for fault in parsed:
            out(f"  fault armed: {fault.spec()}")
        out(f"  more: GET {url}/_sandbox (journal, catalogue, executions, token expiry)")
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()
