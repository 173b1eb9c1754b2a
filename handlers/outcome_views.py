"""How a run's outcome reads in Slack: pure Block Kit builders over a request record.

The run reply (``views.run_message``) gets an *Outcome* section: one line per target, from
"in progress" to success, failed (with Nexthink's status details), cancelled or expired. Without
a status query configured, it gets instead the NQL to paste in Nexthink to see the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.followups import ExecutionState, Progress
from bot.store import RequestRecord
from handlers.blocks import Message, Outside, clip, code, context, outside, section, shown
from handlers.views import run_message, targets_text

__all__ = [
    "approval_root_message",
    "approved_line",
    "check_in_nexthink",
    "final_message",
    "outcome_blocks",
    "outcome_summary",
    "run_outcome_message",
    "status_query",
    "target_labels",
    "thread_update_message",
    "with_blocks",
]

_MAX_LINES = 20
#: a run on more targets than ``_MAX_LINES`` is a big run: its outcome is a summary (counts per
#: status, then the first ``_MAX_FAILURES`` failures), the same size for 21 targets or 10,000
_MAX_FAILURES = 10
_FAILED = ("failed", "cancelled", "expired")

_LOOK: dict[str, tuple[str, str | None]] = {
    "in_progress": (":hourglass_flowing_sand:", "in progress"),
    "waiting": (":raised_hand:", "waiting for a decision"),
    "success": (":white_check_mark:", "success"),
    "failed": (":x:", "failed"),
    "cancelled": (":no_entry_sign:", "cancelled"),
    "expired": (":hourglass:", "expired"),
    "unknown": (":grey_question:", None),
}
_COUNTED = {
    "success": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "expired",
    "waiting": "waiting for a decision",
    "in_progress": "in progress",
    "unknown": "in another state",
}


def status_query(request_uuid: str) -> str:
    """The NQL that shows a request's executions (for the README and the replies)."""
    return (
        f'workflow.executions during past 7d | where request_id == "{request_uuid}" '
        "| list request_id, execution_id, status, status_details, outcome"
    )


def check_in_nexthink(record: RequestRecord) -> str:
    """Where a person sees the outcome in Nexthink, for this request."""
    uuids = record.nexthink_request_uuids
    if not uuids:
        return "Nexthink did not return a request id for this run."
    more = (
        f" (and for {', '.join(code(outside(u), 100) for u in uuids[1:4])})"
        if len(uuids) > 1
        else ""
    )
    return (
        "To see how it ends, run this NQL in Nexthink (Investigations)"
        f"{more}: {code(outside(status_query(uuids[0])), None)}"
    )


def target_labels(record: RequestRecord) -> dict[str, str]:
    """Execution id → the target a person named. Nexthink answers one execution per target, in
    the order sent; when the counts differ (or the run was split), executions go by their id."""
    ids = [e.lower() for e in record.executions_uuids]
    labels = [str(t.get("label") or "") for t in record.targets]
    if len(ids) == len(labels) and len(record.nexthink_request_uuids) <= 1 and all(labels):
        return dict(zip(ids, labels, strict=True))
    return {i: f"execution {i[:8]}" for i in ids}


def _line(label: str, state: ExecutionState | None) -> str:
    if state is None:
        return f":hourglass_flowing_sand: {shown(outside(label), 200)} — in progress"
    emoji, word = _LOOK.get(state.status, _LOOK["unknown"])
    status = word or state.raw_status or "unknown"
    if state.status == "success":
        extra = [state.outcome or state.details]
    else:
        extra = [state.details, state.outcome]
    extra = [x for x in extra if x and x.casefold() != status.casefold()]
    status_text = word or shown(outside(status), 100)
    line = f"{emoji} {shown(outside(label), 200)} — {status_text}"
    if extra:
        line += ": " + " · ".join(shown(outside(x), 300) for x in extra)
    return line


