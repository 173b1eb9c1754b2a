"""Outcome follow-up: after a run, ask Nexthink how each execution ended and show it in Slack.

Nexthink's execute answers only ids; how an execution ends is visible in NQL
(``workflow.executions``). With ``NEXTHINK_STATUS_QUERY_ID`` set to a query saved in Nexthink's
administration, the bot runs it through the NQL API (``POST /api/v2/nql/execute``, parameter
``request_id``) until every execution of the request has ended, and updates the run's reply.

How it is scheduled:

* ``track`` stores one follow-up per run (``followups`` table) once the reply is posted; where
  the reply lives (a message's channel and ts, or the command's response URL) is on the request
  record. Pending follow-ups survive a restart; any replica may take them.
* One background loop (``follow_forever``, started with the bot's background work) wakes every
  ``FOLLOWUP_TICK_SECONDS`` and leases at most ``BATCH`` due follow-ups, polled at most
  ``CONCURRENCY`` at a time: a burst of runs becomes a steady trickle of queries.
* Each follow-up is looked at ``FOLLOWUP_FIRST_POLL_SECONDS`` after the run, then after pauses
  that double up to ``FOLLOWUP_MAX_INTERVAL_SECONDS``, and given up ``FOLLOWUP_MAX_MINUTES``
  after the run (the reply then says to check in Nexthink). A 429 waits its ``Retry-After``; a
  query Nexthink refuses (400/403: a wrong query id, a missing permission) ends the follow-up
  at once with the reason shown.

What is read: in each row of ``data``, the columns whose names end in ``execution_id``,
``status``, ``status_details`` and ``outcome`` (any prefix, any case), so both
``workflow.executions.status`` and ``status`` work. Statuses are compared without regard to
case, spaces, hyphens or underscores (``in progress`` = ``IN_PROGRESS``).

The state of one follow-up (each execution's last status, the response URL's uses) is JSON in
the follow-up's ``last_status``. What changed is told to the notifier (``bot.notifier``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from bot.audit import AuditTrail
from bot.logging import get_logger
from bot.nexthink.client import NexthinkClient
from bot.nexthink.errors import (
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    NexthinkError,
    PermissionDenied,
    Throttled,
)
from bot.settings import Settings
from bot.store import FollowupRecord, RequestRecord, RequestState, Store

__all__ = [
    "BATCH",
    "CONCURRENCY",
    "FINAL",
    "ExecutionState",
    "FollowupDeps",
    "OutcomeNotifier",
    "Progress",
    "Status",
    "enabled",
    "follow_forever",
    "next_delay",
    "normalize_status",
    "pause",
    "poll_due",
    "read_rows",
    "track",
]

log = get_logger(__name__)

#: follow-ups taken per tick, and NQL queries in flight at once
BATCH = 8
CONCURRENCY = 3
#: how long a taken follow-up is reserved for its poller (then another may take it)
_LEASE = timedelta(seconds=120)

Status = Literal["in_progress", "waiting", "success", "failed", "cancelled", "expired", "unknown"]
FINAL: frozenset[str] = frozenset({"success", "failed", "cancelled", "expired"})

_STATUSES: dict[str, Status] = {
    **dict.fromkeys(
        ("inprogress", "running", "started", "pending", "queued", "new", "scheduled", "created"),
        "in_progress",
    ),
    **dict.fromkeys(
        ("waiting", "waitingfortrigger", "waitingforevent", "waitingfordecision", "paused"),
        "waiting",
    ),
    **dict.fromkeys(
        ("success", "succeeded", "successful", "completed", "complete", "done"), "success"
    ),
    **dict.fromkeys(("failed", "failure", "fail", "error", "errored"), "failed"),
    **dict.fromkeys(("cancelled", "canceled", "aborted"), "cancelled"),
    **dict.fromkeys(("expired", "timedout", "timeout"), "expired"),
}
_IGNORED = re.compile(r"[\s_\-]+")


def normalize_status(raw: object) -> Status:
    """Nexthink's status in one spelling; ``unknown`` (not final) for anything unrecognised."""
    return _STATUSES.get(_IGNORED.sub("", str(raw or "")).casefold(), "unknown")


@dataclass(frozen=True)
class ExecutionState:
    """One execution as the status query last showed it."""

    execution_id: str
    status: Status
    raw_status: str = ""
    details: str = ""
    outcome: str = ""

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def to_json(self) -> list[str]:
        return [self.status, self.raw_status, self.details, self.outcome]

    @classmethod
    def from_json(cls, execution_id: str, data: Any) -> ExecutionState:
        items = [str(x) for x in data] if isinstance(data, list) else []
        items += [""] * (4 - len(items))
        return cls(execution_id, normalize_status(items[1] or items[0]), *items[1:4])


_SUFFIXES = ("status_details", "execution_id", "outcome", "status")


def _column_name(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip()).casefold()


def _columns(row: Mapping[str, Any]) -> dict[str, str]:
    """suffix → the row's key for it; the longer suffixes are claimed first."""
    found: dict[str, str] = {}
    for suffix in _SUFFIXES:
        for key in row:
            if key not in found.values() and _column_name(str(key)).endswith(suffix):
                found[suffix] = key
                break
    return found


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()


