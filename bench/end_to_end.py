"""Commands per second from a signed slash command to the V2 execute the sandbox receives.

    ./dev python bench/end_to_end.py [--commands 1000] [--concurrency 50] [--users 50]
                                     [--database postgresql://postgres@127.0.0.1:5432/test]

Starts, each in its own process: a LocalSlack (``bench/_slack_server.py``) with ``--users``
people (emails ``bench000@example.com``..., unknown to the sandbox, which accepts their runs
and fails each execution at once: fine here), the Nexthink sandbox (``nexthink-bot sandbox``)
and ``nexthink-bot serve`` in HTTP mode on them, freshly started (no cached token or profile;
``/readyz`` has fetched the first token), with a policy file that lets everyone run anything on
themselves and raises ``limits.runs_per_user_per_minute`` from the default 10 to 10,000 (the
most a policy file accepts; 10 would refuse most of these commands).

This process sends ``/nexthink run restart_teams n=<i>`` (``n`` tells the commands apart in
the sandbox's journal), signed beforehand by ``SlackDriver`` in the LocalSlack process, with
``--concurrency`` in flight over one aiohttp session, users taking turns. When every reply
has reached LocalSlack, the sandbox's journal (``GET /_sandbox/journal``) gives the time each
V2 execute was received; throughput is commands / (last execute received - first command
sent). Counts per 1,000 commands: token requests (goal: 1 in all) and ``users.info`` calls
(goal: one per distinct user).

The CPU per command after the ack (goal <= 2 ms) is serve's CPU per run command (from
``/proc/<pid>/stat``, until every reply has reached LocalSlack) less its CPU per
acknowledged-only command: before the run commands, as many ``/nexthink help`` are sent the
same way, which the bot answers in the acknowledgement itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime

import aiohttp
from _support import (
    Procs,
    Stack,
    database,
    machine_busy_seconds,
    machine_lines,
    percentile,
    write_policy,
)

TEXT = "run restart_teams n={n}"


async def run(args: argparse.Namespace, procs: Procs) -> None:
    async with database(args.database, procs.tmp) as url:
        await _measure(args, procs, url)


async def _measure(args: argparse.Namespace, procs: Procs, url: str) -> None:
    policy = write_policy(procs)
    stack = await Stack.start(
        procs,
        users=args.users,
        policy_file=policy,
        log_level=args.log_level,
        extra_env={"DATABASE_URL": url},
    )
    watched = {"serve": stack.bot, "LocalSlack": stack.slack.proc, "sandbox": stack.sandbox}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as control,
        aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=30)
        ) as session,
    ):
        # the reference first: as many /nexthink help, which the bot answers in the ack itself
        # (no work after it), so their CPU is what acknowledging a command costs
        helps = [(f"U0BENCH{i % args.users:03d}", "help") for i in range(args.commands)]
        prepared_helps = await stack.slack.signed_commands(control, stack.events_url, helps)
        items = [(f"U0BENCH{i % args.users:03d}", TEXT.format(n=i)) for i in range(args.commands)]
        prepared = await stack.slack.signed_commands(control, stack.events_url, items)
        tokens_before = len(await stack.journal(control, "token"))
        sent_at: list[float] = [0.0] * args.commands
        acks: list[float] = []
        failures = 0

        async def send(batch: list[tuple[bytes, dict[str, str]]], *, timed: bool) -> None:
            queue = iter(enumerate(batch))

            async def worker() -> None:
                nonlocal failures
                for n, (body, headers) in queue:
                    sent_at[n] = time.time()
                    started = time.perf_counter()
                    async with session.post(
                        stack.events_url, data=body, headers=headers
                    ) as response:
                        await response.read()
                        failures += response.status != 200
                    if timed:
                        acks.append(time.perf_counter() - started)

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))

        help_cpu = stack.bot.cpu_seconds()
        await send(prepared_helps, timed=False)
        help_cpu = stack.bot.cpu_seconds() - help_cpu
        cpu_before = {name: proc.cpu_seconds() for name, proc in watched.items()}
        loader_before = time.process_time()
        machine_before = machine_busy_seconds()
        started = time.time()
        await send(prepared, timed=True)
        acked = time.time() - started
        deadline = time.perf_counter() + args.timeout
        while (await stack.slack.stats(control))["response_url_ok"] < args.commands:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"not every command was answered within {args.timeout:g} s")
            if not stack.bot.alive():
                raise RuntimeError(f"the bot exited:\n{stack.bot.tail()}")
            await asyncio.sleep(0.05)
        settled = time.time() - started
        cpu = {name: proc.cpu_seconds() - cpu_before[name] for name, proc in watched.items()}
        cpu["loader (this process)"] = time.process_time() - loader_before
        machine = machine_busy_seconds() - machine_before
        executes = await stack.journal(control, "execute_v2")
        tokens = await stack.journal(control, "token")
        stats = await stack.slack.stats(control)

    received: dict[int, float] = {}
    for entry in executes:
        n = int(entry["body"]["params"]["n"])
        received[n] = datetime.fromisoformat(entry["at"]).timestamp()
    missing = args.commands - len(received)
    statuses = sorted({e["status"] for e in executes})
    last = max(received.values())
    wall = last - started
    latencies = [received[n] - sent_at[n] for n in received]
    per_k = 1000 / args.commands
    users_info = stats["calls"].get("users.info", 0)
    distinct = len(stats["users_info"])

    print()
    print(
        f"{len(received)} V2 executes received for {args.commands} commands "
        f"(HTTP statuses {statuses}; {missing} missing, {failures} acks not 200)"
    )
    print(
        f"throughput: {len(received) / wall:.0f} commands/s, first command sent to last execute "
        f"received {wall:.2f} s (all acked after {acked:.2f} s, all replies posted after {settled:.2f} s)"
    )
    print(
        f"command sent -> its execute received: p50 {percentile(latencies, 50) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
        f"ack p50 {percentile(acks, 50) * 1000:.1f} ms, p99 {percentile(acks, 99) * 1000:.1f} ms"
    )
    token_requests = len(tokens) - tokens_before
    print(
        f"token requests: {len(tokens)} in all since the bot started (the first by /readyz before "
        f"the commands), {token_requests} during the run = {token_requests * per_k:.1f} per 1,000 "
        f"commands (goal: 1 in all: {'met' if len(tokens) == 1 else 'MISSED'})"
    )
    print(
        f"users.info: {users_info} calls for {distinct} distinct users = {users_info * per_k:.1f} per "
        f"1,000 commands (goal: one per distinct user: {'met' if users_info == distinct == args.users else 'MISSED'})"
    )
    busy = ", ".join(f"{name} {seconds / settled:.2f}" for name, seconds in cpu.items())
    ours = sum(cpu.values())
    print(
        f"CPU, cores busy over the {settled:.2f} s until all replies: {busy}; the whole machine "
        f"{machine / settled:.2f} of {os.cpu_count()} (other work {(machine - ours) / settled:.2f}); "
        f"serve used {cpu['serve'] / args.commands * 1000:.1f} ms of CPU per command"
    )
    per_ack = help_cpu / args.commands * 1000
    after = (cpu["serve"] - help_cpu) / args.commands * 1000
    print(
        f"CPU per command after the ack: {after:.1f} ms (goal <= 2 ms: "
        f"{'met' if after <= 2 else 'MISSED'}) = {cpu['serve'] / args.commands * 1000:.1f} ms per "
        f"run command - {per_ack:.2f} ms per acknowledged-only command (as many '/nexthink help' "
        "sent first the same way, answered in their ack: what acknowledging costs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=1000, help="commands to send")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--users", type=int, default=50, help="distinct Slack users sending")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for replies")
    parser.add_argument("--log-level", default="INFO", help="the bot's LOG_LEVEL (default INFO)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument(
        "--database",
        help="PostgreSQL URL to run the bot's store on (a schema of its own, dropped after); "
        "default: a SQLite file",
    )
    args = parser.parse_args()
    if not 1 <= args.commands <= 20_000 or not 1 <= args.users <= 999 or args.concurrency < 1:
        parser.error("need 1 <= commands <= 20000, 1 <= users <= 999, concurrency >= 1")
    print(
        f"bench/end_to_end.py: {args.commands} signed '/nexthink {TEXT.format(n='<i>')}' from "
        f"{args.users} users, {args.concurrency} in flight, to a freshly started bot; policy: "
        "everyone may run anything on themselves, runs_per_user_per_minute raised to 10,000"
    )
    for line in machine_lines():
        print(line)
    print(
        "processes: this one (load generator, one aiohttp ClientSession over 127.0.0.1), "
        f"nexthink-bot serve (HTTP mode, {'PostgreSQL' if args.database else 'SQLite'}), "
        "LocalSlack, sandbox"
    )
    with Procs(keep=args.keep_logs) as procs:
        try:
            asyncio.run(run(args, procs))
        except (RuntimeError, OSError, aiohttp.ClientError) as exc:
            print(f"bench/end_to_end.py failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench/end_to_end.py interrupted", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
