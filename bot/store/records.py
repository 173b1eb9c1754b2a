"""The records the store hands out: frozen dataclasses with typed fields.

Datetimes are timezone-aware UTC. JSON lists come back as tuples so that a record can be shared
without being changed behind the store's back; JSON objects (targets, parameters) come back as
plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

__all__ = [
    "APPROVAL_STATES",
    "AUDIT_EVENTS",
    "AUDIT_FIELDS",
    "REQUEST_KINDS",
    "REQUEST_STATES",
    "SCHEDULE_STATES",
    "WAIT_STATES",
    "ApprovalRecord",
    "ApprovalState",
    "ApprovalVote",
    "AuditEvent",
    "AuditRecord",
    "ClaimRefusal",
    "ClaimRefusalReason",
    "DelegationRecord",
    "DenyResult",
    "FollowupRecord",
    "NudgePlan",
    "RequestKind",
    "RequestRecord",
    "RequestState",
    "ScheduleRecord",
    "ScheduleState",
    "VoteRefusalReason",
    "VoteResult",
    "WaitOption",
    "WaitRecord",
    "WaitState",
    "iso_utc",
]

RequestKind = Literal["run", "resume", "decision", "approval"]
RequestState = Literal[
    "pending",
    "approval_pending",
    "consent_pending",
    "sent",
    "succeeded",
    "failed",
    "unknown",
    "denied",
    "expired",
    "scheduled",  # a run asked for later (``schedules``), not sent yet
    "cancelled",  # a scheduled run cancelled before its time
    "missed",  # a scheduled run found more than max_late_minutes after its time: not run
    "refused",  # a scheduled run the policy refused at its time: not run
]
WaitState = Literal["pending", "claimed", "decided", "failed", "expired"]
ApprovalState = Literal["pending", "approved", "denied", "expired", "executing", "executed"]
#: a scheduled run: waiting for its approval, waiting for its time, being run (leased by one
#: replica), and how it ended; only ``awaiting_approval`` and ``scheduled`` may be cancelled.
ScheduleState = Literal[
    "awaiting_approval", "scheduled", "running", "ran", "missed", "refused", "cancelled", "closed"
]

#: why ``claim_wait`` refused: nobody knows the id; it expired; someone else is deciding it right
#: now; it was decided (or failed) already; the clicker is the person who asked for it.
ClaimRefusalReason = Literal[
    "not_found", "expired", "in_progress", "decided", "failed", "own_request"
]
#: why ``vote_approval`` / ``deny_approval`` refused.
VoteRefusalReason = Literal["not_found", "expired", "not_pending", "already_voted", "own_request"]

#: every event of the audit trail, as named in the contract ("Change management and audit").
AuditEvent = Literal[
    "run_requested",
    "run_refused",
    "approval_requested",
    "approval_vote",
    "approval_denied",
    "approval_expired",
    "executed",
    "execute_failed",
    "outcome",
    "question_posted",
    "question_decided",
    "question_expired",
    "resumed",
    "delegation_set",
    "consent_asked",
    "consent_given",
    "consent_refused",
    "scheduled",
    "schedule_cancelled",
]

REQUEST_KINDS: frozenset[str] = frozenset(get_args(RequestKind))
REQUEST_STATES: frozenset[str] = frozenset(get_args(RequestState))
WAIT_STATES: frozenset[str] = frozenset(get_args(WaitState))
APPROVAL_STATES: frozenset[str] = frozenset(get_args(ApprovalState))
SCHEDULE_STATES: frozenset[str] = frozenset(get_args(ScheduleState))
AUDIT_EVENTS: tuple[str, ...] = get_args(AuditEvent)

#: the fields of an exported audit record, in order: the CSV header and the JSON keys.
AUDIT_FIELDS: tuple[str, ...] = (
    "time",
    "event",
    "actor",
    "actor_upn",
    "workflow",
    "targets",
    "params",
    "ticket",
    "request_uuid",
    "execution_uuids",
    "result",
    "detail",
    "request_id",
    "enterprise_id",
    "team_id",
)


def iso_utc(value: datetime) -> str:
    """``2026-12-02T17:51:31.123456Z``: fixed width, so text order is time order."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True, slots=True)
