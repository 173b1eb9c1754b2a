"""The policy file's schema: pydantic models over the parsed YAML.

Everything that checks the file's shape lives here: strict types, allowed values, and
``describe_error``, which names the key path and the problem in one line. ``bot.policy.loading``
reads the file and turns the checked models into rules.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "DEFAULT_RUNS_PER_USER_PER_MINUTE",
    "MAX_FILE_BYTES",
    "MAX_MINUTES",
    "MIN_MINUTES",
    "USER_ID",
    "PolicySpec",
    "ScheduleSpec",
    "WorkflowSpec",
    "describe_error",
]

DEFAULT_RUNS_PER_USER_PER_MINUTE = 10
MAX_FILE_BYTES = 1 << 20

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,31}$")
_HANDLE = re.compile(r"^@[a-z0-9][a-z0-9._-]{0,79}$", re.IGNORECASE)
_UPN = re.compile(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$")
_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$", re.IGNORECASE)
_ALIAS = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def _member(value: str) -> str:
    if (
        value == "*"
        or USER_ID.match(value)
        or _HANDLE.match(value)
        or ("@" in value and _UPN.match(value))
    ):
        return value
    raise ValueError(
        'must be a Slack user ID (U…/W…), an @usergroup handle, a UPN or "*"'
        + (" (write user groups with a leading @)" if _HANDLE.match("@" + value) else "")
    )


def _channel(value: str) -> str:
    if not _CHANNEL_ID.match(value):
        raise ValueError("must be a channel ID such as C0123456789 (see the channel's details)")
    return value


def _glob(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be a workflow NQL ID, an alias or a glob, without spaces")
    return value


def _alias(value: str) -> str:
    if not _ALIAS.match(value):
        raise ValueError("must be 1-64 letters, digits, _ . - (it is typed in /nexthink run)")
    return value


def _param_name(value: str) -> str:
    if not _PARAM_NAME.match(value):
        raise ValueError("must start with a letter or _ and have at most 64 letters, digits, _ . -")
    return value


def _domain(value: str) -> str:
    if not _DOMAIN.match(value):
        raise ValueError("must be a domain such as example.com")
    return value.lower()


def _param_value(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("YAML reads yes/no/true/false/on/off as booleans: quote the value")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError("quote numbers with a decimal point, e.g. '1.5'")
    if value == "":
        raise ValueError("must not be empty (Nexthink needs non-empty values)")
    return value


def _empty_if_none(value: object) -> object:
    return {} if value is None else value


Member = Annotated[str, AfterValidator(_member)]
ChannelId = Annotated[str, AfterValidator(_channel)]
Glob = Annotated[str, AfterValidator(_glob)]
ParamValue = Annotated[str, BeforeValidator(_param_value)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _RoleSpec(_Spec):
    members: Annotated[list[Member], Field(min_length=1)]
    channels: Annotated[list[ChannelId], Field(min_length=1)] | None = None
    workflows: list[Glob] = Field(default_factory=list)
    targets: Literal["self", "any"] = "self"
    resume: bool = False
    visible: bool = False
    audit: bool = False
    query_targets: bool = False


class _ParamSpec(_Spec):
    allowed: Annotated[list[ParamValue], Field(min_length=1)] | None = None
    default: ParamValue | None = None
    required: bool = False
    pattern: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return _empty_if_none(value)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> _ParamSpec:
        pattern = re.compile(self.pattern) if self.pattern is not None else None
        for value in self.allowed or ():
            if pattern is not None and not pattern.fullmatch(value):
                raise ValueError(f"the allowed value {value!r} does not match the pattern")
        if self.default is not None:
            if self.allowed is not None and self.default not in self.allowed:
                raise ValueError(f"the default {self.default!r} is not one of the allowed values")
            if pattern is not None and not pattern.fullmatch(self.default):
                raise ValueError(f"the default {self.default!r} does not match the pattern")
        return self


#: the shortest interval of expiries, reminders and escalations, in minutes (3 s)
MIN_MINUTES = 0.05
#: the longest: 30 days
MAX_MINUTES = 43_200


class _ApprovalSpec(_Spec):
    channel: ChannelId | None = None
    approvers: list[Member] = Field(default_factory=list)
    count: int = Field(default=1, ge=1, le=20)
    expires_in_minutes: float = Field(default=1440, ge=MIN_MINUTES, le=MAX_MINUTES)
    remind_after_minutes: float | None = Field(default=None, ge=MIN_MINUTES, le=MAX_MINUTES)
    escalate_after_minutes: float | None = Field(default=None, ge=MIN_MINUTES, le=MAX_MINUTES)
    escalate_to: list[Member] = Field(default_factory=list)
    deny_reason: Literal["required", "optional", "none"] = "optional"
    approve_comment: Literal["optional", "none"] = "none"

    @model_validator(mode="after")
    def _escalation_complete(self) -> _ApprovalSpec:
        if self.escalate_after_minutes is not None and not self.escalate_to:
            raise ValueError("escalate_after_minutes needs escalate_to (who may decide then)")
        if self.escalate_to and self.escalate_after_minutes is None:
            raise ValueError("escalate_to needs escalate_after_minutes (when they may decide)")
        if "*" in self.escalate_to:
            raise ValueError('escalate_to names people or groups, not "*"')
        return self

    @model_validator(mode="after")
    def _enough_approvers(self) -> _ApprovalSpec:
        people = set(self.approvers)
        individuals = bool(people) and not any(a == "*" or a.startswith("@") for a in people)
        if individuals and self.count > len(people):
            raise ValueError(f"count is {self.count} but only {len(people)} approver(s) are named")
        return self


class _ConsentSpec(_Spec):
    """``consent: {required: true, expires_in_minutes: 30}``: a run on someone else waits for
    their Allow. Written at all, ``required`` defaults to true."""

    required: bool = True
    expires_in_minutes: float = Field(default=30, ge=0.05, le=10_080)

    @field_validator("expires_in_minutes", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("must be a number of minutes")
        return float(value) if isinstance(value, int) else value

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return _empty_if_none(value)


class ScheduleSpec(_Spec):
    """``schedule:``; per workflow, the keys given override the top level's."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    allowed: Annotated[bool, Field(strict=True)] = False
    max_days: float = Field(default=14.0, gt=0, le=366)
    max_late_minutes: float = Field(default=60.0, ge=0.05, le=43_200)

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return _empty_if_none(value)


