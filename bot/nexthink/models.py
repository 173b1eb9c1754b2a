"""Typed mirrors of the Nexthink Workflows API reference (``shared/nexthink``).

Requests are validated here, before anything is sent: identifier patterns, at most 10,000 users
and devices per request, non-empty trigger values. Responses are parsed strictly where the
reference is clear (execute, trigger) and tolerantly where it is known to be wrong
(``Workflow.triggerMethods`` and ``Workflow.versions``, see NOTES.md).
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

__all__ = [
    "MAX_TARGETS",
    "NQL_MAX_ROWS",
    "SID_PATTERN",
    "UPN_PATTERN",
    "UUID_PATTERN",
    "DeviceData",
    "ErrorResponse",
    "ExecutionRequest",
    "ExecutionResponse",
    "ExternalIdsExecutionRequest",
    "ThinkletTriggerRequest",
    "ThinkletTriggerResponse",
    "TokenResponse",
    "TriggerMethod",
    "UserData",
    "Workflow",
    "WorkflowDependency",
    "WorkflowStatus",
    "is_sid",
    "is_upn",
    "is_uuid",
]

#: the reference's limit on users and on devices in one execute request
MAX_TARGETS = 10_000
#: NQL execute answers at most this many rows (and does not say when it stopped there)
NQL_MAX_ROWS = 1_000

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
SID_PATTERN = r"^S(-\d+){2,10}$|^0$"
UPN_PATTERN = r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$"

_UUID_RE = re.compile(UUID_PATTERN)
_SID_RE = re.compile(SID_PATTERN)
_UPN_RE = re.compile(UPN_PATTERN)


def is_uuid(value: str) -> bool:
    return _UUID_RE.fullmatch(value) is not None


def is_sid(value: str) -> bool:
    return _SID_RE.fullmatch(value) is not None


def is_upn(value: str) -> bool:
    return _UPN_RE.fullmatch(value) is not None


Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
Sid = Annotated[str, StringConstraints(pattern=SID_PATTERN)]
Upn = Annotated[str, StringConstraints(pattern=UPN_PATTERN)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The JSON body Nexthink expects: aliases, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class WorkflowDependency(enum.StrEnum):
    USER = "USER"
    DEVICE = "DEVICE"
    USER_AND_DEVICE = "USER_AND_DEVICE"
    NONE = "NONE"


class TriggerMethod(enum.StrEnum):
    API = "API"
    MANUAL = "MANUAL"
    MANUAL_MULTIPLE = "MANUAL_MULTIPLE"
    SCHEDULER = "SCHEDULER"


class WorkflowStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class UserData(_Model):
    """A V2 user target: at least one of ``sid``, ``upn``, ``uid``."""

    sid: Sid | None = None
    upn: Upn | None = None
    uid: Uuid | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> UserData:
        if self.sid is None and self.upn is None and self.uid is None:
            raise ValueError("a user needs at least one of sid, upn, uid")
        return self


class DeviceData(_Model):
    """A V2 device target: at least one of ``name``, ``collectorUid``, ``uid``."""

    name: NonEmpty | None = None
    collector_uid: Uuid | None = Field(default=None, alias="collectorUid")
    uid: Uuid | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> DeviceData:
        if self.name is None and self.collector_uid is None and self.uid is None:
            raise ValueError("a device needs at least one of name, collectorUid, uid")
        return self


class ExternalIdsExecutionRequest(_Model):
    """Body of ``POST /api/v2/workflows/execute``."""

    workflow_id: NonEmpty = Field(alias="workflowId")
    users: list[UserData] = Field(default_factory=list, max_length=MAX_TARGETS)
    devices: list[DeviceData] = Field(default_factory=list, max_length=MAX_TARGETS)
    params: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # ``users`` and ``devices`` are required by the reference even when empty.
        return {
            "workflowId": self.workflow_id,
            "users": [u.to_json() for u in self.users],
            "devices": [d.to_json() for d in self.devices],
            "params": dict(self.params),
        }


class ExecutionRequest(_Model):
    """Body of ``POST /api/v1/workflows/execute``: SIDs and Collector UUIDs only."""

    workflow_id: NonEmpty = Field(alias="workflowId")
    users: list[Sid] = Field(default_factory=list, max_length=MAX_TARGETS)
    devices: list[Uuid] = Field(default_factory=list, max_length=MAX_TARGETS)
    params: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "workflowId": self.workflow_id,
            "users": list(self.users),
            "devices": list(self.devices),
            "params": dict(self.params),
        }


class ThinkletTriggerRequest(_Model):
    """Body of the trigger (wait for event) call: values must be non-empty strings."""

    parameters: dict[str, NonEmpty] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"parameters": dict(self.parameters)}


class _Answer(BaseModel):
    """Responses: unknown extra fields are kept, never an error."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="allow")


