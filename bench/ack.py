"""Acknowledgement latency and throughput of ``/nexthink run``: the bot against bare Bolt and
against plain aiohttp that only verifies the signature (the floor).

    ./dev python bench/ack.py [--commands 2000] [--concurrency 50] [--rounds 4]

Starts, each in its own process: a LocalSlack (``bench/_slack_server.py``), the Nexthink
sandbox (``nexthink-bot sandbox``), ``nexthink-bot serve`` in HTTP mode on them with a policy
that lets everyone run anything on themselves and raises the per-user limit to 10,000 runs a
minute, and bare slack-bolt AsyncApps served by aiohttp whose ``/nexthink`` only acks
(``bench/_bare_bolt.py``): one with Bolt's defaults (the baseline of the goals) and, unless
``--no-pbr-baseline``, one with ``process_before_response=True`` as the bot's app has; and,
unless ``--no-floor``, plain aiohttp whose ``/slack/events`` only verifies Slack's signature
with slack_sdk's ``SignatureVerifier`` and answers 200 (``bench/_plain_aiohttp.py``): the floor
no Slack app on aiohttp goes below on this machine.

This process is the load generator. The signed slash commands ``/nexthink run restart_teams``
from ``--users`` distinct people are built and signed by ``SlackDriver`` (in the LocalSlack
process) before each round's timer starts; then one aiohttp client session keeps
``--concurrency`` requests in flight and times each one to its HTTP response, which is the
acknowledgement.

The servers get the same load in rounds of ``--commands / --rounds`` commands, taking turns
(the order rotates each round), after a warm-up of each. The bot keeps working after it
acknowledges (``users.info``, the Nexthink token, the execute, the reply on the response URL):
after each of its rounds the benchmark waits until every reply has reached LocalSlack before
the next round starts, so that work is not billed to the others. CPU time of every process
(``/proc/<pid>/stat``) and of the whole machine (``/proc/stat``) is read per round, to show how
contended the cores were.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import aiohttp
from _support import (
    BENCH_DIR,
    HOST,
    Proc,
    Procs,
    Stack,
    free_port,
    machine_busy_seconds,
    machine_lines,
    percentile,
    wait_http,
    write_policy,
)

TEXT = "run restart_teams"
MACHINE = "machine"  # every process, the benchmark's and others'; not a process of its own


@dataclass
class Round:
    target: str
    latencies: list[float]
    wall: float
    errors: int
    cpu: dict[str, float]  # process name -> CPU seconds during the round
    drain: float = 0.0  # bot only: seconds after the round until every reply was posted
    drain_cpu: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall


async def load(
    session: aiohttp.ClientSession,
    url: str,
    requests: list[tuple[bytes, dict[str, str]]],
    concurrency: int,
) -> tuple[list[float], float, int]:
    """Post every request with ``concurrency`` in flight; (latencies, wall seconds, errors)."""
    latencies: list[float] = []
    errors = 0
    queue = iter(requests)
    perf = time.perf_counter

    async def worker() -> None:
        nonlocal errors
        for body, headers in queue:
            started = perf()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies.append(perf() - started)
            errors += not ok

    started = perf()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, perf() - started, errors


def cpu_of(procs: dict[str, Proc]) -> dict[str, float]:
    values = {name: proc.cpu_seconds() for name, proc in procs.items()}
    values["loader (this process)"] = time.process_time()
    values[MACHINE] = machine_busy_seconds()
    return values


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after}


async def wait_replies(stack: Stack, session: aiohttp.ClientSession, expected: int) -> None:
    """Until LocalSlack has accepted ``expected`` replies on response URLs in all."""
    deadline = time.perf_counter() + 300
    while (await stack.slack.stats(session))["response_url_ok"] < expected:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the bot did not post {expected} replies within 300 s")
        if not stack.bot.alive():
            raise RuntimeError(f"the bot exited:\n{stack.bot.tail()}")
        await asyncio.sleep(0.02)


#: Slack shows "operation_timeout" for an acknowledgement later than this (the tests do not
#: time acks: tests/test_e2e_load.py and tests/test_hostile_load.py check what happens under load)
SLACK_ACK_DEADLINE = 3.0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def summary_line(name: str, rounds: list[Round]) -> tuple[float, float, float, str]:
    latencies = [x for r in rounds for x in r.latencies]
    wall = sum(r.wall for r in rounds)
    throughput = len(latencies) / wall
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    errors = sum(r.errors for r in rounds)
    late = sum(1 for x in latencies if x >= SLACK_ACK_DEADLINE)
    line = (
        f"{name:<14} {throughput:8.0f} /s  p50 {ms(p50)} ms  p90 {ms(percentile(latencies, 90))} ms"
        f"  p99 {ms(p99)} ms  max {ms(max(latencies))} ms  ({len(latencies)} commands, {errors} errors,"
        f" {late} over Slack's {SLACK_ACK_DEADLINE:g} s)"
    )
    return throughput, p50, p99, line


BOT = "nexthink-bot"
BARE = "bare Bolt"
BARE_PBR = "bare Bolt pbr"  # process_before_response=True
PLAIN = "plain aiohttp"  # only verifies the signature: the floor


async def start_bare(procs: Procs, stack: Stack, name: str, *, pbr: bool) -> tuple[Proc, str]:
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "_bare_bolt.py"), "--port", str(port)]
    argv += ["--slack-api-url", stack.slack.api_url]
    if pbr:
        argv.append("--process-before-response")
    proc = procs.start(name.replace(" ", "-"), argv, cwd=procs.tmp)
    url = f"http://{HOST}:{port}"
    await wait_http(f"{url}/healthz", proc)
    return proc, f"{url}/slack/events"


async def start_plain(procs: Procs) -> tuple[Proc, str]:
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "_plain_aiohttp.py"), "--port", str(port)]
    proc = procs.start("plain-aiohttp", argv, cwd=procs.tmp)
    url = f"http://{HOST}:{port}"
    await wait_http(f"{url}/healthz", proc)
    return proc, f"{url}/slack/events"


async def run(args: argparse.Namespace, procs: Procs) -> None:
    policy = write_policy(procs)
    stack = await Stack.start(procs, users=args.users, policy_file=policy, log_level=args.log_level)
    bare, bare_url = await start_bare(procs, stack, BARE, pbr=False)
    urls = {BOT: stack.events_url, BARE: bare_url}
    watched = {"serve": stack.bot, BARE: bare}
    if not args.no_pbr_baseline:
        bare_pbr, urls[BARE_PBR] = await start_bare(procs, stack, BARE_PBR, pbr=True)
        watched[BARE_PBR] = bare_pbr
    if not args.no_floor:
        plain, urls[PLAIN] = await start_plain(procs)
        watched[PLAIN] = plain
    watched.update({"LocalSlack": stack.slack.proc, "sandbox": stack.sandbox})
    per_round = args.commands // args.rounds
    warmup = min(args.warmup, per_round)
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as control,
        aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=30)
        ) as session,
    ):
        users = [f"U0BENCH{i % args.users:03d}" for i in range(max(warmup, per_round))]

        async def signed(url: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
            # signed now, before the round's timer starts (Bolt refuses signatures over 5 min old)
            return await stack.slack.signed_commands(
                control, url, [(u, TEXT) for u in users[:count]]
            )

        for name, url in urls.items():  # warm-up: Bolt's auth.test, token, profiles, pools
            batch = await signed(url, warmup)
            _, _, errors = await load(session, url, batch, args.concurrency)
            if errors:
                raise RuntimeError(f"{name}: {errors} of {warmup} warm-up commands failed")
        posted = warmup
        await wait_replies(stack, control, posted)

        order = list(urls)
        rounds: dict[str, list[Round]] = {name: [] for name in urls}
        for k in range(args.rounds):
            for name in order[k % len(order) :] + order[: k % len(order)]:
                batch = await signed(urls[name], per_round)
                before = cpu_of(watched)
                latencies, wall, errors = await load(session, urls[name], batch, args.concurrency)
                this = Round(name, latencies, wall, errors, delta(cpu_of(watched), before))
                if name == BOT:
                    posted += len(batch)
                    before, started = cpu_of(watched), time.perf_counter()
                    await wait_replies(stack, control, posted)
                    this.drain = time.perf_counter() - started
                    this.drain_cpu = delta(cpu_of(watched), before)
                rounds[name].append(this)
                print(
                    f"  round {k + 1} {name:<14} {this.throughput:6.0f} /s  "
                    f"p50 {ms(percentile(latencies, 50))} ms  p99 {ms(percentile(latencies, 99))} ms"
                    + (f"  (replies all posted {this.drain:.2f} s later)" if this.drain else ""),
                    flush=True,
                )
        stats = await stack.slack.stats(control)

    print()
    summary = {name: summary_line(name, rounds[name]) for name in urls}
    for _, _, _, line in summary.values():
        print(line)
    bot_tp, _, bot_p99, _ = summary[BOT]
    for base in (BARE, BARE_PBR, PLAIN):
        if base not in summary:
            continue
        base_tp, _, base_p99, _ = summary[base]
        p99_ratio, tp_ratio = bot_p99 / base_p99, bot_tp / base_tp
        if base == BARE:
            goals = (
                f" (goals: p99 <= 1.3x {'met' if p99_ratio <= 1.3 else 'MISSED'}, "
                f"throughput >= 0.8x {'met' if tp_ratio >= 0.8 else 'MISSED'})"
            )
        elif base == PLAIN:
            at_floor = p99_ratio <= 1.0 and tp_ratio >= 1.0
            goals = (
                " (the floor: signature check only; the bot at it (p99 <= 1x, throughput "
                f">= 1x): {'yes' if at_floor else 'NO'})"
            )
        else:
            goals = " (for information: the bot's app also sets process_before_response=True)"
        print(f"bot / {base}: p99 {p99_ratio:.2f}x, throughput {tp_ratio:.2f}x{goals}")
    print()
    print("CPU from /proc/<pid>/stat, in cores busy (CPU seconds / wall seconds):")
    for name in urls:
        wall = sum(r.wall for r in rounds[name])
        total = {proc: sum(r.cpu[proc] for r in rounds[name]) for proc in rounds[name][0].cpu}
        machine = total.pop(MACHINE)
        busy = ", ".join(
            f"{proc} {seconds / wall:.2f}" for proc, seconds in total.items() if seconds
        )
        ours = sum(total.values())
        print(
            f"  during the {name} rounds ({wall:.2f} s): {busy}; the benchmark's processes "
            f"{ours / wall:.2f}, the whole machine {machine / wall:.2f} of {os.cpu_count()} "
            f"(other work {(machine - ours) / wall:.2f})"
        )
    drains = [r.drain for r in rounds[BOT]]
    drain_cpu = sum(r.drain_cpu["serve"] for r in rounds[BOT])
    drain_wall = sum(drains)
    drain_machine = sum(r.drain_cpu[MACHINE] for r in rounds[BOT])
    print(
        f"  after each bot round its replies were all posted within median {statistics.median(drains):.2f} s "
        f"(max {max(drains):.2f} s); serve used {drain_cpu:.2f} CPU s then, "
        f"{drain_cpu / (len(drains) * per_round) * 1000:.1f} ms per command; the whole machine was "
        f"{drain_machine / drain_wall:.2f} cores busy then"
    )
    calls = stats["calls"]
    print(
        f"  LocalSlack saw users.info {calls.get('users.info', 0)} times "
        f"(for {len(stats['users_info'])} distinct users), {stats['response_url_ok']} replies on "
        f"response URLs, auth.test {calls.get('auth.test', 0)} times (all apps; Bolt calls it on each "
        "request until its first answer is cached)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=2000, help="measured commands per server")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per server, taking turns")
    parser.add_argument(
        "--warmup", type=int, default=100, help="unmeasured commands per server first"
    )
    parser.add_argument("--users", type=int, default=50, help="distinct Slack users sending")
    parser.add_argument("--log-level", default="INFO", help="the bot's LOG_LEVEL (default INFO)")
    parser.add_argument(
        "--no-pbr-baseline",
        action="store_true",
        help="skip the second baseline (bare Bolt with process_before_response=True)",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the third reference (plain aiohttp that only verifies the signature)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    if not 1 <= args.rounds <= args.commands or args.concurrency < 1 or args.commands > 50_000:
        parser.error("need 1 <= rounds <= commands <= 50000 and concurrency >= 1")
    print(
        f"bench/ack.py: {args.commands} signed '/nexthink {TEXT}' per server from {args.users} users, "
        f"{args.concurrency} in flight, {args.rounds} rounds of {args.commands // args.rounds} taking turns "
        f"after {args.warmup} warm-up commands each; bot LOG_LEVEL={args.log_level}"
    )
    for line in machine_lines():
        print(line)
    print(
        "processes: this one (load generator: one aiohttp ClientSession, keep-alive, over 127.0.0.1), "
        "nexthink-bot serve (HTTP mode, SQLite), bare Bolt (Bolt's defaults)"
        + ("" if args.no_pbr_baseline else ", bare Bolt pbr (process_before_response=True)")
        + ("" if args.no_floor else ", plain aiohttp (signature check only)")
        + ", LocalSlack, sandbox"
    )
    with Procs(keep=args.keep_logs) as procs:
        try:
            asyncio.run(run(args, procs))
        except (RuntimeError, OSError, aiohttp.ClientError) as exc:
            print(f"bench/ack.py failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench/ack.py interrupted", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
