"""Everything the store raises, as one small tree.

    StoreError
    ├── StoreConfigError   the database URL cannot work (unknown scheme, missing directory, :memory:)
    ├── StoreUnavailable   the database cannot be reached or used right now, or the store is closed
    ├── RecordNotFound     an update names a record id that does not exist
    └── TokenKeyMismatch   a stored Slack token cannot be decrypted with SLACK_TOKEN_ENCRYPTION_KEY

Driver and SQLAlchemy errors are translated in one place, ``engine.translate_errors``, always with
``raise ... from exc``. Messages name the database with its password hidden and never carry a
secret, so they can go to logs and to ``/readyz`` as they are.
"""

from __future__ import annotations

__all__ = [
    "RecordNotFound",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
    "TokenKeyMismatch",
]


class StoreError(Exception):
    """Base of every error raised by the store."""


class StoreConfigError(StoreError):
    """``DATABASE_URL`` names something the store cannot use; fix the configuration."""


class StoreUnavailable(StoreError):
    """The database is unreachable, refused the connection, timed out, or the store is closed."""


class RecordNotFound(StoreError):
    """An update or mark named a record that does not exist."""


class TokenKeyMismatch(StoreError):
    """A stored Slack token cannot be decrypted: it was encrypted with a key that is not configured."""
