"""What Slack tells the bot when the app leaves a workspace or org: ``tokens_revoked`` and
``app_uninstalled`` Events API callbacks, sent after LocalSlack has revoked the tokens (as Slack
revokes them first), so the bot's next call with them answers ``token_revoked``.

Each ``*_payload`` method only builds the callback (wrap it with `socket_envelope` for Socket
Mode); the others revoke in LocalSlack and post it to ``events_url``.
"""

from __future__ import annotations

import json

from bot.console.driver.fields import PayloadFields
from bot.console.driver.sending import DriverResponse
from bot.console.localslack import Installation, JSONDict

__all__ = ["InstallEvents"]


class InstallEvents(PayloadFields):
    """Uninstalling the app and revoking its tokens, as the bot hears of it."""

    def serving(self) -> Installation:
        """The active installation serving this workspace (org-wide first)."""
        installation = self.slack.installation_for(self.team_id)
        if installation is None:
            raise LookupError(f"no active installation serves {self.team_id!r}")
        return installation

    def installation_event_payload(self, installation: Installation, event: JSONDict) -> JSONDict:
        """An ``event_callback`` about ``installation`` itself (its team, or its org)."""
        org_wide = installation.is_enterprise_install
        payload: JSONDict = {
            "token": self.verification_token,
            "team_id": installation.enterprise_id if org_wide else installation.team_id,
        }
        if installation.enterprise_id:
            payload["enterprise_id"] = installation.enterprise_id
        payload.update(
            api_app_id=self.api_app_id,
            event=event,
            type="event_callback",
            event_id=f"Ev{next(self._events):08d}LOCAL",
            event_time=int(self.clock()),
            authorizations=[
                {
                    "enterprise_id": installation.enterprise_id,
                    "team_id": None if org_wide else installation.team_id,
                    "user_id": installation.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": org_wide,
                }
            ],
            is_ext_shared_channel=False,
        )
        return payload

    def app_uninstalled_payload(self, installation: Installation | None = None) -> JSONDict:
        installation = installation or self.serving()
        return self.installation_event_payload(installation, {"type": "app_uninstalled"})

    def tokens_revoked_payload(
        self, installation: Installation | None = None, *, bot: bool = True, user: bool = True
    ) -> JSONDict:
        """``tokens_revoked``: the users whose user (``oauth``) and bot tokens were revoked."""
        installation = installation or self.serving()
        oauth = [installation.user_id] if user and installation.user_token else []
        event: JSONDict = {
            "type": "tokens_revoked",
            "tokens": {
                "oauth": [u for u in oauth if u],
                "bot": [installation.bot_user_id] if bot else [],
            },
            "event_ts": self._ts(),
        }
        return self.installation_event_payload(installation, event)

    async def tokens_revoked(
        self, installation: Installation | None = None, *, bot: bool = True, user: bool = True
    ) -> DriverResponse:
        """Revoke the installation's bot and/or user token, then send ``tokens_revoked``."""
        installation = installation or self.serving()
        payload = self.tokens_revoked_payload(installation, bot=bot, user=user)
        self.slack.revoke(installation, bot=bot, user=user)
        return await self._post_event(payload)

    async def app_uninstalled(self, installation: Installation | None = None) -> DriverResponse:
        """Remove the app (all its tokens revoked), then send ``app_uninstalled`` alone."""
        installation = installation or self.serving()
        payload = self.app_uninstalled_payload(installation)
        self.slack.uninstall(installation)
        return await self._post_event(payload)

    async def uninstall(
        self, installation: Installation | None = None
    ) -> tuple[DriverResponse, DriverResponse]:
        """What Slack does when an admin removes the app: revoke every token, then send
        ``tokens_revoked`` and ``app_uninstalled``; returns both answers."""
        installation = installation or self.serving()
        revoked = self.tokens_revoked_payload(installation)
        uninstalled = self.app_uninstalled_payload(installation)
        self.slack.uninstall(installation)
        return await self._post_event(revoked), await self._post_event(uninstalled)

    async def _post_event(self, payload: JSONDict) -> DriverResponse:
        return await self.post(json.dumps(payload).encode(), "application/json")
