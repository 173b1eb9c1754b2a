"""Reading the policy file: bytes, YAML (safe, duplicate keys refused), the schema, then the rules.

Every problem is a ``PolicyError`` whose text is one line naming the file, the key path and what is
wrong. ``Policy.load``, ``Policy.from_yaml`` and ``Policy.from_mapping`` build on these functions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.policy.rules import (
    ApprovalRule,
    ConsentRule,
    ParamRule,
    Role,
    ScheduleRule,
    WorkflowRule,
)
from bot.policy.schema import (
    MAX_FILE_BYTES,
    PolicySpec,
    ScheduleSpec,
    WorkflowSpec,
    describe_error,
)

__all__ = ["PolicyContents", "PolicyError", "read_file", "read_mapping", "read_yaml"]


class PolicyError(Exception):
    """The policy file cannot be used; ``str()`` is one line naming the file, the key and the problem."""


@dataclass(frozen=True)
class PolicyContents:
    """What a checked policy file holds, ready to build a ``Policy`` from."""

    roles: Sequence[Role]
    workflows: Sequence[WorkflowRule]
    domains: Mapping[str, str]
    runs_per_user_per_minute: int
    source: str
    unknown_keys: Sequence[str]
    external_users: str = "deny"
    delegation: bool = True
    schedule: ScheduleRule = field(default_factory=ScheduleRule)


def read_file(path: str | os.PathLike[str]) -> PolicyContents:
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
    return read_yaml(text, source=str(file))


def read_yaml(text: str, *, source: str = "<text>") -> PolicyContents:
    data = _load_yaml(text, source)
    if data is None:
        raise PolicyError(
            f"policy file {source}: is empty; add roles, or unset POLICY_FILE for the default policy"
        )
    if not isinstance(data, dict):
        raise PolicyError(
            f"policy file {source}: (top level): must be a mapping with roles, workflows, upn, limits"
        )
    return read_mapping(data, source=source)


def read_mapping(data: Mapping[str, Any], *, source: str = "<mapping>") -> PolicyContents:
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
            audit=r.audit,
            query_targets=r.query_targets,
        )
        for name, r in spec.roles.items()
    ]
    schedule = _schedule_rule(spec.schedule, ScheduleRule())
    return PolicyContents(
        roles=roles,
        workflows=[_workflow_rule(nql_id, wf, schedule) for nql_id, wf in spec.workflows.items()],
        schedule=schedule,
        domains=spec.upn.domains,
        runs_per_user_per_minute=spec.limits.runs_per_user_per_minute,
        source=source,
        unknown_keys=sorted(str(k) for k in (spec.model_extra or {})),
        external_users=spec.external_users,
        delegation=spec.delegation,
    )


def _schedule_rule(spec: ScheduleSpec | None, base: ScheduleRule) -> ScheduleRule:
    """``spec`` over ``base``: the keys the file gives win, the others are ``base``'s."""
    if spec is None:
        return base
    given = spec.model_fields_set
    return ScheduleRule(
        allowed=spec.allowed if "allowed" in given else base.allowed,
        max_days=spec.max_days if "max_days" in given else base.max_days,
        max_late_minutes=(
            spec.max_late_minutes if "max_late_minutes" in given else base.max_late_minutes
        ),
    )


def _workflow_rule(nql_id: str, spec: WorkflowSpec, schedule: ScheduleRule) -> WorkflowRule:
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
        approval = ApprovalRule(
            a.channel,
            tuple(a.approvers),
            a.count,
            a.expires_in_minutes,
            remind_after_minutes=a.remind_after_minutes,
            escalate_after_minutes=a.escalate_after_minutes,
            escalate_to=tuple(a.escalate_to),
            deny_reason=a.deny_reason,
            approve_comment=a.approve_comment,
        )
    consent = None
    if spec.consent is not None and spec.consent.required:
        consent = ConsentRule(spec.consent.expires_in_minutes)
    own_schedule = _schedule_rule(spec.schedule, schedule) if spec.schedule is not None else None
    return WorkflowRule(nql_id, spec.alias, params, approval, consent, own_schedule)


# -- YAML -----------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """``safe_load``'s loader, refusing duplicate keys (PyYAML silently keeps the last one)."""


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: let PyYAML report it
            break
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is yaml.SafeLoader plus a duplicate-key check
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "cannot be read"
        raise PolicyError(f"policy file {source}: YAML error{where}: {what}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {source}: YAML error: {exc}".replace("\n", " ")) from None
