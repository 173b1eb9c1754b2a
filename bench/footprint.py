"""Start-up time and idle memory of ``nexthink-bot serve``.

    ./dev python bench/footprint.py [--starts 5] [--idle 2]

Starts a LocalSlack (``bench/_slack_server.py``) and the Nexthink sandbox once, each in its
own process, then starts ``nexthink-bot serve`` in HTTP mode on them ``--starts`` times, one
after the other. For each start: the time from just before the process is created to the
first ``GET /healthz`` answering 200 (polled every 5 ms), the time to ``GET /readyz``
answering 200 (Slack's ``auth.test`` and a Nexthink token done), then, after ``--idle``
seconds without requests, ``VmRSS`` (and the peak, ``VmHWM``) from ``/proc/<pid>/status``;
then SIGTERM and the time to exit. Every start uses the same SQLite file (the first one
creates its schema). For scale, the same is measured for a bare Python interpreter
(``python -c pass``, to exit) and the bare Bolt app of ``bench/ack.py`` (to ``/healthz``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

from _support import (
    BENCH_DIR,
    HOST,
    Procs,
    free_port,
    machine_lines,
    start_bot,
    start_sandbox,
    start_slack,
    wait_http,
)


def _stats(values: list[float], unit: str, scale: float = 1.0) -> str:
    scaled = [v * scale for v in values]
    return (
        f"median {statistics.median(scaled):.2f} {unit} "
        f"(min {min(scaled):.2f}, max {max(scaled):.2f}, n={len(scaled)})"
    )


def interpreter_seconds(times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        out.append(time.perf_counter() - started)
    return out


async def run(args: argparse.Namespace, procs: Procs) -> None:
    slack = start_slack(procs, users=5)
    sandbox, sandbox_url = start_sandbox(procs)
    await wait_http(f"{slack.control_url}/stats", slack.proc)
    await wait_http(f"{sandbox_url}/_sandbox", sandbox)
    workdir = procs.tmp / "serve"
    healthz, readyz, rss, hwm, stops = [], [], [], [], []
    for k in range(args.starts):
        proc, url = start_bot(
            procs,
            slack_api_url=slack.api_url,
            nexthink_url=sandbox_url,
            name=f"serve-{k + 1}",
            workdir=workdir,
        )
        healthz.append(await wait_http(f"{url}/healthz", proc, interval=0.005))
        readyz.append(await wait_http(f"{url}/readyz", proc, interval=0.005))
        await asyncio.sleep(args.idle)
        rss.append((proc.status_kib("VmRSS") or 0) / 1024)
        hwm.append((proc.status_kib("VmHWM") or 0) / 1024)
        started = time.perf_counter()
        code = procs.stop(proc)
        stops.append(time.perf_counter() - started)
        print(
            f"  start {k + 1}: /healthz {healthz[-1]:.2f} s, /readyz {readyz[-1]:.2f} s, "
            f"idle VmRSS {rss[-1]:.1f} MiB (VmHWM {hwm[-1]:.1f} MiB), "
            f"SIGTERM to exit {stops[-1]:.2f} s (status {code})",
            flush=True,
        )
    bare_times, bare_rss = [], []
    for k in range(args.starts):
        port = free_port()
        argv = [sys.executable, str(BENCH_DIR / "_bare_bolt.py"), "--port", str(port)]
        argv += ["--slack-api-url", slack.api_url]
        proc = procs.start(f"bare-bolt-{k + 1}", argv, cwd=procs.tmp)
        bare_times.append(await wait_http(f"http://{HOST}:{port}/healthz", proc, interval=0.005))
        await asyncio.sleep(args.idle)
        bare_rss.append((proc.status_kib("VmRSS") or 0) / 1024)
        procs.stop(proc)
    python = interpreter_seconds(args.starts)

    print()
    goal_start = statistics.median(healthz) <= 2.0
    goal_rss = statistics.median(rss) * 2**20 <= 100e6  # 100 MB = 95.4 MiB
    print(f"nexthink-bot serve, start to /healthz 200: {_stats(healthz, 's')}")
    print(f"  goal <= 2 s: {'met' if goal_start else 'MISSED'}")
    print(f"nexthink-bot serve, start to /readyz 200:  {_stats(readyz, 's')}")
    print(f"nexthink-bot serve, idle VmRSS after {args.idle:g} s:  {_stats(rss, 'MiB')}")
    print(
        f"  goal <= 100 MB (95.4 MiB): {'met' if goal_rss else 'MISSED'}; "
        f"peak VmHWM {_stats(hwm, 'MiB')}"
    )
    print(f"nexthink-bot serve, SIGTERM to exit:      {_stats(stops, 's')}")
    print(f"for scale: bare Bolt start to /healthz {_stats(bare_times, 's')}, idle VmRSS")
    print(f"  {_stats(bare_rss, 'MiB')}; python -c pass {_stats(python, 's')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=5, help="how many starts (default 5)")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle before reading RSS")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    if not 1 <= args.starts <= 50 or not 0 <= args.idle <= 60:
        parser.error("need 1 <= starts <= 50 and 0 <= idle <= 60")
    print(
        f"bench/footprint.py: {args.starts} starts of 'nexthink-bot serve' (HTTP mode, SQLite, "
        "LOG_LEVEL=INFO) on a LocalSlack and the sandbox in processes of their own"
    )
    for line in machine_lines():
        print(line)
    with Procs(keep=args.keep_logs) as procs:
        try:
            asyncio.run(run(args, procs))
        except (RuntimeError, OSError) as exc:
            print(f"bench/footprint.py failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench/footprint.py interrupted", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
