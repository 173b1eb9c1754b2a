"""The values of a run, from what a person asked (``RunRequest``) to what happened (``RunResult``),
and the answers of ``history``.

Plain frozen dataclasses that ``bot.runs.Runner`` takes and returns (re-exported there), the Slack
layer builds and renders, and ``Runner.from_record`` rebuilds from a stored request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.catalogue import Entry
from bot.devices import DeviceList
from bot.nexthink.client import BulkExecution
from bot.nexthink.errors import NexthinkError
from bot.nexthink.models import DeviceData, UserData, Workflow
from bot.policy import ApprovalRule, ConsentRule, Principal
from bot.query_targets import FleetTargets
from bot.store import RequestRecord
from bot.targets import DeviceTarget, Target, UserTarget

__all__ = [
    "ConsentRequired",
    "HistoryAnswer",
    "HistoryFilter",
    "PreparedRun",
    "Requester",
    "RunRequest",
    "RunResult",
    "Source",
]

Source = Literal["command", "modal", "home", "shortcut", "approval", "consent", "schedule"]


class ConsentRequired(Exception):
    """A run on people who have not allowed it reached the execute: refused, nothing sent."""


@dataclass(frozen=True)
class Requester:
    user_id: str
    team_id: str | None = None
    channel_id: str | None = None
    #: the Enterprise Grid org of ``team_id``, when on Grid
    enterprise_id: str | None = None


@dataclass(frozen=True)
class RunRequest:
    workflow: str
    users: tuple[UserTarget, ...] = ()
    devices: tuple[DeviceTarget, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    source: Source = "command"
    ticket: str | None = None  #: ``ticket:<ref>`` as typed (checked by the policy)
    query: str | None = None  #: ``query:#id``: the targets are what that saved NQL query returns


@dataclass(frozen=True)
class PreparedRun:
    requester: Requester
    principal: Principal
    entry: Entry
    targets: tuple[Target, ...]
    params: Mapping[str, str]
    approval: ApprovalRule | None
    visible: bool
    source: Source
    #: ``consent:`` of the workflow, and the targets that wait for their person's Allow
    consent: ConsentRule | None = None
    asking: tuple[Target, ...] = ()
    #: the one person this run is for allowed it (``bot.consent``): it may be executed
    consented: bool = False
    #: the requester's devices (devices query), when the run is on them without a device named
    own_devices: DeviceList | None = None
    #: a fleet run: the query its targets came from (it runs only after a Run click, ``bot.fleet``)
    fleet: FleetTargets | None = None
    ticket: str | None = None  #: the change ticket the run is tied to, as recorded

    @property
    def workflow(self) -> Workflow:
        return self.entry.workflow

    @property
    def users(self) -> list[UserData]:
        return [t.user for t in self.targets if t.user is not None]

    @property
    def devices(self) -> list[DeviceData]:
        return [t.device for t in self.targets if t.device is not None]

    def targets_json(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for t in self.targets:
            data = t.user.to_json() if t.user else t.device.to_json() if t.device else {}
            entry = {"kind": "user" if t.user else "device", "label": t.label, **data}
            if t.person:
                entry["person"] = t.person
            out.append(entry)
        return out


@dataclass(frozen=True)
class RunResult:
    prepared: PreparedRun
    record: RequestRecord
    execution: BulkExecution | None = None
    error: NexthinkError | None = None
    completed: BulkExecution | None = None  # chunks that ran before a later one failed

    @property
    def ok(self) -> bool:
        return self.execution is not None and self.error is None


@dataclass(frozen=True)
class HistoryFilter:
    """Whose history an auditor asks for: a person (``user_id`` from a mention, or ``upn``), a
    workflow (as typed: an NQL id or an alias) or a ticket; any of them together."""

    user_id: str | None = None
    upn: str | None = None
    workflow: str | None = None
    ticket: str | None = None

    def __bool__(self) -> bool:
        return any((self.user_id, self.upn, self.workflow, self.ticket))


@dataclass(frozen=True)
class HistoryAnswer:
    """The records shown, newest first; ``about`` is the filter they answer (``None``: the
    requester's own); ``refusal`` says why a filter was not allowed (the requester's own are
    then shown)."""

    records: Sequence[RequestRecord]
    about: HistoryFilter | None = None
    refusal: str | None = None
