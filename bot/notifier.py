"""What the core reports, and to whom: a small interface the Slack layer implements.

The core (waits, approvals, follow-ups) decides and records; it never builds a message or calls
Slack. It tells a ``Notifier`` what happened, as plain values (``WaitNews``, ``ApprovalNews``,
``RequesterNews``), and the Slack layer (``handlers.slack_notifier``) turns them into messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from bot.followups import OutcomeNotifier
from bot.runs import RunResult
from bot.store import (
    ApprovalRecord,
    ConsentRecord,
    RequestRecord,
    RoundRecord,
    ScheduleRecord,
    WaitRecord,
)

__all__ = [
    "ApprovalNews",
    "Asked",
    "ConsentNews",
    "NotPosted",
    "Notifier",
    "PersonLine",
    "PersonState",
    "Reminder",
    "RequesterNews",
    "RoundView",
    "ScheduleNews",
    "WaitNews",
]


class NotPosted(Exception):
    """Slack refused to post a message; ``error`` is Slack's error code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


WaitEvent = Literal[
    "expired",  # the question expired (sweep, or found expired on a click)
    "sending",  # a choice was made and is being sent to Nexthink
    "refused",  # Nexthink refused the choice: the question is closed
    "unclear",  # Nexthink gave no clear answer: the question is open again
    "interrupted",  # the bot stopped while sending: open again
    "stale",  # a crashed process left the decision half done: open again
    "decided",  # Nexthink resumed the execution
    "escalated",  # the question escalated: more people may decide it now
]


@dataclass(frozen=True)
class WaitNews:
    """What happened to a paused execution's question."""

    event: WaitEvent
    user_id: str | None = None  #: who chose
    for_user_id: str | None = None  #: the approver they chose for, as a stand-in
    option_label: str = ""
    option_style: str | None = None
    at: datetime | None = None
    detail: str = ""  #: Nexthink's refusal, error summary or request ids
    mention: str | None = None  #: the question's addressee, for an open question
    on_click: bool = False  #: ``expired`` found by a click rather than by the sweep


ApprovalEvent = Literal[
    "votes",
    "escalated",
    "sending",
    "executed",
    "failed",
    "interrupted",
    "denied",
    "withdrawn",
    "expired",
    "consent",  # approved; now the people it runs on are asked for their consent
    "scheduled",  # approved, and it runs at its time (``at``); ``detail`` "cancelled" if not
]


@dataclass(frozen=True)
class ApprovalNews:
    """What happened to an approval request (its message in the approval channel)."""

    event: ApprovalEvent
    voters: tuple[str, ...] = ()  #: user ids of the approvers so far
    user_id: str | None = None  #: who denied or withdrew
    reason: str | None = None  #: the denial's reason, as typed
    detail: str = ""  #: Nexthink request ids, or why the run failed
    for_user_id: str | None = None  #: the approver ``user_id`` denied for, as a stand-in
    at: datetime | None = None  #: when a scheduled run falls due


@dataclass(frozen=True)
class RequesterNews:
    """What the requester of an approval-gated run is told."""

    event: Literal["denied", "approved", "expired", "interrupted"]
    user_id: str | None = None  #: the approver who denied or approved (with a comment)
    reason: str | None = None  #: the reason or the comment, as typed
    cast_by: str | None = None  #: the stand-in who decided for ``user_id``


@dataclass(frozen=True)
class Reminder:
    """A direct message to someone a request waits on: a ``reminder`` (round ``round``) or the
    news that it ``escalated`` to them. ``channel``/``ts``: the request's message, to link to."""

    kind: Literal["reminder", "escalated"]
    subject: Literal["approval", "question"]
    channel: str | None
    ts: str | None
    created_at: datetime
    expires_at: datetime
    round: int = 0
    requester_id: str | None = None  #: an approval's requester
    requester_upn: str | None = None  #: a question's ``requester``, as the webhook gave it
    workflow_id: str | None = None
    workflow_name: str | None = None  #: outside text (Nexthink's)
    text: str | None = None  #: a question's text (outside text)
    for_user_id: str | None = None  #: the approver the recipient stands in for
    team_id: str | None = None  #: the workspace (and org) the request was made in
    enterprise_id: str | None = None


ConsentEvent = Literal[
    "sending",  # the person allowed: the run is being sent for them
    "sent",  # Nexthink took it (``detail``: request ids)
    "failed",  # Nexthink refused or failed (``detail``: what it answered)
    "refused",  # the person said Not now
    "expired",  # no answer in time
    "interrupted",  # the bot stopped while sending: the outcome is unknown
    "agreed",  # the person allowed a scheduled run: it is sent for them at its time
    "cancelled",  # the scheduled run was cancelled (or not run): nothing is sent for them
]
ScheduleEvent = Literal[
    "ran",  # it ran at its time: ``result`` is the run's, told and followed as any run
    "missed",  # found more than max_late_minutes after its time (the bot was down): not run
    "refused",  # the policy refused it at its time: not run (``reason`` says why)
    "interrupted",  # the bot stopped while sending it: the outcome is unknown
    "cancelled",  # someone else (an auditor) cancelled it (``user_id``)
    "approved",  # its approval came: it runs at its time
    "closed",  # its approval was denied or expired: it will not run
]


