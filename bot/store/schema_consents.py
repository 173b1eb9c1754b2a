"""The consent tables (kept apart from ``schema.py``, which is at its size limit): one row per
person asked (``consents``), and one per ask (``consent_rounds``: the people asked together, and
where the requester's reply showing each person's state lives)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text

from .column_types import JSONText, UTCDateTime
from .schema import metadata

__all__ = ["consent_rounds", "consents"]

consents = Table(
    "consents",
    metadata,
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
    Column("round_id", String(36)),  #: the ask it belongs to (None: asked before rounds existed)
    Index("ix_consents_state_expires", "state", "expires_at"),
    Index("ix_consents_request", "request_id"),
    Index("ix_consents_round", "round_id"),
)

#: one ask of one or more people: the requester's one reply lists them all, re-rendered from the
#: store at each change (``reply_channel``/``reply_ts`` once it is a message that ``chat.update``
#: can change, else ``response_url`` while Slack takes it). ``schedule_id``/``run_at``: asked
#: when the run was scheduled; an Allow then waits for the run's time.
consent_rounds = Table(
    "consent_rounds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("requester_id", Text, nullable=False),
    Column("workflow_id", Text, nullable=False),
    Column("rest", JSONText, nullable=False),  #: labels of the targets run at once
    Column("response_url", Text),
    Column("reply_channel", Text),
    Column("reply_ts", Text),
    Column("schedule_id", String(36)),
    Column("run_at", UTCDateTime),
    Index("ix_consent_rounds_schedule", "schedule_id"),
)
