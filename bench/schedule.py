"""10,000 scheduled runs falling due within one minute: run once each, at Nexthink's pace,
without piling up in memory.

    ./dev python bench/schedule.py [--runs 10000] [--window 60] [--pace 40] [--concurrency 4]
                                   [--database postgresql://postgres@127.0.0.1:5432/test]

Starts, each in its own process: a LocalSlack (``bench/_slack_server.py``, 100 people), the
Nexthink sandbox, and one ``nexthink-bot serve`` (HTTP mode, a policy that lets everyone
schedule ``restart_teams``) on SQLite (a file in its directory) or, with ``--database
postgresql://…``, on PostgreSQL (a role and schema of its own, made for the run and dropped
after it); between the bot and the sandbox, in this process, a proxy playing
Nexthink's pace (``bench/_pace.py``): ``--pace`` executes a second, a 429 with ``Retry-After: 1``
for any beyond (Nexthink publishes no number; a 429 with Retry-After is what it documents).

Once ``serve`` is ready, ``--runs`` scheduled runs (requests and schedules, as ``/nexthink run
restart_teams n=<i> in …`` keeps them) are written into its database, due evenly over
``--window`` seconds starting 5 s later. Then this process watches, every 0.5 s, the schedules'
states in the database and ``serve``'s memory (``/proc/<pid>/status`` VmRSS, and VmHWM, the
peak), until none is left to run. At the end it reads the sandbox's journal: every execute it
received, with its ``n``.

Printed: how long the runs took against the least Nexthink's pace allows (runs / pace), executes
per second let through (the most in one second), the 429s the bot drew, executes in flight at
once, how late each execute was after its run's time (p50/p99/max), the bot's CPU seconds and
memory before, during and after, and the verdicts: every run executed exactly once (none
missing, none twice), none failed or missed, memory flat (peak within 25 MiB of before).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
from _pace import PaceProxy
from _slack_server import user_id
from _support import (
    HOST,
    Procs,
    database,
    free_port,
    machine_lines,
    percentile,
    start_bot,
    start_sandbox,
    start_slack,
    wait_http,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.store.engine import driver_url
from bot.store.schedules import CODE_ALPHABET
from bot.store.schema import requests, schedules

USERS = 100
MEMORY_SLACK_KIB = 25 * 1024
POLICY = """\
roles:
  everyone:
    members: ["*"]
    workflows: ["restart_teams"]
schedule: {allowed: true, max_days: 14}
limits:
  runs_per_user_per_minute: 10000
