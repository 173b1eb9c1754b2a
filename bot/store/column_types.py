"""Column types that keep SQLite and PostgreSQL alike.

* ``UTCDateTime``: aware UTC datetimes in, aware UTC datetimes out. PostgreSQL stores
  ``timestamptz``; SQLite stores fixed-width ISO text in UTC, whose text order is time order, so
  ``expires_at > :now`` means the same thing on both.
* ``JSONText``: JSON kept as TEXT, identical on both backends; the store never queries inside it.
* ``HitTimes`` (``rate_limits.hits``) differs on purpose: ``double precision[]`` on PostgreSQL,
  JSON in TEXT on SQLite, as the rate-limit check reads inside it in one statement
  (``ratelimits.py``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect, Text
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION
from sqlalchemy.types import DateTime, TypeDecorator, TypeEngine

__all__ = ["HitTimes", "JSONText", "UTCDateTime"]


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


class HitTimes(TypeDecorator[list[float]]):
    """A list of epoch seconds: ``double precision[]`` on PostgreSQL, a JSON array on SQLite."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(DOUBLE_PRECISION))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: list[float] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.dumps(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[float] | None:
        if value is None:
            return None
        items = json.loads(value) if isinstance(value, str) else value
        return [float(v) for v in items]
