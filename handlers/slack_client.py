"""The one Slack Web API client, aware of workspaces: each call goes out for the current one.

``WorkspaceClient`` is slack_sdk's ``AsyncWebClient`` (one pooled HTTP session, the retry
handlers) with two things decided here for every call, whichever path makes it (a listener, an
expiry sweep, an outcome follow-up, an approved run, the waits webhook):

* **The token.** With ``SLACK_BOT_TOKEN`` it is that token (one workspace, or one org-wide install
  serving all the org's workspaces). With OAuth installs it is the bot token of the installation
  serving the current workspace (``bot.workspaces.current()``): the one Bolt authorized the
  request with, else the installation store's (the workspace's own install, else its org's
  org-wide install; for work that names no workspace, the only installation there is), cached for
  ``TOKEN_TTL_SECONDS`` and forgotten when Slack answers that it was revoked or the app was
  uninstalled. A call that names its own token (Bolt's ``auth.test``,
  ``oauth.v2.access``) is left alone.
* **The ``team_id``** that methods listing a workspace's things need with an org-wide token
  (``usergroups.list`` …): the current workspace's, unless the call passes one. A workspace
  token ignores it, as Slack documents, so it is always passed when known.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot import workspaces
from bot.logging import get_logger
from bot.store import InstallationStore
from bot.workspaces import Workspace

__all__ = ["NEEDS_TEAM", "TOKEN_TTL_SECONDS", "InstallationTokens", "WorkspaceClient"]

log = get_logger(__name__)

#: methods that act in one workspace and need its ``team_id`` with an org-wide token
NEEDS_TEAM = frozenset(
    {
        "usergroups.list",
        "usergroups.users.list",
        "conversations.list",
        "conversations.create",
        "users.list",
        "users.conversations",
    }
)
#: how long a token found in the installation store is used without asking it again
TOKEN_TTL_SECONDS = 60.0
#: methods Slack answers without a bot token (``api.test``: is Slack reachable at all)
_TOKENLESS = frozenset({"api.test", "oauth.v2.access", "oauth.v2.exchange"})
#: Slack's answers that mean the token is gone: look it up again next time
_GONE = frozenset({"token_revoked", "invalid_auth", "account_inactive", "not_authed"})


class InstallationTokens:
    """The bot token serving a workspace, from the installation store, cached briefly."""

    def __init__(
        self,
        store: InstallationStore,
        *,
        ttl: float = TOKEN_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str | None, str | None], tuple[float, str]] = {}

    async def token_for(self, workspace: Workspace) -> str | None:
        key = (workspace.enterprise_id, workspace.team_id)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        token = await self._find(workspace)
        # not cached: no installation yet (one may come any moment), or "the only one" (another
        # may be added)
        if token is not None and workspace.known:
            self._cache[key] = (self._clock() + self._ttl, token)
        return token

    async def _find(self, workspace: Workspace) -> str | None:
        enterprise_id, team_id = workspace.enterprise_id, workspace.team_id
        if not workspace.known:  # e.g. a waits webhook naming no team: the only installation
            only = await self.store.only_bot()
            return only.bot_token if only is not None else None
        if team_id and not workspace.is_enterprise_install:
            bot = (
                await self.store.async_find_bot(enterprise_id=enterprise_id, team_id=team_id)
                if enterprise_id
                else await self.store.bot_of_team(team_id)
            )
            if bot is not None:
                return bot.bot_token
        if enterprise_id:
            bot = await self.store.async_find_bot(
                enterprise_id=enterprise_id, team_id=None, is_enterprise_install=True
            )
            if bot is not None:
                return bot.bot_token
        return None

    def forget(self, token: str | None = None) -> None:
        """Forget every cached token (uninstalled, revoked), or the entries holding ``token``."""
        if token is None:
            self._cache.clear()
            return
        for key in [k for k, (_, held) in self._cache.items() if held == token]:
            del self._cache[key]


class WorkspaceClient(AsyncWebClient):
    """``AsyncWebClient`` whose calls carry the current workspace's token and ``team_id``."""

    tokens: InstallationTokens | None = None

    @classmethod
    def build(cls, *, token: str | None, base_url: str) -> WorkspaceClient:
        """One client with one pooled HTTP session (slack_sdk opens one per call otherwise);
        Slack's 429s are waited out (Retry-After) and connection errors retried."""
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        client = cls(token=token, base_url=base_url, timeout=10, session=session)
        client.retry_handlers.extend(
            [AsyncRateLimitErrorRetryHandler(max_retry_count=2), AsyncConnectionErrorRetryHandler()]
        )
        return client

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: Any = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: Any = None,
    ) -> AsyncSlackResponse:
        here = workspaces.current()
        if api_method in NEEDS_TEAM and here.team_id:
            params, data, json = _with_team(here.team_id, params, data, json)
        token = None
        if (
            self.token is None
            and auth is None
            and api_method not in _TOKENLESS
            and not _names_token(params, data, json, headers)
        ):
            token = await self._token_for(api_method, here)
            headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        try:
            return await super().api_call(
                api_method,
                http_verb=http_verb,
                files=files,
                data=data,
                params=params,
                json=json,
                headers=headers,
                auth=auth,
            )
        except SlackApiError as exc:
            if token is not None and self.tokens is not None and _error(exc) in _GONE:
                self.tokens.forget(token)
            raise

    async def _token_for(self, api_method: str, here: Workspace) -> str:
        token = here.token
        if token is None and self.tokens is not None:
            token = await self.tokens.token_for(here)
        if token is None:
            log.warning(
                "slack_no_installation",
                method=api_method,
                team=here.team_id,
                enterprise=here.enterprise_id,
            )
            raise SlackApiError(  # type: ignore[no-untyped-call]
                "no installation of the app serves this workspace",
                AsyncSlackResponse(
                    client=self,
                    http_verb="POST",
                    api_url=f"{self.base_url}{api_method}",
                    req_args={},
                    data={"ok": False, "error": "not_installed"},
                    headers={},
                    status_code=200,
                ),
            )
        return token


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error")) if exc.response is not None else ""


def _names_token(*parts: Any) -> bool:
    for part in parts:
        if isinstance(part, dict) and ("token" in part or "Authorization" in part):
            return True
    return False


def _with_team(
    team_id: str, params: dict[str, Any] | None, data: Any, json: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, Any, dict[str, Any] | None]:
    """The call's arguments with ``team_id`` added where they are sent, unless given."""
    if json is not None:
        return params, data, {"team_id": team_id, **json} if not json.get("team_id") else json
    if isinstance(data, dict):
        return params, {"team_id": team_id, **data} if not data.get("team_id") else data, json
    params = dict(params or {})
    if not params.get("team_id"):
        params["team_id"] = team_id
    return params, data, json
