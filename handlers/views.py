"""Block Kit messages and texts, as pure functions returning dicts.

Every word the bot says to a person is written here, so it can be read (and asserted on) in
one place. Messages are ``{"text": ..., "blocks": [...]}``: ``text`` is the notification and
screen-reader fallback, ``blocks`` the layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bot.catalogue import Entry
from bot.devices import DeviceList
from bot.nexthink.errors import (
    AuthenticationError,
    BadRequest,
    NexthinkError,
    OutcomeUnknown,
    PermissionDenied,
    Throttled,
    answered,
    may_have_run,
)
from bot.runs import RunResult
from handlers.blocks import (
    SECTION_LIMIT,
    Message,
    Outside,
    clip,
    code,
    context,
    fields,
    outside,
    section,
    shown,
    when,
)

__all__ = [
    "Message",
    "device_note",
    "error_message",
    "history_message",
    "info_message",
    "list_message",
    "params_text",
    "refusal_message",
    "resume_message",
    "run_message",
    "run_result_message",
    "store_unavailable_message",
    "targets_text",
    "text_message",
    "usage_message",
]


_MAX_BLOCKS = 48  # Slack refuses more than 50 blocks in a message


def text_message(text: str) -> Message:
    return {"text": clip(text, 3000), "blocks": [section(text)]}


def usage_message(problem: str, usage: str) -> Message:
    return {"text": f"{problem}", "blocks": [section(f":warning: {problem}"), section(usage)]}


def refusal_message(message: str, hint: str | None = None) -> Message:
    blocks = [section(f":no_entry: {message}")]
    if hint:
        blocks.append(context(hint))
    return {"text": message, "blocks": blocks}


def _workflow_line(entry: Entry) -> str:
    wf = entry.workflow
    line = f"*{shown(outside(wf.display_name))}*  {code(outside(wf.id))}"
    if entry.alias:
        line += f"  (alias {code(outside(entry.alias))})"
    if wf.description:
        line += f"\n{shown(outside(wf.description))}"
    return line


def list_message(entries: Sequence[Entry], filter_text: str | None) -> Message:
    filter_text = shown(outside(filter_text), 100) if filter_text else filter_text
    if not entries:
        what = f" matching “{filter_text}”" if filter_text else ""
        text = f"There are no workflows{what} that you may run here."
        return {"text": text, "blocks": [section(text)]}
    title = f"Workflows you may run{f' matching “{filter_text}”' if filter_text else ''}: {len(entries)}"
    blocks: list[dict[str, Any]] = [section(f"*{title}*")]
    if len(entries) <= _MAX_BLOCKS - 2:
        blocks += [section(_workflow_line(e)) for e in entries]
    else:  # compact: many workflows per section
        chunk: list[str] = []
        for e in entries:
            line = (
                code(outside(e.id))
                + (f" ({shown(outside(e.alias))})" if e.alias else "")
                + f" {shown(outside(e.workflow.display_name))}"
            )
            if sum(len(c) + 1 for c in chunk) + len(line) > SECTION_LIMIT:
                blocks.append(section("\n".join(chunk)))
                chunk = []
            chunk.append(line)
        if chunk:
            blocks.append(section("\n".join(chunk)))
        blocks = blocks[:_MAX_BLOCKS]
    blocks.append(context("Run one with `/nexthink run <workflow>`, or `/nexthink` for a form."))
    return {"text": title, "blocks": blocks}


def info_message(entry: Entry) -> Message:
    wf = entry.workflow
    pairs = [("NQL ID", code(outside(wf.id))), ("Status", wf.status.title())]
    if entry.alias:
        pairs.append(("Alias", code(outside(entry.alias))))
    if wf.dependency:
        pairs.append(("Targets", _dependency_text(wf.dependency)))
    if wf.trigger_methods:
        pairs.append(("Trigger methods", ", ".join(sorted(wf.trigger_methods))))
    if wf.parameters:
        pairs.append(("Parameters", ", ".join(code(outside(p)) for p in wf.parameters)))
    if wf.last_update_time:
        pairs.append(("Last updated", when(wf.last_update_time)))
    if wf.uuid:
        pairs.append(("UUID", code(outside(wf.uuid))))
    name = shown(outside(wf.display_name))
    blocks = [
        section(f"*{name}*\n{shown(outside(wf.description))}".rstrip()),
        fields(pairs),
    ]
    usage = f"/nexthink run {entry.alias or wf.id}"
    if wf.parameters:
        usage += " " + " ".join(f"{p}=…" for p in wf.parameters)
    blocks.append(context(f"Run it: {code(outside(usage), None)}"))
    return {"text": f"{name} ({shown(outside(wf.id))})", "blocks": blocks}


def _dependency_text(dependency: str) -> str:
    return {
        "USER": "a user",
        "DEVICE": "a device",
        "USER_AND_DEVICE": "a user and their device",
        "NONE": "no target",
    }.get(dependency, dependency)


def _params_text(params: Mapping[str, str]) -> str:
    if not params:
        return "none"
    return ", ".join(code(outside(f"{k}={v}")) for k, v in sorted(params.items()))


def params_text(params: Mapping[str, object]) -> str:
    """A run's parameters as code spans a value cannot break out of ("none" without any)."""
    return _params_text({str(k): str(v) for k, v in params.items()})


