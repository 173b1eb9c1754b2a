"""What the benchmarks share: subprocesses that are always stopped, the machine, percentiles.

Every server a benchmark needs runs in its own process, started here with its own process
group and stopped (SIGTERM, then SIGKILL) on the way out whatever happened, and listens on
127.0.0.1 only. Their output goes to log files in a temporary directory, named when a
process fails to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import make_url

__all__ = [
    "BENCH_DIR",
    "BOT_TOKEN",
    "HOST",
    "SIGNING_SECRET",
    "Proc",
    "Procs",
    "SlackServer",
    "Stack",
    "database",
    "free_port",
    "machine_busy_seconds",
    "machine_lines",
    "percentile",
    "start_bot",
    "start_sandbox",
    "start_slack",
    "wait_http",
    "write_policy",
]

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"  # the token the benchmark's LocalSlack accepts
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PACKAGES = ("slack-bolt", "slack-sdk", "aiohttp", "httpx", "pydantic", "structlog", "sqlalchemy")


def _bot_argv() -> list[str]:
    """``nexthink-bot`` from this interpreter's environment (the venv ``./dev`` runs us in)."""
    script = Path(sys.executable).parent / "nexthink-bot"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from bot.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(serve: Callable[[int], None], probe: str, within: float = 30.0) -> Iterator[str]:
    """``serve(port)`` (a plain HTTP server on 127.0.0.1) in a process of its own; yields its
    base URL once a POST to ``probe`` (a path) gets an answer; stopped on exit. ``RuntimeError``
    if it does not answer ``within`` seconds."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    server = multiprocessing.Process(target=serve, args=(port,), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + within
        while True:
            try:
                urllib.request.urlopen(url + probe, data=b"{}", timeout=5).close()  # noqa: S310
                break
            except urllib.error.HTTPError:
                break  # it answered
            except OSError:
                if time.monotonic() > deadline or not server.is_alive():
                    raise RuntimeError(f"the server for {probe} did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.join(5)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


class Proc:
    """A subprocess in its own process group, its output in ``log``."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self._out = log.open("wb")
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (its own, not its children's)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def status_kib(self, key: str = "VmRSS") -> int | None:
        """A ``/proc/<pid>/status`` memory line in KiB (VmRSS, VmHWM, ...)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the process group, then SIGKILL after ``timeout``; the exit status."""
        try:
            if self.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGTERM)
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.pid, signal.SIGKILL)
                    self.popen.wait(5)
            else:  # the leader is gone; make sure nothing it started lingers
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
        finally:
            self._out.close()
        return self.popen.returncode


