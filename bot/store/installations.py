"""Slack installations (OAuth installs, workspace or org-wide) kept in the store, tokens encrypted.

``InstallationStore`` is slack_sdk's ``AsyncSQLAlchemyInstallationStore`` on the store's engine and
tables (``slack_installations``, ``slack_bots``, created by migration 2), with two additions:

* The token columns (``bot_token``, ``bot_refresh_token``, ``user_token``,
  ``user_refresh_token``) are encrypted and decrypted by the column type (``SealedToken``), so the
  library's queries run unchanged and no token is ever written in clear. A token the configured
  key cannot decrypt raises ``TokenKeyMismatch``, which says so.
* Driver errors become the store's errors (``StoreUnavailable``, ``StoreError``), and reads on
  SQLite take no write lock.

Bolt calls ``async_save`` (from the OAuth redirect and token rotation), ``async_find_bot`` /
``async_find_installation`` (to authorize each request: an org-wide install is found with
``is_enterprise_install=True`` whatever the workspace), ``async_delete_bot`` /
``async_delete_installation`` (``tokens_revoked``) and ``async_delete_all`` (``app_uninstalled``).
``census()`` counts what is stored, for ``nexthink-bot check``; ``only_bot()`` is the bot of the one
installation there is, for work that names no workspace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from sqlalchemy import Dialect, MetaData, Table, Text, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import TypeDecorator

from .engine import READ_ONLY, translate_errors
from .errors import TokenKeyMismatch
from .schema import SLACK_TOKEN_COLUMNS, slack_bots

if TYPE_CHECKING:  # cryptography is imported only where a cipher is made (OAuth installs)
    from .token_cipher import TokenCipher

__all__ = ["InstallationCensus", "InstallationStore", "SealedToken"]


class SealedToken(TypeDecorator[str]):
    """A token column: encrypted with the cipher on the way in, decrypted on the way out."""

    impl = Text
    #: the cipher (compared by identity) is part of the type's cache key, so a compiled statement
    #: is only reused with the cipher it was compiled for
    cache_ok = True

    def __init__(self, cipher: TokenCipher) -> None:
        super().__init__()
        self.cipher = cipher

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.cipher.seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.cipher.open(value)


@dataclass(frozen=True)
class InstallationCensus:
    """Installations with a bot token, by kind; ``unreadable`` of them the key cannot decrypt."""

    org_wide: int
    workspaces: int
    unreadable: int

    @property
    def total(self) -> int:
        return self.org_wide + self.workspaces


class _Engines:
    """What slack_sdk's store calls on its engine: ``begin()`` writes, ``connect()`` only reads.

    Reads go through the read-only engine: a plain ``BEGIN`` on SQLite rather than the write lock.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._writer = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._writer.begin()

    def connect(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._reader.connect()


def _sealed(table: Table, metadata: MetaData, cipher: TokenCipher) -> Table:
    """``table`` (the library's definition) with its token columns encrypted by ``cipher``."""
    copy = table.to_metadata(metadata)
    for name in SLACK_TOKEN_COLUMNS:
        if name in copy.c:
            copy.c[name].type = SealedToken(cipher)
    return copy


class InstallationStore(AsyncSQLAlchemyInstallationStore):
    """slack_sdk's SQLAlchemy installation store on the bot's database, tokens encrypted."""

    def __init__(
        self, engine: AsyncEngine, *, client_id: str, cipher: TokenCipher, where: str
    ) -> None:
        super().__init__(client_id=client_id, engine=engine)
        # the library only calls begin() and connect() on it (see _Engines)
        self.engine = _Engines(engine)  # type: ignore[assignment]
        self.metadata = MetaData()
        self.installations = _sealed(self.installations, self.metadata, cipher)
        self.bots = _sealed(self.bots, self.metadata, cipher)
        self._cipher = cipher
        self._where = where

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        with translate_errors(self._where):
            yield

    async def async_save(self, installation: Installation) -> None:
        async with self._translated():
            await super().async_save(installation)

    async def async_save_bot(self, bot: Bot) -> None:
        async with self._translated():
            await super().async_save_bot(bot)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        async with self._translated():
            found: Bot | None = await super().async_find_bot(
                enterprise_id=enterprise_id,
                team_id=team_id,
                is_enterprise_install=is_enterprise_install,
            )
        return found

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        async with self._translated():
            found: Installation | None = await super().async_find_installation(
                enterprise_id=enterprise_id,
                team_id=team_id,
                user_id=user_id,
                is_enterprise_install=is_enterprise_install,
            )
        return found

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget the bot of the workspace or org, and its (revoked) token in the installations too.

        Without the second step ``async_find_installation`` would still answer the revoked token.
        """
        async with self._translated():
            await super().async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
            c = self.installations.c
            async with self.engine.begin() as conn:
                await conn.execute(
                    self.installations.update()
                    .where(
                        and_(
                            c.client_id == self.client_id,
                            c.enterprise_id == enterprise_id,
                            c.team_id == team_id,
                        )
                    )
                    .values(bot_token=None, bot_refresh_token=None, bot_token_expires_at=None)
                )

    async def async_delete_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
    ) -> None:
        async with self._translated():
            await super().async_delete_installation(
                enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
            )

    async def bot_of_team(self, team_id: str) -> Bot | None:
        """The bot of workspace ``team_id``'s own installation, whichever org it is in (work that
        knows the workspace but not its org: a waits webhook naming ``team``)."""
        c = self.bots.c
        query = (
            select(c.enterprise_id)
            .where(
                and_(c.client_id == self.client_id, c.team_id == team_id, c.bot_token.is_not(None))
            )
            .order_by(c.installed_at.desc())
            .limit(1)
        )
        async with self._translated(), self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return await self.async_find_bot(enterprise_id=row.enterprise_id, team_id=team_id)

    async def only_bot(self) -> Bot | None:
        """The bot of the one workspace or org the app is installed in; None when there are
        none or several (work that names no workspace then cannot tell whose token to use)."""
        c = self.bots.c
        query = (
            select(c.enterprise_id, c.team_id, c.is_enterprise_install)
            .where(and_(c.client_id == self.client_id, c.bot_token.is_not(None)))
            .distinct()
            .limit(2)
        )
        async with self._translated(), self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        if len(rows) != 1:
            return None
        only = rows[0]
        return await self.async_find_bot(
            enterprise_id=only.enterprise_id,
            team_id=only.team_id,
            is_enterprise_install=bool(only.is_enterprise_install),
        )

    async def census(self) -> InstallationCensus:
        """Count the installations that have a bot token (the latest per workspace or org) and
        try to decrypt each of those tokens with the configured key."""
        c = slack_bots.c  # the plain table: ciphertext, decrypted below one by one
        query = (
            select(c.enterprise_id, c.team_id, c.is_enterprise_install, c.bot_token)
            .where(and_(c.client_id == self.client_id, c.bot_token.is_not(None)))
            .order_by(c.installed_at.desc())
        )
        latest: dict[tuple[Any, Any], Any] = {}
        async with self._translated(), self.engine.connect() as conn:
            for row in (await conn.execute(query)).all():
                latest.setdefault((row.enterprise_id, row.team_id), row)
        org_wide = sum(1 for row in latest.values() if row.is_enterprise_install)
        unreadable = 0
        for row in latest.values():
            try:
                self._cipher.open(row.bot_token)
            except TokenKeyMismatch:
                unreadable += 1
        return InstallationCensus(
            org_wide=org_wide, workspaces=len(latest) - org_wide, unreadable=unreadable
        )
