"""Who may decide a paused execution or an approval: the one rule every path asks.

``decide_as`` is that rule. It takes a person as the policy sees them (a ``Principal``) and what
is to be decided (a ``Subject``: its approvers, whose request it is, who may decide too once it
escalated) and answers with a ``Verdict``: whether they may, and as whom. A person may decide

* as themselves, when the policy lets them (``Policy.may_decide``: never the requester; the
  approvers, and the ``escalate_to`` people once the escalation time has come); or
* as a stand-in (``/nexthink delegate``), for someone away who may decide it, unless the
  stand-in is the requester or the policy says ``delegation: false``.

``decider`` turns the person who clicked into a ``Principal`` (``clicker``: their UPN and, when
someone's list names user groups, their groups) and asks ``decide_as``. The wait buttons, the
Approve and Deny buttons, the forms, ``/nexthink resume`` of a question and the Home tab all
come here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from bot.identity import Identity
from bot.policy import Policy, Principal
from bot.store import ApprovalRecord, DelegationRecord, Store, WaitRecord

__all__ = [
    "Deciders",
    "StandIns",
    "Subject",
    "Verdict",
    "clicker",
    "decide_as",
    "decider",
]


class Deciders(Protocol):
    identity: Identity
    policy: Policy


class StandIns(Deciders, Protocol):
    """What ``decide_as`` needs besides the look-ups: the store, for delegations."""

    store: Store


@dataclass(frozen=True)
class Subject:
    """What is being decided: who may decide it and whose request it is."""

    approvers: tuple[str, ...] = ()  #: ids, UPNs, @handles, "*"; empty: anyone (but the requester)
    requester_upn: str | None = None
    requester_id: str | None = None
    escalate_to: tuple[str, ...] = ()  #: may decide too from ``escalates_at`` on
    escalates_at: datetime | None = None

    @classmethod
    def of_wait(cls, wait: WaitRecord) -> Subject:
        return cls(
            approvers=wait.approvers,
            requester_upn=wait.requester_upn,
            escalate_to=wait.plan.escalate_to,
            escalates_at=wait.plan.escalates_at(wait.created_at),
        )

    @classmethod
    def of_approval(cls, approval: ApprovalRecord, requester_upn: str | None) -> Subject:
        return cls(
            approvers=approval.approvers,
            requester_upn=requester_upn,
            requester_id=approval.requester_id,
            escalate_to=approval.plan.escalate_to,
            escalates_at=approval.plan.escalates_at(approval.created_at),
        )

    def escalated(self, now: datetime) -> bool:
        return self.escalates_at is not None and now >= self.escalates_at

    def approvers_at(self, now: datetime) -> tuple[str, ...]:
        """Who may decide at ``now``: the approvers, and the escalation's people once it came.
        No approvers means anyone, so an escalation adds nobody to it."""
        if self.approvers and self.escalated(now):
            return (*self.approvers, *(a for a in self.escalate_to if a not in self.approvers))
        return self.approvers


@dataclass(frozen=True)
class Verdict:
    """``principal`` may decide (``refusal`` is None) or not (``refusal`` says why, mrkdwn).
    ``on_behalf``: the person away for whom ``principal`` decides as their stand-in."""

    principal: Principal
    refusal: str | None = None
    on_behalf: Principal | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def counted(self) -> Principal:
        """Whose decision it is: the person stood in for, or the clicker."""
        return self.on_behalf or self.principal


async def clicker(
    deps: Deciders,
    user_id: str,
    approvers: Sequence[str] = (),
    *,
    all_groups: bool = False,
    strict: bool = False,
) -> Principal:
    """The person who clicked, as the policy sees them (no UPN when Slack has none). Their user
    groups are looked up when the policy or ``approvers`` name groups; with ``all_groups``
    always, and a failed look-up then reads as no groups (the Home tab lists what they may
    decide). ``strict`` (a requester, who needs an email): a failed UPN look-up raises
    ``IdentityError``."""
    try:
        upn: str | None = await deps.identity.upn(user_id)
    except Exception:
        if strict:
            raise
        upn = None
    needs_groups = deps.policy.uses_groups or any(str(a).startswith("@") for a in approvers)
    groups: frozenset[str] = frozenset()
    if all_groups:
        try:
            groups = await deps.identity.groups_of(user_id)
        except Exception:
            groups = frozenset()
    elif needs_groups:
        groups = await deps.identity.groups_of(user_id)
    return Principal(user_id=user_id, upn=upn, groups=groups)


async def decide_as(
    deps: StandIns,
    principal: Principal,
    subject: Subject,
    *,
    now: datetime | None = None,
    delegations: Sequence[DelegationRecord] | None = None,
) -> Verdict:
    """Whether ``principal`` may decide ``subject`` at ``now``, as themselves or as a stand-in.
    ``delegations``: those naming ``principal`` as the stand-in, when the caller read them
    already (the Home tab, for many subjects); else they are read here."""
    at = now or datetime.now(UTC)
    policy = deps.policy
    approvers = list(subject.approvers_at(at)) or None
    own = policy.may_decide(
        principal,
        approvers=approvers,
        requester_upn=subject.requester_upn,
        requester_id=subject.requester_id,
    )
    if own.allowed:
        return Verdict(principal)
    mine = policy.is_self(principal, user_id=subject.requester_id, upn=subject.requester_upn)
    if mine or not policy.delegation:
        return Verdict(principal, own.reason)
    if delegations is None:
        delegations = await deps.store.delegations_to(principal.user_id, principal.upn, at)
    for delegation in delegations:
        groups: frozenset[str] = frozenset()
        if any(a.startswith("@") for a in approvers or ()):
            try:
                groups = await deps.identity.groups_of(delegation.user_id)
            except Exception:
                groups = frozenset()
        away = Principal(delegation.user_id, delegation.user_upn, groups)
        theirs = policy.may_decide(
            away,
            approvers=approvers,
            requester_upn=subject.requester_upn,
            requester_id=subject.requester_id,
        )
        if theirs.allowed and approvers:  # "anyone may" needs no stand-in
            return Verdict(principal, on_behalf=away)
    return Verdict(principal, own.reason)


async def decider(
    deps: StandIns, user_id: str, subject: Subject, *, now: datetime | None = None
) -> Verdict:
    """The clicker as a principal, and whether (and for whom) they may decide ``subject``."""
    principal = await clicker(deps, user_id, (*subject.approvers, *subject.escalate_to))
    return await decide_as(deps, principal, subject, now=now)
