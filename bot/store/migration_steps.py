"""Migration steps kept apart from ``migrations.py`` (which lists them all, in order), so that
neither module grows past 500 lines. Like every step, the DDL is written out here, not taken
from ``schema.py``, so that an old step never changes."""

from __future__ import annotations

from sqlalchemy import Column, Connection, ForeignKey, Index, MetaData, String, Table, Text

from .schema import UTCDateTime

__all__ = ["v9_consents"]


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
