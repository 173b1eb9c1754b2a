"""LocalSlack's directory methods: ``auth.test``, ``users.*``, ``usergroups.*``,
``conversations.open|list``.

With an org-wide token, ``usergroups.*`` and ``conversations.list`` need the ``team_id`` of a
workspace the app was added to, as Slack requires; ``users.*`` see the whole org.
"""

from __future__ import annotations

import secrets

from bot.console.localslack.records import Channel, JSONDict, SlackError, User, Usergroup
from bot.console.localslack.workspace import Workspace, truthy

__all__ = ["DirectoryMethods"]


class DirectoryMethods(Workspace):
    """Who is who in the workspace, as the Web API answers it."""

    def _auth_test(self, params: JSONDict) -> JSONDict:
        """Who the token is: an org-wide token names the org (``team_id`` is the enterprise ID)."""
        caller = self._caller
        bot = self.users.get(caller.bot_user_id)
        body: JSONDict = {"ok": True}
        if caller.is_enterprise_install:
            domain = self.teams[self.team_id].domain
            body.update(
                url=f"https://{domain}.enterprise.slack.com/",
                team=self.enterprise_name,
                team_id=caller.enterprise_id,
            )
        else:
            team = self.teams[caller.team_id or self.team_id]
            body.update(url=f"https://{team.domain}.slack.com/", team=team.name, team_id=team.id)
        body.update(
            user=bot.name if bot else caller.bot_user_id,
            user_id=caller.bot_user_id,
            bot_id=caller.bot_id,
        )
        if caller.enterprise_id is not None:
            body["enterprise_id"] = caller.enterprise_id
        body["is_enterprise_install"] = caller.is_enterprise_install
        return body

    def _user_object(self, user: User) -> JSONDict:
        if user.external:  # a Slack Connect member: their own workspace and org
            theirs = (user.enterprise_id, "Partner Org") if user.enterprise_id else None
            return user.to_slack(user.team_id, enterprise=theirs)
        caller_team = self._caller.team_id
        team_id = caller_team if caller_team in user.teams else user.team_id
        enterprise = (self.enterprise_id, self.enterprise_name) if self.enterprise_id else None
        return user.to_slack(team_id or self.team_id, enterprise=enterprise)

    def _users_info(self, params: JSONDict) -> JSONDict:
        user = self.users.get(str(params.get("user", "")))
        if user is None or not self._sees_user(user):
            raise SlackError("user_not_found")
        return {"ok": True, "user": self._user_object(user)}

    def _users_lookup_by_email(self, params: JSONDict) -> JSONDict:
        email = str(params.get("email", "")).lower()
        for user in self.users.values():
            if (
                user.email is not None
                and user.email.lower() == email
                and not user.deleted
                and self._sees_user(user)
            ):
                return {"ok": True, "user": self._user_object(user)}
        raise SlackError("users_not_found")

    def _groups_of(self, team_id: str | None) -> list[Usergroup]:
        """The workspace's groups and the org-level ones (which every workspace of the org sees)."""
        return [
            group
            for group in self.usergroups.values()
            if group.team_id in (team_id, self.enterprise_id) and self._reaches(group.team_id)
        ]

    def _usergroups_list(self, params: JSONDict) -> JSONDict:
        team_id = self._team_scope(params, required=True)
        groups = []
        for group in self._groups_of(team_id):
            item: JSONDict = {
                "id": group.id,
                "team_id": group.team_id,
                "is_usergroup": True,
                "name": group.name,
                "description": "",
                "handle": group.handle,
                "is_external": False,
                "date_delete": 0,
                "user_count": len(group.members),
            }
            if group.team_id == self.enterprise_id:
                item["enterprise_subteam_id"] = group.id
            if truthy(params.get("include_users")):
                item["users"] = list(group.members)
            groups.append(item)
        return {"ok": True, "usergroups": groups}

    def _usergroups_users_list(self, params: JSONDict) -> JSONDict:
        team_id = self._team_scope(params, required=True)
        group = self.usergroups.get(str(params.get("usergroup", "")))
        if group is None or group not in self._groups_of(team_id):
            raise SlackError("no_such_subteam")
        return {"ok": True, "users": list(group.members)}

    def _conversations_list(self, params: JSONDict) -> JSONDict:
        """The workspace's public and private channels (``team_id`` required for org tokens)."""
        team_id = self._team_scope(params, required=True)
        channels = [
            {
                "id": c.id,
                "name": c.name,
                "is_channel": c.id.startswith("C"),
                "is_private": c.id.startswith("G"),
                "is_im": False,
                "context_team_id": c.team_id,
                "shared_team_ids": [c.team_id],
            }
            for c in self.channels.values()
            if not c.is_im and not c.name.startswith("mpdm-") and c.team_id == team_id
        ]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}

    def _conversations_open(self, params: JSONDict) -> JSONDict:
        if params.get("channel"):
            channel = self.channels.get(str(params["channel"]))
            if channel is None or not self._reaches(channel.team_id):
                raise SlackError("channel_not_found")
            return {"ok": True, "channel": {"id": channel.id}}
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        for user_id in users:
            if user_id not in self.users or not self._sees_user(self.users[user_id]):
                raise SlackError("user_not_found")
        if len(users) == 1:
            channel_id = self.dm_channel(users[0])
        else:
            channel_id = "G" + secrets.token_hex(5).upper()
            self.channels[channel_id] = Channel(
                id=channel_id, name="mpdm-" + "--".join(users), team_id=self._home_team()
            )
        return {"ok": True, "no_op": False, "already_open": False, "channel": {"id": channel_id}}
