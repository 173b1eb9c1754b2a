"""Which Slack workspace (and Enterprise Grid org) the current work is for.

A Slack request sets it (``handlers.workspace_context``, a Bolt middleware, from the payload and
Bolt's authorization); work spawned from the request inherits it (asyncio copies context
variables into tasks). Work that starts from a record instead (expiry sweeps, outcome
follow-ups, approved runs, the waits webhook) enters the record's workspace with ``working_in``.

The Slack client (``handlers.slack_client.WorkspaceClient``) reads it to pick the installation
whose token a call uses (OAuth installs) and to pass the ``team_id`` that an org-wide token needs;
``bot.identity`` keys its user-group cache by it. Records keep ``team_id`` and ``enterprise_id``
so that later work finds the same workspace. A neutral module: every layer may import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Placed", "Workspace", "current", "of", "working_in"]


@dataclass(frozen=True)
class Workspace:
    """A workspace ``team_id`` (``T…``), its org ``enterprise_id`` (``E…``) when on Enterprise
    Grid, whether the app is installed org-wide, and the bot token Bolt authorized the request
    with (OAuth installs; never logged, never stored)."""

    team_id: str | None = None
    enterprise_id: str | None = None
    is_enterprise_install: bool = False
    token: str | None = field(default=None, repr=False, compare=False)

    @property
    def known(self) -> bool:
        return bool(self.team_id or self.enterprise_id)


class Placed(Protocol):
    """A record that says where it happened (requests and waits)."""

    @property
    def team_id(self) -> str | None: ...

    @property
    def enterprise_id(self) -> str | None: ...


_current: ContextVar[Workspace | None] = ContextVar("slack_workspace", default=None)


def current() -> Workspace:
    """The workspace of the work in progress; an unknown one (all ``None``) outside any."""
    return _current.get() or Workspace()


def of(record: Placed) -> Workspace:
    """The workspace a record was made in."""
    return Workspace(team_id=record.team_id, enterprise_id=record.enterprise_id)


@contextmanager
def working_in(workspace: Workspace | None) -> Iterator[Workspace]:
    """Do what follows for ``workspace``; an unknown one (``None``, or no ids) keeps the current.

    The request's own workspace is kept when a record names the same one, so the token Bolt
    authorized it with is used rather than looked up again."""
    here = current()
    if workspace is None or not workspace.known:
        yield here
        return
    if (workspace.team_id, workspace.enterprise_id) == (here.team_id, here.enterprise_id):
        yield here
        return
    reset = _current.set(workspace)
    try:
        yield workspace
    finally:
        _current.reset(reset)


def enter(workspace: Workspace) -> None:
    """Set the workspace for the rest of this context: a request's, set as it arrives."""
    _current.set(workspace)
