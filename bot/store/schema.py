"""The current shape of the tables, as SQLAlchemy Core objects the queries are written against.

The tables are *created* by the numbered steps in ``migrations.py``, never from this module, so
that a database made years ago and one made today end in the same place. A test compares the
migrated database with these definitions.

Two column types keep both backends alike:

* ``UTCDateTime``: aware UTC datetimes in, aware UTC datetimes out. PostgreSQL stores
  ``timestamptz``; SQLite stores fixed-width ISO text in UTC, whose text order is time order, so
  ``expires_at > :now`` means the same thing on both.
* ``JSONText``: JSON kept as TEXT, identical on both backends; the store never queries inside it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import DateTime, TypeDecorator

__all__ = [
    "ACTIVE_WAIT_STATES",
    "JSONText",
    "UTCDateTime",
    "approval_votes",
    "approvals",
    "followups",
    "metadata",
    "requests",
    "schema_version",
    "waits",
]

#: states in which a wait still stands for its execution; at most one per execution.
ACTIVE_WAIT_STATES = ("pending", "claimed")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store takes timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONText(TypeDecorator[Any]):
    """Any JSON value, stored as TEXT."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


def _id(name: str = "id") -> Column[str]:
    return Column(name, String(36), primary_key=True)


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
    Index("ix_requests_user_created_id", "user_id", "created_at", "id"),
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
    Index("ix_waits_state_expires", "state", "expires_at"),
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
    Index("ix_approvals_state_expires", "state", "expires_at"),
    Index("ix_approvals_request", "request_id"),
)

approval_votes = Table(
    "approval_votes",
    metadata,
    Column("approval_id", String(36), ForeignKey("approvals.id"), primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("upn", Text),
    Column("voted_at", UTCDateTime, nullable=False),
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

# A repeated webhook for the same paused execution must find the existing wait, not add one.
Index(
    "uq_waits_active_execution",
    waits.c.workflow_uuid,
    waits.c.execution_uuid,
    unique=True,
    sqlite_where=waits.c.state.in_(ACTIVE_WAIT_STATES),
    postgresql_where=waits.c.state.in_(ACTIVE_WAIT_STATES),
)