def targets_text(labels: Sequence[str], limit: int = 10) -> str:
    """Targets as people named them (device names, UPNs), at most ``limit`` of them."""
    names = [shown(outside(label), 200) for label in labels[:limit]]
    more = len(labels) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


_targets_text = targets_text


def run_message(
    *,
    workflow_name: Outside,
    workflow_id: str,
    targets: Sequence[str],
    params: Mapping[str, str],
    requester_id: str,
    request_uuids: Sequence[str],
    executions: int,
    record_id: str,
    note: str | None = None,
) -> Message:
    name = shown(workflow_name, 200)
    head = f":white_check_mark: *{name}* ({code(outside(workflow_id))}) was sent to Nexthink."
    request_text = ", ".join(code(outside(u)) for u in request_uuids)
    pairs = [
        ("Targets", _targets_text(targets)),
        ("Parameters", _params_text(params)),
        ("Nexthink request" + ("s" if len(request_uuids) > 1 else ""), request_text),
        ("Executions", str(executions)),
    ]
    text = f"{name} sent to Nexthink: request {request_text}, {executions} execution(s)"
    return {
        "text": text,
        "blocks": [
            section(head),
            fields(pairs),
            *([context(note)] if note else []),
            context(f"Requested by <@{requester_id}> · bot record `{record_id}`"),
        ],
    }


def device_note(own: DeviceList | None) -> str | None:
    """For a run on the requester's own user: which of their devices Nexthink uses (the most
    recently seen) and how to pick another; or why the bot could not tell."""
    if own is None:
        return None
    if own.problem is not None:
        return (
            "Nexthink runs it on your most recently seen device; the bot could not list your "
            f"devices ({shown(outside(own.problem), 300)})."
        )
    if len(own.devices) < 2 or own.latest is None:
        return None
    latest = own.latest
    seen = f" (seen {when(latest.last_seen)})" if latest.last_seen else ""
    others = ", ".join(code(outside("device:" + d.label), 100) for d in own.devices[1:4])
    return (
        f":computer: It runs on your most recently seen device, {shown(outside(latest.label), 100)}"
        f"{seen}. To pick another, add {others} to the command, or choose one in the form."
    )


def error_message(
    exc: NexthinkError,
    *,
    action: str,
    details: Sequence[tuple[str, str]] = (),
    record_id: str | None = None,
) -> Message:
    """A Nexthink failure in plain words: what Nexthink answered (or that nothing came back),
    what it means, what to do. ``action`` is mrkdwn the bot wrote ("Running *Restart Teams*")."""
    check = (
        "Check its executions in Nexthink (`/nexthink history` shows the request) before "
        "trying again."
    )
    if isinstance(exc, OutcomeUnknown) and exc.status is not None:
        head = (
            f":warning: {action}: {answered(exc.status)}, so it *may or may not have run*. " + check
        )
    elif isinstance(exc, OutcomeUnknown):
        head = (
            f":warning: {action}: the request reached Nexthink but no answer came back, so it "
            "*may or may not have run*. " + check
        )
    elif may_have_run(exc):  # an execute or trigger answered with something unreadable
        head = (
            f":warning: {action}: Nexthink answered unexpectedly, so it *may or may not have "
            "run*. Check in Nexthink before trying again."
            f"\n>{shown(outside(exc.message), 1000)}"
        )
    elif isinstance(exc, (BadRequest, PermissionDenied)):
        what = "refused" if isinstance(exc, BadRequest) else "denied permission for"
        head = f":x: Nexthink {what} {action[:1].lower()}{action[1:]}."
        if exc.code or exc.details:
            said = code(outside(exc.code), 100) if exc.code else ""
            head += f"\n>{said} {shown(outside(exc.details or ''), 1000)}".rstrip()
    elif isinstance(exc, Throttled):
        wait = (
            f" Try again in {max(1, math.ceil(exc.retry_after))} s."
            if exc.retry_after
            else " Try again shortly."
        )
        head = f":hourglass: Nexthink is busy and asked the bot to slow down; {action[:1].lower()}{action[1:]} was not sent.{wait}"
    elif isinstance(exc, AuthenticationError):
        head = f":x: {action}: the bot's Nexthink API credentials were not accepted; nothing was sent. Tell the bot's operator."
    else:
        head = f":x: {action}: {exc.summary}. Nothing was run."
        if exc.message and exc.message != exc.summary:
            head += f"\n>{shown(outside(exc.message), 1000)}"
    blocks: list[dict[str, Any]] = [section(head)]
    if details:
        blocks.append(fields(details))
    if record_id:
        blocks.append(context(f"bot record `{record_id}`"))
    return {"text": head.split("\n")[0].replace("*", ""), "blocks": blocks}


