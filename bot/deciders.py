"""Who someone is, and who may decide a paused execution or an approval: the rules every path asks.

``person`` turns a Slack user into a ``Principal`` (their UPN and, when someone's list names user
groups, their groups), failing closed: when Slack's profile lookup fails, when the profile has no
email, or when the person belongs to another organisation (Slack Connect) and the policy does not
allow them (``external_users: allow``, and then only under their own UPN), it raises
``PersonRefused`` whose text tells the person why. The run path (``Runner.principal``), the wait
buttons, ``/nexthink resume``, the Approve and Deny buttons and the deny form all go through it.

``decider`` answers "may this person decide?": ``person``, then the requester of the request,
known from the bot's own record of the run that started the execution (``request_executions``)
as well as from what the webhook said, then ``Policy.may_decide``. ``clicker`` is the lenient
form the Home tab uses to list what someone may decide (it decides nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from bot.identity import Identity, IdentityError, Profile
from bot.logging import get_logger
from bot.policy import Policy, Principal
from bot.store import Store

__all__ = ["Deciders", "PersonRefused", "clicker", "decider", "person"]

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
    store: Store


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


async def clicker(deps: Deciders, user_id: str, *, all_groups: bool = False) -> Principal:
    """The person as well as can be told, for the Home tab's lists only (it decides nothing): no
    UPN when none can be established, no groups when their lookup fails."""
    try:
        return await person(deps, user_id, all_groups=all_groups)
    except PersonRefused:
        return Principal(user_id=user_id, upn=None, groups=frozenset())


async def decider(
    deps: Deciders,
    user_id: str,
    *,
    approvers: Sequence[str],
    requester_upn: str | None,
    requester_id: str | None = None,
    execution_uuid: str | None = None,
) -> tuple[Principal | None, str | None]:
    """The clicker as a principal, and the refusal sentence if they may not decide (then the
    principal is None when who they are could not be established).

    The requester never decides: the one named by the request (``requester_upn``,
    ``requester_id``) and, for a paused execution, the one whose run the bot's own record says
    started ``execution_uuid``."""
    try:
        principal = await person(deps, user_id, approvers)
    except PersonRefused as exc:
        return None, exc.text
    if execution_uuid is not None:
        record = await deps.store.request_for_execution(execution_uuid)
        if record is not None and deps.policy.is_self(
            principal, user_id=record.user_id, upn=record.user_upn
        ):
            return principal, (
                "You started this execution (your request `"
                + record.id
                + "`), so someone else has to decide it."
            )
    decision = deps.policy.may_decide(
        principal,
        approvers=list(approvers) or None,
        requester_upn=requester_upn,
        requester_id=requester_id,
    )
    return principal, None if decision.allowed else decision.reason
