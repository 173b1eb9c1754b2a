"""The requester's one reply about the people a run asked together (a consent round).

Each person's state is decided here, from the store alone (``person_line``): whichever replica
made a change, and after a restart, the reply shows what the store holds. ``show`` is called
after every change to a round (ask, Allow, its execute's answer, Not now, expiry, interruption,
cancellation): it reads the round *after* the caller's own write, has the notifier render it,
then reads it again and renders once more if it changed meanwhile. Two replicas changing one
round at once therefore both update the reply, and the last update to reach Slack is of the
final state: a process whose update landed after another's reads the store after that other's
write, so it sees the change and renders again.
"""

from __future__ import annotations

from typing import Protocol

from bot.catalogue import Catalogue
from bot.logging import get_logger
from bot.notifier import Notifier, PersonLine, RoundView
from bot.store import RoundPerson, Store

__all__ = ["RoundDeps", "person_line", "read", "show"]

log = get_logger(__name__)

#: renders of one change at most (each extra one follows a concurrent change)
_MAX_RENDERS = 5

NOT_POSTED = "consent request not posted"


class RoundDeps(Protocol):
    store: Store
    catalogue: Catalogue
    notifier: Notifier


def person_line(person: RoundPerson) -> PersonLine:
    """What one person's consent and their run's record say, as one state."""
    consent = person.consent
    line = PersonLine(consent.user_id, consent.label, "asked", until=consent.expires_at)
    error = person.request_error or ""
    match consent.state:
        case "asked":
            return line
        case "agreed":
            return PersonLine(consent.user_id, consent.label, "agreed")
        case "allowed":
            return PersonLine(consent.user_id, consent.label, "sending")
        case "expired":
            return PersonLine(consent.user_id, consent.label, "expired")
        case "cancelled":
            return PersonLine(consent.user_id, consent.label, "cancelled")
        case "refused":
            if person.request_state == "failed" and error.startswith(NOT_POSTED):
                detail = error.partition(": ")[2]
                return PersonLine(consent.user_id, consent.label, "not_asked", detail)
            return PersonLine(consent.user_id, consent.label, "not_now")
    # done: the execute answered (or the bot stopped while sending it)
    if person.request_state == "unknown":
        return PersonLine(consent.user_id, consent.label, "interrupted", error)
    if person.request_state == "failed" or not person.request_uuids:
        return PersonLine(consent.user_id, consent.label, "failed", error)
    return PersonLine(consent.user_id, consent.label, "sent", ", ".join(person.request_uuids))


async def read(deps: RoundDeps, round_id: str) -> RoundView | None:
    found = await deps.store.consent_round(round_id)
    if found is None:
        return None
    name = await deps.catalogue.display_name(found.workflow_id)
    return RoundView(found, name, tuple(person_line(p) for p in found.people))


async def show(deps: RoundDeps, round_id: str | None, *, first: bool = False) -> None:
    """Bring the requester's reply about round ``round_id`` up to date; never raises."""
    if round_id is None:  # asked before rounds existed: its events are told one by one
        return
    try:
        view = await read(deps, round_id)
        for _ in range(_MAX_RENDERS):
            if view is None:
                return
            await deps.notifier.consent_round(view, first=first)
            first = False
            again = await read(deps, round_id)
            if again is None or again.lines == view.lines:
                return
            view = again
    except Exception:  # the decisions stand; only the reply is behind
        log.exception("consent_round_not_shown", round=round_id)
