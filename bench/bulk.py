"""Building, validating and sending V2 execute requests for many devices.

    ./dev python bench/bulk.py [--sizes 1000,10000,50000] [--runs 5]

For each size, in this process: the device targets (``DeviceData(name=...)``, from names made
beforehand), the V2 request bodies (``ExternalIdsExecutionRequest``, at most 10,000 devices
each, as ``NexthinkClient.execute_many`` splits them) and their JSON (``to_json()``) are timed
apart; then those requests are sent one after the other with ``NexthinkClient.execute`` to
the Nexthink sandbox (``nexthink-bot sandbox``, its own process, restarted for each size,
its journal emptied after each run; the devices are unknown to it, so it accepts each request
and fails every execution at once), and finally the whole ``execute_many`` path is timed
from the list of ``DeviceData``. Times are medians of ``--runs`` runs (the first run of each
size is a warm-up and not counted). The token is fetched before any timing.

Memory, in a separate run per size so that tracing does not slow the timed ones: the peak of
Python allocations (``tracemalloc``) while building the targets, the requests, and along the
whole ``execute_many``, and the growth of this process's peak RSS (``VmHWM``, reset through
``/proc/self/clear_refs``) along target building plus ``execute_many``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
from _support import Procs, machine_lines, start_sandbox, wait_http

from bot.logging import configure
from bot.nexthink.client import NexthinkClient
from bot.nexthink.models import MAX_TARGETS, DeviceData, ExternalIdsExecutionRequest

WORKFLOW = "clear_disk_space"  # a device workflow of the sandbox
PARAMS: dict[str, str] = {}


def devices_for(names: list[str]) -> list[DeviceData]:
    return [DeviceData(name=name) for name in names]


def requests_for(devices: list[DeviceData]) -> list[ExternalIdsExecutionRequest]:
    """As ``execute_many`` builds them: one request per 10,000 devices, validated."""
    return [
        ExternalIdsExecutionRequest(
            workflow_id=WORKFLOW,
            users=[],
            devices=devices[k : k + MAX_TARGETS],
            params=dict(PARAMS),
        )
        for k in range(0, len(devices), MAX_TARGETS)
    ]


async def atimed(coro: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - started


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def clear_journal(session: aiohttp.ClientSession, url: str) -> None:
    async with session.delete(f"{url}/_sandbox/journal") as response:
        response.raise_for_status()


def client_for(url: str) -> NexthinkClient:
    return NexthinkClient(
        base_url=url,
        token_url=f"{url}/oauth2/default/v1/token",
        client_id="sandbox",
        client_secret="sandbox",
        read_timeout=120.0,
    )


async def measure_size(
    size: int, runs: int, procs: Procs, session: aiohttp.ClientSession
) -> dict[str, Any]:
    sandbox, url = start_sandbox(procs, execution_delay=2.0)
    try:
        await wait_http(f"{url}/_sandbox", sandbox)
        names = [f"BENCH-{i:06d}" for i in range(size)]
        out: dict[str, Any] = {"size": size, "n_requests": -(-size // MAX_TARGETS)}
        samples: dict[str, list[float]] = {
            k: [] for k in ("devices", "requests", "json", "send", "many", "sandbox_cpu")
        }
        async with client_for(url) as client:
            await client.token()
            for run in range(runs + 1):  # run 0 warms up
                gc.collect()
                started = time.perf_counter()
                devices = devices_for(names)
                t_devices = time.perf_counter() - started
                requests = requests_for(devices)
                t_requests = time.perf_counter() - started - t_devices
                started = time.perf_counter()
                bodies = [r.to_json() for r in requests]
                t_json = time.perf_counter() - started
                t_send = t_many = sandbox_cpu = 0.0
                for step in ("send", "many") if run % 2 else ("many", "send"):  # either first
                    gc.collect()
                    if step == "send":
                        cpu = sandbox.cpu_seconds()
                        started = time.perf_counter()
                        answers = [await client.execute(r) for r in requests]
                        t_send = time.perf_counter() - started
                        sandbox_cpu = sandbox.cpu_seconds() - cpu
                        executions = sum(len(a.executions_uuids) for a in answers)
                    else:
                        bulk, t_many = await atimed(
                            client.execute_many(WORKFLOW, [], devices, PARAMS)
                        )
                        executions = len(bulk.executions_uuids)
                    if executions != size:
                        raise RuntimeError(f"{step}: not one execution per device in the answer")
                    await clear_journal(session, url)
                if run:
                    for key, value in zip(
                        samples,
                        (t_devices, t_requests, t_json, t_send, t_many, sandbox_cpu),
                        strict=True,
                    ):
                        samples[key].append(value)
                del devices, requests, bodies
            out.update({k: statistics.median(v) for k, v in samples.items()})
            out["build_runs"] = [
                d + r for d, r in zip(samples["devices"], samples["requests"], strict=True)
            ]
            out.update(await measure_memory(client, names, session, url))
    finally:
        procs.stop(sandbox)
    return out


async def measure_memory(
    client: NexthinkClient, names: list[str], session: aiohttp.ClientSession, url: str
) -> dict[str, float]:
    gc.collect()
    rss_reset = _reset_peak_rss()
    rss_before = _status_kib("VmRSS")
    tracemalloc.start()
    try:
        devices = devices_for(names)
        _, devices_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        requests = requests_for(devices)
        _, requests_peak = tracemalloc.get_traced_memory()
        del requests
        tracemalloc.reset_peak()
        base_many, _ = tracemalloc.get_traced_memory()
        await client.execute_many(WORKFLOW, [], devices, PARAMS)
        _, many_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await clear_journal(session, url)
    hwm = _status_kib("VmHWM") if rss_reset else 0
    return {
        "mem_devices": devices_peak / 2**20,
        "mem_requests": (requests_peak - base) / 2**20,
        "mem_many": (many_peak - base_many) / 2**20,
        "rss_growth": (hwm - rss_before) / 1024 if rss_reset else float("nan"),
    }


async def run(args: argparse.Namespace, procs: Procs) -> list[dict[str, Any]]:
    results = []
    async with aiohttp.ClientSession() as session:
        for size in args.sizes:
            result = await measure_size(size, args.runs, procs, session)
            results.append(result)
            ms = {k: result[k] * 1000 for k in ("devices", "requests", "json", "send", "many")}
            per_request = ms["send"] / result["n_requests"]
            print(
                f"  {size:>6} devices, {result['n_requests']} request(s): build DeviceData {ms['devices']:.1f} ms "
                f"+ requests {ms['requests']:.1f} ms; to_json {ms['json']:.1f} ms; "
                f"send {ms['send']:.1f} ms ({per_request:.1f} ms per request, sandbox CPU "
                f"{result['sandbox_cpu'] * 1000:.0f} ms of it); execute_many {ms['many']:.1f} ms",
                flush=True,
            )
    return results


def report(results: list[dict[str, Any]], runs: int) -> None:
    print()
    print(f"medians of {runs} runs, ms (memory: MiB, from one traced run per size):")
    print(
        f"{'devices':>8} {'requests':>8} {'DeviceData':>10} {'requests':>8} {'build':>6} "
        f"{'to_json':>7} {'send':>7} {'per req':>7} {'exec_many':>9} | {'mem: targets':>12} "
        f"{'requests':>8} {'exec_many':>9} {'RSS peak +':>10}"
    )
    for r in results:
        ms = {k: r[k] * 1000 for k in ("devices", "requests", "json", "send", "many")}
        print(
            f"{r['size']:>8} {r['n_requests']:>8} {ms['devices']:>10.1f} {ms['requests']:>8.1f} "
            f"{ms['devices'] + ms['requests']:>6.1f} {ms['json']:>7.1f} {ms['send']:>7.1f} "
            f"{ms['send'] / r['n_requests']:>7.1f} {ms['many']:>9.1f} | {r['mem_devices']:>12.1f} "
            f"{r['mem_requests']:>8.1f} {r['mem_many']:>9.1f} {r['rss_growth']:>10.1f}"
        )
    ten = next((r for r in results if r["size"] == 10_000), None)
    if ten is not None:
        build = (ten["devices"] + ten["requests"]) * 1000
        worst = max(ten["build_runs"]) * 1000
        verdict = "met" if build <= 50 else "MISSED"
        print(
            f"goal: build and validate 10,000 targets <= 50 ms: median {build:.1f} ms, "
            f"worst run {worst:.1f} ms ({verdict})"
        )
    print(
        "build = DeviceData + ExternalIdsExecutionRequest; send = to_json + HTTP + the sandbox's "
        "work + parsing the answer; execute_many = build requests + send"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1_000, 10_000, 50_000],
        help="device counts, comma-separated (default 1000,10000,50000)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per size (default 5)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the sandbox's logs")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20 or not all(1 <= s <= 100_000 for s in args.sizes):
        parser.error("need 1 <= runs <= 20 and sizes between 1 and 100000")
    print(
        f"bench/bulk.py: V2 execute requests of '{WORKFLOW}' for {', '.join(map(str, args.sizes))} "
        f"devices, split in requests of {MAX_TARGETS:,}, built here and sent with NexthinkClient "
        "(httpx) to the sandbox in its own process over 127.0.0.1"
    )
    for line in machine_lines():
        print(line)
    configure(level="WARNING", fmt="console")  # the client's own log lines would mix in
    with Procs(keep=args.keep_logs) as procs:
        try:
            results = asyncio.run(run(args, procs))
        except (RuntimeError, OSError, aiohttp.ClientError) as exc:
            print(f"bench/bulk.py failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench/bulk.py interrupted", file=sys.stderr)
            return 130
    report(results, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
