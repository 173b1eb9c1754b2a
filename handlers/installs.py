"""OAuth installs: Bolt's own install flow on the store, and the app leaving a workspace or org.

With ``SLACK_CLIENT_ID``, ``SLACK_CLIENT_SECRET`` and ``SLACK_STATE_SECRET`` (``settings.oauth``),
``oauth_settings`` gives Bolt its ``AsyncOAuthSettings``: the scopes of ``manifest.yaml``
(``ids.BOT_SCOPES``), slack_sdk's SQLAlchemy installation and state stores on ``DATABASE_URL``
(tokens encrypted with ``SLACK_TOKEN_ENCRYPTION_KEY``), and Slack's authorize page next to
``SLACK_API_URL``. Bolt then serves ``GET /slack/install`` and ``GET /slack/oauth_redirect``
(``bot.server``) and authorizes each request with its installation's token.

``register`` answers ``tokens_revoked`` and ``app_uninstalled``: Bolt's own handlers remove the
installation (or its revoked tokens) from the store, and the Slack client forgets the tokens it
had cached, so no later call of this replica uses them. With ``SLACK_BOT_TOKEN`` they are only
logged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.listener.async_builtins import AsyncTokenRevocationListeners
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings

from bot.logging import get_logger
from bot.settings import Settings
from bot.store import InstallationStore, Store
from handlers import ids
from handlers.payloads import obj
from handlers.services import Services
from handlers.slack_client import InstallationTokens, WorkspaceClient

__all__ = ["NOT_INSTALLED", "authorize_url", "installation_store", "oauth_settings", "register"]

log = get_logger(__name__)

#: how long an install link (its OAuth state) stays good
STATE_SECONDS = 600
#: the answer to someone in a workspace no installation serves (never installed, or removed)
NOT_INSTALLED = (
    "The Nexthink app is not installed in this workspace (or it was removed), so nothing was "
    "run. Ask a Slack admin to install it: the bot's /slack/install page starts the install."
)


def authorize_url(slack_api_url: str) -> str:
    """Slack's authorize page beside its Web API: ``https://slack.com/oauth/v2/authorize``."""
    return urljoin(slack_api_url, "../oauth/v2/authorize")


def installation_store(settings: Settings, store: Store) -> InstallationStore:
    assert settings.slack_client_id
    assert settings.slack_token_encryption_key
    from bot.store.token_cipher import TokenCipher  # cryptography: only with OAuth installs

    cipher = TokenCipher.from_setting(settings.slack_token_encryption_key.get_secret_value())
    return store.slack_installations(client_id=settings.slack_client_id, cipher=cipher)


def oauth_settings(
    settings: Settings, store: Store, installations: InstallationStore
) -> AsyncOAuthSettings:
    assert settings.slack_client_secret
    assert settings.slack_state_secret
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        scopes=list(ids.BOT_SCOPES),
        user_scopes=[],
        installation_store=installations,
        installation_store_bot_only=True,
        state_store=store.slack_oauth_states(
            secret=settings.slack_state_secret.get_secret_value(),
            expiration_seconds=STATE_SECONDS,
        ),
        state_expiration_seconds=STATE_SECONDS,
        authorization_url=authorize_url(settings.slack_api_url),
        # /slack/install sends the admin straight to Slack's page, which says what is asked
        install_page_rendering_enabled=False,
    )


def register(bot: Services) -> None:
    client = bot.slack
    tokens = client.tokens if isinstance(client, WorkspaceClient) else None
    if tokens is None:  # one SLACK_BOT_TOKEN: nothing is stored; say so in the log
        _register_logged(bot)
        return
    builtin = AsyncTokenRevocationListeners(tokens.store)

    @bot.app.event("tokens_revoked")
    async def on_tokens_revoked(event: dict[str, Any], context: AsyncBoltContext) -> None:
        await _removed(tokens, builtin.handle_tokens_revoked_events(event, context), context)

    @bot.app.event("app_uninstalled")
    async def on_app_uninstalled(context: AsyncBoltContext) -> None:
        await _removed(tokens, builtin.handle_app_uninstalled_events(context), context)


def _register_logged(bot: Services) -> None:
    """With SLACK_BOT_TOKEN: the events are answered (Slack retries unanswered ones) and logged;
    after ``app_uninstalled`` the token no longer works until the app is installed again."""

    @bot.app.event("tokens_revoked")
    async def on_tokens_revoked(event: dict[str, Any], context: AsyncBoltContext) -> None:
        bot_users = obj(event.get("tokens")).get("bot")
        log.warning(
            "slack_tokens_revoked",
            team=context.team_id,
            enterprise=context.enterprise_id,
            bot=bool(bot_users),
        )

    @bot.app.event("app_uninstalled")
    async def on_app_uninstalled(context: AsyncBoltContext) -> None:
        log.error(
            "slack_app_uninstalled",
            team=context.team_id,
            enterprise=context.enterprise_id,
            hint="SLACK_BOT_TOKEN no longer works: install the app again and set its new token",
        )


async def _removed(tokens: InstallationTokens, removal: Any, context: AsyncBoltContext) -> None:
    try:
        await removal
    finally:
        tokens.forget()
    log.info(
        "slack_installation_removed",
        team=context.team_id,
        enterprise=context.enterprise_id,
        org_wide=bool(context.is_enterprise_install),
    )
