"""The shape of the inside, checked from the source with ``ast`` (see ARCHITECTURE.md).

- No import circle among the modules of ``bot/`` and ``handlers/``. Every import counts: at module
  level, inside a function, under ``if TYPE_CHECKING:``; relative imports are resolved.
- The core (``bot/``) never imports the Slack layer (``handlers/``); only the entry points and the
  composition root in ``ENTRY_POINTS`` may.
- The core never calls Slack's Web API (``client.chat_postMessage``, ``views_open``,
  ``users_info``, ``api_call`` …) except through the lookup adapter (``ADAPTERS``).
- No module outside ``tests/`` is over ``MAX_LINES`` lines.

Each failure lists every offending import (file:line), cycle, call or module, not just the first.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers")
SLACK_LAYER = "handlers"

#: the entry points and the composition root: the only ``bot`` modules that may import
#: ``handlers`` (and call Slack at start-up, e.g. ``auth.test``). Keep it short; a pattern ends
#: in ``.*`` for a whole package.
ENTRY_POINTS = (
    "bot.cli",
    "bot.server",
    "bot.app",
    "bot.check",
    "bot.console.*",
)
#: the core's adapter for Slack profile and user-group lookups: the only core module that may call
#: Slack's Web API
ADAPTERS = ("bot.identity",)

#: Slack Web API methods as slack_sdk spells them (``chat.postMessage`` -> ``chat_postMessage``)
SLACK_METHOD = re.compile(
    r"^(chat|views|users|usergroups|conversations|reactions|team|auth|apps|files|pins|bookmarks"
    r"|dnd|emoji|reminders|search|stars|bots|dialog|oauth|openid|admin|calls|workflows|rtm)_\w+$"
)
#: generic ways of calling any Web API method
SLACK_GENERIC_CALLS = frozenset({"api_call"})

MAX_LINES = 500
SIZED = ("bot", "handlers", "bench")


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: Path
    line: int

    def where(self) -> str:
        return f"{_shown(self.path)}:{self.line}"

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.where()})"


def modules() -> dict[str, Path]:
    """Every module of ``bot/`` and ``handlers/`` by dotted name (a package by its ``__init__``)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module that ``name`` is or lies in (``bot.x.y`` -> ``bot.x`` if y is a name)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        parts = package.split(".")
        if node.level > 1:
            parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, base] if base else parts)
    for alias in node.names:
        # `from pkg import sub` imports the submodule when there is one, else a name of pkg
        yield f"{base}.{alias.name}" if alias.name != "*" else base


