"""Who may do what: roles, workflow rules and approvals, read from ``POLICY_FILE``.

The file's shape is the product's contract (PRODUCT.md, "The policy file")::

    roles:       {name: {members, channels?, workflows, targets: self|any, resume, visible}}
    workflows:   {nql_id: {alias?, params: {name: {allowed, default, required, pattern}}, approval?, consent?}}
    upn:         {domains: {slack.example.com: corp.example.com}}
    limits:      {runs_per_user_per_minute: 10}
    schedule:    {allowed: false, max_days: 14, max_late_minutes: 60}   (also per workflow)

Unknown top-level keys are ignored (``Policy.unknown_keys`` names them, for a warning); anywhere
below, an unknown key, a wrong type or a bad value stops the bot with one line that names the file,
the key path and the problem. YAML is read with a safe loader that also refuses duplicate keys.

Without a file, ``Policy.default()``: everyone may run any workflow (the caller offers only active,
API-triggerable ones) on their own user; nobody may target others or resume. With a file, someone
who matches no role may run nothing, and may decide only waits that name them as an approver.

One module per concept:

- ``permissions``: ``Policy``, the answers (may run, target, resume, decide; what is visible);
- ``rules``: the values it answers from and with (``Principal``, ``Decision``, ``Role``, ...);
- ``members``: who someone is (UPN domain rewrites, matching ids, UPNs and @handles);
- ``params``: a workflow's parameters checked against its rules;
- ``loading``: the file read, YAML parsed, checked and turned into rules (``PolicyError``);
- ``schema``: the file's pydantic schema; ``mrkdwn``: how reasons show names.
"""

from __future__ import annotations

from bot.policy.loading import PolicyError
from bot.policy.permissions import Policy
from bot.policy.rules import (
    ApprovalRule,
    ConsentRule,
    Decision,
    ParamError,
    ParamRule,
    Principal,
    Role,
    ScheduleRule,
    WorkflowRule,
)

__all__ = [
    "ApprovalRule",
    "ConsentRule",
    "Decision",
    "ParamError",
    "ParamRule",
    "Policy",
    "PolicyError",
    "Principal",
    "Role",
    "ScheduleRule",
    "WorkflowRule",
]
