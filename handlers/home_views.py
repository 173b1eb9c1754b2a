"""The Home tab as Block Kit: pure functions from what a person may do and has done to a view.

Three parts: one-click buttons for the workflows the viewer may run on themselves (each with a
Slack ``confirm`` dialog), their recent requests with the outcome as far as it is known, and,
for approvers, what waits for their decision, with the very buttons (action ids) the channel
messages carry, so the same handlers and rules apply. Runs waiting on the viewer's consent are
listed too, with the Allow / Not now of their direct message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.catalogue import Entry
from bot.followups import Progress
from bot.store import ApprovalRecord, ConsentRecord, RequestRecord, WaitRecord
from handlers import ids
from handlers.blocks import (
    approve_deny_block,
    button,
    clip,
    code,
    context,
    outside,
    plain,
    section,
    shown,
    when,
)
from handlers.consent_views import consent_buttons
from handlers.outcome_views import outcome_summary
from handlers.views import params_text, targets_text
from handlers.wait_views import wait_buttons

__all__ = ["MAX_DECISIONS", "MAX_RUNNABLE", "Recent", "home_view", "run_button"]

MAX_RUNNABLE = 15
MAX_DECISIONS = 15
_DIVIDER = {"type": "divider"}


@dataclass(frozen=True)
class Recent:
    """One of the viewer's requests, with its follow-up's progress when there is one."""

    record: RequestRecord
    workflow_name: str
    progress: Progress | None = None
    following: bool = False  #: the follow-up is still running


def run_button(
    entry: Entry, upn: str | None, params: Mapping[str, str], *, needs_approval: bool = False
) -> dict[str, Any]:
    """A Run button for ``entry`` that asks Slack to confirm first."""
    name = entry.workflow.display_name
    on = f" for you ({shown(outside(upn), 100)})" if upn else " for you"
    with_params = " with " + params_text(params) if params else ""
    then = (
        "It runs once approved; you will be told by a message from the bot."
        if needs_approval
        else "The result arrives as a message from the bot."
    )
    return button(
        "Run",
        ids.HOME_RUN,
        entry.id[:2000],
        confirm={
            "title": plain(f"Run {name}?", 100),
            "text": {
                "type": "mrkdwn",
                "text": clip(
                    f"Nexthink runs *{shown(outside(name), 60)}*{on} on your most recent "
                    f"device{with_params}. {then}",
                    300,
                ),
            },
            "confirm": plain("Run", 30),
            "deny": plain("Cancel", 30),
        },
    )


def _runnable_blocks(
    entries: Sequence[Entry],
    upn: str | None,
    defaults: Mapping[str, Mapping[str, str]],
    *,
    problem: str | None,
    may_target_others: bool,
    approval: frozenset[str],
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [section("*Fix your own computer*")]
    if problem:
        blocks.append(section(problem))
        return blocks
    if not entries:
        blocks.append(section("There are no workflows you may run on yourself."))
    for entry in entries[:MAX_RUNNABLE]:
        wf = entry.workflow
        text = f"*{shown(outside(wf.display_name), 200)}*"
        if wf.description:
            text += f"\n{shown(outside(wf.description), 300)}"
        block = section(text)
        block["block_id"] = f"home_run:{entry.id}"[:255]
        block["accessory"] = run_button(
            entry, upn, defaults.get(entry.id, {}), needs_approval=entry.id in approval
        )
        blocks.append(block)
    if len(entries) > MAX_RUNNABLE:
        blocks.append(
            context(f"…and {len(entries) - MAX_RUNNABLE} more: `/nexthink list` shows them all.")
        )
    if may_target_others:
        blocks.append(
            context(
                "To run a workflow on someone else's user or devices, use `/nexthink`, the "
                "*Open the run form* button or the *Run a Nexthink workflow* shortcut."
            )
        )
    return blocks


_STATE_LOOK = {
    "pending": (":hourglass_flowing_sand:", "being sent"),
    "approval_pending": (":raised_hand:", "waiting for approval"),
    "consent_pending": (":raising_hand:", "waiting for the person's consent"),
    "sent": (":outbox_tray:", "sent to Nexthink"),
    "succeeded": (":white_check_mark:", "succeeded"),
    "failed": (":x:", "failed"),
    "unknown": (":warning:", "outcome unknown: check in Nexthink"),
    "denied": (":no_entry:", "denied"),
    "expired": (":hourglass:", "expired"),
}


def _recent_line(item: Recent) -> str:
    record = item.record
    emoji, state = _STATE_LOOK.get(record.state, ("•", record.state.replace("_", " ")))
    expected = list(record.executions_uuids)
    progress = item.progress
    if progress is not None and (progress.executions or item.following):
        counts = progress.counts(expected)
        state = outcome_summary(counts)
        failed = [s for s in progress.executions.values() if s.status == "failed" and s.details]
        if failed:
            state += f" ({shown(outside(failed[0].details), 120)})"
        if item.following and not progress.ending:
            emoji = ":hourglass_flowing_sand:"
            state += ", following"
        elif progress.ending == "timeout":
            state += "; no final status, check in Nexthink"
        elif progress.ending == "error":
            emoji, state = ":warning:", "outcome unknown: check in Nexthink"
    elif record.state == "sent" and item.following:
        emoji, state = ":hourglass_flowing_sand:", "in progress"
    if record.kind == "resume":
        what = "Resumed an execution"
    elif record.kind == "decision":
        what = "Decided on a paused execution"
    else:
        what = f"*{shown(outside(item.workflow_name), 200)}*"
    uuid = (
        f" · {code(outside(record.nexthink_request_uuids[0]), 100)}"
        if record.nexthink_request_uuids
        else ""
    )
    ticket = f" · ticket {code(outside(record.ticket), 100)}" if record.ticket else ""
    return f"{emoji} {when(record.created_at)} {what}: {state}{ticket}{uuid}"


def _recent_blocks(recent: Sequence[Recent]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [section("*Your recent requests*")]
    if not recent:
        blocks.append(section("None yet. A click on *Run* above starts one."))
        return blocks
    blocks.append(section("\n".join(_recent_line(r) for r in recent)))
    blocks.append(context("`/nexthink history` lists them with their ids."))
    return blocks


def _approval_blocks(
    approval: ApprovalRecord, record: RequestRecord, workflow_name: str
) -> list[dict[str, Any]]:
    labels = [str(t.get("label") or "") for t in record.targets]
    targets = targets_text(labels, 5)
    params = params_text(record.params) if record.params else ""
    text = (
        f":raised_hand: <@{record.user_id}> asks to run *{shown(outside(workflow_name), 200)}* "
        f"({code(outside(record.workflow_id or ''), 100)}) on {targets or 'themselves'}"
        + (f" with {params}" if params else "")
        + (f" for ticket {code(outside(record.ticket), 100)}" if record.ticket else "")
        + f".\n{len(approval.votes)} of {approval.count} approvals · expires {when(approval.expires_at)}"
    )
    return [
        section(text),
        approve_deny_block(f"home_approval:{approval.id}", approval.id),
    ]


def _wait_blocks(wait: WaitRecord) -> list[dict[str, Any]]:
    text = (
        f":pause_button: {shown(outside(wait.text), 1500)}\n"
        f"Nexthink execution {code(outside(wait.execution_uuid), 100)} · expires {when(wait.expires_at)}"
    )
    return [section(text), wait_buttons(wait, f"home_wait:{wait.id}")]


def _consent_blocks(
    consents: Sequence[tuple[ConsentRecord, RequestRecord, str]],
) -> list[dict[str, Any]]:
    """The runs waiting on the viewer's consent, with the very Allow / Not now of their
    question (``consent_views.consent_buttons``)."""
    blocks: list[dict[str, Any]] = [section("*Waiting for your consent*")]
    for asked, record, name in consents[:MAX_DECISIONS]:
        params = params_text(record.params) if record.params else ""
        until = "runs at" if asked.run_at is not None else "expires"
        text = (
            f":raising_hand: <@{record.user_id}> asks to run *{shown(outside(name), 200)}* "
            f"({code(outside(record.workflow_id or ''), 100)}) on you"
            + (f" with {params}" if params else "")
            + f".\nNothing runs on you before you allow it · {until} {when(asked.expires_at)}"
        )
        blocks += [section(text), consent_buttons(asked, f"home_consent:{asked.id}")]
    return blocks


def _decision_blocks(
    approvals: Sequence[tuple[ApprovalRecord, RequestRecord, str]], waits: Sequence[WaitRecord]
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [section("*Waiting for your decision*")]
    if not approvals and not waits:
        blocks.append(section("Nothing waits for you right now."))
        return blocks
    shown = 0
    for approval, record, name in approvals:
        if shown < MAX_DECISIONS:
            blocks += _approval_blocks(approval, record, name)
            shown += 1
    for wait in waits:
        if shown < MAX_DECISIONS:
            blocks += _wait_blocks(wait)
            shown += 1
    more = len(approvals) + len(waits) - shown
    if more > 0:
        blocks.append(context(f"…and {more} more, in the channels where they were posted."))
    return blocks


def home_view(
    *,
    user_id: str,
    entries: Sequence[Entry],
    upn: str | None,
    defaults: Mapping[str, Mapping[str, str]],
    problem: str | None,
    may_target_others: bool,
    recent: Sequence[Recent],
    approver: bool,
    approvals: Sequence[tuple[ApprovalRecord, RequestRecord, str]] = (),
    waits: Sequence[WaitRecord] = (),
    needs_approval: frozenset[str] = frozenset(),
    scheduled: Sequence[dict[str, Any]] = (),
    consents: Sequence[tuple[ConsentRecord, RequestRecord, str]] = (),
) -> dict[str, Any]:
    """The viewer's Home tab (``views.publish``); ``needs_approval``: the workflow ids that run
    only after approval; ``scheduled``: the blocks of their scheduled runs
    (``schedule_views.schedule_home_blocks``); ``consents``: the runs waiting on their consent
    (shown only when there are some)."""
    intro = section(
        f"Hi <@{user_id}>! Run a fix on your own computer in one click and see how your requests "
        "went" + (", and decide what waits for you." if approver else ".")
    )
    intro["accessory"] = button("Open the run form", ids.HOME_OPEN_MODAL, "open", None)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain("Nexthink", 150)},
        intro,
        _DIVIDER,
        *_runnable_blocks(
            entries,
            upn,
            defaults,
            problem=problem,
            may_target_others=may_target_others,
            approval=needs_approval,
        ),
        _DIVIDER,
        *([*_consent_blocks(consents), _DIVIDER] if consents else []),
        *scheduled,
        *_recent_blocks(recent),
    ]
    if approver:
        blocks += [_DIVIDER, *_decision_blocks(approvals, waits)]
    return {"type": "home", "blocks": blocks[:100]}