"""


def _code(i: int) -> str:
    digits = []
    for _ in range(8):
        i, d = divmod(i, len(CODE_ALPHABET))
        digits.append(CODE_ALPHABET[d])
    return "".join(reversed(digits))


async def fill(
    engine: AsyncEngine, runs: int, first_due: datetime, window: float
) -> dict[str, datetime]:
    """``runs`` scheduled runs written as ``bot.schedules.ask`` writes them; n → its time."""
    now = datetime.now(UTC)
    due: dict[str, datetime] = {}
    request_rows: list[dict[str, Any]] = []
    schedule_rows: list[dict[str, Any]] = []
    for i in range(runs):
        user = user_id(i % USERS)
        upn = f"bench{i % USERS:03d}@example.com"
        run_at = first_due + timedelta(seconds=window * i / runs)
        due[str(i)] = run_at
        request_id = str(uuid4())
        request_rows.append(
            {
                "id": request_id,
                "kind": "run",
                "created_at": now,
                "updated_at": now,
                "team_id": None,
                "channel_id": "C0SUPPORT",
                "user_id": user,
                "user_upn": upn,
                "workflow_id": "restart_teams",
                "targets": [{"kind": "user", "label": upn, "upn": upn}],
                "params": {"n": str(i)},
                "state": "scheduled",
                "nexthink_request_uuids": [],
                "executions_uuids": [],
                "error": None,
                "approved_by": [],
                "response_url": None,
                "message_channel": None,
                "message_ts": None,
            }
        )
        schedule_rows.append(
            {
                "id": str(uuid4()),
                "code": _code(i),
                "request_id": request_id,
                "team_id": None,
                "channel_id": "C0SUPPORT",
                "user_id": user,
                "user_upn": upn,
                "workflow": "restart_teams",
                "ask": {
                    "workflow": "restart_teams",
                    "users": [],
                    "devices": [],
                    "params": {"n": str(i)},
                    "source": "command",
                    "visible": False,
                },
                "run_at": run_at,
                "state": "scheduled",
                "created_at": now,
                "updated_at": now,
                "claimed_at": None,
                "claim_token": None,
                "sending_at": None,
                "finished_at": None,
                "detail": None,
                "cancelled_by": None,
            }
        )
    async with engine.begin() as conn:
        for start in range(0, runs, 1000):
            await conn.execute(requests.insert(), request_rows[start : start + 1000])
            await conn.execute(schedules.insert(), schedule_rows[start : start + 1000])
    return due


async def states(engine: AsyncEngine) -> Counter[str]:
    query = select(schedules.c.state, func.count()).group_by(schedules.c.state)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return Counter({str(state): int(n) for state, n in rows})


async def journal(sandbox_url: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session,
        session.get(f"{sandbox_url}/_sandbox/journal", params={"endpoint": "execute_v2"}) as got,
    ):
        data = await got.json()
    entries: list[dict[str, Any]] = data["entries"]
    return entries


async def run(args: argparse.Namespace, procs: Procs) -> int:
    for line in machine_lines():
        print(line)
    slack = start_slack(procs, users=USERS)
    sandbox, sandbox_url = start_sandbox(procs, execution_delay=0.05)
    await wait_http(f"{slack.control_url}/stats", slack.proc)
    await wait_http(f"{sandbox_url}/_sandbox", sandbox)
    proxy = PaceProxy(sandbox_url, args.pace)
    proxy_url = await proxy.start(HOST, free_port())
    policy = procs.tmp / "policy.yaml"
    policy.write_text(POLICY)
    workdir = procs.tmp / "serve"
    workdir.mkdir()
    os.environ["SCHEDULE_CONCURRENCY"] = str(args.concurrency)
    async with database(args.database, workdir) as url:
        backend = url.split(":", 1)[0]
        bot, bot_url = start_bot(
            procs,
            slack_api_url=slack.api_url,
            nexthink_url=proxy_url,
            policy_file=policy,
            log_level="WARNING",
            workdir=workdir,
            extra_env={"DATABASE_URL": url},
        )
        engine = create_async_engine(driver_url(url))
        try:
            await wait_http(f"{bot_url}/readyz", bot, within=120)
            first_due = datetime.now(UTC) + timedelta(seconds=5)
            started = time.perf_counter()
            due = await fill(engine, args.runs, first_due, args.window)
            print(
                f"{args.runs:,} scheduled runs written into {backend} in "
                f"{time.perf_counter() - started:.1f} s, due evenly over {args.window:g} s from "
                f"{first_due:%H:%M:%S} UTC; Nexthink's pace {args.pace:g} executes/s; "
                f"SCHEDULE_CONCURRENCY={args.concurrency}"
            )
            return await watch(args, bot, engine, due, first_due, proxy, sandbox_url)
        finally:
            await proxy.stop()
            procs.stop(bot)  # before its schema is dropped
            await engine.dispose()


async def watch(
    args: argparse.Namespace,
    bot: Any,
    engine: AsyncEngine,
    due: dict[str, datetime],
    first_due: datetime,
    proxy: PaceProxy,
    sandbox_url: str,
) -> int:
    cpu_before = bot.cpu_seconds()
    rss_before = bot.status_kib("VmRSS") or 0
    rss: list[tuple[float, int, int]] = []  # (seconds after first due, ran, RSS KiB)
    limit = args.limit or args.runs / args.pace * 3 + args.window + 300
    begun = time.monotonic()
    last_print = 0.0
    counts: Counter[str] = Counter()
    while time.monotonic() - begun < limit:
        await asyncio.sleep(0.5)
        counts = await states(engine)
        since = (datetime.now(UTC) - first_due).total_seconds()
        rss.append((since, counts["ran"], bot.status_kib("VmRSS") or 0))
        if time.monotonic() - last_print >= 15:
            last_print = time.monotonic()
            print(
                f"  t={since:6.1f} s  ran {counts['ran']:6,}  left {counts['scheduled']:6,}  "
                f"running {counts['running']:2}  429s {proxy.throttled:5,}  "
                f"RSS {rss[-1][2] / 1024:6.1f} MiB"
            )
        if not counts["scheduled"] and not counts["running"] and not counts["awaiting_approval"]:
            break
    finished = (datetime.now(UTC) - first_due).total_seconds()
    executes = await journal(sandbox_url)
    sent = Counter(str(e["body"]["params"]["n"]) for e in executes)
    late = [
        (datetime.fromisoformat(e["at"]) - due[str(e["body"]["params"]["n"])]).total_seconds()
        for e in executes
        if str(e["body"]["params"]["n"]) in due
    ]
    peak = bot.status_kib("VmHWM") or 0
    rss_end = bot.status_kib("VmRSS") or 0
    cpu = bot.cpu_seconds() - cpu_before
    busiest = max(proxy.accepted.values(), default=0)
    least = args.runs / args.pace
    twice = sum(1 for n in sent.values() if n > 1)
    missing = len(set(due) - set(sent))
    print()
    print(f"all {args.runs:,} settled {finished:.1f} s after the first was due ({counts})")
    print(
        f"  Nexthink's pace allows it in no less than {least:.0f} s ({args.runs:,} / "
        f"{args.pace:g} per s); the window itself is {args.window:g} s"
    )
    print(
        f"  executes let through: {len(executes):,}; at most {busiest} in one second "
        f"(pace {args.pace:g}); 429s answered to the bot: {proxy.throttled:,}; "
        f"at most {proxy.peak_in_flight} in flight at once"
    )
    if late:
        print(
            f"  lateness after each run's time: p50 {percentile(late, 50):.1f} s, "
            f"p99 {percentile(late, 99):.1f} s, max {max(late):.1f} s"
        )
    print(f"  serve used {cpu:.1f} CPU s ({cpu / max(len(executes), 1) * 1000:.1f} ms per run)")
    during = max((r for _, _, r in rss), default=0)
    print(
        f"  serve memory: RSS {rss_before / 1024:.1f} MiB before, at most {during / 1024:.1f} MiB "
        f"while running (VmHWM {peak / 1024:.1f} MiB since start), {rss_end / 1024:.1f} MiB after"
    )
    verdicts = {
        "every run executed once": missing == 0 and twice == 0 and len(executes) == args.runs,
        "none failed, missed or refused": counts["ran"] == args.runs,
        "memory flat (peak within 25 MiB of before)": during - rss_before <= MEMORY_SLACK_KIB,
        "never more in flight than SCHEDULE_CONCURRENCY": proxy.peak_in_flight <= args.concurrency,
    }
    print(f"  missing {missing}, executed twice {twice}")
    for what, ok in verdicts.items():
        print(f"  {'PASS' if ok else 'FAIL'}: {what}")
    if args.samples:
        await asyncio.to_thread(Path(args.samples).write_text, json.dumps(rss))
    return 0 if all(verdicts.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds they fall due over")
    parser.add_argument("--pace", type=float, default=40.0, help="executes/s Nexthink accepts")
    parser.add_argument("--concurrency", type=int, default=4, help="SCHEDULE_CONCURRENCY")
    parser.add_argument(
        "--limit", type=float, default=0.0, help="give up watching after this many seconds"
    )
    parser.add_argument(
        "--database",
        help="postgresql://… to run the bot on PostgreSQL (a schema of its own); default SQLite",
    )
    parser.add_argument("--samples", help="write the (t, ran, RSS KiB) samples to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    with Procs(keep=args.keep) as procs:
        return asyncio.run(run(args, procs))


if __name__ == "__main__":
    sys.exit(main())
