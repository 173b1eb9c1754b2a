"""Who someone is, for the policy: UPN domain rewriting and whether a member entry names a principal.

A member (of a role, or an approver) is ``"*"`` (anyone), a ``@handle`` (a user group, any case),
a UPN (any case, compared after ``upn.domains`` rewrites it) or a Slack user id.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.policy.rules import Principal

__all__ = ["Members"]


class Members:
    """The ``upn.domains`` rewrites, and matching member entries against principals."""

    def __init__(self, domains: Mapping[str, str] | None = None) -> None:
        self._domains = {k.casefold(): v for k, v in (domains or {}).items()}

    @property
    def rewrite_count(self) -> int:
        """How many Slack email domains ``upn.domains`` rewrites."""
        return len(self._domains)

    def rewrite_upn(self, email: str) -> str:
        """``upn.domains``: the Slack email's domain replaced by the UPN domain (any case)."""
        local, at, domain = email.rpartition("@")
        replacement = self._domains.get(domain.casefold()) if at else None
        return f"{local}@{replacement}" if replacement else email

    def emails_for_upn(self, upn: str) -> list[str]:
        """The Slack emails that ``upn.domains`` rewrites into ``upn`` (the reverse lookup)."""
        local, at, domain = upn.rpartition("@")
        if not at:
            return []
        return [
            f"{local}@{source}"
            for source, target in self._domains.items()
            if target.casefold() == domain.casefold() and source != domain.casefold()
        ]

    def _upn_forms(self, upn: str | None) -> set[str]:
        if not upn:
            return set()
        return {upn.casefold(), self.rewrite_upn(upn).casefold()}

    def matches(self, member: str, principal: Principal) -> bool:
        """Whether the member entry names the principal."""
        if member == "*":
            return True
        if member.startswith("@"):
            handle = member[1:].casefold()
            return any(g.removeprefix("@").casefold() == handle for g in principal.groups)
        if "@" in member:
            return bool(self._upn_forms(member) & self._upn_forms(principal.upn))
        return member == principal.user_id

    def is_self(
        self, principal: Principal, *, user_id: str | None = None, upn: str | None = None
    ) -> bool:
        """Whether a target (a mentioned user id or a UPN) is the principal."""
        if user_id is not None and user_id == principal.user_id:
            return True
        return bool(upn and self._upn_forms(upn) & self._upn_forms(principal.upn))
