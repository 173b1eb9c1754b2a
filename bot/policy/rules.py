"""The policy's values: who asks (``Principal``), its answers (``Decision``) and its rules
(``Role``, ``WorkflowRule`` with its ``ParamRule``s and ``ApprovalRule``), plus ``ParamError``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

__all__ = [
    "ApprovalRule",
    "ConsentRule",
    "Decision",
    "ParamError",
    "ParamRule",
    "Principal",
    "Role",
    "ScheduleRule",
    "WorkflowRule",
]


class ParamError(ValueError):
    """A workflow parameter breaks the policy; ``message`` names it and what is allowed (mrkdwn)."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name  #: the parameter concerned


@dataclass(frozen=True)
class Principal:
    """Someone asking: a Slack user, their UPN (already rewritten) and their user-group handles."""

    user_id: str
    upn: str | None = None
    groups: frozenset[str] = frozenset()  #: handles without "@"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  #: a sentence a person can read (mrkdwn)

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Role:
    name: str
    members: tuple[str, ...]  #: Slack user ids, "@handle", UPNs, "*"
    channels: frozenset[str] | None  #: None: every channel
    workflows: tuple[str, ...]  #: globs over NQL ids and aliases
    targets: Literal["self", "any"] = "self"
    resume: bool = False
    visible: bool = False  #: run replies are posted in the channel, not ephemeral
    audit: bool = False  #: may see (and cancel) other people's requests and scheduled runs
    query_targets: bool = False  #: may run on what a saved NQL query returns (``query:#id``)


@dataclass(frozen=True)
class ParamRule:
    allowed: tuple[str, ...] | None = None
    default: str | None = None
    required: bool = False
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class ApprovalRule:
    """Run only after ``count`` approvals from ``approvers`` (anyone but the requester if empty)."""

    channel: str | None  #: where to ask; None: where the run was requested
    approvers: tuple[str, ...]
    count: int = 1
    expires_in_minutes: float = 1440
    remind_after_minutes: float | None = None  #: remind undecided approvers at this interval
    escalate_after_minutes: float | None = None  #: then ``escalate_to`` may decide too
    escalate_to: tuple[str, ...] = ()
    deny_reason: Literal["required", "optional", "none"] = "optional"
    approve_comment: Literal["optional", "none"] = "none"

    @property
    def expires_in(self) -> timedelta:
        return timedelta(minutes=self.expires_in_minutes)


@dataclass(frozen=True)
class ConsentRule:
    """A run that targets another person (``user:``) waits for that person's Allow."""

    expires_in_minutes: float = 30.0

    @property
    def expires_in(self) -> timedelta:
        return timedelta(minutes=self.expires_in_minutes)


@dataclass(frozen=True)
class ScheduleRule:
    """``schedule:`` (top level, or per workflow over it): whether runs may be scheduled, how far
    ahead, and how late a run may still start after its time (else it is reported as missed)."""

    allowed: bool = False
    max_days: float = 14.0
    max_late_minutes: float = 60.0

    @property
    def max_late(self) -> timedelta:
        return timedelta(minutes=self.max_late_minutes)


@dataclass(frozen=True)
class WorkflowRule:
    nql_id: str
    alias: str | None = None
    params: Mapping[str, ParamRule] | None = None  #: None: any parameters pass unchecked
    approval: ApprovalRule | None = None
    consent: ConsentRule | None = None
    schedule: ScheduleRule | None = None  #: None: the top-level ``schedule:``
