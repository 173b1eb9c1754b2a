"""Numbered schema migrations, applied when the store opens.

``schema_version`` holds one row per applied step. ``migrate`` runs the missing steps in order,
each with its version row, in one transaction that holds a database-wide lock:

* PostgreSQL: ``pg_advisory_xact_lock`` (released at commit or rollback); DDL is transactional.
* SQLite: the engine's ``BEGIN IMMEDIATE`` takes the write lock; the other opener waits
  (``busy_timeout``) and then finds the steps applied.

Two processes starting at once therefore apply each step exactly once. Every step without its
version row is applied, in order, also one below the highest applied (a database made by a build
that had a later step but not an earlier one). A database migrated by a newer release (a higher
version than this code knows) keeps its extra steps.

To change the schema, append a ``Migration`` whose ``apply`` issues the DDL (written out here, not
taken from ``schema.py``, so that old steps never change), then update ``schema.py`` to match.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from .migration_steps import (
    v9_consents,
    v10_request_tickets,
    v12_fleet_runs,
    v13_consent_rounds,
    v15_fleet_run_tickets,
)
from .schema import JSONText, UTCDateTime, schema_version

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration", "current_version", "migrate"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    md = MetaData()
    Table(
        "requests",
        md,
        Column("id", String(36), primary_key=True),
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
        Index("ix_requests_user_created", "user_id", "created_at"),
    )
    waits = Table(
        "waits",
        md,
        Column("id", String(36), primary_key=True),
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
        Index("ix_waits_state_expires", "state", "expires_at"),
    )
    active = waits.c.state.in_(["pending", "claimed"])
    Index(
        "uq_waits_active_execution",
        waits.c.workflow_uuid,
        waits.c.execution_uuid,
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )
    Table(
        "approvals",
        md,
        Column("id", String(36), primary_key=True),
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
        Index("ix_approvals_state_expires", "state", "expires_at"),
        Index("ix_approvals_request", "request_id"),
    )
    Table(
        "approval_votes",
        md,
        Column("approval_id", String(36), ForeignKey("approvals.id"), primary_key=True),
        Column("user_id", Text, primary_key=True),
        Column("upn", Text),
        Column("voted_at", UTCDateTime, nullable=False),
    )
    Table(
        "followups",
        md,
        Column("id", String(36), primary_key=True),
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
    )
    md.create_all(conn)


def _v2_rate_limits(conn: Connection) -> None:
    # one row per key: the hits inside the window (an array on PostgreSQL, JSON text on SQLite)
    hits = "DOUBLE PRECISION[]" if conn.dialect.name == "postgresql" else "TEXT"
    real = "DOUBLE PRECISION" if conn.dialect.name == "postgresql" else "REAL"
    conn.exec_driver_sql(
        f"CREATE TABLE rate_limits (key TEXT PRIMARY KEY, hits {hits} NOT NULL, "
        f"last_hit {real} NOT NULL)"
    )
    conn.exec_driver_sql("CREATE INDEX ix_rate_limits_last_hit ON rate_limits (last_hit)")


def _v3_audit_events(conn: Connection) -> None:
    md = MetaData()
    audit = Table(
        "audit_events",
        md,
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
    Index("ix_audit_events_actor_upn", func.lower(audit.c.actor_upn), audit.c.occurred_at)
    md.create_all(conn)


def _v4_slack_oauth(conn: Connection) -> None:
    """slack_sdk's installation and OAuth state tables, as its SQLAlchemy stores define them
    (slack-sdk 3.48), except that token columns are TEXT: they hold Fernet ciphertext."""
    md = MetaData()
    Table(
        "slack_installations",
        md,
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
    Table(
        "slack_bots",
        md,
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
    Table(
        "slack_oauth_states",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("state", String(200), nullable=False),
        Column("expire_at", DateTime, nullable=False),
    )
    md.create_all(conn)


def _v5_indexes_for_a_big_store(conn: Connection) -> None:
    """Indexes found missing by bench/store.py on a year of records (1,000,000 requests).

    * ``history`` orders a user's requests by ``created_at DESC, id DESC``: with ``id`` in the
      index the newest ``limit`` rows are read from it in order, not sorted from all of the
      user's rows. It replaces ``(user_id, created_at)``, of which it is an extension.
    * ``followups_for`` (the Home tab's recent requests) looks follow-ups up by
      ``request_id``, which had no index: a scan of every follow-up ever made.
    """
    conn.execute(
        text(
            "CREATE INDEX IF NOT EXISTS ix_requests_user_created_id "
            "ON requests (user_id, created_at, id)"
        )
    )
    conn.execute(text("DROP INDEX IF EXISTS ix_requests_user_created"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_followups_request ON followups (request_id)"))


def _v7_request_executions(conn: Connection) -> None:
    """Which request started each execution (the requester of its question, by record)."""
    md = MetaData()
    Table("requests", md, Column("id", String(36), primary_key=True))  # exists: referenced only
    links = Table(
        "request_executions",
        md,
        Column("execution_uuid", Text, primary_key=True),
        Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn, tables=[links])
    index = "ix_waits_execution ON waits (workflow_uuid, execution_uuid)"  # resume finds questions
    conn.execute(text(f"CREATE INDEX IF NOT EXISTS {index}"))


def _v6_reminders_and_stand_ins(conn: Connection) -> None:
    """Approvals that don't die unseen: reminders, escalation, stand-ins, reasons and comments.

    * ``approvals`` and ``waits`` keep their reminder plan (``remind_after_minutes``,
      ``escalate_after_minutes``, ``escalate_to``) and ``next_nudge_at``, the next time the sweep
      has something to do for them (indexed with ``state``, so the sweep reads only those due).
    * ``approval_votes.cast_by``: the stand-in who cast a vote for the approver it counts as;
      ``approval_votes.comment``: the approver's comment. ``approvals.denied_for`` and
      ``waits.decided_for``: the approver a stand-in decided for.
    * ``nudges``: one row per (request, person, round) sent; its primary key is the claim that
      makes a reminder go out once across replicas and restarts.
    * ``delegations``: one stand-in per person, until an optional end.
    """
    pg = conn.dialect.name == "postgresql"
    stamp = "TIMESTAMP WITH TIME ZONE" if pg else "DATETIME"
    real = "DOUBLE PRECISION" if pg else "FLOAT"
    for table in ("approvals", "waits"):
        for column, kind in (
            ("remind_after_minutes", real),
            ("escalate_after_minutes", real),
            ("escalate_to", "TEXT"),
            ("next_nudge_at", stamp),
        ):
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        conn.exec_driver_sql(
            f"CREATE INDEX ix_{table}_state_nudge ON {table} (state, next_nudge_at)"
        )
    conn.exec_driver_sql("ALTER TABLE approvals ADD COLUMN denied_for TEXT")
    conn.exec_driver_sql("ALTER TABLE waits ADD COLUMN decided_for TEXT")
    conn.exec_driver_sql("ALTER TABLE approval_votes ADD COLUMN cast_by TEXT")
    conn.exec_driver_sql("ALTER TABLE approval_votes ADD COLUMN comment TEXT")
    md = MetaData()
    Table(
        "nudges",
        md,
        Column("subject_id", String(36), primary_key=True),
        Column("user_id", Text, primary_key=True),
        Column("round", Integer, primary_key=True, autoincrement=False),
        Column("sent_at", UTCDateTime, nullable=False),
    )
    Table(
        "delegations",
        md,
        Column("user_id", Text, primary_key=True),
        Column("user_upn", Text),
        Column("stand_in_id", Text, nullable=False),
        Column("stand_in_upn", Text),
        Column("until", UTCDateTime),
        Column("created_at", UTCDateTime, nullable=False),
        Column("team_id", Text),
        Index("ix_delegations_stand_in", "stand_in_id"),
    )
    md.create_all(conn)


def _v8_schedules(conn: Connection) -> None:
    """Scheduled runs: one row per run asked for later, claimed by one replica at its time."""
    md = MetaData()
    Table("requests", md, Column("id", String(36), primary_key=True))
    Table(
        "schedules",
        md,
        Column("id", String(36), primary_key=True),
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
    md.tables["schedules"].create(conn)


def _v11_workspaces(conn: Connection) -> None:
    """Enterprise Grid: where a request (``enterprise_id``, beside its ``team_id``) and a wait
    (``team_id``, ``enterprise_id``) happened, so later work uses that workspace's Slack."""
    conn.execute(text("ALTER TABLE requests ADD COLUMN enterprise_id TEXT"))
    conn.execute(text("ALTER TABLE waits ADD COLUMN team_id TEXT"))
    conn.execute(text("ALTER TABLE waits ADD COLUMN enterprise_id TEXT"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "requests, waits, approvals, approval_votes, followups", _v1_initial),
    Migration(2, "rate_limits: the per-user run limit shared by replicas", _v2_rate_limits),
    Migration(3, "audit_events: the audit trail", _v3_audit_events),
    Migration(4, "slack_installations, slack_bots, slack_oauth_states (OAuth)", _v4_slack_oauth),
    Migration(5, "indexes for history and follow-ups by request", _v5_indexes_for_a_big_store),
    Migration(
        6, "reminders, escalation, stand-ins, reasons, comments", _v6_reminders_and_stand_ins
    ),
    Migration(
        7, "request_executions: the request that started each execution", _v7_request_executions
    ),
    Migration(8, "schedules: runs asked for later", _v8_schedules),
    Migration(9, "consents: the person on the other end allows a run", v9_consents),
    Migration(10, "requests.ticket; history by ticket, workflow, UPN", v10_request_tickets),
    Migration(11, "requests.enterprise_id, waits.team_id and enterprise_id", _v11_workspaces),
    Migration(12, "fleet_runs: fleet runs shown with Run and Cancel", v12_fleet_runs),
    Migration(13, "consent_rounds; consents.round_id", v13_consent_rounds),
    # 14: never used (a number set aside for a branch that needed no step); versions need not be
    # contiguous, each one is applied once, in order
    Migration(15, "fleet_runs.ticket: a fleet run's change ticket", v15_fleet_run_tickets),
)
LATEST_VERSION = MIGRATIONS[-1].version


def _lock_key(schema: str | None) -> int:
    """A stable signed 64-bit advisory lock key, distinct per PostgreSQL schema."""
    return zlib.crc32(f"nexthink-bot:migrations:{schema or ''}".encode()) - 2**31


async def current_version(conn: AsyncConnection) -> int | None:
    """The highest applied step, or None if ``schema_version`` is missing or empty."""

    def _has_table(sync: Connection) -> bool:
        return sync.dialect.has_table(sync, "schema_version")

    if not await conn.run_sync(_has_table):
        return None
    result = await conn.execute(select(func.max(schema_version.c.version)))
    value = result.scalar()
    return int(value) if value is not None else None


async def migrate(conn: AsyncConnection, *, schema: str | None = None) -> list[int]:
    """Apply the missing steps inside the caller's transaction; return the versions applied.

    ``conn`` must be in a write transaction (``engine.begin()``); on PostgreSQL ``schema`` (if
    given) is created here, under the lock, and must already be on the connection's search_path.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(schema)})
        if schema is not None:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    await conn.run_sync(lambda sync: schema_version.create(sync, checkfirst=True))
    done = set((await conn.execute(select(schema_version.c.version))).scalars())
    applied: list[int] = []
    for step in MIGRATIONS:
        if step.version in done:
            continue
        await conn.run_sync(step.apply)
        await conn.execute(
            schema_version.insert().values(
                version=step.version, description=step.description, applied_at=datetime.now(UTC)
            )
        )
        applied.append(step.version)
    return applied
