"""A workflow's parameters checked against its ``params`` rules: ``check_params``."""

from __future__ import annotations

from collections.abc import Mapping

from bot.policy.mrkdwn import choices, code
from bot.policy.rules import ParamError, WorkflowRule

__all__ = ["check_params"]


def check_params(
    nql_id: str, rule: WorkflowRule | None, params: Mapping[str, str]
) -> dict[str, str]:
    """The parameters to send: checked against the workflow's ``params`` rules, defaults
    filled in, allowed values in their configured spelling. An empty value counts as absent.
    With ``params`` declared, they are the complete list. Raises ``ParamError``."""
    result = {k: v for k, v in params.items() if v != ""}
    if rule is None or rule.params is None:
        return result
    declared = rule.params
    for name in result:
        if name not in declared:
            known = ", ".join(code(n) for n in declared) or "none"
            raise ParamError(
                f"{code(nql_id)} takes no parameter {code(name)}; its parameters: {known}.",
                name,
            )
    for name, spec in declared.items():
        value = result.get(name)
        if value is None:
            if spec.default is not None:
                result[name] = spec.default
            elif spec.required:
                listed = f" (one of {choices(spec.allowed)})" if spec.allowed else ""
                raise ParamError(
                    f"{code(nql_id)} needs the parameter {code(name)}{listed}: add `{name}=…`.",
                    name,
                )
            continue
        if spec.allowed is not None:
            match = next((a for a in spec.allowed if a.casefold() == value.casefold()), None)
            if match is None:
                raise ParamError(
                    f"{code(name)} must be one of {choices(spec.allowed)}, not {code(value)}.",
                    name,
                )
            result[name] = value = match
        if spec.pattern is not None and not spec.pattern.fullmatch(value):
            raise ParamError(
                f"{code(name)} must match {code(spec.pattern.pattern)}, and {code(value)} does not.",
                name,
            )
    return result
