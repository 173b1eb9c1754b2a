"""Hours, not minutes: many commands and clicks through one ``serve``, watching for leaks.

    ./dev python bench/soak.py [--commands 100000] [--clicks 20000] [--every 10000]

Starts, each in its own process: a LocalSlack (``bench/_slack_server.py``), the Nexthink
sandbox and one ``nexthink-bot serve`` (HTTP mode, SQLite) with a policy that lets everyone run
anything on anything (per-user limit raised to 10,000 a minute) and puts ``reimage_device``
behind a bot-side approval in ``C0APPROVALS`` by ``U0BENCH000`` or ``U0BENCH001`` (count 1).

In windows of ``--every`` commands: faults are armed at the sandbox (503 and 429 with a short
``Retry-After``, a 1 s latency, a 500, a reset connection, an expired-looking token: a few of
each per window), then this process sends the window's signed slash commands with
``--concurrency`` in flight: mostly ``/nexthink run restart_teams n=<i>`` (on the sender), and a
``--clicks / --commands`` share of ``/nexthink run reimage_device device:LAPTOP-<i> n=<i>``, each
of which posts an approval request; ``U0BENCH000`` clicks **Approve** on each (signed
``block_actions`` built by LocalSlack's driver), so the approved run goes to the sandbox too.
After each window it waits until the bot has settled (no request left ``pending`` or awaiting
approval in its database, every command's reply on the response URL) and samples ``serve``'s RSS
(``/proc/<pid>/status`` VmRSS), open file descriptors (``/proc/<pid>/fd``, and how many are
sockets; read once the bot is idle: 3 s after it settled, the least of 3 readings 0.5 s apart),
the database's size (file + WAL) and the window's ack p99 (commands and clicks: the time to each
HTTP answer).

Verdicts: RSS and descriptors flat within 10% after the first window (warm-up): never more than
10% above the second window's (a leak grows; a connection pool that shrinks with the traffic is
not one); no ack over 3 s;
every command accounted for: acked 200, one request record per command (its ``n`` parameter) and
none left unsettled.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from _support import Procs, Stack, machine_lines, percentile

from handlers import ids

RUN = "run restart_teams n={n}"
GUARDED = "run reimage_device device:LAPTOP-{n} reason=soak n={n}"
APPROVER = "U0BENCH000"
ACK_LIMIT = 3.0
FAULTS = [
    "execute_v2:503:times=3:retry_after=0.2",
    "execute_v2:429:times=3:retry_after=0.2",
    "execute_v2:latency:delay=1:times=10",
    "execute_v2:500:times=1",
    "execute_v2:reset:times=1",
    "token:401:times=1",
]
UNSETTLED = ("pending", "approval_pending")


def write_policy(procs: Procs) -> Path:
    path = procs.tmp / "policy.yaml"
    path.write_text(
        "roles:\n"
        "  everyone:\n"
        '    members: ["*"]\n'
        '    workflows: ["*"]\n'
        "    targets: any\n"
        "workflows:\n"
        "  reimage_device:\n"
        f'    approval: {{channel: C0APPROVALS, approvers: ["{APPROVER}", "U0BENCH001"], count: 1}}\n'
        "limits:\n"
        "  runs_per_user_per_minute: 10000\n"
    )
    return path


@dataclass
class Sample:
    commands: int
    clicks: int
    rss_kib: int
    fds: int
    sockets: int
    db_bytes: int
    ack_p99: float
    ack_max: float
    seconds: float


def fds(pid: int) -> tuple[int, int]:
    """Open descriptors of ``pid`` and how many of them are sockets."""
    total = sockets = 0
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return -1, -1
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue  # closed while we looked
        total += 1
        sockets += target.startswith("socket:")
    return total, sockets


async def idle_fds(pid: int) -> tuple[int, int]:
    """Descriptors once the bot is idle: after a 3 s pause, the least of 3 readings 0.5 s apart
    (a reading taken while replies are in flight counts their sockets)."""
    await asyncio.sleep(3)
    readings = []
    for _ in range(3):
        readings.append(fds(pid))
        await asyncio.sleep(0.5)
    return min(readings)


def db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def states(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute("SELECT state, count(*) FROM requests GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


def distinct_ns(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        query = "SELECT count(DISTINCT json_extract(params, '$.n')) FROM requests WHERE kind='run'"
        return int(conn.execute(query).fetchone()[0])


async def post_all(
    session: aiohttp.ClientSession,
    url: str,
    batch: list[tuple[bytes, dict[str, str]]],
    concurrency: int,
) -> tuple[list[float], int]:
    """Post every request with ``concurrency`` in flight; (ack seconds, answers not 200)."""
    latencies: list[float] = []
    bad = 0
    queue = iter(batch)

    async def worker() -> None:
        nonlocal bad
        for body, headers in queue:
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    bad += response.status != 200
            except aiohttp.ClientError:
                bad += 1
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, bad


async def clicks_for(
    stack: Stack, control: aiohttp.ClientSession, wanted: int, within: float
) -> list[tuple[bytes, dict[str, str]]]:
    """Signed Approve clicks on ``wanted`` approval requests not clicked before (waits for them
    to be posted)."""
    out: list[tuple[bytes, dict[str, str]]] = []
    deadline = time.perf_counter() + within
    while len(out) < wanted:
        payload = {
            "events_url": stack.events_url,
            "channel": "C0APPROVALS",
            "action_id": ids.APPROVAL_APPROVE,
            "user": APPROVER,
            "max": wanted - len(out),
        }
        async with control.post(f"{stack.slack.control_url}/clicks", json=payload) as response:
            response.raise_for_status()
            data = await response.json()
        out += [(c["body"].encode(), c["headers"]) for c in data["clicks"]]
        if len(out) < wanted:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {len(out)} of {wanted} approval requests were posted")
            await asyncio.sleep(0.5)
    return out


async def settle(
    stack: Stack, control: aiohttp.ClientSession, db: Path, replies: int, within: float
) -> None:
    """Until no request is pending or awaiting approval and ``replies`` replies were posted."""
    deadline = time.perf_counter() + within
    while True:
        found = states(db)
        posted = (await stack.slack.stats(control))["response_url_ok"]
        if not any(found.get(s) for s in UNSETTLED) and posted >= replies:
            return
        if not stack.bot.alive():
            raise RuntimeError(f"the bot exited:\n{stack.bot.tail()}")
        if time.perf_counter() > deadline:
            raise RuntimeError(
                f"the bot did not settle within {within:g} s: states {found}, {posted} of "
                f"{replies} replies posted"
            )
        await asyncio.sleep(1.0)


async def run(args: argparse.Namespace, procs: Procs) -> int:
    stack = await Stack.start(
        procs, users=args.users, policy_file=write_policy(procs), log_level=args.log_level
    )
    db = procs.tmp / "serve" / "bot.db"
    share = args.clicks / args.commands
    samples: list[Sample] = []
    acks_all: list[float] = []
    bad_total = 0
    sent = clicked = 0
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as control,
        aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        ) as session,
    ):
        print(
            f"{'commands':>9} {'clicks':>7} {'RSS MiB':>8} {'fds':>5} {'sockets':>7} {'DB MiB':>7} "
            f"{'ack p99':>9} {'ack max':>9} {'window s':>9}  load",
            flush=True,
        )
        while sent < args.commands:
            size = min(args.every, args.commands - sent)
            started = time.perf_counter()
            if not args.no_faults:
                async with control.post(
                    f"{stack.sandbox_url}/_sandbox/faults", json={"faults": FAULTS}
                ) as response:
                    response.raise_for_status()
            items, guarded = [], 0
            for n in range(sent, sent + size):
                # approval commands: a share of them, never from the approvers themselves
                if int((n + 1) * share) > int(n * share) and clicked + guarded < args.clicks:
                    user = f"U0BENCH{2 + n % (args.users - 2):03d}"
                    items.append((user, GUARDED.format(n=n)))
                    guarded += 1
                else:
                    items.append((f"U0BENCH{n % args.users:03d}", RUN.format(n=n)))
            window_acks: list[float] = []
            for start in range(0, len(items), 2000):  # signed shortly before they are sent
                batch = await stack.slack.signed_commands(
                    control, stack.events_url, items[start : start + 2000]
                )
                latencies, bad = await post_all(session, stack.events_url, batch, args.concurrency)
                window_acks += latencies
                bad_total += bad
            sent += size
            if guarded:
                batch = await clicks_for(stack, control, guarded, args.timeout)
                latencies, bad = await post_all(session, stack.events_url, batch, args.concurrency)
                window_acks += latencies
                bad_total += bad
                clicked += guarded
            await settle(stack, control, db, sent, args.timeout)
            open_fds, sockets = await idle_fds(stack.bot.pid)
            rss = stack.bot.status_kib("VmRSS") or -1
            sample = Sample(
                sent,
                clicked,
                rss,
                open_fds,
                sockets,
                db_bytes(db),
                percentile(window_acks, 99),
                max(window_acks),
                time.perf_counter() - started,
            )
            samples.append(sample)
            acks_all += window_acks
            print(
                f"{sample.commands:>9} {sample.clicks:>7} {sample.rss_kib / 1024:>8.1f} "
                f"{sample.fds:>5} {sample.sockets:>7} {sample.db_bytes / 2**20:>7.1f} {sample.ack_p99 * 1000:>7.0f} ms "
                f"{sample.ack_max * 1000:>7.0f} ms {sample.seconds:>9.1f}  "
                + ", ".join(f"{x:.1f}" for x in os.getloadavg()),
                flush=True,
            )
        found = states(db)
        distinct = distinct_ns(db)
        stats = await stack.slack.stats(control)
        faulted = [e for e in await stack.journal(control, "execute_v2") if e["status"] != 200]
    return verdicts(args, samples, acks_all, bad_total, found, distinct, stats, len(faulted))


def flat(values: list[int]) -> tuple[bool, str]:
    """Whether ``values`` after the first window (the warm-up) stay within 10% above the first
    of them: a leak grows; a connection pool that shrinks when traffic drops is not one."""
    after = values[1:] if len(values) > 1 else values
    base = after[0]
    low, high = min(after), max(after)
    ok = base > 0 and high <= base * 1.10
    return ok, f"{base} -> {after[-1]} (min {low}, max {high}, {(high - base) / base:+.1%} at most)"


def verdicts(
    args: argparse.Namespace,
    samples: list[Sample],
    acks: list[float],
    bad: int,
    found: dict[str, int],
    distinct: int,
    stats: dict[str, object],
    faulted: int,
) -> int:
    print()
    rss_ok, rss_line = flat([s.rss_kib for s in samples])
    fd_ok, fd_line = flat([s.fds for s in samples])
    files_ok, files_line = flat([s.fds - s.sockets for s in samples])
    most_sockets = max(s.sockets for s in samples[1:] or samples)
    late = sum(a > ACK_LIMIT for a in acks)
    unsettled = sum(found.get(s, 0) for s in UNSETTLED)
    accounted = bad == 0 and distinct == args.commands and unsettled == 0
    print(f"RSS (KiB) after the first window: {rss_line}: {'flat' if rss_ok else 'NOT FLAT'}")
    print(f"open descriptors after the first window: {fd_line}: {'flat' if fd_ok else 'NOT FLAT'}")
    print(
        f"  of which not sockets (files, pipes, the database): {files_line}: "
        f"{'flat' if files_ok else 'NOT FLAT'}; sockets at most {most_sockets} (the load generator "
        f"keeps up to {args.concurrency} keep-alive connections to serve open, and serve its "
        "client pools to Slack and Nexthink: their number moves with traffic, not with time)"
    )
    print(
        f"acks: {len(acks)} (commands and clicks), p50 {percentile(acks, 50) * 1000:.0f} ms, "
        f"p99 {percentile(acks, 99) * 1000:.0f} ms, max {max(acks) * 1000:.0f} ms; over "
        f"{ACK_LIMIT:g} s: {late} ({'none' if late == 0 else 'MISSED'})"
    )
    print(
        f"accounted for: {args.commands} commands sent, {bad} answers not 200, request records "
        f"with {distinct} distinct n, states {dict(sorted(found.items()))}, {unsettled} unsettled; "
        f"{stats['response_url_ok']} replies on response URLs; the sandbox answered "
        f"{faulted} executes with a fault: {'every command accounted for' if accounted else 'NOT ALL ACCOUNTED FOR'}"
    )
    print(f"database at the end: {samples[-1].db_bytes / 2**20:.1f} MiB (SQLite file + WAL)")
    return 0 if rss_ok and fd_ok and late == 0 and accounted else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=100_000, help="slash commands to send")
    parser.add_argument("--clicks", type=int, default=20_000, help="approval clicks among them")
    parser.add_argument("--every", type=int, default=10_000, help="commands per sample")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--users", type=int, default=50, help="distinct Slack users sending")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait to settle")
    parser.add_argument("--no-faults", action="store_true", help="arm no sandbox faults")
    parser.add_argument("--log-level", default="WARNING", help="the bot's LOG_LEVEL")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    if not 0 <= args.clicks <= args.commands or args.users < 3 or args.every < 1:
        parser.error("need 0 <= clicks <= commands, users >= 3, every >= 1")
    print(
        f"bench/soak.py: {args.commands:,} signed slash commands from {args.users} users, "
        f"{args.clicks:,} of them approval requests clicked Approve, {args.concurrency} in flight, "
        f"sampled every {args.every:,} commands; faults: "
        + ("none" if args.no_faults else ", ".join(FAULTS) + " (armed again each window)")
        + f"; bot LOG_LEVEL={args.log_level}"
    )
    for line in machine_lines():
        print(line)
    print(
        "processes: this one (load generator, one aiohttp ClientSession), nexthink-bot serve "
        "(HTTP mode, SQLite), LocalSlack, sandbox"
    )
    with Procs(keep=args.keep_logs) as procs:
        try:
            return asyncio.run(run(args, procs))
        except (RuntimeError, OSError, aiohttp.ClientError) as exc:
            print(f"bench/soak.py failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench/soak.py interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
