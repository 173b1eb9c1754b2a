"""The OAuth ``state`` of Slack installs in progress, kept in the store, signed with a secret.

``OAuthStateStore`` is slack_sdk's ``AsyncSQLAlchemyOAuthStateStore`` on the store's engine and
table (``slack_oauth_states``, created by migration 2): each state is issued once, kept until it
expires (Bolt's default: 10 minutes) and consumed once, so it works across replicas and a state is
never accepted twice. On top of it:

* The state handed to the browser is ``<id>.<HMAC-SHA256 of id with SLACK_STATE_SECRET>``; a
  callback whose state was not signed with the secret is refused before the database is asked.
* Issuing a state first deletes the expired ones, so the table stays small without a sweep.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.ext.asyncio import AsyncEngine

from .engine import translate_errors

__all__ = ["OAuthStateStore"]


class OAuthStateStore(AsyncSQLAlchemyOAuthStateStore):
    """slack_sdk's SQLAlchemy OAuth state store on the bot's database, states signed."""

    def __init__(
        self, engine: AsyncEngine, *, secret: str, where: str, expiration_seconds: int = 600
    ) -> None:
        super().__init__(expiration_seconds=expiration_seconds, engine=engine)
        self._key = secret.encode()
        self._where = where

    def _signature(self, state: str) -> str:
        mac = hmac.new(self._key, state.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        with translate_errors(self._where):
            now = datetime.now(UTC).replace(tzinfo=None)  # the library's naive UTC
            async with self.engine.begin() as conn:
                table = self.oauth_states
                await conn.execute(table.delete().where(table.c.expire_at <= now))
            state: str = await super().async_issue(*args, **kwargs)
        return f"{state}.{self._signature(state)}"

    async def async_consume(self, state: str) -> bool:
        issued, _, signature = state.rpartition(".")
        if not issued or not hmac.compare_digest(
            signature.encode(), self._signature(issued).encode()
        ):
            self.logger.warning("OAuth state refused: not signed with SLACK_STATE_SECRET")
            return False
        consumed: bool = await super().async_consume(issued)
        return consumed