@dataclass
class Procs:
    """The benchmark's processes and their temporary directory; stops them all on exit.

    SIGTERM and SIGHUP sent to the benchmark itself become ``SystemExit``, so the ``finally``
    that stops the subprocesses runs then too (Ctrl-C already raises ``KeyboardInterrupt``).
    """

    keep: bool = False
    procs: list[Proc] = field(default_factory=list)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nexthink-bench-")))

    def __enter__(self) -> Procs:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _exit_on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        if self.keep:
            print(f"logs kept in {self.tmp}")
        else:
            for path in sorted(self.tmp.rglob("*"), reverse=True):
                with contextlib.suppress(OSError):
                    path.unlink() if not path.is_dir() else path.rmdir()
            with contextlib.suppress(OSError):
                self.tmp.rmdir()

    def start(self, name: str, argv: list[str], **kwargs: Any) -> Proc:
        proc = Proc(name, argv, log=self.tmp / f"{name}.log", **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> int | None:
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.stop()

    def stop_all(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {proc.name} (pid {proc.pid}): {exc}", file=sys.stderr)


def _exit_on_signal(signum: int, frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)


async def wait_http(url: str, proc: Proc, within: float = 30.0, interval: float = 0.01) -> float:
    """Poll ``url`` until it answers 200; the seconds since ``proc`` was started.

    Raises ``RuntimeError`` with the end of its log if the process exits or time runs out.
    """
    deadline = time.perf_counter() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return time.perf_counter() - proc.started
            if not proc.alive():
                raise RuntimeError(
                    f"{proc.name} exited with status {proc.popen.returncode}:\n{proc.tail()}"
                )
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{proc.name}: {url} did not answer 200 within {within:g} s")
            await asyncio.sleep(interval)


# -- the servers ----------------------------------------------------------------------------


@dataclass
class SlackServer:
    proc: Proc
    api_url: str
    control_url: str

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(f"{self.control_url}/stats") as response:
            result: dict[str, Any] = await response.json()
            return result

    async def signed_commands(
        self,
        session: aiohttp.ClientSession,
        events_url: str,
        items: list[tuple[str, str]],
        *,
        chunk: int = 1000,
    ) -> list[tuple[bytes, dict[str, str]]]:
        """Slash commands ``(user_id, text)`` built and signed by a ``SlackDriver`` in the
        LocalSlack process (so their response URLs are that LocalSlack's): ``(body, headers)``."""
        out: list[tuple[bytes, dict[str, str]]] = []
        for start in range(0, len(items), chunk):
            payload = {"events_url": events_url, "commands": items[start : start + chunk]}
            async with session.post(f"{self.control_url}/commands", json=payload) as response:
                response.raise_for_status()
                data = await response.json()
            out += [(c["body"].encode(), c["headers"]) for c in data["commands"]]
        return out


def start_slack(procs: Procs, *, users: int) -> SlackServer:
    """A LocalSlack in its own process (``bench/_slack_server.py``) with ``users`` people."""
    port, control = free_port(), free_port()
    argv = [sys.executable, str(BENCH_DIR / "_slack_server.py")]
    argv += ["--port", str(port), "--control-port", str(control), "--users", str(users)]
    proc = procs.start("slack", argv, cwd=procs.tmp)
    return SlackServer(proc, f"http://{HOST}:{port}/api/", f"http://{HOST}:{control}/_bench")


def start_sandbox(procs: Procs, *, execution_delay: float = 2.0) -> tuple[Proc, str]:
    """``nexthink-bot sandbox`` on a free port."""
    port = free_port()
    argv = [*_bot_argv(), "sandbox", "--host", HOST, "--port", str(port)]
    argv += ["--execution-delay", str(execution_delay)]
    proc = procs.start("sandbox", argv, cwd=procs.tmp)
    return proc, f"http://{HOST}:{port}"


def write_policy(procs: Procs, runs_per_user_per_minute: int = 10_000) -> Path:
    """Everyone may run any workflow on themselves; the per-user rate limit raised (the
    default 10 per minute would refuse most of a benchmark's commands; 10,000 is the most a
    policy file accepts)."""
    path = procs.tmp / "policy.yaml"
    path.write_text(
        "roles:\n"
        "  everyone:\n"
        '    members: ["*"]\n'
        '    workflows: ["*"]\n'
        "limits:\n"
        f"  runs_per_user_per_minute: {runs_per_user_per_minute}\n"
    )
    return path


def start_bot(
    procs: Procs,
    *,
    slack_api_url: str,
    nexthink_url: str,
    policy_file: Path | None = None,
    log_level: str = "INFO",
    name: str = "serve",
    workdir: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[Proc, str]:
    """``nexthink-bot serve`` in HTTP mode on a free port, SQLite in ``workdir`` (default: a
    directory of the temporary one named after the process)."""
    port = free_port()
    workdir = workdir or procs.tmp / name
    workdir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXTHINK_"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_api_url,
        NEXTHINK_BASE_URL=nexthink_url,
        NEXTHINK_CLIENT_ID="sandbox",
        NEXTHINK_CLIENT_SECRET="sandbox",
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{workdir / 'bot.db'}",
        LOG_FORMAT="json",
        LOG_LEVEL=log_level,
    )
    env.pop("POLICY_FILE", None)
    env.update(extra_env or {})
    if policy_file is not None:
        env["POLICY_FILE"] = str(policy_file)
    proc = procs.start(name, [*_bot_argv(), "serve", "--host", HOST], env=env, cwd=workdir)
    return proc, f"http://{HOST}:{port}"


@dataclass
class Stack:
    """LocalSlack, the sandbox and ``serve``, each in its own process, all answering."""

    slack: SlackServer
    sandbox: Proc
    sandbox_url: str
    bot: Proc
    bot_url: str

    @property
    def events_url(self) -> str:
        return f"{self.bot_url}/slack/events"

    @classmethod
    async def start(
        cls,
        procs: Procs,
        *,
        users: int,
        policy_file: Path | None,
        log_level: str = "INFO",
        execution_delay: float = 2.0,
        extra_env: dict[str, str] | None = None,
    ) -> Stack:
        slack = start_slack(procs, users=users)
        sandbox, sandbox_url = start_sandbox(procs, execution_delay=execution_delay)
        await wait_http(f"{slack.control_url}/stats", slack.proc)
        await wait_http(f"{sandbox_url}/_sandbox", sandbox)
        bot, bot_url = start_bot(
            procs,
            slack_api_url=slack.api_url,
            nexthink_url=sandbox_url,
            policy_file=policy_file,
            log_level=log_level,
            extra_env=extra_env,
        )
        await wait_http(f"{bot_url}/readyz", bot)
        return cls(slack, sandbox, sandbox_url, bot, bot_url)

    async def journal(self, session: aiohttp.ClientSession, endpoint: str) -> list[dict[str, Any]]:
        url = f"{self.sandbox_url}/_sandbox/journal"
        async with session.get(url, params={"endpoint": endpoint}) as response:
            data = await response.json()
        entries: list[dict[str, Any]] = data["entries"]
        return entries


# -- what to print about the machine --------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (``/proc/stat``: all but idle and
    iowait), to compare with what the benchmark's own processes used."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(x) for x in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK


def machine_lines() -> list[str]:
    """Cores, CPU, load, Python and library versions: the context every figure needs."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = []
    for package in _PACKAGES:
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return [
        f"machine: {cores} cores ({usable} usable by this process){f', {model}' if model else ''}; "
        f"load average before the run {load} (other work on this machine makes figures noisy)",
        f"python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.release()}; " + ", ".join(versions),
    ]


@asynccontextmanager
async def database(url: str | None, workdir: Path) -> AsyncIterator[str]:
    """The bot's ``DATABASE_URL``: a SQLite file in ``workdir``, or on the PostgreSQL of ``url``
    a role whose ``search_path`` is a schema of its own, dropped with it afterwards."""
    if url is None or not url.startswith(("postgresql", "postgres")):
        yield url or f"sqlite:///{workdir / 'bot.db'}"
        return
    import asyncpg  # type: ignore[import-untyped]

    plain = make_url(url).set(drivername="postgresql")
    admin = await asyncpg.connect(plain.render_as_string(hide_password=False), timeout=5)
    name = f"bench_{secrets.token_hex(6)}"
    password = secrets.token_hex(12)
    try:
        await admin.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
        await admin.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
        await admin.execute(f'ALTER ROLE "{name}" SET search_path = "{name}"')
        yield plain.set(username=name, password=password).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        await admin.close()
