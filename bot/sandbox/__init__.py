"""A local stand-in for a Nexthink tenant: the token endpoint, the five Workflows API endpoints
and NQL execute, over real HTTP, with a seeded catalogue and switches to inject faults.

- ``Sandbox`` (``server``): start/stop, journal, faults, executions, webhooks.
- ``catalogue``: the seeded workflows, users and devices (fixed ids; see its docstring).
- ``api``: the endpoints and their 400 ``ErrorResponse`` codes.
- ``executions``: how executions progress, pause, post their question, and end.
- ``faults``: fault kinds, when a faulted request is processed anyway, the text form.
- ``control``: the ``/_sandbox/*`` HTTP switches.
- ``run``: ``run_sandbox()`` for ``nexthink-bot sandbox``.
"""

from bot.sandbox.catalogue import (
    PAUSING_WORKFLOW_ID,
    SandboxCatalogue,
    SandboxDevice,
    SandboxUser,
    SandboxWorkflow,
)
from bot.sandbox.executions import (
    DEFAULT_OPTIONS,
    Execution,
    ExecutionStatus,
    Target,
    WebhookDelivery,
)
from bot.sandbox.faults import ENDPOINTS, FAULT_KINDS, Fault, FaultKind, FaultSet, parse_fault
from bot.sandbox.journal import JournalEntry
from bot.sandbox.run import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PORT, run_sandbox
from bot.sandbox.server import Sandbox

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_OPTIONS",
    "DEFAULT_PORT",
    "ENDPOINTS",
    "FAULT_KINDS",
    "PAUSING_WORKFLOW_ID",
    "Execution",
    "ExecutionStatus",
    "Fault",
    "FaultKind",
    "FaultSet",
    "JournalEntry",
    "Sandbox",
    "SandboxCatalogue",
    "SandboxDevice",
    "SandboxUser",
    "SandboxWorkflow",
    "Target",
    "WebhookDelivery",
    "parse_fault",
    "run_sandbox",
]
