"""Exporting the audit trail: ``nexthink-bot audit`` over 1,000,000 records on SQLite.

    ./dev python bench/audit_export.py [--records 1000000] [--keep-db]

Seeds a fresh SQLite file in a temporary directory with ``--records`` audit records (realistic
ones: a run's targets, parameters, a ticket, Nexthink uuids; a record per second of simulated
time, events cycling through every name): the first 20,000 through ``Store.append_audit`` in
batches of 10,000 (timed: the store's write rate), the rest as copies of those made inside
SQLite (``INSERT ... SELECT`` shifted by whole multiples of 20,000 s, in the store's own
fixed-width time format), which takes seconds instead of minutes. Then runs ``nexthink-bot audit`` as a subprocess, the way an operator would, three
times: JSON lines over the first tenth of the records (``--until``), JSON lines over all of
them, CSV over all of them. The script reads the subprocess's stdout as it comes (and counts
its lines, which must equal the records plus the CSV header); for each export it prints the
wall time, records/s, the subprocess's CPU time (user + system, from ``os.wait4``: less
sensitive than wall time to other work on a shared machine) and records per CPU-second, bytes
written and the subprocess's peak resident memory: ``VmHWM`` of ``/proc/<pid>/status`` (the
kernel's high-water mark of the process's own memory since its exec, interpreter and libraries
included), read every 0.1 s while it runs, the last reading kept. (``ru_maxrss`` from
``wait4`` is not used: Linux carries the pre-exec image's peak into it, i.e. this script's
own memory at fork time.) ``--database PATH`` reuses a file seeded by an earlier run
(``--keep-db``) and skips the seeding. A first export
that matches nothing gives the baseline (interpreter, libraries, an open store). The export is
streamed if the peak does not grow with the number of records: compare a tenth with all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from _support import machine_lines

from bot.store import AUDIT_EVENTS, AuditRecord, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 10_000
BASE = 20_000  # records written through the store; the rest are copies shifted in time
_COLUMNS = (
    "event, actor, actor_upn, workflow, targets, params, ticket, request_uuid, execution_uuids, "
    "result, detail, request_id, enterprise_id, team_id"
)


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        time=T0 + timedelta(seconds=i),
        event=AUDIT_EVENTS[i % len(AUDIT_EVENTS)],  # type: ignore[arg-type]
        actor=f"U{i % 5000:08d}",
        actor_upn=f"person{i % 5000}@example.com",
        workflow=f"#workflow_{i % 40}",
        targets=(
            {
                "label": f"device LAPTOP-{i % 90000:05d}",
                "device": {"name": f"LAPTOP-{i % 90000:05d}"},
            },
        ),
        params={"reason": "disk almost full", "size_gb": str(i % 500)},
        ticket=f"INC{i % 10_000_000:07d}",
        request_uuid=str(UUID(int=i)),
        execution_uuids=(str(UUID(int=i + 2**64)),),
        result="ok",
        detail=None,
        request_id=str(UUID(int=i + 2**65)),
        team_id="T0000001",
    )


async def _seed(url: str, records: int) -> float:
    """Write min(records, BASE) records through the store; return the seconds it took."""
    store = await Store.open(url)
    started = time.perf_counter()
    try:
        for start in range(0, min(records, BASE), BATCH):
            end = min(records, BASE, start + BATCH)
            await store.append_audit([_record(i) for i in range(start, end)])
    finally:
        await store.close()
    return time.perf_counter() - started


def _copy(path: Path, records: int) -> float:
    """Fill up to ``records`` with copies of the first BASE, each block BASE seconds later."""
    started = time.perf_counter()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for block in range(1, (records + BASE - 1) // BASE):
            count = min(BASE, records - block * BASE)
            conn.execute(
                f"INSERT INTO audit_events (occurred_at, {_COLUMNS}) "  # noqa: S608 - constants
                f"SELECT datetime(occurred_at, '+{block * BASE} seconds') || '.000000', {_COLUMNS} "
                f"FROM audit_events WHERE id <= {count} ORDER BY id"
            )
    return time.perf_counter() - started


def _export(url: str, args: list[str]) -> tuple[float, float, int, int, int, int]:
    """(seconds, CPU seconds, lines, bytes, peak RSS KiB, exit status) of one export."""
    script = Path(sys.executable).with_name("nexthink-bot")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": url, "LANG": "C.UTF-8"}
    started = time.perf_counter()
    proc = subprocess.Popen([str(script), "audit", *args], stdout=subprocess.PIPE, env=env)  # noqa: S603
    assert proc.stdout is not None
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while not done.is_set():
            with contextlib.suppress(OSError, ValueError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            done.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    lines = size = 0
    while chunk := proc.stdout.read(1 << 20):
        lines += chunk.count(b"\n")
        size += len(chunk)
    done.set()  # stdout closed: the export is over; the process is exiting
    watcher.join()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, cpu, lines, size, peak[0], proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keep-db", action="store_true", help="print the file's path, keep it")
    parser.add_argument("--database", type=Path, help="a file seeded by an earlier --keep-db run")
    options = parser.parse_args()
    for line in machine_lines():
        print(line)
    n = options.records
    if options.database:
        path = options.database.resolve()
        directory = None
        url = f"sqlite:///{path}"
        print(f"reusing {path} (seeded with --records {n:,} by an earlier run)")
    else:
        directory = Path(tempfile.mkdtemp(prefix="bench-audit-"))
        path = directory / "audit.db"
        url = f"sqlite:///{path}"
        seconds = asyncio.run(_seed(url, n))
        stored = min(n, BASE)
        print(
            f"store.append_audit: {stored:,} records in {seconds:.1f} s "
            f"({stored / seconds:,.0f} records/s, batches of {BATCH:,})"
        )
        if n > BASE:
            print(f"copied inside SQLite up to {n:,} records in {_copy(path, n):.1f} s")
    print(f"SQLite file {path.stat().st_size / 2**20:,.0f} MiB")
    tenth = max(1, n // 10)
    until = (T0 + timedelta(seconds=tenth)).isoformat()
    failed = False
    for label, args, expected in (
        ("jsonl, nothing matches (baseline)", ["--since", "2100-01-01"], 0),
        (f"jsonl, first {tenth:,} (--until)", ["--until", until], tenth),
        (f"jsonl, all {n:,}", [], n),
        (f"csv, all {n:,}", ["--format", "csv"], n + 1),
    ):
        took, cpu, lines, size, peak, code = _export(url, args)
        ok = code == 0 and lines == expected
        failed |= not ok
        rows = expected - (1 if args[:2] == ["--format", "csv"] else 0)
        print(
            f"export {label}: {took:.1f} s, {rows / took:,.0f} records/s; CPU {cpu:.1f} s, "
            f"{rows / max(cpu, 1e-9):,.0f} records/CPU-s; {size / 2**20:,.0f} MiB out, "
            f"peak RSS {peak / 1024:,.1f} MiB"
            + ("" if ok else f"  FAILED: exit {code}, {lines:,} lines (expected {expected:,})")
        )
    if options.keep_db or directory is None:
        print(f"database kept at {path}")
    else:
        for name in os.listdir(directory):
            (directory / name).unlink()
        directory.rmdir()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