def outcome_summary(counts: Mapping[str, int]) -> str:
    """``{"success": 2, "failed": 1}`` → "2 succeeded, 1 failed"."""
    order = ("success", "failed", "cancelled", "expired", "waiting", "in_progress", "unknown")
    parts = [f"{counts[s]} {_COUNTED[s]}" for s in order if counts.get(s)]
    return ", ".join(parts) or "no executions reported"


def _ids(record: RequestRecord, progress: Progress) -> list[str]:
    return [e.lower() for e in record.executions_uuids] or list(progress.executions)


def _big(record: RequestRecord, progress: Progress) -> bool:
    return len(_ids(record, progress)) > _MAX_LINES


def _failures(record: RequestRecord, progress: Progress) -> str:
    """A big run's first failures, one line each, then how many more (empty without any)."""
    failed = [
        i
        for i in _ids(record, progress)
        if (s := progress.executions.get(i)) is not None and s.status in _FAILED
    ]
    if not failed:
        return ""
    labels = target_labels(record)
    lines = [
        _line(labels.get(i, f"execution {i[:8]}"), progress.executions.get(i))
        for i in failed[:_MAX_FAILURES]
    ]
    more = len(failed) - _MAX_FAILURES
    head = "First failures:" if more > 0 else "Failures:"
    return "\n".join([head, *lines] + ([f"…and {more:,} more"] if more > 0 else []))


def _lines(record: RequestRecord, progress: Progress, only: Sequence[str] | None = None) -> str:
    if only is None and _big(record, progress):
        return _failures(record, progress)
    labels = target_labels(record)
    ids = _ids(record, progress) if only is None else list(only)
    lines = [
        _line(labels.get(i, f"execution {i[:8]}"), progress.executions.get(i))
        for i in ids[:_MAX_LINES]
    ]
    if len(ids) > _MAX_LINES:
        lines.append(f"…and {len(ids) - _MAX_LINES} more")
    return "\n".join(lines)


def outcome_blocks(
    record: RequestRecord, progress: Progress | None, *, max_minutes: float = 30
) -> list[dict[str, Any]]:
    """The *Outcome* section; ``progress`` None means the bot does not follow it (no query)."""
    if progress is None:
        return [context(":mag: " + check_in_nexthink(record))]
    counts = progress.counts(list(record.executions_uuids))
    summary = outcome_summary(counts)
    if progress.ending == "done":
        head = f"*Outcome:* {summary}."
    elif progress.ending == "timeout":
        head = (
            f"*Outcome:* {summary} when the bot stopped following it, "
            f"{max_minutes:g} minutes after the run. Check in Nexthink."
        )
    elif progress.ending == "error":
        head = f"*Outcome:* unknown; {shown(outside(progress.problem or 'the status query failed'), 1000)}."
    else:
        head = f"*Outcome* (updated here as the executions end): {summary}."
    blocks: list[dict[str, Any]] = [section(f"{head}\n{_lines(record, progress)}".rstrip())]
    if progress.ending in ("timeout", "error"):
        blocks.append(context(":mag: " + check_in_nexthink(record)))
    return blocks


def with_blocks(
    message: Message, blocks: Sequence[dict[str, Any]], text: str | None = None
) -> Message:
    """``message`` with ``blocks`` added at the end (and its notification text replaced)."""
    out = dict(message)
    out["blocks"] = [*(message.get("blocks") or []), *blocks][:50]
    if text:
        out["text"] = clip(text, 3000)
    return out


def run_outcome_message(
    record: RequestRecord, workflow_name: Outside, progress: Progress | None, *, max_minutes: float
) -> Message:
    """The run reply as it stands: what was sent, and how far the executions got."""
    base = run_message(
        workflow_name=workflow_name,
        workflow_id=record.workflow_id or "",
        targets=[str(t.get("label") or "") for t in record.targets],
        params={str(k): str(v) for k, v in record.params.items()},
        requester_id=record.user_id,
        request_uuids=record.nexthink_request_uuids,
        executions=len(record.executions_uuids),
        record_id=record.id,
    )
    text = None
    if progress is not None and progress.ending:
        counts = progress.counts(list(record.executions_uuids))
        text = f"{shown(workflow_name, 200)}: {outcome_summary(counts)}"
    return with_blocks(base, outcome_blocks(record, progress, max_minutes=max_minutes), text)