def read_rows(rows: Iterable[Mapping[str, Any]]) -> list[ExecutionState]:
    """The executions in a status query's ``data`` rows (rows without a status are skipped)."""
    states: list[ExecutionState] = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            continue
        columns = _columns(row)
        if "status" not in columns:
            continue
        raw = _text(row[columns["status"]])
        execution_id = _text(row.get(columns.get("execution_id", ""))).lower() or f"row:{index}"
        states.append(
            ExecutionState(
                execution_id=execution_id,
                status=normalize_status(raw),
                raw_status=raw,
                details=_text(row.get(columns.get("status_details", ""))),
                outcome=_text(row.get(columns.get("outcome", ""))),
            )
        )
    return states


def next_delay(attempts: int, first: float, maximum: float) -> float:
    """Seconds until the next look, after ``attempts`` looks: ``first`` doubled each time, capped."""
    return float(min(maximum, first * 2 ** min(max(attempts, 0), 30)))


Ending = Literal["", "done", "timeout", "error"]


@dataclass
class Progress:
    """What the bot knows of one request's executions; kept as JSON in ``last_status``."""

    executions: dict[str, ExecutionState] = field(default_factory=dict)
    ending: Ending = ""
    problem: str | None = None  #: why the outcome could not be read
    url_uses: int = 0  #: posts made through the reply's response URL by the follow-up
    url_dead: bool = False  #: the response URL refused (expired or used up)

    @classmethod
    def load(cls, text: str | None) -> Progress:
        try:
            data = json.loads(text or "{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        executions = data.get("e")
        if not isinstance(executions, dict):
            executions = {}
        end = data.get("end")
        ending: Ending = end if end in ("done", "timeout", "error") else ""
        problem = data.get("p")
        uses = data.get("u")
        return cls(
            executions={str(k): ExecutionState.from_json(str(k), v) for k, v in executions.items()},
            ending=ending,
            problem=problem if isinstance(problem, str) else None,
            url_uses=uses if isinstance(uses, int) else 0,
            url_dead=bool(data.get("x")),
        )

    def dump(self) -> str:
        data: dict[str, Any] = {"e": {k: v.to_json() for k, v in self.executions.items()}}
        if self.ending:
            data["end"] = self.ending
        if self.problem:
            data["p"] = self.problem
        if self.url_uses:
            data["u"] = self.url_uses
        if self.url_dead:
            data["x"] = True
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def merge(self, states: Sequence[ExecutionState], expected: Sequence[str]) -> list[str]:
        """Take in a query's answer; returns the executions whose status changed. With
        ``expected`` ids known, rows of other executions are ignored."""
        wanted = {e.lower() for e in expected}
        changed: list[str] = []
        for state in states:
            if wanted and state.execution_id not in wanted:
                continue
            before = self.executions.get(state.execution_id)
            if before is None or (before.status, before.details, before.outcome) != (
                state.status,
                state.details,
                state.outcome,
            ):
                changed.append(state.execution_id)
            self.executions[state.execution_id] = state
        return changed

    def all_final(self, expected: Sequence[str]) -> bool:
        ids = [e.lower() for e in expected] or list(self.executions)
        return bool(ids) and all((s := self.executions.get(i)) is not None and s.final for i in ids)

    def counts(self, expected: Sequence[str]) -> dict[str, int]:
        """How many executions are in each status (those not reported yet: ``in_progress``)."""
        ids = [e.lower() for e in expected] or list(self.executions)
        counts: dict[str, int] = {}
        for i in ids:
            state = self.executions.get(i)
            status = state.status if state is not None else "in_progress"
            counts[status] = counts.get(status, 0) + 1
        return counts

    def request_state(self, expected: Sequence[str]) -> RequestState | None:
        """The request's final state once every execution ended, else None."""
        if not self.all_final(expected):
            return None
        counts = self.counts(expected)
        if set(counts) == {"success"}:
            return "succeeded"
        if counts.get("failed") or counts.get("cancelled"):
            return "failed"
        return "expired"


# -- scheduling ------------------------------------------------------------------------------


class OutcomeNotifier(Protocol):
    async def outcome_changed(
        self, record: RequestRecord, progress: Progress, changed: list[str]
    ) -> Progress:
        """Bring a run's reply up to date; returns ``progress`` with the URL's uses counted."""


class FollowupDeps(Protocol):
    settings: Settings
    store: Store
    nexthink: NexthinkClient
    audit: AuditTrail

    @property
    def notifier(self) -> OutcomeNotifier: ...


def enabled(deps: FollowupDeps) -> bool:
    return bool(deps.settings.nexthink_status_query_id)


async def track(deps: FollowupDeps, record: RequestRecord) -> FollowupRecord | None:
    """Follow ``record``'s executions (a sent run); None when there is nothing to follow."""
    if not enabled(deps) or not record.nexthink_request_uuids:
        return None
    settings = deps.settings
    now = datetime.now(UTC)
    followup = await deps.store.add_followup(
        request_id=record.id,
        nexthink_request_uuid=record.nexthink_request_uuids[0],
        next_poll_at=now + timedelta(seconds=settings.followup_first_poll_seconds),
        deadline=now + timedelta(minutes=settings.followup_max_minutes),
        now=now,
    )
    log.info("followup_added", request=record.id, followup=followup.id)
    return followup


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; whether it was (time to end the loop)."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def follow_forever(deps: FollowupDeps, stop: asyncio.Event) -> None:
    """The loop: every tick, poll what is due (does nothing without a status query id), until
    ``stop`` is set."""
    if not enabled(deps):
        return
    while not await pause(stop, deps.settings.followup_tick_seconds):
        try:
            await poll_due(deps)
        except Exception:
            log.exception("followup_tick_failed")


async def poll_due(deps: FollowupDeps, *, now: datetime | None = None) -> int:
    """Look once at up to ``BATCH`` due follow-ups (``CONCURRENCY`` at a time); how many."""
    due = await deps.store.due_followups(now, limit=BATCH, lease=_LEASE)
    if not due:
        return 0
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(followup: FollowupRecord) -> None:
        async with gate:
            try:
                await _follow(deps, followup)
            except Exception:  # the lease runs out and it is taken again later
                log.exception("followup_failed", followup=followup.id)

    await asyncio.gather(*(one(f) for f in due))
    return len(due)


async def _follow(deps: FollowupDeps, followup: FollowupRecord) -> None:
    settings = deps.settings
    query_id = settings.nexthink_status_query_id
    assert query_id is not None
    record = await deps.store.get_request(followup.request_id)
    if record is None:
        await deps.store.finish_followup(followup.id)
        return
    progress = Progress.load(followup.last_status)
    expected = list(record.executions_uuids)
    now = datetime.now(UTC)
    changed: list[str] = []
    try:
        rows: list[dict[str, Any]] = []
        for request_uuid in record.nexthink_request_uuids or (followup.nexthink_request_uuid,):
            rows += await deps.nexthink.nql(query_id, {"request_id": request_uuid})
    except Throttled as exc:
        await _again(deps, followup, progress, now, exc.retry_after)
        return
    except (BadRequest, PermissionDenied, AuthenticationError, ConfigurationError) as exc:
        progress.ending = "error"
        progress.problem = _problem(exc, query_id)
        log.warning("followup_query_refused", followup=followup.id, error=progress.problem)
    except NexthinkError as exc:
        log.info("followup_query_failed", followup=followup.id, error=type(exc).__name__)
        if now < followup.deadline:
            await _again(deps, followup, progress, now, None)
            return
        progress.ending = "timeout"
    else:
        changed = progress.merge(read_rows(rows), expected)
        if progress.all_final(expected):
            progress.ending = "done"
        elif now >= followup.deadline:
            progress.ending = "timeout"
    if progress.ending:
        state = progress.request_state(expected)
        if state is not None and state != record.state:
            record = await deps.store.update_request(record.id, state=state)
    if changed or progress.ending:
        progress = await deps.notifier.outcome_changed(record, progress, changed)
    if progress.ending:
        await deps.store.finish_followup(followup.id, last_status=progress.dump())
        log.info("followup_finished", request=record.id, ending=progress.ending)
        await _audit_outcome(deps, record, progress, expected)
    else:
        await _again(deps, followup, progress, now, None)


async def _again(
    deps: FollowupDeps,
    followup: FollowupRecord,
    progress: Progress,
    now: datetime,
    wait: float | None,
) -> None:
    settings = deps.settings
    backoff = next_delay(
        followup.attempts + 1,
        settings.followup_first_poll_seconds,
        settings.followup_max_interval_seconds,
    )
    wait = max(wait or 0.0, backoff)  # a 429's Retry-After, if longer
    at = min(now + timedelta(seconds=wait), max(followup.deadline, now))
    await deps.store.reschedule_followup(followup.id, at, last_status=progress.dump())


async def _audit_outcome(
    deps: FollowupDeps, record: RequestRecord, progress: Progress, expected: Sequence[str]
) -> None:
    """``outcome``: how the run ended (``result``: the request's final state, or ``timeout`` /
    ``error`` when the follow-up ended without one) and each execution's status (``detail``)."""
    state = progress.request_state(expected)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(progress.counts(expected).items()))
    lines = [counts] if counts else []
    for execution_id, execution in sorted(progress.executions.items()):
        said = "; ".join(p for p in (execution.details, execution.outcome) if p)
        lines.append(f"{execution_id}: {execution.status}" + (f" ({said})" if said else ""))
    if progress.problem:
        lines.append(progress.problem)
    await deps.audit.record_request(
        "outcome",
        record,
        actor=None,
        result=state or progress.ending,
        detail="\n".join(lines) or None,
    )


def _problem(exc: NexthinkError, query_id: str) -> str:
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    said = " ".join(p for p in (code, details) if p) or exc.message
    return f"the status query {query_id} failed: {exc.summary} ({said})"
