"""The ``Store`` facade: open, migrate, ping, close; records via its mixins."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from .approvals import ApprovalsMixin
from .audit import AuditMixin
from .consent_rounds import RoundsMixin
from .consents import ConsentsMixin
from .delegations import DelegationsMixin
from .engine import create_engine, describe_url, driver_url, enable_wal, translate_errors
from .errors import StoreUnavailable
from .fleet_runs import FleetRunsMixin
from .followups import FollowupsMixin
from .installations import InstallationStore
from .migrations import LATEST_VERSION, migrate
from .nudges import NudgesMixin
from .oauth_states import OAuthStateStore
from .ratelimits import RateLimitsMixin
from .requests import RequestsMixin
from .schedules import SchedulesMixin
from .schema import schema_version
from .waits import WaitsMixin

if TYPE_CHECKING:
    from .token_cipher import TokenCipher

__all__ = ["Store"]


class Store(
    RequestsMixin,
    WaitsMixin,
    ApprovalsMixin,
    ConsentsMixin,
    RoundsMixin,
    FollowupsMixin,
    RateLimitsMixin,
    AuditMixin,
    NudgesMixin,
    DelegationsMixin,
    SchedulesMixin,
    FleetRunsMixin,
):
    """The bot's database: SQLite (one process) or PostgreSQL (several replicas), one code path.

    Open with ``await Store.open(settings.database_url)`` and ``await store.close()`` at the end.
    """

    @classmethod
    async def open(
        cls,
        database_url: str,
        *,
        schema: str | None = None,
        pool_size: int = 5,
        max_overflow: int = 15,
        connect_timeout: float = 5.0,
        busy_timeout: float = 10.0,
    ) -> Store:
        """Connect, apply missing migrations and return the store.

        ``schema`` (PostgreSQL only) puts the tables in that schema, created if missing. Raises
        ``StoreConfigError`` for an unusable URL (such as a SQLite file in a directory that does
        not exist) and ``StoreUnavailable`` when the database cannot be reached or migrated.
        """
        url = driver_url(database_url)
        where = describe_url(url)
        engine = create_engine(
            url,
            schema=schema,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_timeout=connect_timeout,
            busy_timeout=busy_timeout,
        )
        limit = connect_timeout + busy_timeout + 30.0
        try:
            async with asyncio.timeout(limit):
                with translate_errors(where, everything_unavailable=True):
                    if engine.dialect.name == "sqlite":
                        await enable_wal(engine, busy_timeout)
                    async with engine.begin() as conn:
                        await migrate(conn, schema=schema)
        except TimeoutError:
            await engine.dispose()
            raise StoreUnavailable(
                f"database {where} did not finish opening within {limit:g} s"
            ) from None
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, where=where, ping_timeout=connect_timeout)

    async def close(self) -> None:
        """Close every pooled connection; the store answers ``StoreUnavailable`` afterwards."""
        engine, self._engine, self._reader = self._engine, None, None
        if engine is not None:
            await engine.dispose()

    async def ping(self) -> None:
        """Return if the database answers and is migrated; else raise ``StoreUnavailable``.

        Gives up after the ``connect_timeout`` given to ``open`` (5 s by default).
        """
        engine = self._live(read_only=True)
        timeout = self._ping_timeout
        try:
            async with asyncio.timeout(timeout):
                with translate_errors(self._where, everything_unavailable=True):
                    async with engine.begin() as conn:
                        version = (
                            await conn.execute(select(func.max(schema_version.c.version)))
                        ).scalar()
        except TimeoutError:
            raise StoreUnavailable(
                f"database {self._where} did not answer within {timeout:g} s"
            ) from None
        if version is None or version < LATEST_VERSION:
            raise StoreUnavailable(
                f"database {self._where} is at schema version {version}, "
                f"this bot needs {LATEST_VERSION}"
            )

    # -- Slack OAuth installs (slack_sdk's stores on this database) ---------------------------

    def slack_installations(self, *, client_id: str, cipher: TokenCipher) -> InstallationStore:
        """The installations of the Slack app ``client_id``, tokens encrypted with ``cipher``."""
        return InstallationStore(
            self._live(), client_id=client_id, cipher=cipher, where=self._where
        )

    def slack_oauth_states(self, *, secret: str, expiration_seconds: int = 600) -> OAuthStateStore:
        """The OAuth states of installs in progress, signed with ``secret`` (SLACK_STATE_SECRET)."""
        return OAuthStateStore(
            self._live(), secret=secret, where=self._where, expiration_seconds=expiration_seconds
        )

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
