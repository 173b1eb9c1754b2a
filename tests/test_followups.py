"""The pure parts of outcome follow-up: reading NQL rows, statuses, backoff, the stored state,
and how the outcome reads in Slack."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block, ButtonElement

from bot.catalogue import Entry
from bot.followups import (
    ExecutionState,
    Progress,
    next_delay,
    normalize_status,
    read_rows,
)
from bot.nexthink.models import Workflow
from bot.store import RequestRecord
from bot.text import Outside
from handlers.home_views import run_button
from handlers.outcome_views import (
    final_message,
    outcome_blocks,
    outcome_summary,
    status_query,
    target_labels,
    thread_update_message,
)

E1 = "6b3c8f2e-1d4a-4c5b-9e7f-0a1b2c3d4e5f"
E2 = "0f9e8d7c-6b5a-4938-a716-2b3c4d5e6f70"
REQUEST = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"


def record(**changes: Any) -> RequestRecord:
    now = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": "r1",
        "kind": "run",
        "created_at": now,
        "updated_at": now,
        "team_id": None,
        "channel_id": "C0GENERAL",
        "user_id": "U0BOB",
        "user_upn": "bob@example.com",
        "workflow_id": "restart_teams",
        "targets": ({"label": "alice@example.com"}, {"label": "device LAPTOP-BOB"}),
        "params": {},
        "state": "sent",
        "nexthink_request_uuids": (REQUEST,),
        "executions_uuids": (E1.upper(), E2),
        "error": None,
        "approved_by": (),
        "response_url": None,
        "message_channel": None,
        "message_ts": None,
    }
    values.update(changes)
    return RequestRecord(**values)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        pytest.param("IN_PROGRESS", "in_progress", id="upper-underscore"),
        pytest.param("in progress", "in_progress", id="spaced"),
        pytest.param("In-Progress", "in_progress", id="hyphen"),
        pytest.param("success", "success", id="success"),
        pytest.param("SUCCEEDED", "success", id="succeeded"),
        pytest.param("failure", "failed", id="sandbox-failure"),
        pytest.param("Failed", "failed", id="failed"),
        pytest.param("waiting_for_trigger", "waiting", id="waiting"),
        pytest.param("canceled", "cancelled", id="us-spelling"),
        pytest.param("EXPIRED", "expired", id="expired"),
        pytest.param("", "unknown", id="empty"),
        pytest.param(None, "unknown", id="null"),
        pytest.param("rebooting", "unknown", id="unheard-of"),
    ],
)
def test_statuses_ignore_case_spaces_and_underscores(raw: object, status: str) -> None:
    """Statuses compare without regard to case, spaces, hyphens or underscores."""
    assert normalize_status(raw) == status


def test_reads_the_sandboxes_qualified_columns() -> None:
    """Columns named `workflow.executions.status` etc. are found by their endings."""
    rows = [
        {
            "workflow.executions.execution_id": E1.upper(),
            "workflow.executions.status": "failure",
            "workflow.executions.status_details": "not found",
            "workflow.executions.outcome": "device x not found",
        }
    ]
    assert read_rows(rows) == [
        ExecutionState(E1, "failed", "failure", "not found", "device x not found")
    ]


def test_reads_plain_and_oddly_written_columns() -> None:
    """`Status`, `status details`, nulls, numbers and a missing id are all tolerated."""
    rows: list[dict[str, Any]] = [
        {"Execution ID": E2, "Status": "In progress", "status details": None, "outcome": 3},
        {"status": "success"},
        {"request_id": REQUEST},  # no status: not an execution row
    ]
    assert read_rows(rows) == [
        ExecutionState(E2, "in_progress", "In progress", "", "3"),
        ExecutionState("row:1", "success", "success", "", ""),
    ]


def test_status_details_is_not_taken_for_status() -> None:
    """A column ending in `status_details` never stands in for `status`, whatever the order."""
    rows = [{"x.status_details": "completed", "x.status": "success", "x.execution_id": E1}]
    [state] = read_rows(rows)
    assert (state.status, state.details) == ("success", "completed")


@given(st.lists(st.dictionaries(st.text(max_size=30), st.none() | st.text() | st.integers())))
def test_any_rows_read_without_raising(rows: list[dict[str, Any]]) -> None:
    """Whatever Nexthink answers in `data`, reading it never raises."""
    for state in read_rows(rows):
        assert state.status in {
            "in_progress",
            "waiting",
            "success",
            "failed",
            "cancelled",
            "expired",
            "unknown",
        }


def test_backoff_doubles_up_to_the_cap() -> None:
    """Looks come after 15, 30, 60, 120, 120… seconds with the defaults."""
    assert [next_delay(n, 15, 120) for n in range(6)] == [15, 30, 60, 120, 120, 120]
    assert next_delay(10_000, 15, 120) == 120


def test_progress_survives_its_json_and_garbage() -> None:
    """The state kept in `last_status` comes back as it was; anything else reads as empty."""
    progress = Progress(ending="done", problem=None, url_uses=2, url_dead=True)
    progress.merge(read_rows([{"execution_id": E1, "status": "success", "outcome": "ok"}]), [])
    again = Progress.load(progress.dump())
    assert again == progress
    assert Progress.load("resumed: `x`") == Progress()
    assert Progress.load('["not", "a", "dict"]') == Progress()
    assert Progress.load(None) == Progress()


def test_merge_reports_changes_and_ignores_other_executions() -> None:
    """Only the request's own executions are kept; a repeated answer changes nothing."""
    progress = Progress()
    rows = [
        {"execution_id": E1, "status": "in_progress"},
        {"execution_id": "someone-else", "status": "success"},
    ]
    assert progress.merge(read_rows(rows), [E1.upper(), E2]) == [E1]
    assert progress.merge(read_rows(rows), [E1.upper(), E2]) == []
    assert not progress.all_final([E1, E2])
    done = [{"execution_id": E1, "status": "success"}, {"execution_id": E2, "status": "failed"}]
    assert progress.merge(read_rows(done), [E1, E2]) == [E1, E2]
    assert progress.all_final([E1, E2])
    assert progress.request_state([E1, E2]) == "failed"
    assert progress.counts([E1, E2]) == {"success": 1, "failed": 1}


