"""The waits webhook's body (PRODUCT.md, "Paused executions"), and what is wrong with a bad one."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.nexthink.models import UPN_PATTERN, UUID_PATTERN
from bot.workspaces import Workspace

__all__ = ["MAX_BODY", "WaitRequest", "describe"]

MAX_BODY = 64 * 1024

Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
Upn = Annotated[str, StringConstraints(pattern=UPN_PATTERN)]
ParamKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
ParamValue = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Approver = Annotated[
    str,
    StringConstraints(
        pattern=r"^(?:[UW][A-Z0-9]{2,20}|@[a-z0-9._-]{1,80}|" + UPN_PATTERN.strip("^$") + r")$"
    ),
]


class _Option(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, StringConstraints(min_length=1, max_length=75, strip_whitespace=True)]
    style: Literal["primary", "danger"] | None = None
    parameters: dict[ParamKey, ParamValue] = Field(default_factory=dict, max_length=50)


_DEFAULT_OPTIONS = (
    _Option(label="Approve", style="primary", parameters={"decision": "approved"}),
    _Option(label="Deny", style="danger", parameters={"decision": "denied"}),
)


class WaitRequest(BaseModel):
    """The webhook body (PRODUCT.md, "Paused executions"); unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    workflow_uuid: Uuid = Field(alias="workflowUuid")
    execution_uuid: Uuid = Field(alias="executionUuid")
    channel: Annotated[str, StringConstraints(pattern=r"^[CGD][A-Z0-9]{2,30}$")] | None = None
    user: Upn | None = None
    text: Annotated[str, StringConstraints(min_length=1, max_length=2900)]
    options: list[_Option] = Field(
        default_factory=lambda: list(_DEFAULT_OPTIONS), min_length=1, max_length=5
    )
    approvers: list[Approver] = Field(default_factory=list, max_length=100)
    approver_parameter: ParamKey | None = Field(default=None, alias="approverParameter")
    expires_in_minutes: float = Field(
        default=1440, ge=0.05, le=43200, alias="expiresInMinutes", allow_inf_nan=False
    )
    requester: Upn | None = None
    remind_after_minutes: float | None = Field(
        default=None, ge=0.05, le=43200, alias="remindAfterMinutes", allow_inf_nan=False
    )
    escalate_after_minutes: float | None = Field(
        default=None, ge=0.05, le=43200, alias="escalateAfterMinutes", allow_inf_nan=False
    )
    escalate_to: list[Approver] = Field(default_factory=list, max_length=100, alias="escalateTo")
    #: the Slack workspace (``T…``) or Enterprise Grid org (``E…``) to ask in, for a bot with
    #: several OAuth installations; without it the only installation (or SLACK_BOT_TOKEN) serves
    team: Annotated[str, StringConstraints(pattern=r"^[TE][A-Z0-9]{2,30}$")] | None = None

    @property
    def workspace(self) -> Workspace | None:
        if self.team is None:
            return None
        if self.team.startswith("E"):
            return Workspace(enterprise_id=self.team, is_enterprise_install=True)
        return Workspace(team_id=self.team)

    @field_validator("workflow_uuid", "execution_uuid")
    @classmethod
    def _lower(cls, value: str) -> str:
        """Ids compare without regard to case (one question per execution)."""
        return value.lower()

    @model_validator(mode="after")
    def _where(self) -> WaitRequest:
        if self.channel is None and self.user is None:
            raise ValueError("one of channel (a Slack channel id) or user (a UPN) is required")
        if self.escalate_after_minutes is not None and not self.escalate_to:
            raise ValueError("escalateAfterMinutes needs escalateTo (who may decide then)")
        if self.escalate_to and self.escalate_after_minutes is None:
            raise ValueError("escalateTo needs escalateAfterMinutes (when they may decide)")
        return self


#: what a field that breaks its pattern should look like, by field name (the regex means little
#: to the workflow designer who reads the error)
_PATTERN_HINTS = {
    "workflowUuid": "must be a UUID such as 3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a",
    "executionUuid": "must be a UUID such as fecab46b-ee58-b8bc-b61e-912a2dc2bcbc",
    "channel": "must be a Slack channel id such as C0123456789",
    "user": "must be a UPN such as alice@example.com",
    "requester": "must be a UPN such as alice@example.com",
    "team": "must be a Slack workspace id (T0123456789) or org id (E0123456789)",
    "approvers": "must be a Slack user id (U0123456789), a UPN or a user-group handle (@it-leads)",
    "escalateTo": "must be a Slack user id (U0123456789), a UPN or a user-group handle (@it-leads)",
    "approverParameter": "must be a parameter name: a letter or _, then letters, digits, _ . -",
    "parameters": "must be a parameter name: a letter or _, then letters, digits, _ . -",
}


def describe(exc: ValidationError) -> str:
    """At most three problems, each naming the field and what it should look like."""
    problems = []
    for error in exc.errors()[:3]:
        where = ""
        names = []
        for part in error.get("loc", ()):
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
            if isinstance(part, str):
                names.append(part)
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        if error.get("type") == "string_pattern_mismatch":
            hint = next((_PATTERN_HINTS[n] for n in reversed(names) if n in _PATTERN_HINTS), None)
            message = hint or message
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