class WorkflowSpec(_Spec):
    alias: Annotated[str, AfterValidator(_alias)] | None = None
    params: dict[Annotated[str, AfterValidator(_param_name)], _ParamSpec] | None = None
    approval: _ApprovalSpec | None = None
    consent: _ConsentSpec | None = None
    schedule: ScheduleSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return _empty_if_none(value)


class _UpnSpec(_Spec):
    domains: dict[
        Annotated[str, AfterValidator(_domain)], Annotated[str, AfterValidator(_domain)]
    ] = Field(default_factory=dict)

    @field_validator("domains", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return _empty_if_none(value)


class _LimitsSpec(_Spec):
    runs_per_user_per_minute: int = Field(default=DEFAULT_RUNS_PER_USER_PER_MINUTE, ge=1, le=10_000)


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    roles: dict[str, _RoleSpec] = Field(default_factory=dict)
    workflows: dict[Annotated[str, AfterValidator(_glob)], WorkflowSpec] = Field(
        default_factory=dict
    )
    upn: _UpnSpec = Field(default_factory=_UpnSpec)
    limits: _LimitsSpec = Field(default_factory=_LimitsSpec)
    #: whether people of other organisations (Slack Connect) may act, under their own UPN only
    external_users: Literal["deny", "allow"] = "deny"
    delegation: bool = True  #: ``/nexthink delegate`` (stand-ins); false turns it off
    schedule: ScheduleSpec | None = None

    @field_validator("roles", "workflows", "upn", "limits", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return _empty_if_none(value)


_KNOWN_KEYS = sorted(
    {
        name
        for model in (
            PolicySpec,
            _RoleSpec,
            _ParamSpec,
            _ApprovalSpec,
            _ConsentSpec,
            WorkflowSpec,
            _UpnSpec,
            ScheduleSpec,
        )
        for name in model.model_fields
    }
    | set(_LimitsSpec.model_fields)
)


def _key_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if part == "[key]":
            path += " (the key)"
        elif isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def describe_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    where = _key_path(loc)
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _KNOWN_KEYS, n=1)
        return f"{where}: unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if error["type"] == "missing":
        return f"{where}: is required"
    message = str(error["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    value = error.get("input")
    if isinstance(value, str | int | float):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "…"
        message += f", got {shown}"
    elif value is None:
        message += ", got nothing (null)"
    return f"{where}: {message}".replace("\n", " ")
