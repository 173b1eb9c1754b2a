"""Stand-ins while someone is away: ``/nexthink delegate <@someone|upn> [until YYYY-MM-DD]``,
``/nexthink delegate`` (show yours) and ``/nexthink delegate off``.

While a delegation lasts, the stand-in may decide whatever names the person as an approver
(``bot.deciders.decide_as``), and gets the reminders in their place (``bot.reminders``); a
stand-in never decides their own request. It is kept in the store, so it survives restarts and
holds on every replica. Policy ``delegation: false`` turns it off. Each change is audited
(``delegation_set``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Protocol

from bot.audit import AuditTrail
from bot.identity import Identity, IdentityError
from bot.logging import get_logger
from bot.policy import Policy
from bot.store import DelegationRecord, Store
from bot.waits.posting import slack_user_for_upn

__all__ = ["MAX_DAYS", "DelegationAnswer", "DelegationDeps", "end", "set_stand_in", "show"]

log = get_logger(__name__)

#: the furthest end a delegation may have, in days from today
MAX_DAYS = 366

OFF = "Stand-ins are turned off in the bot's policy (`delegation: false`)."


class DelegationDeps(Protocol):
    store: Store
    identity: Identity
    policy: Policy
    audit: AuditTrail


@dataclass(frozen=True)
class DelegationAnswer:
    """``set`` (now in force), ``shown`` (the one in force), ``none`` (there is none), ``ended``
    (``delegation``: the one ended, None if there was none) or ``refused`` (``text`` says why)."""

    kind: Literal["set", "shown", "none", "ended", "refused"]
    delegation: DelegationRecord | None = None
    text: str = ""


def _refused(text: str) -> DelegationAnswer:
    return DelegationAnswer("refused", text=text)


async def _upn(deps: DelegationDeps, user_id: str) -> str | None:
    try:
        return await deps.identity.upn(user_id, own=False)
    except Exception:
        return None


async def set_stand_in(
    deps: DelegationDeps,
    user_id: str,
    *,
    stand_in_id: str | None = None,
    stand_in_upn: str | None = None,
    until: date | None = None,
    team_id: str | None = None,
    now: datetime | None = None,
) -> DelegationAnswer:
    """Name a stand-in (a Slack user id, or a UPN looked up in Slack) for ``user_id``, until the
    end of ``until`` (UTC) or until ended."""
    at = now or datetime.now(UTC)
    if not deps.policy.delegation:
        return _refused(OFF)
    if until is not None:
        if until < at.date():
            return _refused(f"{until.isoformat()} is in the past: give a date from today on.")
        if until > at.date() + timedelta(days=MAX_DAYS):
            return _refused(f"A stand-in can be named for at most {MAX_DAYS} days ahead.")
    if stand_in_id is None and stand_in_upn is not None:
        stand_in_id = await slack_user_for_upn(deps, stand_in_upn)
        if stand_in_id is None:
            return _refused(f"No Slack user has the email `{stand_in_upn}`.")
    if stand_in_id is None:
        return _refused("Name your stand-in: `/nexthink delegate @someone [until YYYY-MM-DD]`.")
    if stand_in_id == user_id:
        return _refused("You cannot stand in for yourself: name someone else.")
    try:
        profile = await deps.identity.profile(stand_in_id)
    except IdentityError as exc:
        return _refused(str(exc))
    if profile.is_bot or profile.deleted:
        return _refused(f"<@{stand_in_id}> cannot stand in for you: name a person who is here.")
    end_at = datetime.combine(until + timedelta(days=1), time(), UTC) if until else None
    delegation = await deps.store.set_delegation(
        user_id=user_id,
        user_upn=await _upn(deps, user_id),
        stand_in_id=stand_in_id,
        stand_in_upn=profile.upn or stand_in_upn,
        until=end_at,
        team_id=team_id,
        now=at,
    )
    await deps.audit.record_delegation(
        actor=user_id,
        actor_upn=delegation.user_upn,
        stand_in=stand_in_id,
        stand_in_upn=delegation.stand_in_upn,
        until=until,
        team_id=team_id,
    )
    log.info("delegation_set", user=user_id, stand_in=stand_in_id)
    return DelegationAnswer("set", delegation)


async def show(
    deps: DelegationDeps, user_id: str, *, now: datetime | None = None
) -> DelegationAnswer:
    if not deps.policy.delegation:
        return _refused(OFF)
    found = await deps.store.delegation_of(user_id, now)
    return DelegationAnswer("shown", found) if found else DelegationAnswer("none")


async def end(
    deps: DelegationDeps, user_id: str, *, now: datetime | None = None
) -> DelegationAnswer:
    ended = await deps.store.end_delegation(user_id)
    if ended is not None:
        await deps.audit.record_delegation(
            actor=ended.user_id,
            actor_upn=ended.user_upn,
            stand_in=None,
            detail=f"ended the stand-in {ended.stand_in_id}",
            team_id=ended.team_id,
        )
        log.info("delegation_ended", user=ended.user_id, stand_in=ended.stand_in_id)
    return DelegationAnswer("ended", ended)