@pytest.mark.parametrize(
    ("statuses", "state"),
    [
        pytest.param(["success", "success"], "succeeded", id="all-success"),
        pytest.param(["success", "cancelled"], "failed", id="cancelled"),
        pytest.param(["expired", "success"], "expired", id="expired"),
        pytest.param(["success", "in_progress"], None, id="not-yet"),
    ],
)
def test_request_state_once_every_execution_ended(statuses: list[str], state: str | None) -> None:
    """The request succeeds only if every execution did; a failure or cancellation fails it."""
    progress = Progress()
    progress.merge(
        read_rows(
            [{"execution_id": e, "status": s} for e, s in zip([E1, E2], statuses, strict=True)]
        ),
        [],
    )
    assert progress.request_state([E1, E2]) == state


def test_targets_are_labelled_in_the_order_sent() -> None:
    """One execution per target, in order; otherwise executions go by their id."""
    assert target_labels(record()) == {E1: "alice@example.com", E2: "device LAPTOP-BOB"}
    split = record(nexthink_request_uuids=(REQUEST, REQUEST))
    assert target_labels(split) == {E1: f"execution {E1[:8]}", E2: f"execution {E2[:8]}"}


def test_outcome_lines_show_nexthinks_details() -> None:
    """Each target reads as in progress, success (with the outcome) or failed (with details)."""
    progress = Progress()
    progress.merge(
        read_rows(
            [
                {
                    "execution_id": E1,
                    "status": "success",
                    "status_details": "completed",
                    "outcome": "Teams restarted",
                },
                {"execution_id": E2, "status": "failure", "status_details": "not found"},
            ]
        ),
        [],
    )
    progress.ending = "done"
    [section] = outcome_blocks(record(), progress)
    text = section["text"]["text"]
    assert text.startswith("*Outcome:* 1 succeeded, 1 failed.")
    assert ":white_check_mark: alice@example.com — success: Teams restarted" in text
    assert ":x: device LAPTOP-BOB — failed: not found" in text
    note = thread_update_message(record(), Outside("Restart Teams"), progress, [E2])
    assert note is not None
    assert "device LAPTOP-BOB — failed" in note["text"]
    assert "*Finished:* 1 succeeded, 1 failed." in note["text"]
    assert thread_update_message(record(), Outside("Restart Teams"), Progress(), []) is None
    assert (
        "1 succeeded, 1 failed"
        in final_message(record(), Outside("Restart Teams"), progress)["text"]
    )


def test_text_from_nexthink_is_escaped() -> None:
    """Status details with Slack markup are shown as typed, not as mentions or links."""
    progress = Progress()
    progress.merge(
        read_rows([{"execution_id": E1, "status": "failed", "status_details": "<!channel> & co"}]),
        [],
    )
    [section] = outcome_blocks(record(executions_uuids=(E1,), targets=({"label": "a"},)), progress)
    assert "&lt;!channel&gt; &amp; co" in section["text"]["text"]


def test_without_the_setting_the_outcome_is_a_pointer_to_nexthink() -> None:
    """With nothing followed, the reply carries the NQL to run in Nexthink for this request."""
    [context] = outcome_blocks(record(), None)
    assert status_query(REQUEST) in context["elements"][0]["text"]
    assert status_query(REQUEST) == (
        f'workflow.executions during past 7d | where request_id == "{REQUEST}" '
        "| list request_id, execution_id, status, status_details, outcome"
    )


def test_outcome_summary_orders_and_names_counts() -> None:
    """Counts read in a fixed order with people's words."""
    assert outcome_summary({"in_progress": 2, "success": 1, "waiting": 1}) == (
        "1 succeeded, 1 waiting for a decision, 2 in progress"
    )
    assert outcome_summary({}) == "no executions reported"


def test_the_home_run_button_is_valid_block_kit_with_a_confirm_dialog() -> None:
    """The Run button passes slack_sdk's own Block Kit checks, confirm dialog included."""
    entry = Entry(Workflow(id="restart_teams", name="Restart Teams " * 20), None)
    button = run_button(entry, "alice@example.com", {"mode": "soft"}, needs_approval=True)
    ButtonElement(**button).validate_json()
    assert button["confirm"]["text"]["text"].endswith("you will be told by a message from the bot.")
    block = Block.parse(
        {"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "accessory": button}
    )
    assert block is not None
    block.validate_json()