def thread_update_message(
    record: RequestRecord, workflow_name: Outside, progress: Progress, changed: Sequence[str]
) -> Message | None:
    """A reply in the run's thread: the targets that moved on, and the end when it came. A big
    run posts only its end, with its first failures: one thread reply whatever its size."""
    moved = [i for i in changed if (s := progress.executions.get(i)) and s.status != "in_progress"]
    counts = progress.counts(list(record.executions_uuids))
    parts: list[str] = []
    big = _big(record, progress)
    if big and progress.ending and (failures := _failures(record, progress)):
        parts.append(failures)
    elif moved and not big:
        parts.append(_lines(record, progress, only=moved))
    if progress.ending == "done":
        parts.append(f"*Finished:* {outcome_summary(counts)}.")
    elif progress.ending == "timeout":
        parts.append(
            f"*No final status yet* ({outcome_summary(counts)}); the bot stopped following it. "
            "Check in Nexthink."
        )
    elif progress.ending == "error":
        parts.append(
            f"*Outcome unknown:* {shown(outside(progress.problem or 'the status query failed'), 1000)}."
        )
    if not parts:
        return None
    text = "\n".join(parts)
    return {"text": clip(f"{shown(workflow_name, 200)}: {text}", 3000), "blocks": [section(text)]}


def final_message(record: RequestRecord, workflow_name: Outside, progress: Progress) -> Message:
    """The outcome as a new message, when the reply itself cannot be updated any more."""
    counts = progress.counts(list(record.executions_uuids))
    uuids = ", ".join(code(outside(u), 100) for u in record.nexthink_request_uuids) or "none"
    name = shown(workflow_name, 200)
    workflow = code(outside(record.workflow_id or ""), 100)
    head = f"*{name}* ({workflow}), Nexthink request {uuids}: {outcome_summary(counts)}."
    blocks = [section(head), *outcome_blocks(record, progress)]
    return {"text": clip(f"{name}: {outcome_summary(counts)}", 3000), "blocks": blocks}


def approval_root_message(
    record: RequestRecord,
    workflow_name: Outside,
    *,
    approval_channel: str | None = None,
    targets: Sequence[str] = (),
) -> Message:
    """The channel's one entry for a visible run that needs approval (decisions go in its thread)."""
    labels = list(targets) or [str(t.get("label") or "") for t in record.targets]
    on = targets_text(labels)
    name = shown(workflow_name, 200)
    asked = (
        f"<@{record.user_id}> asked to run *{name}* ({code(outside(record.workflow_id or ''), 100)})"
        f" on {on or 'themselves'}."
    )
    if record.state == "denied":
        status = ":no_entry: Denied; nothing was sent to Nexthink. See the thread."
    elif record.state == "expired":
        status = ":hourglass: Expired without enough approvals; nothing was sent to Nexthink."
    else:
        where = f" in <#{approval_channel}>" if approval_channel else ""
        status = f":raised_hand: Waiting for approval{where}; decisions and the outcome follow in this thread."
    return {
        "text": clip(f"{name}: {status}", 3000),
        "blocks": [section(asked), section(status)],
    }


def approved_line(record: RequestRecord, ok: bool) -> str:
    """The thread's note when an approved run was sent (or failed)."""
    who = ", ".join(f"<@{u}>" for u in record.approved_by) or "the approvers"
    if ok:
        uuids = ", ".join(code(outside(u), 100) for u in record.nexthink_request_uuids)
        return f":white_check_mark: Approved by {who}; sent to Nexthink (request {uuids})."
    return f":x: Approved by {who}, but the run failed; see the message above."
