"""A pytest plugin: no secret may appear in any log line the test suite produces.

For the whole session every record that reaches the stdlib root logger, the bot's structlog
lines included, is rendered as the bot renders it in production (``bot.logging.formatter`` and
``bot.logging.configure_structlog``: the same configuration ``bot.logging.configure`` sets up,
which tests do not call) and kept. So are the lines the bot's subprocesses write (``serve``,
``console``, ``check``…): what ``subprocess.run`` captured, and what a test hands to
``subprocess_output`` as it reads a process's pipes. After each test its lines are checked against every secret known so far; a line that
holds one fails the session (exit status 1) with a report that names the test and shows the
line with the secret masked. The root logger is at DEBUG throughout: the product promises that
no secret is logged at any level.

Known secrets are the world's fixed ones (signing secret, webhook token, bot token), whatever a
test hands to ``remember``, and what the watched objects hold: every ``Settings``' secrets, every
sandbox's client secret and the access tokens its journal shows it issued, every ``LocalSlack``'s
bot token. Each is read when the object is made (the watched classes' ``__init__`` is wrapped)
and again, for the objects still alive, when each test's body ends (in modules that use worlds,
sandboxes, fake Slacks or settings; a sandbox issues tokens as it runs). Values shorter than 8 characters and the sandbox's documented default
secret ``sandbox`` are too common to search for. ``remember_environment`` adds the secrets a test
passes to a subprocess in its environment.

Other modules use ``remember`` and ``leaks_in`` (to check texts that are not log lines, such as
Slack messages and ``/metrics``, against the same secrets).
"""

from __future__ import annotations

import functools
import logging
import re
import subprocess
import time
import weakref
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from bot.console.localslack import LocalSlack
from bot.console.world import SIGNING_SECRET, WEBHOOK_TOKEN
from bot.logging import configure_structlog, formatter
from bot.sandbox.server import Sandbox
from bot.settings import Settings

__all__ = [
    "captured_lines",
    "known_secrets",
    "leaks_in",
    "remember",
    "remember_environment",
    "subprocess_output",
]

_MIN_LENGTH = 8
_TOO_COMMON = frozenset({"sandbox"})

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class _Leak:
    test: str
    secret: str
    line: str


_leaks: list[_Leak] = []
_current_test = "<session>"


def remember(*values: str | None) -> None:
    """Add secret values to search for (empty, short and too common ones are ignored)."""
    global _pattern
    for value in values:
        if value and len(value) >= _MIN_LENGTH and value not in _TOO_COMMON | _secrets:
            _secrets.add(value)
            _pattern = None


_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|SIGNING)", re.IGNORECASE)


def remember_environment(env: Mapping[str, str]) -> None:
    """Remember the secrets in a subprocess's environment (names with TOKEN, SECRET, PASSWORD)."""
    remember(*(value for name, value in env.items() if _SECRET_NAME.search(name)))


def known_secrets() -> frozenset[str]:
    return frozenset(_secrets)


def _regex() -> re.Pattern[str] | None:
    global _pattern
    if _pattern is None and _secrets:
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))
    return _pattern


def leaks_in(text: str) -> list[str]:
    """The known secrets that ``text`` holds, masked for display (``abc…``)."""
    pattern = _regex()
    if pattern is None:
        return []
    return sorted({_mask(m.group(0)) for m in pattern.finditer(text)})


def _mask(secret: str) -> str:
    return secret[:3] + "…"


# -- capturing ------------------------------------------------------------------------------


class _Capture(logging.Handler):
    """Renders each record as production would and keeps the line until it is scanned."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter("json"))
        self.lines: list[str] = []
        self.total = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:  # a record that cannot be rendered is a bug, but not ours here
            line = f"<record of {record.name} not rendered: {type(exc).__name__}>"
        self.lines.append(line)
        self.total += 1


_handler: _Capture | None = None


def captured_lines() -> list[str]:
    """The lines captured since the current test started (for tests that look at their logs)."""
    return list(_handler.lines) if _handler is not None else []


def subprocess_output(source: str, text: str | bytes | None) -> None:
    """Keep what a subprocess wrote (one or more lines) for the current test's scan."""
    if _handler is None or not text:
        return
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for line in text.splitlines():
        if line.strip():
            _handler.lines.append(f"[{source}] {line}")
            _handler.total += 1


_run = subprocess.run


