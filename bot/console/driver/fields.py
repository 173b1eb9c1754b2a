"""Who the driver speaks for (team, app, enterprise) and the objects Slack puts in every payload."""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from typing import Self

from bot.console.driver.sending import SignedSender, Transport
from bot.console.localslack import JSONDict, LocalSlack, Message, View

__all__ = ["PayloadFields"]


class PayloadFields(SignedSender):
    """A workspace's side of a payload: the user, team, enterprise and message objects.

    ``team_id`` is the workspace the person acts in (default LocalSlack's first). In an
    Enterprise Grid org (``slack.enterprise_id``) payloads carry ``enterprise``; when the
    installation serving that workspace is org-wide (or ``org_install`` says so) they say
    ``is_enterprise_install: true`` and, from a modal, ``team: null`` as Slack sends them.
    """

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
        org_install: bool | None = None,
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
        self.enterprise_id = enterprise_id or slack.enterprise_id
        self.org_install = org_install
        self._events = itertools.count(1)

    def for_team(self, team_id: str) -> Self:
        """The same driver acting in another workspace of the org (it shares the HTTP client:
        close only the original)."""
        if team_id not in self.slack.teams:
            raise LookupError(
                f"no workspace {team_id!r}; LocalSlack has {sorted(self.slack.teams)}"
            )
        sibling = copy.copy(self)
        sibling.team_id = team_id
        return sibling

    @property
    def is_enterprise_install(self) -> bool:
        """Whether the app serving this workspace is installed org-wide."""
        if self.org_install is not None:
            return self.org_install
        installation = self.slack.installation_for(self.team_id)
        return installation is not None and installation.is_enterprise_install

    @property
    def team_domain(self) -> str:
        team = self.slack.teams.get(self.team_id)
        return team.domain if team else self.slack.team_domain

    @property
    def bot_user_id(self) -> str:
        """The bot user of the installation serving this workspace."""
        installation = self.slack.installation_for(self.team_id)
        return installation.bot_user_id if installation else self.slack.bot_user_id

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

    def _team_fields(self, *, in_view: bool = False) -> JSONDict:
        """``team``, ``enterprise``, ``is_enterprise_install``; ``in_view``: the payload comes
        from a modal, where an org-wide install gets ``team: null``."""
        team: JSONDict | None = {"id": self.team_id, "domain": self.team_domain}
        enterprise = None
        org_wide = self.is_enterprise_install
        if self.enterprise_id:
            name = self.slack.enterprise_name
            assert team is not None
            team.update(enterprise_id=self.enterprise_id, enterprise_name=name)
            enterprise = {"id": self.enterprise_id, "name": name}
            if in_view and org_wide:
                team = None
        return {"team": team, "enterprise": enterprise, "is_enterprise_install": org_wide}

    def _trigger(self, user_id: str, view_id: str | None = None) -> str:
        return self.slack.new_trigger_id(user_id, view_id=view_id, team_id=self.team_id)

    def _message(self, message: Message) -> JSONDict:
        slack = self.slack
        installation = slack.installation_for(self.team_id)
        return message.to_slack(
            bot_user_id=installation.bot_user_id if installation else slack.bot_user_id,
            bot_id=installation.bot_id if installation else slack.bot_id,
            app_id=slack.app_id,
            team_id=self.team_id,
        )
