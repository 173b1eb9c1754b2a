"""LocalSlack's installations: an Enterprise Grid org's workspaces, the app's installations and their
tokens, Slack's OAuth v2 (an admin approving at ``/oauth/v2/authorize``, then ``oauth.v2.access``),
and uninstalling or revoking tokens (which then answer ``token_revoked``).

The authorize page is simulated: a GET approves at once (``deny=1`` refuses) and redirects to
``redirect_uri`` with ``code`` and ``state``, as Slack does after the admin clicks Allow. Its
query takes Slack's ``client_id``, ``scope``, ``user_scope``, ``state``, ``redirect_uri`` (default
the app's configured `redirect_uri`) and
``team`` (a workspace ``T…``, or the enterprise ID ``E…`` for an org-wide install; default the
first workspace), and LocalSlack's own ``user`` (who approves; default the team's first person).
Codes are good once, for ten minutes. Reinstalling keeps the installation's unrevoked bot token,
as Slack does; a new installation gets a new bot user and tokens.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from urllib.parse import urlencode

from aiohttp import web

from bot.console.localslack.records import (
    ApiCall,
    Grant,
    Installation,
    JSONDict,
    SlackError,
    Team,
)
from bot.console.localslack.workspace import Workspace

__all__ = ["Installs"]

_CODE_TTL = 600.0


class Installs(Workspace):
    """The org's workspaces and the app's installations in them."""

    client_id = "0000000000.0000LOCAL"
    client_secret = "local-client-secret"
    #: the app's configured Redirect URL, used when the authorize URL names none (as Bolt's does)
    redirect_uri: str | None = None

    # -- the org --------------------------------------------------------------------------------

    def add_team(
        self, id: str, *, name: str | None = None, domain: str | None = None, app_added: bool = True
    ) -> Team:
        """Another workspace of the org; ``app_added``: an admin added the org-wide app there."""
        if self.enterprise_id is None:
            raise ValueError("only an Enterprise Grid org (enterprise_id) has several workspaces")
        domain = domain or id.lower()
        team = Team(id, name or domain.title(), domain)
        self.teams[id] = team
        if app_added:
            for installation in self.installations:
                if installation.is_enterprise_install:
                    installation.teams.add(id)
        return team

    # -- installations --------------------------------------------------------------------------

    def installation_of(self, token: str) -> Installation | None:
        """The installation a bot or user token belongs to (revoked or not)."""
        return next((i for i in self.installations if token in (i.bot_token, i.user_token)), None)

    def installation_for(self, team_id: str | None = None) -> Installation | None:
        """The active installation serving a workspace (default the first): org-wide first."""
        team = team_id or self.team_id
        active = [i for i in self.installations if i.active and team in i.teams]
        active.sort(key=lambda i: not i.is_enterprise_install)
        return active[0] if active else None

    def revoke(self, installation: Installation, *, bot: bool = True, user: bool = True) -> None:
        """Revoke an installation's bot and/or user token: they answer ``token_revoked``."""
        if bot:
            installation.revoked.add(installation.bot_token)
        if user and installation.user_token:
            installation.revoked.add(installation.user_token)

    def uninstall(self, installation: Installation) -> None:
        """The app removed from a workspace or the org: all its tokens revoked."""
        self.revoke(installation)

    # -- OAuth ----------------------------------------------------------------------------------

    @property
    def oauth_authorize_url(self) -> str:
        """Where an install link sends the admin (``AsyncOAuthSettings(authorization_url=...)``)."""
        return f"{self.url}/oauth/v2/authorize"

    async def _handle_authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.calls.append(ApiCall("oauth.v2.authorize", query, None, self.clock()))
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="invalid_client_id")
        redirect_uri = query.get("redirect_uri") or self.redirect_uri or ""
        if not redirect_uri.startswith(("http://", "https://")):
            return web.Response(status=400, text="bad_redirect_uri")
        state = query.get("state", "")
        if query.get("deny"):
            raise web.HTTPFound(_with_query(redirect_uri, error="access_denied", state=state))
        team = query.get("team") or self.team_id
        org_wide = team == self.enterprise_id
        if not org_wide and team not in self.teams:
            return web.Response(status=400, text="invalid_team")
        user_id = query.get("user") or self._first_person(None if org_wide else team)
        code = f"{next(self._ids)}.{secrets.token_hex(16)}"
        self._grants[code] = Grant(
            team_id=None if org_wide else team,
            enterprise_id=self.enterprise_id,
            scopes=_split(query.get("scope")),
            user_scopes=_split(query.get("user_scope")),
            redirect_uri=redirect_uri,
            user_id=user_id,
            expires=self.clock() + _CODE_TTL,
        )
        raise web.HTTPFound(_with_query(redirect_uri, code=code, state=state))

    def _oauth_v2_access(
        self, params: JSONDict, authorization: str, posted: tuple[str | None, str | None]
    ) -> JSONDict:
        """Exchange a code; the app's credentials come by HTTP Basic auth (as slack_sdk sends
        them) or posted as ``client_id``/``client_secret`` (taken out of the journal)."""
        client_id, client_secret = _basic(authorization)
        client_id = client_id or str(posted[0] or "")
        client_secret = client_secret or str(posted[1] or "")
        if client_id != self.client_id:
            raise SlackError("invalid_client_id")
        if client_secret != self.client_secret:
            raise SlackError("bad_client_secret")
        grant = self._grants.get(str(params.get("code") or ""))
        if grant is None or grant.used or self.clock() > grant.expires:
            raise SlackError("invalid_code")
        if params.get("redirect_uri") and params["redirect_uri"] != grant.redirect_uri:
            raise SlackError("bad_redirect_uri")
        grant.used = True
        installation = self._install(grant)
        authed_user: JSONDict = {"id": grant.user_id}
        if installation.user_token:
            authed_user.update(
                scope=",".join(installation.user_scopes),
                access_token=installation.user_token,
                token_type="user",
            )
        enterprise = (
            {"id": self.enterprise_id, "name": self.enterprise_name} if self.enterprise_id else None
        )
        team = None
        if installation.team_id is not None:
            team = {"id": installation.team_id, "name": self.teams[installation.team_id].name}
        return {
            "ok": True,
            "app_id": self.app_id,
            "authed_user": authed_user,
            "scope": ",".join(installation.scopes),
            "token_type": "bot",
            "access_token": installation.bot_token,
            "bot_user_id": installation.bot_user_id,
            "team": team,
            "enterprise": enterprise,
            "is_enterprise_install": installation.is_enterprise_install,
        }

    def _install(self, grant: Grant) -> Installation:
        key = (grant.enterprise_id, grant.team_id)
        found = next((i for i in self.installations if i.key == key and i.active), None)
        if found is None:
            number = len(self.installations) + 1
            home = grant.team_id or self.team_id
            bot_user_id = f"U0BOT{number}"
            self.add_user(
                id=bot_user_id,
                name=f"nexthink-{number}",
                real_name="Nexthink",
                is_bot=True,
                team_id=home,
                teams=sorted(self.teams) if grant.team_id is None else [home],
            )
            found = Installation(
                bot_token=f"xoxb-{number}-{secrets.token_hex(12)}",
                bot_user_id=bot_user_id,
                bot_id=f"B0BOT{number}",
                team_id=grant.team_id,
                enterprise_id=grant.enterprise_id,
                is_enterprise_install=grant.team_id is None,
                teams=set(self.teams) if grant.team_id is None else {grant.team_id},
            )
            self.installations.append(found)
        found.scopes = list(grant.scopes)
        found.user_id = grant.user_id
        if grant.user_scopes:
            found.user_token = found.user_token or f"xoxp-{secrets.token_hex(12)}"
            found.user_scopes = list(grant.user_scopes)
        return found

    def _first_person(self, team_id: str | None) -> str:
        people = [
            u.id
            for u in self.users.values()
            if not u.is_bot and not u.deleted and (team_id is None or team_id in u.teams)
        ]
        return people[0] if people else "U0ADMIN"


def _split(scopes: str | None) -> list[str]:
    return [s.strip() for s in (scopes or "").split(",") if s.strip()]


def _with_query(url: str, **values: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(values)


def _basic(header: str) -> tuple[str, str]:
    """``client_id``, ``client_secret`` of HTTP Basic auth (how slack_sdk sends them), if any."""
    if not header.startswith("Basic "):
        return "", ""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret
