"""Who may do what: roles, workflow rules and approvals, read from ``POLICY_FILE``.

The file's shape is the product's contract (PRODUCT.md, "The policy file")::

    roles:       {name: {members, channels?, workflows, targets: self|any, resume, visible}}
    workflows:   {nql_id: {alias?, params: {name: {allowed, default, required, pattern}}, approval?}}
    upn:         {domains: {slack.example.com: corp.example.com}}
    limits:      {runs_per_user_per_minute: 10}

Unknown top-level keys are ignored (``Policy.unknown_keys`` names them, for a warning); anywhere
below, an unknown key, a wrong type or a bad value stops the bot with one line that names the file,
the key path and the problem. YAML is read with a safe loader that also refuses duplicate keys.

Without a file, ``Policy.default()``: everyone may run any workflow (the caller offers only active,
API-triggerable ones) on their own user; nobody may target others or resume. With a file, someone
who matches no role may run nothing, and may decide only waits that name them as an approver.

Answers are ``Decision(allowed, reason)``; ``reason`` is a sentence in Slack mrkdwn, ready to show.
Nothing here does I/O except ``Policy.load`` reading the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    ValidationError,
)

from bot.policy_schema import (
    DEFAULT_RUNS_PER_USER_PER_MINUTE,
    MAX_FILE_BYTES,
    USER_ID,
    PolicyError,
    PolicySpec,
    WorkflowSpec,
    describe_error,
    load_yaml,
)

__all__ = [
    "ApprovalRule",
    "Decision",
    "ParamError",
    "ParamRule",
    "Policy",
    "PolicyError",
    "Principal",
    "Role",
    "WorkflowRule",
]


class ParamError(ValueError):
    """A workflow parameter breaks the policy; ``message`` names it and what is allowed (mrkdwn)."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name  #: the parameter concerned


# -- what the rest of the bot sees --------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Someone asking: a Slack user, their UPN (already rewritten) and their user-group handles."""

    user_id: str
    upn: str | None = None
    groups: frozenset[str] = frozenset()  #: handles without "@"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  #: a sentence a person can read (mrkdwn)

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Role:
    name: str
    members: tuple[str, ...]  #: Slack user ids, "@handle", UPNs, "*"
    channels: frozenset[str] | None  #: None: every channel
    workflows: tuple[str, ...]  #: globs over NQL ids and aliases
    targets: Literal["self", "any"] = "self"
    resume: bool = False
    visible: bool = False  #: run replies are posted in the channel, not ephemeral


@dataclass(frozen=True)
class ParamRule:
    allowed: tuple[str, ...] | None = None
    default: str | None = None
    required: bool = False
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class ApprovalRule:
    """Run only after ``count`` approvals from ``approvers`` (anyone but the requester if empty)."""

    channel: str | None  #: where to ask; None: where the run was requested
    approvers: tuple[str, ...]
    count: int = 1
    expires_in_minutes: int = 1440

    @property
    def expires_in(self) -> timedelta:
        return timedelta(minutes=self.expires_in_minutes)


@dataclass(frozen=True)
class WorkflowRule:
    nql_id: str
    alias: str | None = None
    params: Mapping[str, ParamRule] | None = None  #: None: any parameters pass unchecked
    approval: ApprovalRule | None = None


# -- the policy -----------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return "`" + _esc(text).replace("`", "'") + "`"


def _show_member(member: str) -> str:
    if member == "*":
        return "anyone"
    if USER_ID.match(member):
        return f"<@{member}>"
    return _esc(member)