def _run_and_keep(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run``, keeping what it captured (stdout and stderr) for the scan."""
    try:
        done = _run(*args, **kwargs)
    except subprocess.TimeoutExpired as expired:
        subprocess_output("subprocess", expired.stdout)
        subprocess_output("subprocess", expired.stderr)
        raise
    env = kwargs.get("env")
    if isinstance(env, Mapping):
        remember_environment(env)
    subprocess_output("subprocess", done.stdout)
    subprocess_output("subprocess", done.stderr)
    return done


def _install() -> None:
    global _handler
    configure_structlog()
    subprocess.run = _run_and_keep
    _handler = _Capture()
    root = logging.getLogger()
    root.addHandler(_handler)
    root.setLevel(logging.DEBUG)
    for cls in _WATCHED:
        _watch(cls)
    remember(SIGNING_SECRET, WEBHOOK_TOKEN, LocalSlack().bot_token)


# -- finding the secrets of the objects a test made -----------------------------------------


def _secrets_of(objects: Iterable[object]) -> Iterable[str | None]:
    for obj in objects:
        if isinstance(obj, Settings):
            yield from obj.secrets()
        elif isinstance(obj, Sandbox):
            yield obj.client_secret
            for entry in obj.journal:
                if entry.endpoint == "token" and isinstance(entry.response, dict):
                    token = entry.response.get("access_token")
                    yield token if isinstance(token, str) else None
        elif isinstance(obj, LocalSlack):
            yield obj.bot_token


_WATCHED = (Settings, Sandbox, LocalSlack)

#: every watched object alive, by id (weakly: a dead one drops out); its class's ``__init__`` adds
#: it, so finding the secrets costs what the test made, not a walk of the whole heap
_alive: dict[int, weakref.ref[object]] = {}

_discovery_seconds = 0.0


def _watch(cls: type) -> None:
    """Wrap ``cls.__init__`` (subclasses call it too) so that each new instance is registered."""
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        remember(*_secrets_of([self]))  # an object made and dropped inside a test counts too
        key = id(self)
        _alive[key] = weakref.ref(self, lambda _ref, key=key: _alive.pop(key, None))

    cls.__init__ = __init__  # type: ignore[misc]


def _makes_worlds(item: pytest.Item) -> bool:
    """Whether the test's module deals in bots, sandboxes or fake Slacks (else nothing to find)."""
    module = getattr(item, "module", None)
    if module is None:
        return False
    return any(
        str(getattr(value, "__module__", None) or "").startswith(
            ("bot.console", "bot.sandbox", "bot.app", "bot.settings", "tests.support")
        )
        for value in vars(module).values()
    )


def _discover() -> None:
    global _discovery_seconds
    started = time.perf_counter()
    found = [obj for ref in list(_alive.values()) if (obj := ref()) is not None]
    remember(*_secrets_of(found))
    _discovery_seconds += time.perf_counter() - started


def _scan(test: str) -> None:
    if _handler is None:
        return
    lines, _handler.lines = _handler.lines, []
    pattern = _regex()
    if pattern is None:
        return
    for line in lines:
        for match in pattern.finditer(line):
            secret = match.group(0)
            _leaks.append(_Leak(test, _mask(secret), pattern.sub("<SECRET>", line)[:600]))


# -- hooks -----------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    _install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    global _current_test
    _scan(_current_test)  # what was logged between tests (module fixtures) belongs to the last
    _current_test = item.nodeid
    logging.getLogger().setLevel(logging.DEBUG)  # a test that configured logging may have raised it
    try:
        return (yield)
    finally:
        _scan(item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    try:
        return (yield)
    finally:
        if _makes_worlds(item):
            _discover()  # while the test's fixtures (worlds, sandboxes, settings) are alive


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _scan(_current_test)
    if _leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = _handler.total if _handler is not None else 0
    if not _leaks:
        terminalreporter.write_line(
            f"secret scan: {lines} log lines checked against {len(_secrets)} secrets, none found"
            f" (finding the secrets took {_discovery_seconds:.1f} s)"
        )
        return
    terminalreporter.section("secrets in log lines", sep="=", red=True, bold=True)
    for leak in _leaks[:50]:
        terminalreporter.write_line(f"{leak.test}: {leak.secret} in {leak.line}")
    if len(_leaks) > 50:
        terminalreporter.write_line(f"... and {len(_leaks) - 50} more")
    terminalreporter.write_line(
        f"secret scan: {len(_leaks)} log lines hold a secret; the session fails"
    )
