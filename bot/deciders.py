"""Who someone is, and who may decide a paused execution or an approval: the rules every path asks.

``person`` turns a Slack user into a ``Principal`` (their UPN and, when someone's list names user
groups, their groups), failing closed: when Slack's profile lookup fails, when the profile has no
email, or when the person belongs to another organisation (Slack Connect) and the policy does not
allow them (``external_users: allow``, and then only under their own UPN), it raises
``PersonRefused`` whose text tells the person why. The run path (``Runner.principal``), the wait
buttons, ``/nexthink resume``, the Approve and Deny buttons and the forms all go through it.
``clicker`` is its lenient form, for the Home tab's lists only (it decides nothing).

``decide_as`` is the rule of deciding. It takes a person as the policy sees them (a ``Principal``)
and what is to be decided (a ``Subject``: its approvers, whose request it is, who may decide too
once it escalated) and answers with a ``Verdict``: whether they may, and as whom. A person may
decide

* as themselves, when the policy lets them (``Policy.may_decide``: never the requester; the
  approvers, and the ``escalate_to`` people once the escalation time has come); or
* as a stand-in (``/nexthink delegate``), for someone away who may decide it, unless the
  stand-in is the requester or the policy says ``delegation: false``.

``decider`` turns the person who clicked into a ``Principal`` (``person``) and asks
``decide_as``; for a paused execution, the requester is also the one whose run the bot's own
record says started it (``request_executions``), whatever the webhook said. The wait buttons, the
Approve and Deny buttons, the forms and ``/nexthink resume`` of a question all come here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from bot.identity import Identity, IdentityError, Profile
from bot.logging import get_logger
from bot.policy import Policy, Principal
from bot.store import ApprovalRecord, DelegationRecord, Store, WaitRecord

__all__ = [
    "EXTERNAL",
    "IMPERSONATION",
    "LOOKUP_FAILED",
    "Deciders",
    "PersonRefused",
    "StandIns",
    "Subject",
    "Verdict",
    "clicker",
    "decide_as",
    "decider",
    "person",
]

log = get_logger(__name__)


Why = Literal["lookup_failed", "unknown", "no_email", "external", "impersonation"]

LOOKUP_FAILED = (
    "The bot could not look up your Slack profile just now, so it cannot tell who you are and "
    "did nothing. Please try again in a moment."
)
EXTERNAL = (
    "This bot serves its own organisation only: people of other organisations (Slack Connect) "
    "may not run workflows or decide anything here."
)
IMPERSONATION = (
    "Your Slack profile belongs to another organisation, and its email is that of someone in this "
    "one: the bot acts for people of other organisations only under their own email, so it did "
    "nothing."
)


class PersonRefused(IdentityError):
    """The person cannot act: ``why`` says which rule, ``str()`` is a sentence for them."""

    def __init__(self, why: Why, text: str) -> None:
        super().__init__(text)
        self.why = why
        self.text = text


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
    #: a paused execution's: whoever's run started it (the bot's record) never decides it
    execution_uuid: str | None = None

    @classmethod
    def of_wait(cls, wait: WaitRecord) -> Subject:
        return cls(
            approvers=wait.approvers,
            requester_upn=wait.requester_upn,
            execution_uuid=wait.execution_uuid,
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


async def _profile(identity: Identity, user_id: str) -> tuple[Profile, bool]:
    try:
        profile = await identity.profile(user_id)
        return profile, await identity.is_external(profile)
    except IdentityError as exc:
        raise PersonRefused("unknown", str(exc)) from None
    except Exception as exc:  # Slack down, rate limited, a bad answer: nobody is established
        log.warning("profile_lookup_failed", user=user_id, error=type(exc).__name__)
        raise PersonRefused("lookup_failed", LOOKUP_FAILED) from None


async def _upn(deps: Deciders, profile: Profile, external: bool) -> str | None:
    if not external:
        return profile.upn
    if not deps.policy.allows_external_users:
        raise PersonRefused("external", EXTERNAL)
    email = profile.email
    if not email:
        return None
    try:  # their own email only: never that of someone of this organisation
        local = await deps.identity.user_for_email(email)
    except Exception as exc:
        log.warning("email_lookup_failed", error=type(exc).__name__)
        raise PersonRefused("lookup_failed", LOOKUP_FAILED) from None
    if local is not None and local != profile.user_id:
        raise PersonRefused("impersonation", IMPERSONATION)
    return email


async def person(
    deps: Deciders, user_id: str, approvers: Sequence[str] = (), *, all_groups: bool = False
) -> Principal:
    """The Slack user as the policy sees them; raises ``PersonRefused`` when the bot cannot
    establish who they are or they may not act at all (another organisation, no email).

    Their user groups are looked up when the policy or ``approvers`` name groups (with
    ``all_groups`` always); a failed group lookup then refuses too, since an approver may be named
    only through a group."""
    profile, external = await _profile(deps.identity, user_id)
    upn = await _upn(deps, profile, external)
    if upn is None:
        try:
            await deps.identity.upn(user_id)  # the sentence that explains a missing email
        except IdentityError as exc:
            raise PersonRefused("no_email", str(exc)) from None
        raise PersonRefused("no_email", "Your Slack profile has no email address.")
    needs_groups = deps.policy.uses_groups or any(str(a).startswith("@") for a in approvers)
    groups: frozenset[str] = frozenset()
    if needs_groups or all_groups:
        try:
            groups = await deps.identity.groups_of(user_id)
        except Exception as exc:
            log.warning("groups_lookup_failed", user=user_id, error=type(exc).__name__)
            raise PersonRefused("lookup_failed", LOOKUP_FAILED) from None
    return Principal(user_id=user_id, upn=upn, groups=groups)


async def clicker(
    deps: Deciders, user_id: str, approvers: Sequence[str] = (), *, all_groups: bool = False
) -> Principal:
    """The person as well as can be told, for the Home tab's lists only (it decides nothing): no
    UPN when none can be established, no groups when their lookup fails."""
    try:
        return await person(deps, user_id, approvers, all_groups=all_groups)
    except PersonRefused:
        return Principal(user_id=user_id, upn=None, groups=frozenset())


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
    """The clicker as a principal (``person``: failing closed), and whether (and for whom) they
    may decide ``subject``; never the one whose run the bot's record says started the execution."""
    try:
        principal = await person(deps, user_id, (*subject.approvers, *subject.escalate_to))
    except PersonRefused as exc:
        return Verdict(Principal(user_id=user_id, upn=None, groups=frozenset()), exc.text)
    if subject.execution_uuid is not None:
        record = await deps.store.request_for_execution(subject.execution_uuid)
        if record is not None and deps.policy.is_self(
            principal, user_id=record.user_id, upn=record.user_upn
        ):
            return Verdict(
                principal,
                f"You started this execution (your request `{record.id}`), so someone else has "
                "to decide it.",
            )
    return await decide_as(deps, principal, subject, now=now)
