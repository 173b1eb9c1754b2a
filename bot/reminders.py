"""Approvals that don't die unseen: reminders to the people a request waits on, and escalation.

An approval (policy ``approval: remind_after_minutes, escalate_after_minutes, escalate_to``) or
a question from Nexthink (``remindAfterMinutes``, ``escalateAfterMinutes``, ``escalateTo``)
keeps its plan in the store with ``next_nudge_at``, the next moment something is to be done.
``sweep`` (called from the bot's sweep loop every ``SWEEP_SECONDS``, on any replica) takes the
requests that are due and

* once the escalation time has come: updates the request's message (it says who may decide
  too; ``bot.deciders`` lets them) and tells each of the ``escalate_to`` people directly;
* after each full interval (round ``n``): sends a direct message with a link to the request to
  each approver who has not decided, or to their stand-in while they are away, never to the
  requester;
* moves ``next_nudge_at`` on (nothing once the request would have expired).

Every message is claimed in the store first (``Store.claim_nudge``: one row per request, person
and round), so two replicas, or a bot restarted mid-sweep, send it once. ``waiting_on`` is the
same list of people, for the requester's reply ("It waits on ...").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

from bot.catalogue import Catalogue
from bot.deciders import StandIns, Subject
from bot.logging import get_logger
from bot.notifier import ApprovalNews, Notifier, Reminder, WaitNews
from bot.store import ApprovalRecord, NudgePlan, WaitRecord
from bot.waits.posting import mention_of, slack_user_for_upn
from bot.workspaces import of, working_in

__all__ = ["ESCALATED", "Awaited", "ReminderDeps", "people_of", "sweep", "waiting_on"]

log = get_logger(__name__)

#: the pseudo-person whose round-0 claim stands for "the message says it escalated"
ESCALATED = "*escalated*"

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")


class ReminderDeps(StandIns, Protocol):
    catalogue: Catalogue
    notifier: Notifier


@dataclass(frozen=True)
class Awaited:
    """Someone a request waits on: ``user_id``, standing in for ``for_user_id`` if set."""

    user_id: str
    for_user_id: str | None = None


async def people_of(deps: ReminderDeps, entries: Iterable[str]) -> list[str]:
    """The Slack users that approver entries name (ids, UPNs, @handles; "*" names nobody), in
    order, each once. An entry Slack cannot resolve names nobody."""
    found: dict[str, None] = {}
    for entry in entries:
        try:
            if entry == "*":
                continue
            if entry.startswith("@"):
                members = sorted(await deps.identity.members_of(entry))
                found.update(dict.fromkeys(members))
            elif _USER_ID.match(entry):
                found[entry] = None
            elif "@" in entry:
                user_id = await slack_user_for_upn(deps, entry)
                if user_id:
                    found[user_id] = None
        except Exception as exc:  # a look-up Slack refused: that entry reaches nobody this time
            log.warning("approver_not_resolved", error=type(exc).__name__)
    return list(found)


async def waiting_on(
    deps: ReminderDeps,
    entries: Sequence[str],
    *,
    requester_id: str | None,
    decided: Iterable[str] = (),
    now: datetime | None = None,
) -> list[Awaited]:
    """The people a request waits on: each person ``entries`` names who has not ``decided`` and
    is not the requester, or their stand-in while they are away (unless the stand-in is the
    requester or decided already: the approver themselves then)."""
    at = now or datetime.now(UTC)
    done = set(decided)
    people = [p for p in await people_of(deps, entries) if p != requester_id and p not in done]
    away = await deps.store.delegations_of(people, at) if deps.policy.delegation else {}
    waiting = []
    for person in people:
        delegation = away.get(person)
        stand_in = delegation.stand_in_id if delegation else None
        if stand_in and stand_in != requester_id and stand_in not in done:
            waiting.append(Awaited(stand_in, person))
        else:
            waiting.append(Awaited(person))
    return waiting


@dataclass(frozen=True)
class _Due:
    """A request that is due, reduced to what reminding it needs."""

    kind: Literal["approval", "wait"]
    id: str
    plan: NudgePlan
    created_at: datetime
    expires_at: datetime
    next_nudge_at: datetime | None
    subject: Subject
    requester_id: str | None
    decided: frozenset[str]
    reminder: Reminder  #: the message, without its kind, round and stand-in


async def sweep(deps: ReminderDeps, *, now: datetime | None = None) -> int:
    """Send the reminders and escalation notices due at ``now``; returns how many were sent."""
    at = now or datetime.now(UTC)
    sent = 0
    for approval in await deps.store.due_approvals(at):
        try:
            due = await _approval_due(deps, approval)
            if due is not None:
                with working_in(of(due.reminder)):  # that workspace's Slack, for look-ups too
                    sent += await _nudge(deps, due, at, approval=approval)
        except Exception:
            log.exception("reminder_failed", approval=approval.id)
    for wait in await deps.store.due_waits(at):
        try:
            with working_in(of(wait)):
                sent += await _nudge(deps, await _wait_due(deps, wait), at, wait=wait)
        except Exception:
            log.exception("reminder_failed", wait=wait.id)
    return sent


async def _approval_due(deps: ReminderDeps, approval: ApprovalRecord) -> _Due | None:
    record = await deps.store.get_request(approval.request_id)
    if record is None:
        return None
    decided = {v.user_id for v in approval.votes} | {v.cast_by for v in approval.votes if v.cast_by}
    return _Due(
        kind="approval",
        id=approval.id,
        plan=approval.plan,
        created_at=approval.created_at,
        expires_at=approval.expires_at,
        next_nudge_at=approval.next_nudge_at,
        subject=Subject.of_approval(approval, record.user_upn),
        requester_id=approval.requester_id,
        decided=frozenset(decided),
        reminder=Reminder(
            kind="reminder",
            subject="approval",
            channel=approval.message_channel,
            ts=approval.message_ts,
            created_at=approval.created_at,
            expires_at=approval.expires_at,
            requester_id=approval.requester_id,
            workflow_id=record.workflow_id,
            workflow_name=await deps.catalogue.display_name(record.workflow_id),
            team_id=record.team_id,
            enterprise_id=record.enterprise_id,
        ),
    )


async def _wait_due(deps: ReminderDeps, wait: WaitRecord) -> _Due:
    requester_id = None
    if wait.requester_upn:
        try:
            requester_id = await slack_user_for_upn(deps, wait.requester_upn)
        except Exception:
            requester_id = None
    subject = Subject.of_wait(wait)
    if not wait.approvers and wait.dm_user_upn:  # asked of one person: they are the approver
        subject = Subject(approvers=(wait.dm_user_upn,), requester_upn=wait.requester_upn)
    return _Due(
        kind="wait",
        id=wait.id,
        plan=wait.plan,
        created_at=wait.created_at,
        expires_at=wait.expires_at,
        next_nudge_at=wait.next_nudge_at,
        subject=subject,
        requester_id=requester_id,
        decided=frozenset(),
        reminder=Reminder(
            kind="reminder",
            subject="question",
            channel=wait.message_channel,
            ts=wait.message_ts,
            created_at=wait.created_at,
            expires_at=wait.expires_at,
            requester_upn=wait.requester_upn,
            text=wait.text,
            team_id=wait.team_id,
            enterprise_id=wait.enterprise_id,
        ),
    )


async def _nudge(
    deps: ReminderDeps,
    due: _Due,
    at: datetime,
    *,
    approval: ApprovalRecord | None = None,
    wait: WaitRecord | None = None,
) -> int:
    sent = 0
    told: set[str] = set()
    if due.subject.approvers and due.plan.escalated(due.created_at, at):
        if await deps.store.claim_nudge(due.id, ESCALATED, 0, now=at):
            await _show_escalation(deps, approval, wait)
            log.info("request_escalated", kind=due.kind, id=due.id)
        for person in await waiting_on(
            deps, due.plan.escalate_to, requester_id=due.requester_id, decided=due.decided, now=at
        ):
            told.add(person.user_id)
            if await deps.store.claim_nudge(due.id, person.user_id, 0, now=at):
                sent += await _send(deps, person, due, "escalated", 0)
    round_ = due.plan.round_at(due.created_at, at)
    if round_ >= 1 and due.plan.interval is not None:
        entries = due.subject.approvers_at(at)
        for person in await waiting_on(
            deps, entries, requester_id=due.requester_id, decided=due.decided, now=at
        ):
            if person.user_id in told:  # one message per person per pass
                continue
            told.add(person.user_id)
            if await deps.store.claim_nudge(due.id, person.user_id, round_, now=at):
                sent += await _send(deps, person, due, "reminder", round_)
    following = due.plan.next_at(due.created_at, at, due.expires_at)
    await deps.store.set_next_nudge(due.kind, due.id, following, expected=due.next_nudge_at)
    return sent


async def _send(
    deps: ReminderDeps,
    person: Awaited,
    due: _Due,
    kind: Literal["reminder", "escalated"],
    round_: int,
) -> int:
    reminder = replace(due.reminder, kind=kind, round=round_, for_user_id=person.for_user_id)
    if await deps.notifier.remind(person.user_id, reminder):
        log.info("reminder_sent", kind=kind, request=due.id, round=round_)
        return 1
    return 0


async def _show_escalation(
    deps: ReminderDeps, approval: ApprovalRecord | None, wait: WaitRecord | None
) -> None:
    """Update the request's message: it now says who may decide too."""
    if approval is not None:
        record = await deps.store.get_request(approval.request_id)
        if record is not None:
            name = await deps.catalogue.display_name(record.workflow_id)
            await deps.notifier.approval_changed(approval, record, name, ApprovalNews("escalated"))
    if wait is not None:
        news = WaitNews("escalated", mention=await mention_of(deps, wait))
        await deps.notifier.wait_changed(wait, news)
