"""Who may decide a paused execution or an approval: the one rule every path asks.

``decider`` turns the person who clicked into a ``Principal`` (their UPN and, when someone's
list names user groups, their groups) and asks the policy whether they may decide. The
wait buttons, the Approve and Deny buttons and the deny form call ``decider``; the Home tab and
the run path (``Runner.principal``) turn their person into a ``Principal`` with ``clicker``,
and every answer to "may decide" is ``Policy.may_decide``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.identity import Identity
from bot.policy import Policy, Principal

__all__ = ["Deciders", "clicker", "decider"]


class Deciders(Protocol):
    identity: Identity
    policy: Policy


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


async def decider(
    deps: Deciders,
    user_id: str,
    *,
    approvers: Sequence[str],
    requester_upn: str | None,
    requester_id: str | None = None,
) -> tuple[Principal, str | None]:
    """The clicker as a principal, and the policy's refusal sentence if they may not decide."""
    principal = await clicker(deps, user_id, approvers)
    decision = deps.policy.may_decide(
        principal,
        approvers=list(approvers) or None,
        requester_upn=requester_upn,
        requester_id=requester_id,
    )
    return principal, None if decision.allowed else decision.reason