def _channels(channels: Iterable[str]) -> str:
    return ", ".join(f"<#{c}>" for c in sorted(channels))


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
    ) -> None:
        self.roles: tuple[Role, ...] = tuple(roles)
        self.workflows: dict[str, WorkflowRule] = {w.nql_id: w for w in workflows}
        self.source = source
        self.unknown_keys = tuple(unknown_keys)
        self.is_default = is_default
        self._runs_per_minute = runs_per_user_per_minute
        self._domains = {k.casefold(): v for k, v in (domains or {}).items()}
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
        file = Path(path)
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            raise PolicyError(f"policy file {file}: no such file (POLICY_FILE)") from None
        except OSError as exc:
            raise PolicyError(f"policy file {file}: cannot be read ({exc.strerror})") from None
        if len(raw) > MAX_FILE_BYTES:
            raise PolicyError(f"policy file {file}: is larger than 1 MiB")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"policy file {file}: is not UTF-8 (byte {exc.start})") from None
        return cls.from_yaml(text, source=str(file))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<text>") -> Policy:
        data = load_yaml(text, source)
        if data is None:
            raise PolicyError(
                f"policy file {source}: is empty; add roles, or unset POLICY_FILE for the default policy"
            )
        if not isinstance(data, dict):
            raise PolicyError(
                f"policy file {source}: (top level): must be a mapping with roles, workflows, upn, limits"
            )
        return cls.from_mapping(data, source=source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<mapping>") -> Policy:
        try:
            spec = PolicySpec.model_validate(dict(data))
        except ValidationError as exc:
            raise PolicyError(f"policy file {source}: {describe_error(exc)}") from None
        owners: dict[str, str] = {}
        ids = {nql_id.casefold(): nql_id for nql_id in spec.workflows}
        for nql_id, wf in spec.workflows.items():
            if wf.alias is None:
                continue
            key = wf.alias.casefold()
            where = f"policy file {source}: workflows.{nql_id}.alias"
            if key in owners:
                raise PolicyError(
                    f"{where}: {wf.alias!r} is already the alias of workflows.{owners[key]}"
                )
            if key in ids and ids[key] != nql_id:
                raise PolicyError(f"{where}: {wf.alias!r} is the id of another workflow")
            owners[key] = nql_id
        roles = [
            Role(
                name,
                tuple(r.members),
                frozenset(r.channels) if r.channels is not None else None,
                tuple(r.workflows),
                r.targets,
                r.resume,
                r.visible,
            )
            for name, r in spec.roles.items()
        ]
        return cls(
            roles=roles,
            workflows=[_workflow_rule(nql_id, wf) for nql_id, wf in spec.workflows.items()],
            domains=spec.upn.domains,
            runs_per_user_per_minute=spec.limits.runs_per_user_per_minute,
            source=source,
            unknown_keys=sorted(str(k) for k in (spec.model_extra or {})),
        )

    # -- who someone is ---------------------------------------------------------------------

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

    @property
    def uses_groups(self) -> bool:
        """Whether any role or approval names a user group, so principals need their ``groups``."""
        members = [m for r in self.roles for m in r.members]
        members += [a for w in self.workflows.values() if w.approval for a in w.approval.approvers]
        return any(m.startswith("@") for m in members)

    def _upn_forms(self, upn: str | None) -> set[str]:
        if not upn:
            return set()
        return {upn.casefold(), self.rewrite_upn(upn).casefold()}

    def _matches(self, member: str, principal: Principal) -> bool:
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

    def _member_roles(self, principal: Principal) -> list[Role]:
        return [r for r in self.roles if any(self._matches(m, principal) for m in r.members)]

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
            return Decision(True, f"Allowed by the role {_code(granting[0].name)}.")
        elsewhere = {
            c
            for r in self._member_roles(principal)
            if r.channels is not None and self._covers(r, nql_id)
            for c in r.channels
        }
        if elsewhere:
            return Decision(False, f"You may run {_code(nql_id)} only in {_channels(elsewhere)}.")
        if roles:
            names = ", ".join(_code(r.name) for r in roles)
            return Decision(
                False, f"Your roles ({names}) do not include the workflow {_code(nql_id)}."
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
            f"Your role may only run {_code(nql_id)} on yourself, so it cannot target {what}: leave out "
            "`device:` and `user:` and Nexthink picks your most recent device.",
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

    def check_params(self, nql_id: str, params: Mapping[str, str]) -> dict[str, str]:
        """The parameters to send: checked against the workflow's ``params`` rules, defaults
        filled in, allowed values in their configured spelling. An empty value counts as absent.
        With ``params`` declared, they are the complete list. Raises ``ParamError``."""
        result = {k: v for k, v in params.items() if v != ""}
        rule = self.rule_for(nql_id)
        if rule is None or rule.params is None:
            return result
        declared = rule.params
        for name in result:
            if name not in declared:
                known = ", ".join(_code(n) for n in declared) or "none"
                raise ParamError(
                    f"{_code(nql_id)} takes no parameter {_code(name)}; its parameters: {known}.",
                    name,
                )
        for name, spec in declared.items():
            value = result.get(name)
            if value is None:
                if spec.default is not None:
                    result[name] = spec.default
                elif spec.required:
                    choices = f" (one of {_choices(spec.allowed)})" if spec.allowed else ""
                    raise ParamError(
                        f"{_code(nql_id)} needs the parameter {_code(name)}{choices}: add `{name}=…`.",
                        name,
                    )
                continue
            if spec.allowed is not None:
                match = next((a for a in spec.allowed if a.casefold() == value.casefold()), None)
                if match is None:
                    raise ParamError(
                        f"{_code(name)} must be one of {_choices(spec.allowed)}, not {_code(value)}.",
                        name,
                    )
                result[name] = value = match
            if spec.pattern is not None and not spec.pattern.fullmatch(value):
                raise ParamError(
                    f"{_code(name)} must match {_code(spec.pattern.pattern)}, and {_code(value)} does not.",
                    name,
                )
        return result

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
            return Decision(False, f"You may resume executions only in {_channels(elsewhere)}.")
        return Decision(False, "None of your roles may resume paused executions.")

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
            if any(self._matches(a, principal) for a in approvers):
                return Decision(True, "You are one of its approvers.")
            shown = ", ".join(_show_member(a) for a in approvers[:5])
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
        roles = ", ".join(f"{r.name} ({_count(len(r.members), 'member')})" for r in self.roles)
        aliases = sum(1 for w in self.workflows.values() if w.alias)
        approvals = sum(1 for w in self.workflows.values() if w.approval)
        parts = [
            f"policy file {self.source}",
            f"{_count(len(self.roles), 'role')}" + (f": {roles}" if roles else ""),
            f"{_count(len(self.workflows), 'workflow')} configured "
            f"({_count(aliases, 'alias', 'aliases')}, {approvals} with approval)",
            _count(len(self._domains), "UPN domain rewrite"),
            rate,
        ]
        if self.unknown_keys:
            parts.append("ignored keys: " + ", ".join(self.unknown_keys))
        return "; ".join(parts)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _choices(values: Sequence[str] | None) -> str:
    return ", ".join(_code(v) for v in values or ())


def _workflow_rule(nql_id: str, spec: WorkflowSpec) -> WorkflowRule:
    params = None
    if spec.params is not None:
        params = {
            name: ParamRule(
                tuple(p.allowed) if p.allowed is not None else None,
                p.default,
                p.required,
                re.compile(p.pattern) if p.pattern is not None else None,
            )
            for name, p in spec.params.items()
        }
    approval = None
    if spec.approval is not None:
        a = spec.approval
        approval = ApprovalRule(a.channel, tuple(a.approvers), a.count, a.expires_in_minutes)
    return WorkflowRule(nql_id, spec.alias, params, approval)
