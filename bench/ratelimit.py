"""The rate limit across replicas: what one check costs, and that two replicas share the limit.

    ./dev python bench/ratelimit.py [--checks 2000] [--limit 10] [--pg-url URL] [--backend both]

In this process, on each backend (a SQLite file in a temporary directory, and the PostgreSQL at
``--pg-url`` in a schema of its own that is dropped afterwards): two ``Store`` objects on one
database, as two ``serve`` replicas hold them, each with a ``RateLimiter`` keeping the count in
the store (``shared=True``: on PostgreSQL the default; on SQLite the bot keeps it in memory, one
process being the deployment, so the figure there is what sharing would cost).

1. Cost: ``--checks`` sequential ``hit()`` calls, spread over 200 users (so that few are
   refused), alternating between the two stores: p50 / p99 / max wall time and the median CPU
   time of this process per check (on SQLite that includes the query itself; on PostgreSQL the
   server's part runs in its own process).
2. Sharing: for each of 20 users, ``--limit`` × 3 concurrent hits split over the two stores:
   how many were allowed (the goal: exactly ``--limit`` per user, as one process would allow).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from _support import machine_lines, percentile
from sqlalchemy.engine import make_url

from bot.ratelimit import RateLimiter
from bot.store import Store

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def measure(name: str, url: str, schema: str | None, args: argparse.Namespace) -> bool:
    first = await Store.open(url, schema=schema)
    second = await Store.open(url, schema=schema)
    try:
        limiters = [
            RateLimiter(args.limit * 1000, store=s, shared=True, scope="bench")
            for s in (first, second)
        ]
        walls: list[float] = []
        cpus: list[float] = []
        for i in range(args.checks):
            limiter = limiters[i % 2]
            c0, w0 = time.process_time(), time.perf_counter()
            await limiter.hit(f"U{i % 200:04d}")
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        print(
            f"  {name}: one check (one atomic statement): p50 {percentile(walls, 50) * 1000:.2f} ms, "
            f"p99 {percentile(walls, 99) * 1000:.2f} ms, max {max(walls) * 1000:.2f} ms; "
            f"CPU of this process p50 {percentile(cpus, 50) * 1000:.2f} ms ({args.checks:,} checks)"
        )
        shared = [
            RateLimiter(args.limit, store=s, shared=True, scope="share") for s in (first, second)
        ]
        allowed: list[int] = []
        for user in range(20):
            answers = await asyncio.gather(
                *(shared[i % 2].hit(f"S{user:03d}") for i in range(args.limit * 3))
            )
            allowed.append(sum(1 for a in answers if a is None))
        ok = all(a == args.limit for a in allowed)
        print(
            f"  {name}: two replicas, {args.limit * 3} concurrent hits per user for 20 users, "
            f"limit {args.limit}: allowed per user {min(allowed)}-{max(allowed)} "
            f"({'the limit holds for the pair' if ok else 'THE LIMIT DID NOT HOLD'})"
        )
        return ok
    finally:
        await first.close()
        await second.close()


async def run(args: argparse.Namespace) -> int:
    ok = True
    if args.backend in ("both", "sqlite"):
        with tempfile.TemporaryDirectory(prefix="nexthink-bench-") as tmp:
            ok &= await measure("SQLite (WAL)", f"sqlite:///{Path(tmp) / 'bot.db'}", None, args)
    if args.backend in ("both", "postgresql"):
        schema = f"bench_ratelimit_{uuid.uuid4().hex[:12]}"
        dsn = make_url(args.pg_url).set(drivername="postgresql")
        admin = await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=5)
        try:
            ok &= await measure("PostgreSQL", args.pg_url, schema, args)
        finally:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await admin.close()
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=2000, help="sequential checks to time")
    parser.add_argument("--limit", type=int, default=10, help="runs_per_user_per_minute to share")
    parser.add_argument("--pg-url", default=PG_URL, help="the PostgreSQL to use")
    parser.add_argument("--backend", choices=("both", "sqlite", "postgresql"), default="both")
    args = parser.parse_args()
    print(
        f"bench/ratelimit.py: the store-held rate limit, two Store objects (two replicas) on one "
        f"database, in this process; {args.checks:,} timed checks, then 20 users x "
        f"{args.limit * 3} concurrent hits at limit {args.limit}"
    )
    for line in machine_lines():
        print(line)
    try:
        return asyncio.run(run(args))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"bench/ratelimit.py failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
