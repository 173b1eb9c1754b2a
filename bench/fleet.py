"""Fleet runs of 10, 100 and 999 devices: NQL calls, Slack updates, peak memory, time.

    ./dev python bench/fleet.py [--sizes 10,100,999] [--first-poll 3] [--execution-delay 1]

Starts, each in its own process: a LocalSlack (``bench/_slack_server.py``), the Nexthink sandbox
(``nexthink-bot sandbox``, executions ending ``--execution-delay`` s after they start) and
``nexthink-bot serve`` (HTTP mode, SQLite) following outcomes with
``NEXTHINK_STATUS_QUERY_ID=#chatops_execution_status``, its first look ``--first-poll`` s after
the run, then every 0.5-2 s. For each size the sandbox gets a saved query of that many new
devices (``POST /_sandbox/queries``), and this process sends, signed as Slack signs them,
``/nexthink run clear_disk_space query:#fleet_<n>``, waits for the preview (count, sample,
Run / Cancel), clicks Run (a signed ``block_actions`` built by LocalSlack's driver), and waits
until the run's follow-up is done in the bot's database (read-only ``sqlite3``).

Per run it prints: the NQL calls the sandbox received (the query of the targets, then the
status follow-up's looks), the V2 executes and how many devices they carried, the Slack calls
the bot made (``chat.*`` methods and posts through response URLs; LocalSlack's journal), the
bot's RSS before the run and its peak during it (``VmHWM`` of ``serve``, reset with
``/proc/<pid>/clear_refs`` before each run; when the kernel refuses the reset, the peak is the
process's since it started, and is said so), the CPU time ``serve`` used, and the times from the
command to the preview, from the click to the execute received by the sandbox and to the final
summary (the last is mostly ``--first-poll``). Then (unless ``--no-v1``) the sandbox loses its V2
execute (``POST /_sandbox/api without-v2``) and the largest fleet runs again: one V2 404, then
V1 (its rows carry Collector UUIDs). Last, a query of 1,500 devices, which NQL answers with 1,000
rows: the bot refuses it (no preview, no execute). Exits 1 if a run does not end
with one execute, or the refusal is not a refusal.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _support import Procs, Stack, machine_lines

from handlers import ids

USER = "U0BENCH000"
CHANNEL = "C0SUPPORT"
STATUS_QUERY = "#chatops_execution_status"


def write_policy(procs: Procs) -> Path:
    path = procs.tmp / "policy.yaml"
    path.write_text(
        "roles:\n"
        "  fleet:\n"
        '    members: ["*"]\n'
        '    workflows: ["*"]\n'
        "    targets: any\n"
        "    query_targets: true\n"
        "limits:\n"
        "  runs_per_user_per_minute: 10000\n"
    )
    return path


@dataclass
class Figures:
    size: int
    target_queries: int
    status_queries: int
    executes: int
    devices_sent: int
    slack_calls: dict[str, int]
    response_urls: int
    rss_before_kib: int
    peak_kib: int
    peak_reset: bool
    cpu_s: float
    to_preview_s: float
    to_execute_s: float
    to_summary_s: float
    api: str = "v2"


class Bench:
    def __init__(self, stack: Stack, control: aiohttp.ClientSession, db: Path) -> None:
        self.stack = stack
        self.control = control
        self.db = db

    async def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        async with self.control.request(method, url, **kwargs) as response:
            response.raise_for_status()
            return await response.json()

    async def slack_stats(self) -> dict[str, Any]:
        return await self.stack.slack.stats(self.control)

    async def post(self, body: bytes, headers: dict[str, str]) -> None:
        async with self.control.post(self.stack.events_url, data=body, headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"the bot answered {r.status} to a signed request")

    async def command(self, text: str) -> None:
        [(body, headers)] = await self.stack.slack.signed_commands(
            self.control, self.stack.events_url, [(USER, text)]
        )
        await self.post(body, headers)

    async def click_run(self, within: float) -> float:
        """Wait for a preview with Run, click it; seconds waited for the preview."""
        started = time.perf_counter()
        payload = {
            "events_url": self.stack.events_url,
            "channel": CHANNEL,
            "action_id": ids.FLEET_RUN,
            "user": USER,
            "max": 1,
        }
        while True:
            data = await self._json("POST", f"{self.stack.slack.control_url}/clicks", json=payload)
            if data["clicks"]:
                waited = time.perf_counter() - started
                click = data["clicks"][0]
                await self.post(click["body"].encode(), click["headers"])
                return waited
            if time.perf_counter() - started > within:
                raise RuntimeError("no preview with a Run button was posted")
            await asyncio.sleep(0.05)

    async def journal(self, endpoint: str) -> list[dict[str, Any]]:
        return await self.stack.journal(self.control, endpoint)

    async def wait_for(self, what: str, check: Any, within: float) -> float:
        started = time.perf_counter()
        while not await check():
            if time.perf_counter() - started > within:
                raise RuntimeError(f"not within {within:g} s: {what}")
            await asyncio.sleep(0.02)
        return time.perf_counter() - started

    def followups_done(self) -> tuple[int, int]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as conn:
            done, total = conn.execute(
                "SELECT COALESCE(SUM(done), 0), COUNT(*) FROM followups"
            ).fetchone()
        return int(done), int(total)


def reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def one_run(bench: Bench, size: int, within: float) -> Figures:
    stack = bench.stack
    query_id = f"#fleet_{size}_{int(time.time() * 1000) % 100000}"
    await bench._json(
        "POST", f"{stack.sandbox_url}/_sandbox/queries", json={"queryId": query_id, "devices": size}
    )
    await bench._json("DELETE", f"{stack.sandbox_url}/_sandbox/journal")
    before_slack = await bench.slack_stats()
    done_before, total_before = bench.followups_done()
    rss_before = stack.bot.status_kib("VmRSS") or 0
    peak_reset = reset_peak(stack.bot.pid)
    cpu_before = stack.bot.cpu_seconds()
    await bench.command(f"run clear_disk_space query:{query_id}")
    to_preview = await bench.click_run(within)
    clicked = time.perf_counter()

    async def sent() -> list[dict[str, Any]]:
        v2 = [e for e in await bench.journal("execute_v2") if e["status"] == 200]
        return v2 + await bench.journal("execute_v1")

    async def executed() -> bool:
        return bool(await sent())

    async def summarized() -> bool:
        done, total = bench.followups_done()
        return total > total_before and done > done_before

    to_execute = await bench.wait_for("the execute", executed, within)
    await bench.wait_for("the final summary", summarized, within)
    to_summary = time.perf_counter() - clicked
    await asyncio.sleep(0.3)  # the summary's Slack update follows the follow-up's record
    cpu = stack.bot.cpu_seconds() - cpu_before
    peak = stack.bot.status_kib("VmHWM") or 0
    nql = await bench.journal("nql")
    executes = await sent()
    missing_v2 = sum(1 for e in await bench.journal("execute_v2") if e["status"] == 404)
    after_slack = await bench.slack_stats()
    calls = {
        m: after_slack["calls"].get(m, 0) - before_slack["calls"].get(m, 0)
        for m in after_slack["calls"]
        if m.startswith("chat.")
        and after_slack["calls"].get(m, 0) != before_slack["calls"].get(m, 0)
    }
    return Figures(
        size=size,
        target_queries=sum(1 for e in nql if e["body"].get("queryId") == query_id),
        status_queries=sum(1 for e in nql if e["body"].get("queryId") == STATUS_QUERY),
        executes=len(executes),
        devices_sent=sum(len(e["body"].get("devices", [])) for e in executes),
        slack_calls=calls,
        response_urls=after_slack["response_url_ok"] - before_slack["response_url_ok"],
        rss_before_kib=rss_before,
        peak_kib=peak,
        peak_reset=peak_reset,
        cpu_s=cpu,
        to_preview_s=to_preview,
        to_execute_s=to_execute,
        to_summary_s=to_summary,
        api=f"v1 (after {missing_v2} V2 404)" if missing_v2 else "v2" if executes else "-",
    )


async def refused_run(bench: Bench, within: float) -> tuple[int, int, bool]:
    """1,500 devices, answered as 1,000 rows: NQL calls, executes, whether a preview came."""
    stack = bench.stack
    await bench._json(
        "POST",
        f"{stack.sandbox_url}/_sandbox/queries",
        json={"queryId": "#too_big", "devices": 1500},
    )
    await bench._json("DELETE", f"{stack.sandbox_url}/_sandbox/journal")
    before = (await bench.slack_stats())["response_url_ok"]
    await bench.command("run clear_disk_space query:#too_big")

    async def answered() -> bool:
        return (await bench.slack_stats())["response_url_ok"] > before

    await bench.wait_for("the refusal", answered, within)
    payload = {
        "events_url": stack.events_url,
        "channel": CHANNEL,
        "action_id": ids.FLEET_RUN,
        "user": USER,
        "max": 1,
    }
    clicks = await bench._json("POST", f"{stack.slack.control_url}/clicks", json=payload)
    return (
        len(await bench.journal("nql")),
        len(await bench.journal("execute_v2")),
        bool(clicks["clicks"]),
    )


def show(f: Figures) -> None:
    slack = ", ".join(f"{m} {n}" for m, n in sorted(f.slack_calls.items()))
    slack = f"{slack}, response_url {f.response_urls}".lstrip(", ")
    print(
        f"{f.size:>7} {f'{f.target_queries} + {f.status_queries}':>19} "
        f"{f'{f.executes} ({f.devices_sent})':>18} {slack:>28} "
        f"{f.rss_before_kib / 1024:>7.1f} {f.peak_kib / 1024:>7.1f}{'' if f.peak_reset else '*'} "
        f"{f.cpu_s:>6.2f} {f.to_preview_s * 1000:>6.0f}ms {f.to_execute_s * 1000:>6.0f}ms "
        f"{f.to_summary_s:>7.1f}s"
    )
    if not f.peak_reset:
        print("  * the kernel refused to reset VmHWM: the peak is serve's since it started")


async def run(args: argparse.Namespace, procs: Procs) -> int:
    env = {
        "NEXTHINK_STATUS_QUERY_ID": STATUS_QUERY,
        "FOLLOWUP_FIRST_POLL_SECONDS": str(args.first_poll),
        "FOLLOWUP_MAX_INTERVAL_SECONDS": "2",
        "FOLLOWUP_TICK_SECONDS": "0.5",
    }
    stack = await Stack.start(
        procs,
        users=3,
        policy_file=write_policy(procs),
        log_level=args.log_level,
        execution_delay=args.execution_delay,
        extra_env=env,
    )
    ok = True
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as control:
        bench = Bench(stack, control, procs.tmp / "serve" / "bot.db")
        print(
            f"{'targets':>7} {'NQL: targets+status':>19} {'executes (devices)':>18} "
            f"{'Slack calls':>28} {'RSS MiB':>7} {'peak MiB':>8} {'CPU s':>6} "
            f"{'preview':>8} {'execute':>8} {'summary':>8}"
        )
        for size in args.sizes:
            f = await one_run(bench, size, args.timeout)
            ok = ok and f.executes == 1 and f.devices_sent == size
            show(f)
        if args.v1:  # the instance loses its V2 execute: the same fleet through V1
            async with control.post(f"{stack.sandbox_url}/_sandbox/api", data="without-v2") as r:
                r.raise_for_status()
            size = max(args.sizes)
            f = await one_run(bench, size, args.timeout)
            ok = ok and f.executes == 1 and f.devices_sent == size and f.api.startswith("v1")
            print(f"without V2 (NEXTHINK_EXECUTE_API=auto): {f.api}")
            show(f)
        nql, executes, preview = await refused_run(bench, args.timeout)
        refused = executes == 0 and not preview
        ok = ok and refused
        print(
            f"1,500 devices (NQL answers 1,000 rows): {nql} NQL call, {executes} executes, "
            f"{'a preview was posted' if preview else 'refused, no preview'}"
        )
    print(
        "NQL: the sandbox's journal (the targets' query, then the status follow-up's looks, one "
        "NQL call per look whatever the size); Slack calls: LocalSlack's journal of the bot's "
        "calls during the run (the preview and the run's reply go through response URLs, the "
        "reply replacing the preview; a summary update is one more); RSS/peak: /proc of serve; "
        "times from this process's clock: command sent -> preview's Run clickable, click -> "
        f"execute journaled, click -> follow-up done (first look {args.first_poll:g} s after the run)"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 100, 999],
        help="fleet sizes, comma-separated (each at most 999)",
    )
    parser.add_argument("--first-poll", type=float, default=3.0, help="first follow-up look, s")
    parser.add_argument("--execution-delay", type=float, default=1.0, help="sandbox executions, s")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a step")
    parser.add_argument(
        "--no-v1", dest="v1", action="store_false", help="skip the run on an instance without V2"
    )
    parser.add_argument("--log-level", default="WARNING", help="the bot's LOG_LEVEL")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    if not all(1 <= s <= 999 for s in args.sizes):
        parser.error("each size must be 1-999 (1,000 rows are refused: that is the last check)")
    print(
        f"bench/fleet.py: fleet runs of {', '.join(map(str, args.sizes))} devices, one after "
        f"the other; sandbox executions end after {args.execution_delay:g} s; the bot's first "
        f"follow-up look {args.first_poll:g} s after the run; bot LOG_LEVEL={args.log_level}"
    )
    for line in machine_lines():
        print(line)
    print(
        "processes: this one (signed requests), nexthink-bot serve (HTTP, SQLite), LocalSlack, sandbox"
    )
    with Procs(keep=args.keep_logs) as procs:
        try:
            return asyncio.run(run(args, procs))
        except (RuntimeError, OSError, aiohttp.ClientError) as exc:
            print(f"bench/fleet.py failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench/fleet.py interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
