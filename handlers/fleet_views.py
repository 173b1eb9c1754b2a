"""What a fleet run (``/nexthink run <workflow> query:#id``) shows before it runs: the count, a
sample and Run / Cancel; and the answers to those clicks."""

from __future__ import annotations

from bot.fleet import PREVIEW_MINUTES, FleetAnswer
from bot.runs import PreparedRun
from bot.store import FleetRunRecord
from handlers import ids
from handlers.blocks import Message, button, code, context, outside, section, shown
from handlers.views import params_text, targets_text

__all__ = ["SAMPLE", "answer_text", "cancelled_message", "preview_message", "started_message"]

#: targets named in the preview
SAMPLE = 10


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _what(devices: int, users: int) -> str:
    if devices and users:
        return f"{_count(devices + users, 'target', 'targets')} ({_count(devices, 'device', 'devices')}, {_count(users, 'person', 'people')})"
    if users:
        return _count(users, "person", "people")
    return _count(devices, "device", "devices")


def preview_message(prepared: PreparedRun, record: FleetRunRecord) -> Message:
    """ "This will run on 412 devices: LAPTOP-1, … [Run] [Cancel]"; nothing has run yet."""
    fleet = prepared.fleet
    assert fleet is not None
    name = shown(outside(prepared.workflow.display_name), 200)
    what = _what(len(prepared.devices), len(prepared.users))
    labels = [t.label for t in prepared.targets]
    head = (
        f":mag: *{name}* ({code(outside(prepared.entry.id))}) will run on {what}, "
        f"the answer of the query {code(outside(fleet.query_id))}: "
        f"{targets_text(labels, SAMPLE)}."
    )
    notes = [f"Parameters: {params_text(prepared.params)}"]
    if prepared.ticket:
        notes.append(f"Ticket: {code(outside(prepared.ticket), 100)}")
    if fleet.skipped:
        notes.append(
            f"{_count(fleet.skipped, 'row', 'rows')} of {fleet.rows:,} had no device or user and "
            "are left out."
        )
    if prepared.approval is not None:
        notes.append("It needs approval: Run asks for it, and it runs once approved.")
    notes.append(
        f"Nothing runs until you press Run (within {PREVIEW_MINUTES} minutes); only you can."
    )
    text = (
        f"{shown(outside(prepared.workflow.display_name), 200)} will run on {what}: Run or Cancel?"
    )
    return {
        "text": text,
        "blocks": [
            section(head),
            context(*notes),
            {
                "type": "actions",
                "block_id": f"fleet:{record.id}"[:255],
                "elements": [
                    button(f"Run on {what}"[:75], ids.FLEET_RUN, record.id, "primary"),
                    button("Cancel", ids.FLEET_CANCEL, record.id),
                ],
            },
        ],
    }


def started_message(prepared: PreparedRun) -> Message:
    """What the preview becomes when the run starts and its reply goes elsewhere (the channel)."""
    what = _what(len(prepared.devices), len(prepared.users))
    name = shown(outside(prepared.workflow.display_name), 200)
    text = f":arrow_forward: You started *{name}* on {what}; its reply follows in the channel."
    return {"text": text.replace("*", ""), "blocks": [section(text)]}


def cancelled_message(record: FleetRunRecord) -> Message:
    text = (
        f":no_entry_sign: Cancelled: {code(outside(record.workflow_id))} on the answer of "
        f"{code(outside(record.query_id))} was not run, and nothing was sent to Nexthink."
    )
    return {"text": "Cancelled: nothing was sent to Nexthink.", "blocks": [section(text)]}


def answer_text(answer: FleetAnswer) -> str:
    """The clicker's ephemeral when a Run or Cancel click did nothing."""
    record = answer.record
    if answer.outcome == "not_requester" and record is not None:
        return (
            f":no_entry: Only <@{record.user_id}>, who asked for this run, may start or cancel it."
        )
    if answer.outcome == "expired":
        return (
            f":hourglass: This preview expired ({PREVIEW_MINUTES} minutes): nothing was run. "
            "Run the command again to see the query's current answer."
        )
    if answer.outcome == "decided" and record is not None:
        done = "started" if record.state == "started" else "cancelled"
        return f":information_source: This run was already {done}; nothing more was done."
    if answer.outcome == "refused":
        return f":no_entry: {answer.refusal or 'The policy no longer allows this run.'} Nothing was run."
    return ":grey_question: This run is not known to the bot (any more); nothing was run."
