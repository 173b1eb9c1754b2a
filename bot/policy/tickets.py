"""Change tickets on runs: the rule that applies (``ticket_rule``) and the check (``check_ticket``).

A workflow's ``ticket:`` and the ``ticket:`` of each role that grants the run add up: a ticket is
required if any of them requires one, the reference must match every ``pattern`` (the whole of
it), and it is sent to Nexthink under the workflow's ``param`` (else the first role's).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.policy.mrkdwn import code
from bot.policy.rules import TicketRule

__all__ = ["MAX_TICKET_LENGTH", "TicketError", "TicketNeeds", "check_ticket", "ticket_needs"]

#: characters in one ticket reference
MAX_TICKET_LENGTH = 100


class TicketError(ValueError):
    """A run's ticket is missing or malformed; ``message`` says how to fix it (mrkdwn)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TicketNeeds:
    """What the rules that apply to one run ask of its ticket."""

    def __init__(self, rules: Iterable[TicketRule]) -> None:
        found = list(rules)
        self.required = any(r.required for r in found)
        self.patterns: tuple[re.Pattern[str], ...] = tuple(
            r.pattern for r in found if r.pattern is not None
        )
        self.param = next((r.param for r in found if r.param), None)

    @property
    def asked(self) -> bool:
        """Whether a ticket means anything here (the run form then shows a Ticket field)."""
        return self.required or bool(self.patterns) or self.param is not None


def ticket_needs(workflow: TicketRule | None, roles: Iterable[TicketRule | None]) -> TicketNeeds:
    """The workflow's rule first (its ``param`` wins), then the granting roles'."""
    return TicketNeeds(r for r in (workflow, *roles) if r is not None)


def check_ticket(nql_id: str, needs: TicketNeeds, ticket: str | None) -> str | None:
    """The ticket to record (``None`` when there is none); raises ``TicketError``."""
    ticket = (ticket or "").strip() or None
    if ticket is None:
        if needs.required:
            shape = (
                f"; it must look like {' and '.join(code(p.pattern) for p in needs.patterns)}"
                if needs.patterns
                else ""
            )
            raise TicketError(
                f"{code(nql_id)} needs a ticket: add `ticket:INC…` (the incident, change or "
                f"request it is for{shape})."
            )
        return None
    if len(ticket) > MAX_TICKET_LENGTH:
        raise TicketError(
            f"The ticket is {len(ticket):,} characters long; at most {MAX_TICKET_LENGTH} are allowed."
        )
    for pattern in needs.patterns:
        if not pattern.fullmatch(ticket):
            raise TicketError(
                f"{code('ticket:' + ticket)} does not look like {code(pattern.pattern)}."
            )
    return ticket