class ExecutionResponse(_Answer):
    request_uuid: NonEmpty = Field(alias="requestUuid")
    executions_uuids: list[str] = Field(alias="executionsUuids", min_length=1)


class ThinkletTriggerResponse(_Answer):
    request_uuid: Uuid = Field(alias="requestUuid")


class ErrorResponse(_Answer):
    code: NonEmpty
    details: str = ""


class TokenResponse(_Answer):
    access_token: NonEmpty
    token_type: str = "Bearer"
    expires_in: int = Field(default=900, gt=0)
    scope: str | None = None


def _method_name(key: Any) -> str:
    """``manualMultiple``, ``manual_multiple`` and ``MANUAL_MULTIPLE`` are one method."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(key)).upper()


def _names_from(value: Any) -> frozenset[str]:
    """Trigger methods as seen in the wild: a list of names, a dict of booleans, or nested."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({_method_name(value)})
    if isinstance(value, dict):
        names: set[str] = set()
        for key, flag in value.items():
            if isinstance(flag, bool):
                if flag:
                    names.add(_method_name(key))
            elif isinstance(flag, str) and key in {"name", "method", "type", "triggerMethod"}:
                names.add(_method_name(flag))
            elif isinstance(flag, (dict, list)):
                names |= _names_from(flag)
        return frozenset(names)
    if isinstance(value, list):
        out: set[str] = set()
        for item in value:
            out |= _names_from(item)
        return frozenset(out)
    return frozenset()


class Workflow(_Answer):
    """A workflow as listed by Nexthink.

    The reference marks many fields required, but a real listing item was seen with only some of
    them, and ``triggerMethods``/``versions`` are documented wrongly: those two are parsed
    tolerantly (``trigger_methods`` is a set of upper-case names; ``versions`` a list of dicts)
    and a bad value there never fails a listing.
    """

    id: NonEmpty
    uuid: str | None = None
    name: str = ""
    description: str = ""
    status: str = "ACTIVE"
    last_update_time: datetime | None = Field(default=None, alias="lastUpdateTime")
    trigger_methods: frozenset[str] = Field(default=frozenset(), alias="triggerMethods")
    versions: tuple[dict[str, Any], ...] = ()
    #: not in the reference; filled in by the client from the listing's ``dependency`` filter
    dependency: str | None = None

    @field_validator("trigger_methods", mode="before")
    @classmethod
    def _parse_trigger_methods(cls, value: Any) -> frozenset[str]:
        return _names_from(value)

    @field_validator("versions", mode="before")
    @classmethod
    def _parse_versions(cls, value: Any) -> tuple[dict[str, Any], ...]:
        if not isinstance(value, list):
            return ()
        return tuple(v for v in value if isinstance(v, dict))

    @field_validator("last_update_time", mode="wrap")
    @classmethod
    def _parse_time(cls, value: Any, handler: Any) -> datetime | None:
        try:
            result: datetime | None = handler(value)
        except ValueError:
            return None
        return result

    @property
    def is_active(self) -> bool:
        return self.status.upper() == WorkflowStatus.ACTIVE

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameter names, where Nexthink gives them (an undocumented ``parameters`` field or a
        version's ``parameters``); empty when unknown."""
        extra = self.model_extra or {}
        found: list[str] = []
        sources: list[Any] = [extra.get("parameters")]
        sources += [v.get("parameters") for v in self.versions if v.get("isActive", True)]
        for source in sources:
            if isinstance(source, list):
                for item in source:
                    name = item.get("name") if isinstance(item, dict) else item
                    if isinstance(name, str) and name and name not in found:
                        found.append(name)
        return tuple(found)