class NudgePlan:
    """When an approval or a question reminds its undecided approvers, and escalates.

    Minutes may be fractional. ``escalate_to`` (ids, UPNs, @handles) may decide too once
    ``escalate_after_minutes`` have passed since the request was made."""

    remind_after_minutes: float | None = None
    escalate_after_minutes: float | None = None
    escalate_to: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.remind_after_minutes is not None or self.escalates

    @property
    def escalates(self) -> bool:
        return self.escalate_after_minutes is not None and bool(self.escalate_to)

    def escalates_at(self, created_at: datetime) -> datetime | None:
        if not self.escalates or self.escalate_after_minutes is None:
            return None
        return created_at + timedelta(minutes=self.escalate_after_minutes)

    def escalated(self, created_at: datetime, now: datetime) -> bool:
        at = self.escalates_at(created_at)
        return at is not None and now >= at

    @property
    def interval(self) -> timedelta | None:
        if self.remind_after_minutes is None:
            return None
        return timedelta(minutes=self.remind_after_minutes)

    def round_at(self, created_at: datetime, now: datetime) -> int:
        """How many reminder intervals have passed by ``now`` (0: none yet, or no reminders)."""
        every = self.interval
        if every is None or now < created_at:
            return 0
        return (now - created_at) // every

    def next_at(
        self, created_at: datetime, after: datetime, expires_at: datetime
    ) -> datetime | None:
        """The first moment later than ``after`` when a reminder round starts or the escalation
        comes, if that is before ``expires_at``; None when nothing more is to be done."""
        times = []
        every = self.interval
        if every is not None:
            times.append(created_at + every * (self.round_at(created_at, after) + 1))
        escalation = self.escalates_at(created_at)
        if escalation is not None and escalation > after:
            times.append(escalation)
        first = min(times) if times else None
        return first if first is not None and first < expires_at else None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One audited request: a run, a resume, a decision on a wait, or a bot-side approval.

    ``targets`` is a list of JSON objects, one per target, in the caller's own shape.
    """

    id: str
    kind: RequestKind
    created_at: datetime
    updated_at: datetime
    team_id: str | None
    channel_id: str | None
    user_id: str
    user_upn: str | None
    workflow_id: str | None
    targets: tuple[dict[str, Any], ...]
    params: dict[str, Any]
    state: RequestState
    nexthink_request_uuids: tuple[str, ...]
    executions_uuids: tuple[str, ...]
    error: str | None
    approved_by: tuple[str, ...]
    response_url: str | None
    message_channel: str | None
    message_ts: str | None
    #: the Enterprise Grid org the request came from (``team_id`` is its workspace)
    enterprise_id: str | None = None


@dataclass(frozen=True, slots=True)
class WaitOption:
    """One button of a paused execution: its label, Block Kit style and the trigger parameters."""

    label: str
    style: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "style": self.style, "parameters": dict(self.parameters)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WaitOption:
        return cls(
            label=str(data["label"]),
            style=data.get("style"),
            parameters={str(k): str(v) for k, v in (data.get("parameters") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class WaitRecord:
    """A paused Nexthink execution waiting for someone to click one of its options.

    ``decided_by`` / ``decided_upn`` / ``decision`` name the person and option index as soon as the
    wait is claimed; ``decided_at`` is set when the decision is finished (decided or failed).
    ``claim_token`` is only set while claimed and proves ownership to ``finish_wait``.
    ``outcome`` accumulates notes, one per line: those of released attempts (e.g. "outcome
    unknown, may have resumed"), then Nexthink's final answer.
    """

    id: str
    workflow_uuid: str
    execution_uuid: str
    channel_id: str | None
    dm_user_upn: str | None
    text: str
    options: tuple[WaitOption, ...]
    approvers: tuple[str, ...]
    approver_parameter: str | None
    requester_upn: str | None
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    state: WaitState
    decided_by: str | None
    decided_upn: str | None
    decision: int | None
    claimed_at: datetime | None
    decided_at: datetime | None
    outcome: str | None
    message_channel: str | None
    message_ts: str | None
    claim_token: str | None
    plan: NudgePlan = NudgePlan()
    next_nudge_at: datetime | None = None
    decided_for: str | None = None  #: the approver a stand-in (``decided_by``) decided for
    #: the workspace (and org) whose Slack the question is posted in
    team_id: str | None = None
    enterprise_id: str | None = None

    @property
    def decision_label(self) -> str | None:
        if self.decision is None or not 0 <= self.decision < len(self.options):
            return None
        return self.options[self.decision].label


@dataclass(frozen=True, slots=True)
class ClaimRefusal:
    """``claim_wait`` did not hand the wait to the caller; ``wait`` (if any) says who and when."""

    reason: ClaimRefusalReason
    wait: WaitRecord | None


@dataclass(frozen=True, slots=True)
class ApprovalVote:
    """A vote counts as ``user_id``; ``cast_by`` is the stand-in who cast it for them, if any."""

    user_id: str
    upn: str | None
    voted_at: datetime
    cast_by: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """A bot-side approval guarding one request; ``votes`` in the order they were cast."""

    id: str
    request_id: str
    requester_id: str
    channel_id: str | None
    approvers: tuple[str, ...]
    count: int
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    state: ApprovalState
    message_channel: str | None
    message_ts: str | None
    denied_by: str | None
    deny_reason: str | None
    decided_at: datetime | None
    votes: tuple[ApprovalVote, ...]
    plan: NudgePlan = NudgePlan()
    next_nudge_at: datetime | None = None
    denied_for: str | None = None  #: the approver a stand-in (``denied_by``) denied for


@dataclass(frozen=True, slots=True)
class VoteResult:
    """The answer to a vote: whether it counted, and whether it was the one that reached the count.

    Exactly one accepted vote per approval has ``reached=True``; that voter triggers the run.
    """

    accepted: bool
    reason: VoteRefusalReason | None
    votes: int
    reached: bool
    approval: ApprovalRecord | None


@dataclass(frozen=True, slots=True)
class DenyResult:
    accepted: bool
    reason: VoteRefusalReason | None
    approval: ApprovalRecord | None


@dataclass(frozen=True, slots=True)
class DelegationRecord:
    """``user_id`` is away: ``stand_in_id`` decides for them until ``until`` (exclusive; None:
    until they end it)."""

    user_id: str
    user_upn: str | None
    stand_in_id: str
    stand_in_upn: str | None
    until: datetime | None
    created_at: datetime
    team_id: str | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True, slots=True)
class FollowupRecord:
    """A Nexthink request whose outcome the bot still has to look up (status query)."""

    id: str
    request_id: str
    nexthink_request_uuid: str
    next_poll_at: datetime
    attempts: int
    deadline: datetime
    done: bool
    last_status: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One event of the audit trail: who did what, on whom, and how it ended.

    ``actor`` is the Slack user id of whoever caused the event (the requester, the voter, the
    person who clicked), ``None`` for the bot itself (an expiry, an outcome found by polling).
    ``request_uuid`` / ``execution_uuids`` are Nexthink's; ``request_id`` is the bot's own request
    record, which ties the events of one run together. ``result`` is a short word (``ok``,
    ``refused``, ``approved``, ``denied``, ``succeeded``, ``failed``, ``unknown``...); ``detail``
    is free text (a refusal, a deny reason, an error). ``seq`` is the store's sequence number
    (``None`` before the record is written); it orders records of the same instant.
    """

    time: datetime
    event: AuditEvent
    actor: str | None = None
    actor_upn: str | None = None
    workflow: str | None = None
    targets: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    ticket: str | None = None
    request_uuid: str | None = None
    execution_uuids: tuple[str, ...] = ()
    result: str | None = None
    detail: str | None = None
    request_id: str | None = None
    enterprise_id: str | None = None
    team_id: str | None = None
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The exported shape: ``AUDIT_FIELDS`` in order, ``time`` as ISO 8601 UTC text."""
        return {
            "time": iso_utc(self.time),
            "event": self.event,
            "actor": self.actor,
            "actor_upn": self.actor_upn,
            "workflow": self.workflow,
            "targets": [dict(t) for t in self.targets],
            "params": dict(self.params),
            "ticket": self.ticket,
            "request_uuid": self.request_uuid,
            "execution_uuids": list(self.execution_uuids),
            "result": self.result,
            "detail": self.detail,
            "request_id": self.request_id,
            "enterprise_id": self.enterprise_id,
            "team_id": self.team_id,
        }


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A run asked for later: what was asked (``ask``: the command's targets and parameters, so
    that the policy checks them again at ``run_at``), its request record, and its state.

    ``code`` is the short id people type (``/nexthink cancel K7Q2M9XD``). ``claim_token`` is set
    while one replica holds it (``running``); ``sending_at`` once the execute is about to be sent,
    after which it is never run again."""

    id: str
    code: str
    request_id: str
    team_id: str | None
    channel_id: str | None
    user_id: str
    user_upn: str | None
    workflow: str
    ask: dict[str, Any]
    run_at: datetime
    state: ScheduleState
    created_at: datetime
    updated_at: datetime
    claimed_at: datetime | None
    claim_token: str | None
    sending_at: datetime | None
    finished_at: datetime | None
    detail: str | None
    cancelled_by: str | None

    @property
    def open(self) -> bool:
        """Not run yet and still cancellable."""
        return self.state in ("awaiting_approval", "scheduled")
