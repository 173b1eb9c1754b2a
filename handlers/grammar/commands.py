"""What a ``/nexthink`` command means: one typed value per subcommand, and the limits on its values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal, TypeAlias

from bot.schedule_times import When
from bot.targets import DeviceTarget, UserTarget

__all__ = [
    "MAX_DEVICE_NAME_LENGTH",
    "MAX_TARGETS",
    "MAX_VALUE_LENGTH",
    "MAX_WORKFLOW_LENGTH",
    "PARAM_NAME_PATTERN",
    "Cancel",
    "Command",
    "Delegate",
    "Help",
    "History",
    "Info",
    "ListWorkflows",
    "OpenModal",
    "Params",
    "Resume",
    "Run",
    "Scheduled",
]

#: targets (``user:`` and ``device:`` together) one command may name
MAX_TARGETS = 1_000
#: characters in one parameter value, target or filter
MAX_VALUE_LENGTH = 1_000
MAX_DEVICE_NAME_LENGTH = 255
MAX_WORKFLOW_LENGTH = 255
PARAM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"

Params: TypeAlias = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class OpenModal:
    """Empty text: open the run modal."""


@dataclass(frozen=True)
class Help:
    topic: str | None = None  #: a subcommand name, lower case


@dataclass(frozen=True)
class ListWorkflows:
    filter: str | None = None


@dataclass(frozen=True)
class Info:
    workflow: str  #: as typed (an NQL id or an alias), without a leading ``#``


@dataclass(frozen=True)
class Run:
    workflow: str
    users: tuple[UserTarget, ...] = ()
    devices: tuple[DeviceTarget, ...] = ()
    params: Params = ()  #: in the order typed; names are unique
    visible: bool = False  #: the word ``visible``: post the run in the channel, with a thread
    when: When | None = None  #: ``at …`` / ``in …``: schedule the run instead of running it now
    query: str | None = None  #: ``query:#id``: the targets are what that saved NQL query returns

    @property
    def params_dict(self) -> dict[str, str]:
        return dict(self.params)

    @property
    def has_targets(self) -> bool:
        return bool(self.users or self.devices or self.query)


@dataclass(frozen=True)
class Resume:
    workflow_uuid: str  #: lower case
    execution_uuid: str  #: lower case
    params: Params = ()

    @property
    def params_dict(self) -> dict[str, str]:
        return dict(self.params)


@dataclass(frozen=True)
class History:
    """The caller's recent requests."""


@dataclass(frozen=True)
class Delegate:
    """``delegate``: show the caller's stand-in (``show``), end it (``off``) or name one (``set``:
    ``stand_in``, a mention or a UPN, until the end of ``until``)."""

    action: Literal["show", "off", "set"]
    stand_in: UserTarget | None = None
    until: date | None = None


@dataclass(frozen=True)
class Scheduled:
    """The caller's scheduled runs that have not run yet (an auditor may name someone)."""

    user_id: str | None = None  #: ``@someone`` (a Slack user id), for roles with ``audit: true``


@dataclass(frozen=True)
class Cancel:
    """Cancel a scheduled run by the id its reply showed (a short code or a UUID)."""

    schedule_id: str


Command: TypeAlias = (
    OpenModal | Help | ListWorkflows | Info | Run | Resume | History | Scheduled | Cancel | Delegate
)
