"""The bot's database: requests, paused executions, approvals, follow-ups and the audit trail.

One code path (SQLAlchemy 2 async Core) for SQLite (``sqlite:///path.db``, one process) and
PostgreSQL (``postgresql://...``, several replicas)::

    store = await Store.open(settings.database_url)   # migrates
    await store.ping()                                 # for /readyz
    await store.close()

Decisions that must have one winner (claiming a wait, the vote that reaches an approval's count,
denying, expiring, leasing follow-ups) are made inside the database, atomically, so they hold
across processes as well as coroutines. See ``waits.py`` and ``approvals.py``.

Slack OAuth installs live here too: ``store.slack_installations(...)`` and
``store.slack_oauth_states(...)`` are slack_sdk's SQLAlchemy stores on this database, tokens
encrypted (``installations``, ``oauth_states``, ``token_cipher``).

Scheduled runs (``schedules``) are claimed when due by exactly one replica.

Modules: ``engine`` (URLs, connections, error translation), ``migrations``, ``schema``,
``records``, ``errors``, and one module per record kind.
"""

from __future__ import annotations

from ._base import Write
from .audit import AuditQuery
from .consent_rounds import RoundPerson, RoundRecord
from .consents import ConsentAnswer, ConsentRecord, ConsentState
from .errors import (
    RecordNotFound,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    TokenKeyMismatch,
)
from .fleet_runs import FleetRunRecord, FleetRunState
from .installations import InstallationCensus, InstallationStore
from .migrations import LATEST_VERSION
from .oauth_states import OAuthStateStore
from .records import (
    AUDIT_EVENTS,
    AUDIT_FIELDS,
    ApprovalRecord,
    ApprovalState,
    ApprovalVote,
    AuditEvent,
    AuditRecord,
    ClaimRefusal,
    ClaimRefusalReason,
    DelegationRecord,
    DenyResult,
    FollowupRecord,
    NudgePlan,
    RequestKind,
    RequestRecord,
    RequestState,
    ScheduleRecord,
    ScheduleState,
    VoteRefusalReason,
    VoteResult,
    WaitOption,
    WaitRecord,
    WaitState,
)
from .schedules import ScheduleDone
from .store import Store

__all__ = [
    "AUDIT_EVENTS",
    "AUDIT_FIELDS",
    "LATEST_VERSION",
    "ApprovalRecord",
    "ApprovalState",
    "ApprovalVote",
    "AuditEvent",
    "AuditQuery",
    "AuditRecord",
    "ClaimRefusal",
    "ClaimRefusalReason",
    "ConsentAnswer",
    "ConsentRecord",
    "ConsentState",
    "DelegationRecord",
    "DenyResult",
    "FleetRunRecord",
    "FleetRunState",
    "FollowupRecord",
    "InstallationCensus",
    "InstallationStore",
    "NudgePlan",
    "OAuthStateStore",
    "RecordNotFound",
    "RequestKind",
    "RequestRecord",
    "RequestState",
    "RoundPerson",
    "RoundRecord",
    "ScheduleDone",
    "ScheduleRecord",
    "ScheduleState",
    "Store",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
    "TokenCipher",
    "TokenKeyMismatch",
    "VoteRefusalReason",
    "VoteResult",
    "WaitOption",
    "WaitRecord",
    "WaitState",
    "Write",
]


def __getattr__(name: str) -> object:
    """``TokenCipher`` on first use: it imports ``cryptography`` (7.8 MiB), needed only with
    OAuth installs (``SLACK_TOKEN_ENCRYPTION_KEY``)."""
    if name == "TokenCipher":
        from .token_cipher import TokenCipher

        return TokenCipher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
