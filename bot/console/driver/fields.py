"""Who the driver speaks for (team, app, enterprise) and the objects Slack puts in every payload."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from bot.console.driver.sending import SignedSender, Transport
from bot.console.localslack import JSONDict, LocalSlack, Message, View

__all__ = ["PayloadFields"]


class PayloadFields(SignedSender):
    """A workspace's side of a payload: the user, team, enterprise and message objects."""

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        slack: LocalSlack,
        *,
        team_id: str | None = None,
        clock: Callable[[], float] = time.time,
        api_app_id: str | None = None,
        verification_token: str = "local-verification-token",  # noqa: S107 - not a secret: Slack's deprecated per-app token, sent in payloads
        enterprise_id: str | None = None,
        timeout: float = 10.0,
        ack_deadline: float = 3.0,
        transport: Transport | None = None,
    ) -> None:
        super().__init__(
            events_url,
            signing_secret,
            clock=clock,
            timeout=timeout,
            ack_deadline=ack_deadline,
            transport=transport,
        )
        self.slack = slack
        self.team_id = team_id or slack.team_id
        self.api_app_id = api_app_id or slack.app_id
        self.verification_token = verification_token
        self.enterprise_id = enterprise_id
        self._events = itertools.count(1)

    def _view(self, view_id: str) -> View:
        view = self.slack.views.get(view_id)
        if view is None:
            raise LookupError(f"no open view {view_id!r}")
        return view

    def _ts(self) -> str:
        return f"{self.clock():.6f}"

    def _user_name(self, user_id: str) -> str:
        user = self.slack.users.get(user_id)
        return user.name if user else user_id.lower()

    def _user(self, user_id: str) -> JSONDict:
        name = self._user_name(user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    def _team_fields(self) -> JSONDict:
        team: JSONDict = {"id": self.team_id, "domain": self.slack.team_domain}
        enterprise = None
        if self.enterprise_id:
            team.update(enterprise_id=self.enterprise_id, enterprise_name="Local Org")
            enterprise = {"id": self.enterprise_id, "name": "Local Org"}
        return {"team": team, "enterprise": enterprise, "is_enterprise_install": False}

    def _message(self, message: Message) -> JSONDict:
        slack = self.slack
        return message.to_slack(
            bot_user_id=slack.bot_user_id,
            bot_id=slack.bot_id,
            app_id=slack.app_id,
            team_id=self.team_id,
        )
