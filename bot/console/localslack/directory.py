"""LocalSlack's directory methods: ``auth.test``, ``users.*``, ``usergroups.*``,
``conversations.open``."""

from __future__ import annotations

import secrets

from bot.console.localslack.records import Channel, JSONDict, SlackError
from bot.console.localslack.workspace import Workspace, truthy

__all__ = ["DirectoryMethods"]


class DirectoryMethods(Workspace):
    """Who is who in the workspace, as the Web API answers it."""

    def _auth_test(self, params: JSONDict) -> JSONDict:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain.title(),
            "user": self.users[self.bot_user_id].name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _users_info(self, params: JSONDict) -> JSONDict:
        user = self.users.get(str(params.get("user", "")))
        if user is None:
            raise SlackError("user_not_found")
        return {"ok": True, "user": user.to_slack(self.team_id)}

    def _users_lookup_by_email(self, params: JSONDict) -> JSONDict:
        email = str(params.get("email", "")).lower()
        for user in self.users.values():
            if user.email is not None and user.email.lower() == email and not user.deleted:
                return {"ok": True, "user": user.to_slack(self.team_id)}
        raise SlackError("users_not_found")

    def _usergroups_list(self, params: JSONDict) -> JSONDict:
        groups = []
        for group in self.usergroups.values():
            item: JSONDict = {
                "id": group.id,
                "team_id": self.team_id,
                "is_usergroup": True,
                "name": group.name,
                "description": "",
                "handle": group.handle,
                "is_external": False,
                "date_delete": 0,
                "user_count": len(group.members),
            }
            if truthy(params.get("include_users")):
                item["users"] = list(group.members)
            groups.append(item)
        return {"ok": True, "usergroups": groups}

    def _usergroups_users_list(self, params: JSONDict) -> JSONDict:
        group = self.usergroups.get(str(params.get("usergroup", "")))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"ok": True, "users": list(group.members)}

    def _conversations_open(self, params: JSONDict) -> JSONDict:
        if params.get("channel"):
            channel = self.channels.get(str(params["channel"]))
            if channel is None:
                raise SlackError("channel_not_found")
            return {"ok": True, "channel": {"id": channel.id}}
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        for user_id in users:
            if user_id not in self.users:
                raise SlackError("user_not_found")
        if len(users) == 1:
            channel_id = self.dm_channel(users[0])
        else:
            channel_id = "G" + secrets.token_hex(5).upper()
            self.channels[channel_id] = Channel(id=channel_id, name="mpdm-" + "--".join(users))
        return {"ok": True, "no_op": False, "already_open": False, "channel": {"id": channel_id}}