@dataclass(frozen=True)
class Asked:
    """One person asked (``consent``), or whom the bot could not ask (``error``: Slack's code)."""

    label: str
    person: str
    consent: ConsentRecord | None = None
    error: str | None = None


@dataclass(frozen=True)
class ConsentNews:
    """What happened to one person's consent: their message is updated, and the requester is
    told of Not now, expiry and interruptions (an allowed run reaches them as a run result)."""

    event: ConsentEvent
    detail: str = ""


#: one person's state in the requester's reply (``bot.consent_rounds.person_line`` decides it)
PersonState = Literal[
    "asked",  # waiting for their answer (``until``)
    "not_asked",  # the question could not be posted (``detail``: Slack's error)
    "agreed",  # allowed a scheduled run: sent for them at its time
    "sending",  # allowed: being sent
    "sent",  # sent (``detail``: Nexthink's request ids)
    "failed",  # allowed, but the execute failed (``detail``)
    "interrupted",  # allowed, but the bot stopped while sending: outcome unknown
    "not_now",  # said Not now
    "expired",  # no answer in time
    "cancelled",  # the scheduled run was cancelled or not run
]


@dataclass(frozen=True)
class PersonLine:
    person: str  #: the Slack user asked
    label: str  #: the target as named
    state: PersonState
    detail: str = ""
    until: datetime | None = None


@dataclass(frozen=True)
class RoundView:
    """The people one run asked together, each with their state, from one read of the store."""

    round: RoundRecord
    name: str  #: the workflow's display name
    lines: tuple[PersonLine, ...]


@dataclass(frozen=True)
class ScheduleNews:
    """What the requester of a scheduled run is told."""

    event: ScheduleEvent
    user_id: str | None = None
    reason: str = ""  #: a refusal (mrkdwn written by the bot) or how late it was
    result: RunResult | None = None


class Notifier(OutcomeNotifier, Protocol):
    """Implemented by the Slack layer; every method but the ``ask`` ones never raises."""

    async def ask_wait(
        self, wait: WaitRecord, channel: str, mention: str | None
    ) -> tuple[str, str]:
        """Post the question; returns (channel, ts) or raises ``NotPosted``."""

    async def withdraw(self, channel: str, ts: str) -> None:
        """Remove a message posted twice."""

    async def wait_changed(self, wait: WaitRecord, news: WaitNews) -> None: ...

    async def ask_approval(
        self, approval: ApprovalRecord, record: RequestRecord, name: str, targets: list[str]
    ) -> tuple[str, str]:
        """Post the approval request; returns (channel, ts) or raises ``NotPosted``."""

    async def approval_changed(
        self, approval: ApprovalRecord, record: RequestRecord, name: str, news: ApprovalNews
    ) -> None: ...

    async def tell_requester(self, record: RequestRecord, news: RequesterNews) -> None: ...

    async def run_finished(self, result: RunResult) -> None:
        """An approved (or allowed) run was executed: tell the requester as the run path does."""

    async def ask_consent(
        self, consent: ConsentRecord, record: RequestRecord, name: str
    ) -> tuple[str, str]:
        """Ask the person by direct message (a scheduled run's says when it runs); returns
        (channel, ts) or raises ``NotPosted``."""

    async def consent_round(self, view: RoundView, *, first: bool = False) -> None:
        """Show the requester each person's state in their one reply: post it (``first``), else
        update it in place (moving it to a direct message if Slack no longer takes its URL)."""

    async def consent_changed(
        self, consent: ConsentRecord, record: RequestRecord, name: str, news: ConsentNews
    ) -> None:
        """Update the person's question; a run with a thread in a channel gets a line there."""

    async def consent_run_finished(self, result: RunResult) -> None:
        """An allowed run was sent: its round shows it; follow its outcome (a visible run is
        posted in its channel, as the run path does)."""

    async def remind(self, user_id: str, reminder: Reminder) -> bool:
        """Send ``reminder`` to ``user_id`` by direct message, with a link to the request;
        False when Slack refused it."""

    async def schedule_changed(
        self, schedule: ScheduleRecord, record: RequestRecord, news: ScheduleNews
    ) -> None:
        """A scheduled run ran, was missed, refused, interrupted or cancelled: tell its
        requester (a run that ran is followed as any run)."""
