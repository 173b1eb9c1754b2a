"""A big store stays fast: p50/p99 of the queries the bot runs, on a year of records.

    ./dev python bench/store.py [--rows 1000000] [--reps 200] [--backend both] [--explain]
                                [--as-filled]

Fills a SQLite file (in a temporary directory) and PostgreSQL (``--pg-url``, default
``postgresql://postgres@127.0.0.1:5432/test``, in a schema of its own, dropped afterwards, as the
tests do) with ``--rows`` request records, a tenth as many questions (waits), approvals and
outcome follow-ups (and one vote per executed approval), spread over 365 days, through
SQLAlchemy Core bulk inserts (``executemany`` in chunks) into tables made by the store's own
migrations (so its indexes are there). Then it times, with the store's public methods, ``--reps``
calls of:

* ``history`` of a user (2,000 users; one "heavy" user owns 5% of all requests) and of the heavy
  user;
* the Home tab: recent requests (``history(user, 8)`` + ``followups_for`` them), what waits on an
  approver (``pending_approvals(200)``, ``pending_waits(200)``) and the request behind an approval
  (``get_request``); the metrics gauges (``count_pending_*``);
* each sweep (``expire_waits``, ``release_stale_claims``, ``expire_approvals``,
  ``close_stale_approvals``, ``due_followups``, and the reminders' ``due_approvals`` and
  ``due_waits``: open requests remind hourly, half the settled ones keep a reminder time), at a
  clock moved 30 s on each call, so that calls find a few rows to change as the bot's sweeps do;
* a retention pass, if the store has one (``prune_audit``); otherwise it says so and skips it.

Goal: each <= 50 ms p99. Every query of an operation is recorded (SQLAlchemy's
``before_cursor_execute``) on its first call; with ``--explain`` (or for an operation over the
goal) its plan is printed: ``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN ANALYZE`` on PostgreSQL
(inside a transaction that is rolled back). Each line also says how many full (generation 2)
collections of the cyclic GC ran during its calls, and how long each took.

Between the fill and the timed calls the bench brings the store and its own process to the state
of a bot that has kept a year of records, and prints that it does:

* PostgreSQL: ``VACUUM (ANALYZE)`` of the filled tables and a ``CHECKPOINT`` (about 1.5 s after
  a fill of 1,000,000): a store that old has been vacuumed and analysed by autovacuum, and the
  fill's WAL (about 1 GB) would otherwise be checkpointed while the calls are timed. SQLite is
  left as filled (the bot never runs ``ANALYZE``).
* the process: ``gc.collect()`` and ``gc.freeze()``, as ``nexthink-bot serve`` freezes what its
  start-up built (``bot/cli.py``). Without it every full collection walks the imports and the
  fill's leftovers (the list of the request ids) inside a timed call: 53-58 ms each after a fill
  of 1,000,000 on a 2-core machine, two of them in the 200 calls of each of ``pending_waits`` and
  ``due_waits`` (the operations that build the most objects), which set those operations' max and,
  on a busy machine, their p99 (124 / 95 ms in a run of 2026-12-03), while PostgreSQL ran their
  statements in about 1 ms.

``--as-filled`` skips both (PostgreSQL then only ``ANALYZE``d), to see the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from _store_fill import (  # noqa: F401
    CHUNK,
    GOAL_MS,
    HEAVY,
    HEAVY_SHARE,
    NOW,
    OPTIONS,
    PG_URL,
    STALE,
    STEP,
    USERS,
    YEAR,
    Fill,
    Sizes,
    _audit_rows,
    _python_type,
    _raw,
    _sqlite_time,
    bulk_insert,
)
from _support import machine_lines, percentile
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import Store
from bot.store.schema import (
    approval_votes,
    approvals,
    followups,
    metadata,
    requests,
    waits,
)

# -- timing and plans -----------------------------------------------------------------------


@dataclass
class Recorder:
    """The statements an operation sends (on its first call only)."""

    on: bool = False
    statements: list[tuple[str, Any]] = field(default_factory=list)

    def listen(self, engine: AsyncEngine) -> None:
        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if self.on and not statement.lstrip().upper().startswith(("BEGIN", "SAVEPOINT")):
                self.statements.append((statement, parameters))


class FullCollections:
    """The cyclic GC's full (generation 2) collections of this process, and how long each took."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._seen)

    def _seen(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds.append(time.perf_counter() - self._started)


FULL_GC = FullCollections()


def freeze_heap() -> tuple[int, float]:
    """Do what ``nexthink-bot serve`` does once start-up is done (``bot/cli.py``): collect, then
    keep every object this process holds out of the full collections (see the module's
    docstring). The objects frozen and the collection's time."""
    started = time.perf_counter()
    gc.collect()
    seconds = time.perf_counter() - started
    frozen = len(gc.get_objects())
    gc.freeze()
    return frozen, seconds


@dataclass
class Result:
    name: str
    times: list[float]
    cpu: list[float]
    note: str = ""
    statements: list[tuple[str, Any]] = field(default_factory=list)
    full_gc: list[float] = field(default_factory=list)

    @property
    def p99_ms(self) -> float:
        return percentile(self.times, 99) * 1000

    def line(self) -> str:
        p50, p99 = percentile(self.times, 50) * 1000, self.p99_ms
        verdict = "met" if p99 <= GOAL_MS else "MISSED"
        return (
            f"  {self.name:<44} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  max "
            f"{max(self.times) * 1000:8.2f} ms  cpu p50 {percentile(self.cpu, 50) * 1000:6.2f} ms  "
            f"({len(self.times)} calls; goal p99 <= "
            f"{GOAL_MS:g} ms: {verdict}){f'  {self.note}' if self.note else ''}{self._gc()}"
        )

    def _gc(self) -> str:
        if not self.full_gc:
            return ""
        each = ", ".join(f"{s * 1000:.1f}" for s in self.full_gc)
        return f"  [{len(self.full_gc)} full GC(s) in the calls: {each} ms]"


async def timed(
    name: str, reps: int, call: Callable[[int], Awaitable[Any]], recorder: Recorder
) -> Result:
    times, cpu = [], []
    recorder.statements = []
    full_gc_before = len(FULL_GC.seconds)
    for i in range(reps):
        recorder.on = i == 0
        started, cpu_started = time.perf_counter(), time.process_time()
        await call(i)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        recorder.on = False
    full_gc = FULL_GC.seconds[full_gc_before:]
    return Result(name, times, cpu, statements=list(recorder.statements), full_gc=full_gc)


async def explain(engine: AsyncEngine, statement: str, parameters: Any) -> list[str]:
    postgres = engine.dialect.name == "postgresql"
    prefix = "EXPLAIN ANALYZE " if postgres else "EXPLAIN QUERY PLAN "
    async with engine.connect() as conn:
        try:
            rows = (await conn.exec_driver_sql(prefix + statement, tuple(parameters))).all()
        finally:
            await conn.rollback()  # EXPLAIN ANALYZE of an UPDATE changes rows: undo it
    if postgres:
        return [str(r[0]) for r in rows]
    return [f"{'  ' * _depth(rows, r)}{r[-1]}" for r in rows]  # (id, parent, notused, detail)


def _depth(rows: Sequence[Any], row: Any) -> int:
    parents = {r[0]: r[1] for r in rows}
    depth, parent = 0, row[1]
    while parent in parents:
        depth, parent = depth + 1, parents[parent]
    return depth


def _file_bytes(database: str) -> int:
    """A SQLite database's size: its file and its WAL."""
    return sum(p.stat().st_size for p in (Path(database), Path(database + "-wal")) if p.exists())


# -- one backend ----------------------------------------------------------------------------


async def fill_store(store: Store, fill: Fill, *, as_filled: bool = False) -> tuple[float, str]:
    engine = store._live()
    started = time.perf_counter()
    await bulk_insert(engine, requests, fill.requests())
    await bulk_insert(engine, waits, fill.waits())
    approval_rows, vote_rows = fill.approvals()
    await bulk_insert(engine, approvals, approval_rows)
    await bulk_insert(engine, approval_votes, vote_rows)
    await bulk_insert(engine, followups, fill.followups())
    audit = metadata.tables.get("audit_events")
    if audit is not None and hasattr(store, "prune_audit"):
        fill.sizes.audit = await bulk_insert(
            engine, audit, _audit_rows(audit, fill, fill.sizes.requests)
        )
    seconds = time.perf_counter() - started
    if engine.dialect.name != "postgresql":
        return seconds, "no ANALYZE"
    if as_filled:
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
        return seconds, "then ANALYZE only (--as-filled)"
    tables = [requests, waits, approvals, approval_votes, followups]
    tables += [audit] if fill.sizes.audit and audit is not None else []
    started = time.perf_counter()
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(text(f"VACUUM (ANALYZE) {', '.join(t.name for t in tables)}"))
        try:
            await auto.execute(text("CHECKPOINT"))
            checkpoint = "a CHECKPOINT"
        except DBAPIError as exc:  # needs superuser or pg_checkpoint
            checkpoint = f"no CHECKPOINT ({type(exc.orig).__name__})"
    return seconds, (
        f"then VACUUM (ANALYZE) of its tables and {checkpoint}, "
        f"{time.perf_counter() - started:.1f} s: the state of a store that has kept a year of "
        "records (autovacuum has vacuumed it; the fill's WAL no longer checkpointed during the "
        "timed calls)"
    )


async def measure(store: Store, fill: Fill, reps: int, recorder: Recorder) -> list[Result]:
    rng = random.Random(7)
    users = [f"U0BENCH{rng.randrange(USERS):04d}" for _ in range(reps)]
    approval_request_ids = [
        fill.request_ids[rng.randrange(len(fill.request_ids))] for _ in range(reps)
    ]

    per_user = round(fill.sizes.requests * (1 - HEAVY_SHARE) / USERS)
    heavy = round(fill.sizes.requests * HEAVY_SHARE)

    def at(i: int) -> datetime:
        return NOW + STEP * i

    async def recent(i: int) -> None:
        records = await store.history(users[i], limit=8)
        await store.followups_for([r.id for r in records])

    reads: list[tuple[str, Callable[[int], Awaitable[Any]]]] = [
        (f"history(user) [10 newest of ~{per_user:,}]", lambda i: store.history(users[i])),
        (f"history(heavy user) [10 newest of ~{heavy:,}]", lambda i: store.history(HEAVY)),
        ("Home: recent (history 8 + followups_for)", recent),
        ("Home: pending_approvals(limit=200)", lambda i: store.pending_approvals(NOW, limit=200)),
        ("Home: pending_waits(limit=200)", lambda i: store.pending_waits(NOW, limit=200)),
        (
            "Home: get_request (behind an approval)",
            lambda i: store.get_request(approval_request_ids[i]),
        ),
        ("metrics: count_pending_waits", lambda i: store.count_pending_waits(NOW)),
        ("metrics: count_pending_approvals", lambda i: store.count_pending_approvals(NOW)),
    ]
    changed: dict[str, int] = {}

    def counting(
        name: str, call: Callable[[int], Awaitable[list[Any]]]
    ) -> Callable[[int], Awaitable[None]]:
        async def wrapped(i: int) -> None:
            changed[name] = changed.get(name, 0) + len(await call(i))

        return wrapped

    sweeps: list[tuple[str, Callable[[int], Awaitable[Any]]]] = [
        ("sweep: expire_waits", lambda i: store.expire_waits(at(i))),
        ("sweep: release_stale_claims(10 min)", lambda i: store.release_stale_claims(STALE, at(i))),
        ("sweep: expire_approvals", lambda i: store.expire_approvals(at(i))),
        (
            "sweep: close_stale_approvals(10 min)",
            lambda i: store.close_stale_approvals(STALE, at(i)),
        ),
        ("sweep: due_followups(limit=50)", lambda i: store.due_followups(at(i), limit=50)),
        ("sweep: due_approvals (reminders)", lambda i: store.due_approvals(at(i))),
        ("sweep: due_waits (reminders)", lambda i: store.due_waits(at(i))),
    ]
    results = []
    for name, call in reads:
        results.append(await timed(name, reps, call, recorder))
    for name, call in sweeps:
        result = await timed(name, reps, counting(name, call), recorder)
        result.note = f"[{changed.get(name, 0)} rows changed over the calls]"
        results.append(result)
    prune = getattr(store, "prune_audit", None)
    if prune is not None and fill.sizes.audit:
        cutoff = NOW - timedelta(days=400) + YEAR  # a cutoff inside the year: there is work
        deleted = 0

        async def retention(i: int) -> None:
            nonlocal deleted
            deleted += await prune(cutoff, batch=1000, max_rows=1000)

        result = await timed(
            "retention: prune_audit (1 batch of 1,000)", min(reps, 50), retention, recorder
        )
        result.note = f"[{deleted} audit records deleted]"
        results.append(result)
    return results


async def bench_backend(
    name: str, url: str, schema: str | None, args: argparse.Namespace
) -> tuple[list[Result], Store]:
    store = await Store.open(url, schema=schema)
    recorder = Recorder()
    recorder.listen(store._live())
    fill = Fill(args.rows)
    load_before = os.getloadavg()
    seconds, analyzed = await fill_store(store, fill, as_filled=args.as_filled)
    print(
        f"{name}: filled {fill.sizes.line()} in {seconds:.1f} s ({analyzed}); load average "
        f"{', '.join(f'{x:.2f}' for x in load_before)} before",
        flush=True,
    )
    if name == "SQLite":
        database = make_url(url).database or ""
        size = _file_bytes(database)
        print(f"{name}: database file {size / 2**20:.0f} MiB", flush=True)
    if args.as_filled:
        print(f"{name}: no gc.freeze() (--as-filled)", flush=True)
    else:
        frozen, collected = freeze_heap()
        print(
            f"{name}: gc.collect() ({collected * 1000:.0f} ms) and gc.freeze() of the {frozen:,} "
            "objects this process holds after the fill, as `nexthink-bot serve` freezes what its "
            "start-up built: a full collection of them would otherwise stall a timed call",
            flush=True,
        )
    load_before = os.getloadavg()
    results = await measure(store, fill, args.reps, recorder)
    load_after = os.getloadavg()
    print(
        f"{name}: {args.reps} calls per operation, one at a time, timed around the store's "
        f"method (perf_counter; cpu: this process's CPU time, all threads, during the call); load average {', '.join(f'{x:.2f}' for x in load_before)} "
        f"before, {', '.join(f'{x:.2f}' for x in load_after)} after"
    )
    if not any(r.name.startswith("retention") for r in results):
        print("  retention pass: skipped: this store has no retention method (no prune_audit)")
    for result in results:
        print(result.line())
    for result in results:
        if args.explain or result.p99_ms > GOAL_MS:
            print(
                f"  plan of {result.name}{' (over the goal)' if result.p99_ms > GOAL_MS else ''}:"
            )
            for statement, parameters in result.statements:
                print("    " + " ".join(statement.split())[:300])
                for line in await explain(store._live(), statement, parameters):
                    print("      " + line)
    sys.stdout.flush()
    return results, store


async def run(args: argparse.Namespace) -> int:
    missed = 0
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="nexthink-bench-store-") as tmp:
            results, store = await bench_backend("SQLite", f"sqlite:///{tmp}/bot.db", None, args)
            missed += sum(r.p99_ms > GOAL_MS for r in results)
            await store.close()
            gc.unfreeze()  # the next backend starts from the same heap as this one did
    if args.backend in ("postgresql", "both"):
        dsn = (
            make_url(args.pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        admin = await asyncpg.connect(dsn, timeout=5)
        schema = f"bench_store_{uuid.uuid4().hex[:12]}"
        opened: Store | None = None
        try:
            results, opened = await bench_backend(
                f"PostgreSQL (schema {schema})", args.pg_url, schema, args
            )
            missed += sum(r.p99_ms > GOAL_MS for r in results)
            async with opened._live().connect() as conn:
                size = (
                    await conn.execute(
                        text(
                            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = :s AND c.relkind = 'r'"
                        ),
                        {"s": schema},
                    )
                ).scalar()
            print(
                f"PostgreSQL: the schema's tables and indexes take {int(size or 0) / 2**20:.0f} MiB"
            )
        finally:
            if opened is not None:
                await opened.close()
            gc.unfreeze()
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await admin.close()
    print(f"{missed} operation(s) over the goal of {GOAL_MS:g} ms p99")
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="request records (waits, approvals, follow-ups: a tenth)",
    )
    parser.add_argument("--reps", type=int, default=200, help="calls per operation")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL to fill (a schema of its own)")
    parser.add_argument(
        "--explain", action="store_true", help="print every operation's query plans"
    )
    parser.add_argument(
        "--as-filled",
        action="store_true",
        help="time right after the fill, as before: no gc.freeze(), PostgreSQL only ANALYZEd",
    )
    args = parser.parse_args()
    if args.rows < 1000 or args.reps < 1:
        parser.error("need --rows >= 1000 and --reps >= 1")
    print(
        f"bench/store.py: {args.rows:,} request records, {max(args.rows // 10, 100):,} each of waits, "
        f"approvals and follow-ups over 365 days; {USERS:,} users plus one owning "
        f"{HEAVY_SHARE:.0%} of the requests; {args.reps} calls per operation"
    )
    for line in machine_lines():
        print(line)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("bench/store.py interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
