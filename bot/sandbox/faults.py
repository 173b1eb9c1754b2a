"""Injected faults: what the sandbox does instead of (or on top of) answering normally.

A ``Fault`` names an endpoint (``token``, ``execute_v1``, ``execute_v2``, ``trigger``, ``list``,
``get``, ``nql``, or ``*`` for all of them), a kind, and how many requests it hits (``times``;
``None`` = until cleared). The first armed fault that matches a request is used and one of its
uses is spent. The ``/_sandbox/*`` switches themselves are never faulted.

Kinds, and whether the request is processed (an execute creates executions, a trigger resumes one):

=========  =================================================================  ===================
kind       answer                                                             processed?
=========  =================================================================  ===================
latency    waits ``delay`` seconds (default 0.5), then answers normally       yes
401        401, no body, as if the token had expired (the token stays valid)  never
403        403 ``ErrorResponse`` (credential lacks the Workflows API right)   never
429        429 with ``Retry-After: <retry_after>`` and an ``ErrorResponse``   never
503        503 with ``Retry-After: <retry_after>`` and an ``ErrorResponse``   never
500        500 with an ``ErrorResponse``                                      ``processed`` flag
timeout    no answer: the connection is held for ``delay`` seconds (default   ``processed`` flag
           120, longer than any client waits) or until the sandbox stops,
           then closed without an answer
reset      the connection is reset (TCP RST) without an answer               ``processed`` flag
html       502 with a ``text/html`` gateway page                              ``processed`` flag
garbage    200 ``application/json`` whose body is truncated, invalid JSON    ``processed`` flag
=========  =================================================================  ===================

``processed`` (default ``False``) lets a test show "outcome unknown": with ``processed=True`` the
sandbox does the work first (executions exist, a trigger has resumed its execution) and only then
fails the answer. ``Retry-After`` is written as ``%g`` of ``retry_after``: whole seconds as HTTP
says, but a fraction such as ``0.2`` is allowed to keep tests fast.

The text form, for the CLI's ``--fault`` flag and the HTTP switch, is
``ENDPOINT:KIND[:times=N|always][:retry_after=S][:delay=S][:processed=true]``, or just ``KIND``
for every endpoint, e.g. ``execute_v2:429:times=2:retry_after=1`` or ``*:latency:delay=0.3``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast, get_args

from aiohttp import web

__all__ = [
    "ENDPOINTS",
    "FAULT_KINDS",
    "Fault",
    "FaultKind",
    "FaultSet",
    "fault_response",
    "parse_fault",
]

#: the endpoint names used by faults, the journal and ``Sandbox.requests()``
ENDPOINTS: Final = ("token", "execute_v1", "execute_v2", "trigger", "list", "get", "nql")

FaultKind = Literal[
    "latency", "401", "403", "429", "503", "500", "timeout", "reset", "html", "garbage"
]
FAULT_KINDS: Final[tuple[str, ...]] = get_args(FaultKind)

_DEFAULT_DELAY: Final = {"latency": 0.5, "timeout": 120.0}
_MAY_PROCESS: Final = frozenset({"500", "timeout", "reset", "html", "garbage"})
_ALWAYS: Final = frozenset({"always", "forever", "inf", "*"})
_SYNTAX: Final = (
    "write ENDPOINT:KIND[:times=N|always][:retry_after=S][:delay=S][:processed=true], "
    f"ENDPOINT one of {', '.join(('*', *ENDPOINTS))}, KIND one of {', '.join(FAULT_KINDS)}"
)


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One injected fault; see the module docstring for what each kind does."""

    endpoint: str = "*"
    kind: FaultKind
    times: int | None = 1
    retry_after: float = 1.0
    delay: float | None = None
    processed: bool = False

    def __post_init__(self) -> None:
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; {_SYNTAX}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; {_SYNTAX}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be at least 1 (or always), got {self.times}")
        if self.retry_after < 0:
            raise ValueError(f"retry_after must not be negative, got {self.retry_after:g}")
        if self.delay is not None and self.delay < 0:
            raise ValueError(f"delay must not be negative, got {self.delay:g}")
        if self.processed and self.kind not in _MAY_PROCESS:
            raise ValueError(
                f"a {self.kind} fault never processes the request; processed=true applies to "
                + ", ".join(sorted(_MAY_PROCESS))
            )

    @property
    def hold(self) -> float:
        """Seconds to wait (latency) or to hold the connection (timeout)."""
        return self.delay if self.delay is not None else _DEFAULT_DELAY.get(self.kind, 0.0)

    def matches(self, endpoint: str) -> bool:
        return self.endpoint in {"*", endpoint}

    def spec(self) -> str:
        """The text form, as ``parse_fault`` reads it."""
        parts = [self.endpoint, self.kind]
        parts.append(f"times={'always' if self.times is None else self.times}")
        if self.kind in {"429", "503"}:
            parts.append(f"retry_after={self.retry_after:g}")
        if self.kind in _DEFAULT_DELAY:
            parts.append(f"delay={self.hold:g}")
        if self.processed:
            parts.append("processed=true")
        return ":".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "times": self.times,
            "retry_after": self.retry_after,
            "delay": self.hold,
            "processed": self.processed,
            "spec": self.spec(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """A fault from a JSON object (``endpoint``, ``kind``, ``times``, ...) or ``{"spec": ...}``."""
        if "spec" in data and "kind" not in data:
            return parse_fault(str(data["spec"]))
        unknown = set(data) - {"endpoint", "kind", "times", "retry_after", "delay", "processed"}
        if unknown:
            raise ValueError(f"unknown fault field(s) {', '.join(sorted(unknown))}; {_SYNTAX}")
        if "kind" not in data:
            raise ValueError(f"a fault needs a kind; {_SYNTAX}")
        try:
            return cls(
                endpoint=str(data.get("endpoint", "*")),
                kind=cast(FaultKind, str(data["kind"])),
                times=_times(data.get("times", 1)),
                retry_after=float(data.get("retry_after", 1.0)),
                delay=None if data.get("delay") is None else float(data["delay"]),
                processed=_flag(data.get("processed", False)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from exc


def _times(value: object) -> int | None:
    if value is None or (isinstance(value, str) and value.lower() in _ALWAYS):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"times must be a whole number or always, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"times must be a whole number or always, got {value!r}") from None


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in {"true", "yes", "1", "on"}:
        return True
    if text in {"false", "no", "0", "off"}:
        return False
    raise ValueError(f"processed must be true or false, got {value!r}")


def parse_fault(spec: str) -> Fault:
    """``"execute_v2:429:times=2:retry_after=1"`` → ``Fault``; ``ValueError`` says how to write it."""
    parts = [p.strip() for p in spec.strip().split(":")]
    if not parts or not parts[0]:
        raise ValueError(f"empty fault; {_SYNTAX}")
    if len(parts) == 1 or "=" in parts[1]:
        if parts[0] not in FAULT_KINDS:
            raise ValueError(f"bad fault {spec!r}: {parts[0]!r} is not a fault kind; {_SYNTAX}")
        parts.insert(0, "*")
    endpoint, kind, *options = parts
    data: dict[str, Any] = {"endpoint": endpoint, "kind": kind}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key.strip() in {"endpoint", "kind"}:
            raise ValueError(f"bad fault {spec!r}: option {option!r} is not key=value; {_SYNTAX}")
        data[key.strip()] = value.strip()
    try:
        return Fault.from_json(data)
    except ValueError as exc:
        raise ValueError(f"bad fault {spec!r}: {exc}") from None


@dataclass
class _Armed:
    fault: Fault
    remaining: int | None = field(default=None)


class FaultSet:
    """The sandbox's armed faults, in the order they were added."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def add(self, fault: Fault | str) -> Fault:
        """Arm a fault (a ``Fault`` or its text form); returns it."""
        if isinstance(fault, str):
            fault = parse_fault(fault)
        self._armed.append(_Armed(fault, fault.times))
        return fault

    def clear(self) -> int:
        """Disarm every fault; returns how many were armed."""
        count = len(self._armed)
        self._armed.clear()
        return count

    def take(self, endpoint: str) -> Fault | None:
        """The first fault that applies to ``endpoint``, spending one of its uses."""
        for armed in self._armed:
            if armed.fault.matches(endpoint):
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining <= 0:
                        self._armed.remove(armed)
                return armed.fault
        return None

    def __iter__(self) -> Iterator[Fault]:
        return iter([armed.fault for armed in self._armed])

    def __len__(self) -> int:
        return len(self._armed)

    def to_json(self) -> list[dict[str, Any]]:
        return [armed.fault.to_json() | {"remaining": armed.remaining} for armed in self._armed]


# -- the answers a fault gives instead of the real one ------------------------------------

_GATEWAY_PAGE: Final = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_GARBAGE: Final = '{"requestUuid": "6f1c0b7e-3d4a-4c55-9f1e-2b8d7a90c1e4", "executionsUuids": ['


def fault_response(fault: Fault) -> web.Response:
    """The answer for kinds that answer (all but latency, timeout and reset)."""
    retry = {"Retry-After": f"{fault.retry_after:g}"}
    match fault.kind:
        case "401":
            return web.Response(status=401)
        case "403":
            return _error(
                403, "FORBIDDEN", "The API credential lacks the Workflows API permission."
            )
        case "429":
            return _error(429, "TOO_MANY_REQUESTS", "Rate limit exceeded.", retry)
        case "503":
            return _error(503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable.", retry)
        case "500":
            return _error(500, "INTERNAL_ERROR", "An unexpected error occurred.")
        case "html":
            return web.Response(status=502, text=_GATEWAY_PAGE, content_type="text/html")
        case "garbage":
            return web.Response(status=200, text=_GARBAGE, content_type="application/json")
        case _:
            raise ValueError(f"a {fault.kind} fault has no answer")


def _error(
    status: int, code: str, details: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = json.dumps({"code": code, "details": f"{details} (sandbox fault)"})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)
