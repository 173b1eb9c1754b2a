"""``Policy``: who may run which workflow where, on whom, who may resume, and who may decide.

Answers are ``Decision(allowed, reason)``; ``reason`` is a sentence in Slack mrkdwn, ready to show.
Nothing here does I/O except ``Policy.load`` reading the file (through ``bot.policy.loading``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from bot.policy.loading import PolicyContents, read_file, read_mapping, read_yaml
from bot.policy.members import Members
from bot.policy.mrkdwn import channels, code, count, member
from bot.policy.params import check_params
from bot.policy.rules import (
    ApprovalRule,
    ConsentRule,
    Decision,
    ParamRule,
    Principal,
    Role,
    ScheduleRule,
    WorkflowRule,
)
from bot.policy.schema import DEFAULT_RUNS_PER_USER_PER_MINUTE

__all__ = ["Policy"]


class Policy:
    """Roles and workflow rules; build with ``load``, ``from_yaml`` or ``default``."""

    def __init__(
        self,
        *,
        roles: Sequence[Role] = (),
        workflows: Iterable[WorkflowRule] = (),
        domains: Mapping[str, str] | None = None,
        runs_per_user_per_minute: int = DEFAULT_RUNS_PER_USER_PER_MINUTE,
        source: str | None = None,
        unknown_keys: Sequence[str] = (),
        is_default: bool = False,
        external_users: str = "deny",
        delegation: bool = True,
        schedule: ScheduleRule | None = None,
    ) -> None:
        self.roles: tuple[Role, ...] = tuple(roles)
        self.workflows: dict[str, WorkflowRule] = {w.nql_id: w for w in workflows}
        self.source = source
        self.unknown_keys = tuple(unknown_keys)
        self.is_default = is_default
        #: ``allow``: people of other organisations may act, under their own UPN only
        self.allows_external_users = external_users == "allow"
        #: ``delegation:`` (top level): whether people may name stand-ins
        self.delegation = delegation
        self._runs_per_minute = runs_per_user_per_minute
        self._schedule = schedule or ScheduleRule()
        self._members = Members(domains)
        self._by_id = {w.nql_id.casefold(): w for w in self.workflows.values()}
        self._by_alias = {
            w.alias.casefold(): w for w in self.workflows.values() if w.alias is not None
        }

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def default(cls) -> Policy:
        """No policy file: everyone may run workflows on their own user, and nothing more."""
        everyone = Role("everyone", ("*",), None, ("*",), "self", resume=False, visible=False)
        return cls(roles=[everyone], is_default=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read the policy file at ``path``; raise ``PolicyError`` (one line) if it is unusable."""
        return cls._built(read_file(path))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<text>") -> Policy:
        return cls._built(read_yaml(text, source=source))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<mapping>") -> Policy:
        return cls._built(read_mapping(data, source=source))

    @classmethod
    def _built(cls, contents: PolicyContents) -> Policy:
        return cls(
            roles=contents.roles,
            workflows=contents.workflows,
            domains=contents.domains,
            runs_per_user_per_minute=contents.runs_per_user_per_minute,
            source=contents.source,
            unknown_keys=contents.unknown_keys,
            external_users=contents.external_users,
            delegation=contents.delegation,
            schedule=contents.schedule,
        )

    # -- who someone is ---------------------------------------------------------------------

    def rewrite_upn(self, email: str) -> str:
        """``upn.domains``: the Slack email's domain replaced by the UPN domain (any case)."""
        return self._members.rewrite_upn(email)

    def emails_for_upn(self, upn: str) -> list[str]:
        """The Slack emails that ``upn.domains`` rewrites into ``upn`` (the reverse lookup)."""
        return self._members.emails_for_upn(upn)

    @property
    def uses_groups(self) -> bool:
        """Whether any role or approval names a user group, so principals need their ``groups``."""
        members = [m for r in self.roles for m in r.members]
        members += [
            a
            for w in self.workflows.values()
            if w.approval
            for a in (*w.approval.approvers, *w.approval.escalate_to)
        ]
        return any(m.startswith("@") for m in members)

    def is_self(
        self, principal: Principal, *, user_id: str | None = None, upn: str | None = None
    ) -> bool:
        """Whether a target (a mentioned user id or a UPN) is the principal."""
        return self._members.is_self(principal, user_id=user_id, upn=upn)

    def _member_roles(self, principal: Principal) -> list[Role]:
        return [
            r for r in self.roles if any(self._members.matches(m, principal) for m in r.members)
        ]

    def roles_for(self, principal: Principal, channel_id: str | None) -> list[Role]:
        """The roles that apply: the principal is a member, and the role allows this channel."""
        return [
            r
            for r in self._member_roles(principal)
            if r.channels is None or (channel_id is not None and channel_id in r.channels)
        ]

    # -- workflows ----------------------------------------------------------------------------

    def resolve_workflow(self, name: str) -> str:
        """An alias (any case) becomes its NQL id; anything else is returned unchanged."""
        rule = self._by_alias.get(name.casefold())
        return rule.nql_id if rule is not None else name

    def alias_for(self, nql_id: str) -> str | None:
        rule = self._by_id.get(nql_id.casefold())
        return rule.alias if rule is not None else None

    def _covers(self, role: Role, nql_id: str) -> bool:
        # an alias passed by mistake still means its workflow
        nql_id = self.resolve_workflow(nql_id)
        names = {nql_id.casefold()}
        alias = self.alias_for(nql_id)
        if alias is not None:
            names.add(alias.casefold())
        return any(fnmatchcase(n, p.casefold()) for p in role.workflows for n in names)

    def may_run(self, principal: Principal, channel_id: str | None, nql_id: str) -> Decision:
        roles = self.roles_for(principal, channel_id)
        granting = [r for r in roles if self._covers(r, nql_id)]
        if granting:
            return Decision(True, f"Allowed by the role {code(granting[0].name)}.")
        elsewhere = {
            c
            for r in self._member_roles(principal)
            if r.channels is not None and self._covers(r, nql_id)
            for c in r.channels
        }
        if elsewhere:
            return Decision(False, f"You may run {code(nql_id)} only in {channels(elsewhere)}.")
        if roles:
            names = ", ".join(code(r.name) for r in roles)
            return Decision(
                False, f"Your roles ({names}) do not include the workflow {code(nql_id)}."
            )
        return Decision(False, self._no_role())

    def _no_role(self) -> str:
        return (
            "You are in no role of the bot's policy here, so you may not run workflows; "
            "ask the bot's administrators to add you."
        )

    def visible_workflows(
        self, principal: Principal, channel_id: str | None, workflows: Iterable[str]
    ) -> list[str]:
        """Those of ``workflows`` (NQL ids) the principal may run here, in the same order."""
        roles = self.roles_for(principal, channel_id)
        return [w for w in workflows if any(self._covers(r, w) for r in roles)]

    def may_target_others(self, principal: Principal, channel_id: str | None, nql_id: str) -> bool:
        return any(
            r.targets == "any" and self._covers(r, nql_id)
            for r in self.roles_for(principal, channel_id)
        )

    def may_target(
        self,
        principal: Principal,
        channel_id: str | None,
        nql_id: str,
        *,
        devices: int = 0,
        other_users: int = 0,
    ) -> Decision:
        """Whether the run may name ``devices`` devices and ``other_users`` people besides the
        requester (call ``may_run`` first)."""
        if not devices and not other_users:
            return Decision(True, "The workflow runs on you.")
        if self.may_target_others(principal, channel_id, nql_id):
            return Decision(True, "Your role may run this workflow on any target.")
        what = " or ".join(w for w, n in (("devices", devices), ("other people", other_users)) if n)
        return Decision(
            False,
            f"Your role may only run {code(nql_id)} on yourself, so it cannot target {what}: leave out "
            "`device:` and `user:` and Nexthink picks your most recent device.",
        )

    def may_target_query(
        self, principal: Principal, channel_id: str | None, nql_id: str, query_id: str
    ) -> Decision:
        """Whether the run may target what the saved NQL query ``query_id`` returns (a fleet run):
        a role that covers the workflow here with ``query_targets: true`` (call ``may_run`` first)."""
        roles = [r for r in self.roles_for(principal, channel_id) if self._covers(r, nql_id)]
        granting = [r for r in roles if r.query_targets]
        if granting:
            return Decision(True, f"Allowed by the role {code(granting[0].name)}.")
        return Decision(
            False,
            f"Your role may not run {code(nql_id)} on what a query returns ({code(query_id)}): "
            "that takes a role with `query_targets: true` in the bot's policy. Name the targets "
            "with `device:` and `user:` instead.",
        )

    def run_visible(self, principal: Principal, channel_id: str | None, nql_id: str) -> bool:
        """Whether the run's reply is posted in the channel rather than shown only to the requester."""
        return any(
            r.visible and self._covers(r, nql_id) for r in self.roles_for(principal, channel_id)
        )

    def rule_for(self, nql_id: str) -> WorkflowRule | None:
        return self._by_id.get(nql_id.casefold())

    def param_specs(self, nql_id: str) -> Mapping[str, ParamRule]:
        """The workflow's declared parameters (empty when the policy declares none)."""
        rule = self.rule_for(nql_id)
        return rule.params if rule is not None and rule.params is not None else {}

    def approval_for(self, nql_id: str) -> ApprovalRule | None:
        rule = self.rule_for(nql_id)
        return rule.approval if rule is not None else None

    def consent_for(self, nql_id: str) -> ConsentRule | None:
        """``consent:``: whether a run on another person waits for their Allow."""
        rule = self.rule_for(nql_id)
        return rule.consent if rule is not None else None

    def schedule_for(self, nql_id: str) -> ScheduleRule:
        """``schedule:`` for this workflow: its own keys over the top level's."""
        rule = self.rule_for(nql_id)
        if rule is not None and rule.schedule is not None:
            return rule.schedule
        return self._schedule

    def may_schedule(self, nql_id: str) -> Decision:
        """Whether runs of ``nql_id`` may be scheduled for later (call ``may_run`` first)."""
        if self.schedule_for(nql_id).allowed:
            return Decision(True, "The policy allows scheduling this workflow.")
        return Decision(
            False,
            f"Runs of {code(nql_id)} cannot be scheduled for later: the bot's policy does not "
            "allow it (`schedule: {allowed: true}`). Leave out `at …`/`in …` to run it now.",
        )

    def check_params(self, nql_id: str, params: Mapping[str, str]) -> dict[str, str]:
        """The parameters to send: checked against the workflow's ``params`` rules, defaults
        filled in, allowed values in their configured spelling. An empty value counts as absent.
        With ``params`` declared, they are the complete list. Raises ``ParamError``."""
        return check_params(nql_id, self.rule_for(nql_id), params)

    # -- resume and decisions -----------------------------------------------------------------

    def may_resume(self, principal: Principal, channel_id: str | None) -> Decision:
        if any(r.resume for r in self.roles_for(principal, channel_id)):
            return Decision(True, "Your role may resume paused executions.")
        if self.is_default:
            return Decision(
                False,
                "Resuming executions needs a role with `resume: true` in the bot's policy file, "
                "and none is configured.",
            )
        elsewhere = {
            c
            for r in self._member_roles(principal)
            if r.resume and r.channels is not None
            for c in r.channels
        }
        if elsewhere:
            return Decision(False, f"You may resume executions only in {channels(elsewhere)}.")
        return Decision(False, "None of your roles may resume paused executions.")

    def may_audit(self, principal: Principal, channel_id: str | None) -> Decision:
        """Whether the principal may see other people's requests (a role with ``audit: true``)."""
        if any(r.audit for r in self.roles_for(principal, channel_id)):
            return Decision(True, "Your role may look at other people's requests.")
        return Decision(
            False,
            "Only roles with `audit: true` in the bot's policy may look at other people's "
            "requests.",
        )

    def may_decide(
        self,
        principal: Principal,
        *,
        approvers: Sequence[str] | None,
        requester_upn: str | None = None,
        requester_id: str | None = None,
    ) -> Decision:
        """Whether the principal may click a decision or approval button. The requester never
        decides their own request; ``approvers`` (ids, UPNs, @handles, "*") limit who may; with
        none, anyone may (with a policy file: anyone in some role)."""
        if self.is_self(principal, user_id=requester_id, upn=requester_upn):
            return Decision(False, "You made this request, so someone else has to decide it.")
        if approvers:
            if any(self._members.matches(a, principal) for a in approvers):
                return Decision(True, "You are one of its approvers.")
            shown = ", ".join(member(a) for a in approvers[:5])
            more = f" and {len(approvers) - 5} more" if len(approvers) > 5 else ""
            return Decision(False, f"Only {shown}{more} may decide this.")
        if self.is_default or self._member_roles(principal):
            return Decision(True, "Anyone may decide this.")
        return Decision(
            False, "You are in no role of the bot's policy, so you may not decide this."
        )

    # -- limits and description ---------------------------------------------------------------

    @property
    def runs_per_user_per_minute(self) -> int:
        return self._runs_per_minute

    def summary(self) -> str:
        """One line for the logs: where the policy comes from and what it holds (no secrets)."""
        rate = f"{self._runs_per_minute} runs per user per minute"
        if self.is_default:
            return (
                "default policy (no POLICY_FILE): everyone may run workflows on themselves; "
                f"nobody may target others or resume; {rate}"
            )
        roles = ", ".join(f"{r.name} ({count(len(r.members), 'member')})" for r in self.roles)
        aliases = sum(1 for w in self.workflows.values() if w.alias)
        approvals = sum(1 for w in self.workflows.values() if w.approval)
        parts = [
            f"policy file {self.source}",
            f"{count(len(self.roles), 'role')}" + (f": {roles}" if roles else ""),
            f"{count(len(self.workflows), 'workflow')} configured "
            f"({count(aliases, 'alias', 'aliases')}, {approvals} with approval)",
            count(self._members.rewrite_count, "UPN domain rewrite"),
            rate,
        ]
        if self.unknown_keys:
            parts.append("ignored keys: " + ", ".join(self.unknown_keys))
        return "; ".join(parts)