def resume_message(
    *,
    workflow_uuid: str,
    execution_uuid: str,
    params: Mapping[str, str],
    request_uuids: Sequence[str],
) -> Message:
    head = ":arrow_forward: The waiting execution was resumed."
    pairs = [
        ("Workflow", code(outside(workflow_uuid))),
        ("Execution", code(outside(execution_uuid))),
        ("Parameters", _params_text(params)),
        ("Nexthink request", ", ".join(code(outside(u)) for u in request_uuids) or "none"),
    ]
    return {
        "text": f"Execution {shown(outside(execution_uuid), 100)} resumed",
        "blocks": [section(head), fields(pairs)],
    }


_STATE_EMOJI = {
    "sent": ":white_check_mark:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "unknown": ":warning:",
    "denied": ":no_entry:",
    "expired": ":hourglass:",
    "approval_pending": ":raised_hand:",
    "consent_pending": ":raising_hand:",
    "pending": ":hourglass_flowing_sand:",
    "scheduled": ":alarm_clock:",
    "cancelled": ":wastebasket:",
    "missed": ":hourglass:",
    "refused": ":no_entry:",
}


def history_message(records: Sequence[Any]) -> Message:
    if not records:
        text = "You have no requests yet. `/nexthink run <workflow>` starts one."
        return {"text": text, "blocks": [section(text)]}
    lines = []
    for r in records:
        emoji = _STATE_EMOJI.get(r.state, "•")
        uuids = ", ".join(code(outside(u)) for u in r.nexthink_request_uuids)
        workflow = code(outside(r.workflow_id or ""), 100)
        lines.append(
            f"{emoji} {when(r.created_at)} *{r.kind}* {workflow} — "
            f"{r.state.replace('_', ' ')} · {uuids or 'no Nexthink request'}"
        )
    title = f"Your last {len(records)} request{'s' if len(records) != 1 else ''}"
    return {"text": title, "blocks": [section(f"*{title}*"), section("\n".join(lines))]}


#: what a person reads when the bot's database does not answer before anything was done
STORE_UNAVAILABLE = (
    ":construction: The bot cannot reach its database right now, so nothing was done and "
    "nothing was sent to Nexthink. Please try again in a minute."
)


def store_unavailable_message() -> Message:
    return text_message(STORE_UNAVAILABLE)


def internal_error_message(ref: str) -> Message:
    text = (
        ":boom: Something went wrong on the bot's side and your request was not completed. "
        f"The bot's operator can find the details in its log under reference `{ref}`."
    )
    return {"text": text, "blocks": [section(text)]}


def interrupted_message(workflow_id: str) -> Message:
    text = (
        f":warning: The bot restarted while sending {code(outside(workflow_id))} to Nexthink, so "
        "it *may or may not have run*. Check `/nexthink history` or Nexthink before trying again."
    )
    return {"text": text.replace("*", ""), "blocks": [section(text)]}


def run_result_message(result: RunResult) -> Message:
    """A run's reply: what was sent, or what went wrong (and what was sent before)."""
    prepared = result.prepared
    labels = [t.label for t in prepared.targets]
    if result.execution is not None:
        return run_message(
            workflow_name=outside(prepared.workflow.display_name),
            workflow_id=prepared.entry.id,
            targets=labels,
            params=prepared.params,
            requester_id=prepared.requester.user_id,
            request_uuids=result.execution.request_uuids,
            executions=len(result.execution.executions_uuids),
            record_id=result.record.id,
            note=device_note(prepared.own_devices),
        )
    assert result.error is not None
    details = [
        ("Workflow", code(outside(prepared.entry.id))),
        ("Targets", targets_text(labels)),
    ]
    if prepared.params:
        details.append(("Parameters", _params_text(prepared.params)))
    if result.completed is not None and result.completed.request_uuids:
        details.append(
            (
                "Already sent",
                ", ".join(code(outside(u)) for u in result.completed.request_uuids)
                + f" ({len(result.completed.executions_uuids)} executions)",
            )
        )
    return error_message(
        result.error,
        action=f"Running *{shown(outside(prepared.workflow.display_name), 200)}*",
        details=details,
        record_id=result.record.id,
    )
