"""Migration steps kept apart from ``migrations.py`` (which lists them all, in order), so that
neither module grows past 500 lines. Like every step, the DDL is written out here, not taken
from ``schema.py``, so that an old step never changes."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from .schema import JSONText, UTCDateTime

__all__ = [
    "v9_consents",
    "v10_request_tickets",
    "v12_fleet_runs",
    "v13_consent_rounds",
    "v15_fleet_run_tickets",
]


def v9_consents(conn: Connection) -> None:
    """consents: a person asked to allow a run on them; one row per person asked."""
    md = MetaData()
    Table("requests", md, Column("id", String(36), primary_key=True))
    Table(
        "consents",
        md,
        Column("id", String(36), primary_key=True),
        Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
        Column("user_id", Text, nullable=False),
        Column("upn", Text, nullable=False),
        Column("label", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("expires_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("state", String(16), nullable=False),
        Column("message_channel", Text),
        Column("message_ts", Text),
        Column("decided_at", UTCDateTime),
        Index("ix_consents_state_expires", "state", "expires_at"),
        Index("ix_consents_request", "request_id"),
    )
    md.tables["consents"].create(conn)


def v10_request_tickets(conn: Connection) -> None:
    """``requests.ticket``: the change ticket a run was tied to (policy ``ticket:``), and the
    indexes behind an auditor's ``history ticket:<ref>``, ``history workflow:<id>`` and
    ``history user:<upn>``."""
    conn.execute(text("ALTER TABLE requests ADD COLUMN ticket TEXT"))
    for name, columns in (
        ("ix_requests_ticket_created_id", "ticket, created_at, id"),
        ("ix_requests_workflow_created_id", "workflow_id, created_at, id"),
        ("ix_requests_upn_created", "lower(user_upn), created_at"),
    ):
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON requests ({columns})"))


def v12_fleet_runs(conn: Connection) -> None:
    """Fleet runs waiting for their requester's Run or Cancel (``fleet_runs.py``)."""
    md = MetaData()
    Table(
        "fleet_runs",
        md,
        Column("id", String(36), primary_key=True),
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
        Index("ix_fleet_runs_created", "created_at"),
    )
    md.create_all(conn)


def v15_fleet_run_tickets(conn: Connection) -> None:
    """``fleet_runs.ticket``: the change ticket of a fleet run, kept from its preview to its Run
    click (policy ``ticket:``)."""
    conn.execute(text("ALTER TABLE fleet_runs ADD COLUMN ticket TEXT"))


def v13_consent_rounds(conn: Connection) -> None:
    """consent_rounds: the people asked together, and where the requester's reply lives;
    ``consents.round_id``."""
    md = MetaData()
    Table(
        "consent_rounds",
        md,
        Column("id", String(36), primary_key=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("requester_id", Text, nullable=False),
        Column("workflow_id", Text, nullable=False),
        Column("rest", JSONText, nullable=False),
        Column("response_url", Text),
        Column("reply_channel", Text),
        Column("reply_ts", Text),
        Column("schedule_id", String(36)),
        Column("run_at", UTCDateTime),
        Index("ix_consent_rounds_schedule", "schedule_id"),
    )
    md.tables["consent_rounds"].create(conn)
    conn.execute(text("ALTER TABLE consents ADD COLUMN round_id VARCHAR(36)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_consents_round ON consents (round_id)"))