def import_edges(known: dict[str, Path] | None = None) -> list[Edge]:
    """Every import between project modules, wherever in the file it is written."""
    known = known if known is not None else modules()
    edges: list[Edge] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported_names(node, module, path):
                target = _resolve(name, known)
                edge = Edge(module, target or "", path, node.lineno)
                if target is not None and target != module and edge not in edges:
                    edges.append(edge)
    return edges


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _shortest_cycle(start: str, graph: dict[str, set[str]], within: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside ``within`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for child in sorted(graph[node] & within):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return []


def _is_entry_point(module: str) -> bool:
    return any(fnmatchcase(module, pattern) or module == pattern for pattern in ENTRY_POINTS)


def _is_core(module: str) -> bool:
    return module.split(".")[0] == "bot" and not _is_entry_point(module)


def _first_edges(edges: Iterable[Edge]) -> dict[tuple[str, str], Edge]:
    first: dict[tuple[str, str], Edge] = {}
    for edge in edges:
        first.setdefault((edge.source, edge.target), edge)
    return first


def import_cycles(edges: list[Edge]) -> list[str]:
    """One report per circle: its modules, one shortest cycle with file:line, every edge in it."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    first = _first_edges(edges)
    reports = []
    for component in _components(graph):
        members = set(component)
        cycle = _shortest_cycle(component[0], graph, members)
        steps = [str(first[(a, b)]) for a, b in itertools.pairwise(cycle)]
        inside = sorted(
            (e for e in first.values() if e.source in members and e.target in members),
            key=lambda e: (e.source, e.target),
        )
        reports.append(
            f"a circle of {len(component)} modules: {', '.join(component)}\n"
            f"  for example: {' -> '.join(cycle)}\n    "
            + "\n    ".join(steps)
            + f"\n  all {len(inside)} imports inside it:\n    "
            + "\n    ".join(str(e) for e in inside)
        )
    return reports


def core_to_slack_layer(edges: list[Edge]) -> list[Edge]:
    return sorted(
        (e for e in edges if _is_core(e.source) and e.target.split(".")[0] == SLACK_LAYER),
        key=lambda e: (e.source, e.line, e.target),
    )


@dataclass(frozen=True)
class Call:
    module: str
    name: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.module}: .{self.name}(...) ({_shown(self.path)}:{self.line})"


def slack_web_api_calls(module: str, path: Path) -> list[Call]:
    """Calls of an attribute named like a Slack Web API method (or ``api_call``) in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if SLACK_METHOD.match(name) or name in SLACK_GENERIC_CALLS:
                found.append(Call(module, name, path, node.lineno))
    return found


# -- the tests -------------------------------------------------------------------------------


def test_the_module_finder_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Module-level, function-level, TYPE_CHECKING and relative imports are all edges, and a
    circle is reported with the file and line of each of its imports."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "other.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.top import Thing\n"
        "def f():\n    from .. import other\n"
    )
    (package / "top.py").write_text("import os\n\nfrom .sub import leaf as _\n")
    known = {
        "pkg": package / "__init__.py",
        "pkg.other": package / "other.py",
        "pkg.sub": package / "sub" / "__init__.py",
        "pkg.sub.leaf": package / "sub" / "leaf.py",
        "pkg.top": package / "top.py",
    }
    edges = import_edges(known)
    assert {(e.source, e.target, e.line) for e in edges} == {
        ("pkg.sub", "pkg.sub.leaf", 1),  # relative, in a package's __init__
        ("pkg.sub.leaf", "pkg.top", 3),  # under TYPE_CHECKING
        ("pkg.sub.leaf", "pkg.other", 5),  # inside a function, two levels up
        ("pkg.top", "pkg.sub.leaf", 3),  # relative `from .sub import leaf`
    }
    [report] = import_cycles(edges)
    assert "a circle of 2 modules: pkg.sub.leaf, pkg.top" in report
    assert "pkg.sub.leaf -> pkg.top -> pkg.sub.leaf" in report
    assert f"{package / 'top.py'}:3" in report
    assert f"{package / 'sub' / 'leaf.py'}:3" in report
    assert import_cycles([e for e in edges if e.source != "pkg.top"]) == []


def test_no_import_circles() -> None:
    """No module of bot/ or handlers/ reaches itself through imports of any kind."""
    reports = import_cycles(import_edges())
    if reports:
        pytest.fail(f"{len(reports)} import circle(s):\n" + "\n".join(reports), pytrace=False)


def test_the_core_never_imports_the_slack_layer() -> None:
    """bot/ (outside ENTRY_POINTS) imports nothing from handlers/, not even in a function or
    under TYPE_CHECKING."""
    offending = core_to_slack_layer(import_edges())
    if offending:
        pytest.fail(
            f"{len(offending)} import(s) from the core into {SLACK_LAYER}/ "
            f"(allowed only in {', '.join(ENTRY_POINTS)}):\n  " + "\n  ".join(map(str, offending)),
            pytrace=False,
        )


def test_the_core_calls_slack_only_through_the_lookup_adapter() -> None:
    """No core module outside ADAPTERS calls a Slack Web API method."""
    calls = [
        call
        for module, path in modules().items()
        if _is_core(module) and module not in ADAPTERS
        for call in slack_web_api_calls(module, path)
    ]
    if calls:
        pytest.fail(
            f"{len(calls)} Slack Web API call(s) from the core outside {', '.join(ADAPTERS)}:\n  "
            + "\n  ".join(map(str, calls)),
            pytrace=False,
        )


def test_the_web_api_call_finder_sees_calls(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "async def f(client, x):\n"
        "    await client.chat_postMessage(channel='C', text='t')\n"
        "    await x.client.views_open(trigger_id='t', view={})\n"
        "    await client.api_call('chat.update')\n"
        "    x.chat_history_limit = 3\n"  # an attribute, not a call
        "    x.users(1)\n"
    )
    found = slack_web_api_calls("m", source)
    assert [(c.name, c.line) for c in found] == [
        ("chat_postMessage", 2),
        ("views_open", 3),
        ("api_call", 4),
    ]


def test_no_module_outside_tests_is_over_500_lines() -> None:
    """Modules of one concept: every .py file in bot/, handlers/ and bench/ has at most 500 lines."""
    long = sorted(
        (len(path.read_text().splitlines()), str(path.relative_to(ROOT)))
        for directory in SIZED
        for path in (ROOT / directory).rglob("*.py")
    )
    over = [(lines, name) for lines, name in long if lines > MAX_LINES]
    if over:
        pytest.fail(
            f"{len(over)} module(s) over {MAX_LINES} lines:\n  "
            + "\n  ".join(f"{name}: {lines} lines" for lines, name in sorted(over, reverse=True)),
            pytrace=False,
        )
