"""The current shape of the tables, as SQLAlchemy Core objects the queries are written against.

The tables are *created* by the numbered steps in ``migrations.py``, never from this module, so
that a database made years ago and one made today end in the same place (a test compares them).
The column types that keep both backends alike (``UTCDateTime``, ``JSONText``, ``HitTimes``) are
in ``column_types.py``.

The ``slack_*`` tables are slack_sdk's (``AsyncSQLAlchemyInstallationStore`` and
``AsyncSQLAlchemyOAuthStateStore``, which write the queries): same names, columns, types and index,
naive UTC ``DateTime`` as the library writes it, except that the four token columns are TEXT, not
VARCHAR(200): they hold Fernet ciphertext, ~1.4 times the token + 100 chars (``installations.py``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)

from .column_types import HitTimes, JSONText, UTCDateTime

__all__ = [
    "ACTIVE_WAIT_STATES",
    "SLACK_TOKEN_COLUMNS",
    "HitTimes",
    "JSONText",
    "UTCDateTime",
    "approval_votes",
    "approvals",
    "audit_events",
    "delegations",
    "fleet_runs",
    "followups",
    "metadata",
    "nudges",
    "rate_limits",
    "request_executions",
    "requests",
    "schedules",
    "schema_version",
    "slack_bots",
    "slack_installations",
    "slack_oauth_states",
    "waits",
]

#: the columns of ``slack_installations`` and ``slack_bots`` that hold tokens (encrypted at rest)
SLACK_TOKEN_COLUMNS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")

#: states in which a wait still stands for its execution; at most one per execution.
ACTIVE_WAIT_STATES = ("pending", "claimed")


def _id(name: str = "id") -> Column[str]:
    return Column(name, String(36), primary_key=True)


def _nudge_plan() -> list[Column[Any]]:
    """An approval's or wait's reminders: every ``remind_after_minutes``; ``escalate_to`` may
    decide too after ``escalate_after_minutes``; ``next_nudge_at``: when the sweep looks again."""
    return [
        Column("remind_after_minutes", Float),
        Column("escalate_after_minutes", Float),
        Column("escalate_to", JSONText),
        Column("next_nudge_at", UTCDateTime),
    ]


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

requests = Table(
    "requests",
    metadata,
    _id(),
    Column("kind", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("team_id", Text),
    Column("channel_id", Text),
    Column("user_id", Text, nullable=False),
    Column("user_upn", Text),
    Column("workflow_id", Text),
    Column("targets", JSONText, nullable=False),
    Column("params", JSONText, nullable=False),
    Column("state", String(24), nullable=False),
    Column("nexthink_request_uuids", JSONText, nullable=False),
    Column("executions_uuids", JSONText, nullable=False),
    Column("error", Text),
    Column("approved_by", JSONText, nullable=False),
    Column("response_url", Text),
    Column("message_channel", Text),
    Column("message_ts", Text),
    Column("ticket", Text),
    Column("enterprise_id", Text),  # migration 11
    Index("ix_requests_user_created_id", "user_id", "created_at", "id"),
    Index("ix_requests_ticket_created_id", "ticket", "created_at", "id"),
    Index("ix_requests_workflow_created_id", "workflow_id", "created_at", "id"),
)

waits = Table(
    "waits",
    metadata,
    _id(),
    Column("workflow_uuid", Text, nullable=False),
    Column("execution_uuid", Text, nullable=False),
    Column("channel_id", Text),
    Column("dm_user_upn", Text),
    Column("text", Text, nullable=False),
    Column("options", JSONText, nullable=False),
    Column("approvers", JSONText, nullable=False),
    Column("approver_parameter", Text),
    Column("requester_upn", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("decided_by", Text),
    Column("decided_upn", Text),
    Column("decision", Integer),
    Column("claimed_at", UTCDateTime),
    Column("decided_at", UTCDateTime),
    Column("outcome", Text),
    Column("message_channel", Text),
    Column("message_ts", Text),
    Column("claim_token", String(36)),
    *_nudge_plan(),
    Column("decided_for", Text),  #: the approver a stand-in decided for
    Column("team_id", Text),  # migration 11
    Column("enterprise_id", Text),  # migration 11
    Index("ix_waits_state_expires", "state", "expires_at"),
    Index("ix_waits_execution", "workflow_uuid", "execution_uuid"),
    Index("ix_waits_state_nudge", "state", "next_nudge_at"),
)

approvals = Table(
    "approvals",
    metadata,
    _id(),
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
    Column("channel_id", Text),
    Column("approvers", JSONText, nullable=False),
    Column("required_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("message_channel", Text),
    Column("message_ts", Text),
    Column("denied_by", Text),
    Column("deny_reason", Text),
    Column("decided_at", UTCDateTime),
    *_nudge_plan(),
    Column("denied_for", Text),  #: the approver a stand-in denied for
    Index("ix_approvals_state_expires", "state", "expires_at"),
    Index("ix_approvals_request", "request_id"),
    Index("ix_approvals_state_nudge", "state", "next_nudge_at"),
)

approval_votes = Table(
    "approval_votes",
    metadata,
    Column("approval_id", String(36), ForeignKey("approvals.id"), primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("upn", Text),
    Column("voted_at", UTCDateTime, nullable=False),
    Column("cast_by", Text),  #: the stand-in who cast it for ``user_id``, if not themselves
    Column("comment", Text),  #: the approver's comment, as typed
)

#: one row per reminder (or escalation notice, round 0) sent to a person about an approval or a
#: wait; the primary key is the claim that sends it once across replicas and restarts.
nudges = Table(
    "nudges",
    metadata,
    Column("subject_id", String(36), primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("round", Integer, primary_key=True, autoincrement=False),
    Column("sent_at", UTCDateTime, nullable=False),
)

#: a person's stand-in while they are away (``/nexthink delegate``); one per person.
delegations = Table(
    "delegations",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("user_upn", Text),
    Column("stand_in_id", Text, nullable=False),
    Column("stand_in_upn", Text),
    Column("until", UTCDateTime),  #: the end (exclusive); None: until ended
    Column("created_at", UTCDateTime, nullable=False),
    Column("team_id", Text),
    Index("ix_delegations_stand_in", "stand_in_id"),
)

followups = Table(
    "followups",
    metadata,
    _id(),
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
    Column("nexthink_request_uuid", Text, nullable=False),
    Column("next_poll_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("last_status", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_followups_due", "done", "next_poll_at"),
    Index("ix_followups_request", "request_id"),
)

#: a fleet run shown to its requester with Run and Cancel (``fleet_runs.py``): nothing runs before
#: the Run click that moves ``state`` from ``pending`` to ``started``, once, in one statement.
fleet_runs = Table(
    "fleet_runs",
    metadata,
    _id(),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("team_id", Text),
    Column("channel_id", Text),
    Column("user_id", Text, nullable=False),
    Column("workflow_id", Text, nullable=False),
    Column("query_id", Text, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("targets", JSONText, nullable=False),
    Column("params", JSONText, nullable=False),
    Column("visible", Boolean, nullable=False),
    Column("response_url", Text),
    Column("decided_at", UTCDateTime),
    Column("ticket", Text),
    Index("ix_fleet_runs_created", "created_at"),
)

#: one row per audited event, appended and never changed (``records.AuditRecord``); ``id`` is a
#: sequence that orders events of the same instant, so (occurred_at, id) is the export's key.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("event", String(32), nullable=False),
    Column("actor", Text),
    Column("actor_upn", Text),
    Column("workflow", Text),
    Column("targets", JSONText, nullable=False),
    Column("params", JSONText, nullable=False),
    Column("ticket", Text),
    Column("request_uuid", Text),
    Column("execution_uuids", JSONText, nullable=False),
    Column("result", Text),
    Column("detail", Text),
    Column("request_id", String(36)),
    Column("enterprise_id", Text),
    Column("team_id", Text),
    Index("ix_audit_events_time", "occurred_at", "id"),
    Index("ix_audit_events_actor", "actor", "occurred_at"),
    Index("ix_audit_events_workflow", "workflow", "occurred_at"),
    Index("ix_audit_events_ticket", "ticket", "occurred_at"),
)
Index("ix_audit_events_actor_upn", func.lower(audit_events.c.actor_upn), audit_events.c.occurred_at)
Index("ix_requests_upn_created", func.lower(requests.c.user_upn), requests.c.created_at)

# A repeated webhook for the same paused execution must find the existing wait, not add one.
Index(
    "uq_waits_active_execution",
    waits.c.workflow_uuid,
    waits.c.execution_uuid,
    unique=True,
    sqlite_where=waits.c.state.in_(ACTIVE_WAIT_STATES),
    postgresql_where=waits.c.state.in_(ACTIVE_WAIT_STATES),
)

# The per-key sliding window of the rate limit (``ratelimits.py``), shared by every replica.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", Text, primary_key=True),
    Column("hits", HitTimes, nullable=False),
    Column("last_hit", Float, nullable=False),
    Index("ix_rate_limits_last_hit", "last_hit"),
)

request_executions = Table(  # the request that started each execution (``request_for_execution``)
    "request_executions",
    metadata,
    Column("execution_uuid", Text, primary_key=True),
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Runs asked for later (``schedules.py``): claimed by one replica when due.
schedules = Table(
    "schedules",
    metadata,
    _id(),
    Column("code", String(16), nullable=False, unique=True),
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
    Column("team_id", Text),
    Column("channel_id", Text),
    Column("user_id", Text, nullable=False),
    Column("user_upn", Text),
    Column("workflow", Text, nullable=False),
    Column("ask", JSONText, nullable=False),
    Column("run_at", UTCDateTime, nullable=False),
    Column("state", String(24), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("claimed_at", UTCDateTime),
    Column("claim_token", String(36)),
    Column("sending_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("detail", Text),
    Column("cancelled_by", Text),
    Index("ix_schedules_state_run_at", "state", "run_at"),
    Index("ix_schedules_user_state", "user_id", "state", "run_at"),
    Index("ix_schedules_request", "request_id"),
)

# -- slack_sdk's OAuth tables (see the module docstring) -------------------------------------

slack_installations = Table(
    "slack_installations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("enterprise_url", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", Text),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", Text),
    Column("bot_token_expires_at", DateTime),
    Column("user_id", String(32), nullable=False),
    Column("user_token", Text),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", Text),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", String(200)),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("is_enterprise_install", Boolean, nullable=False),
    Column("token_type", String(32)),
    Column("installed_at", DateTime, nullable=False),
    Index(
        "slack_installations_idx",
        "client_id",
        "enterprise_id",
        "team_id",
        "user_id",
        "installed_at",
    ),
)

slack_bots = Table(
    "slack_bots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", Text),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", Text),
    Column("bot_token_expires_at", DateTime),
    Column("is_enterprise_install", Boolean, nullable=False),
    Column("installed_at", DateTime, nullable=False),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

slack_oauth_states = Table(
    "slack_oauth_states",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)
