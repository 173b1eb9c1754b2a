"""`SlackDriver`: the Slack client's side of the conversation with the bot."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from bot.console.driver.elements import copy_json, element_state, find_element
from bot.console.driver.installs import InstallEvents
from bot.console.driver.modals import ModalActions
from bot.console.driver.sending import DriverResponse, with_problems
from bot.console.localslack import JSONDict, Message, SlackError, View
from handlers import ids

__all__ = ["SlackDriver"]


class SlackDriver(ModalActions, InstallEvents):
    """A Slack client's side of the conversation with the bot, for one workspace.

    Slash commands, clicks, shortcuts and events here; modals in `ModalActions`; uninstalls and
    revoked tokens in `InstallEvents`; signing and posting in `SignedSender`.
    """

    # -- slash commands -----------------------------------------------------------------------

    def command_payload(
        self, user_id: str, text: str, *, channel_id: str = "C0SUPPORT", command: str = ids.COMMAND
    ) -> dict[str, str]:
        """A slash command's fields, in Slack's order, with a fresh response URL and trigger."""
        fields = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": self.slack.channel_name(channel_id),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "true" if self.is_enterprise_install else "false",
        }
        if self.enterprise_id:
            fields.update(
                enterprise_id=self.enterprise_id, enterprise_name=self.slack.enterprise_name
            )
        fields["response_url"] = self.slack.new_response_url(user_id, channel_id)
        fields["trigger_id"] = self._trigger(user_id)
        return fields

    async def command(
        self, user_id: str, text: str, *, channel_id: str = "C0SUPPORT", command: str = ids.COMMAND
    ) -> DriverResponse:
        """Type ``{command} {text}`` in ``channel_id``; a non-empty ack is shown like Slack shows it."""
        fields = self.command_payload(user_id, text, channel_id=channel_id, command=command)
        response = await self.post(urlencode(fields).encode())
        problems: list[str] = []
        if response.status != 200:
            problems.append(f'{command} failed with the error "http_{response.status}"')
        elif response.body not in ("", None):
            body = (
                response.body if isinstance(response.body, dict) else {"text": str(response.body)}
            )
            try:
                self.slack.deliver(user_id, channel_id, body, via="ack")
            except SlackError as exc:
                problems.append(f"ack refused: {exc.error} {' '.join(exc.messages)}".strip())
        return with_problems(response, problems)

    # -- clicks ---------------------------------------------------------------------------------

    def click_payload(
        self,
        user_id: str,
        target: Message | View,
        action_id: str,
        value: Any = None,
        *,
        channel_id: str | None = None,
        block_id: str | None = None,
    ) -> JSONDict:
        """The ``block_actions`` payload for using element ``action_id`` of a message or view.

        ``value`` picks among buttons sharing an action ID, or is the choice made in a select,
        date picker, ... (shaped as for `view_submission_payload`).
        """
        blocks = target.blocks if isinstance(target, Message) else target.view.get("blocks")
        found_block, element = find_element(blocks or [], action_id, block_id, value)
        action: JSONDict = {
            "action_id": action_id,
            "block_id": found_block,
            "type": element["type"],
        }
        if element["type"] == "button":
            action.update(text=element.get("text"), value=element.get("value"))
            if "style" in element:
                action["style"] = element["style"]
        else:
            state = element_state(element, value)
            action.update({k: v for k, v in state.items() if k != "type"})
        action["action_ts"] = self._ts()
        payload: JSONDict = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
        }
        if isinstance(target, Message):
            channel = channel_id or target.channel
            container: JSONDict = {
                "type": "message",
                "message_ts": target.ts,
                "channel_id": channel,
                "is_ephemeral": target.ephemeral,
            }
            if target.thread_ts:
                container["thread_ts"] = target.thread_ts
            payload.update(container=container, trigger_id=self._trigger(user_id))
            payload.update(
                self._team_fields(),
                channel={"id": channel, "name": self.slack.channel_name(channel)},
            )
            if not target.ephemeral:
                payload["message"] = self._message(target)
            payload["state"] = {"values": {}}
            payload["response_url"] = self.slack.new_response_url(
                user_id, channel, kind="actions", message=target
            )
        else:
            live = self.slack.views.get(target.id, target)
            if element["type"] != "button":
                live.state.setdefault(found_block, {})[action_id] = element_state(element, value)
            trigger_id = self._trigger(user_id, live.id)
            payload.update(container={"type": "view", "view_id": live.id}, trigger_id=trigger_id)
            payload.update(self._team_fields(in_view=True), view=copy_json(live.view))
        payload["actions"] = [action]
        return payload

    async def click(
        self,
        user_id: str,
        target: Message | View,
        action_id: str,
        value: Any = None,
        *,
        channel_id: str | None = None,
        block_id: str | None = None,
    ) -> DriverResponse:
        """Click a button (or use a select, ...) in a message or a view; Slack ignores the ack body."""
        payload = self.click_payload(
            user_id, target, action_id, value, channel_id=channel_id, block_id=block_id
        )
        response = await self.post_interactive(payload)
        return with_problems(
            response,
            [] if response.status == 200 else [f"interaction failed: http {response.status}"],
        )

    # -- shortcuts and events -------------------------------------------------------------------

    def shortcut_payload(self, user_id: str, callback_id: str = ids.GLOBAL_SHORTCUT) -> JSONDict:
        return {
            "type": "shortcut",
            "token": self.verification_token,
            "action_ts": self._ts(),
            **self._team_fields(),
            "user": {"id": user_id, "username": self._user_name(user_id), "team_id": self.team_id},
            "callback_id": callback_id,
            "trigger_id": self._trigger(user_id),
        }

    async def shortcut(
        self, user_id: str, callback_id: str = ids.GLOBAL_SHORTCUT
    ) -> DriverResponse:
        """Run a global shortcut from the composer or search."""
        return await self.post_interactive(self.shortcut_payload(user_id, callback_id))

    def message_shortcut_payload(
        self, user_id: str, message: Message, callback_id: str = ids.MESSAGE_SHORTCUT
    ) -> JSONDict:
        return {
            "type": "message_action",
            "token": self.verification_token,
            "action_ts": self._ts(),
            **self._team_fields(),
            "user": {
                "id": user_id,
                "username": self._user_name(user_id),
                "team_id": self.team_id,
                "name": self._user_name(user_id),
            },
            "channel": {"id": message.channel, "name": self.slack.channel_name(message.channel)},
            "callback_id": callback_id,
            "trigger_id": self._trigger(user_id),
            "response_url": self.slack.new_response_url(user_id, message.channel, kind="actions"),
            "message_ts": message.ts,
            "message": self._message(message),
        }

    async def message_shortcut(
        self, user_id: str, message: Message, callback_id: str = ids.MESSAGE_SHORTCUT
    ) -> DriverResponse:
        """Run a message shortcut from a message's ⋮ menu."""
        return await self.post_interactive(
            self.message_shortcut_payload(user_id, message, callback_id)
        )

    def event_payload(self, event: JSONDict) -> JSONDict:
        """An Events API ``event_callback`` around ``event``, for the installation serving this
        workspace (``authorizations[0].team_id`` is null for an org-wide one, as Slack sends)."""
        installation = self.slack.installation_for(self.team_id)
        org_wide = self.is_enterprise_install
        payload: JSONDict = {"token": self.verification_token, "team_id": self.team_id}
        if self.enterprise_id:
            payload["enterprise_id"] = self.enterprise_id
        payload.update(
            api_app_id=self.api_app_id,
            event=event,
            type="event_callback",
            event_id=f"Ev{next(self._events):08d}LOCAL",
            event_time=int(self.clock()),
            authorizations=[
                {
                    "enterprise_id": self.enterprise_id,
                    "team_id": None if org_wide else self.team_id,
                    "user_id": installation.bot_user_id if installation else self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": org_wide,
                }
            ],
            is_ext_shared_channel=False,
        )
        if self.enterprise_id:
            payload.update(context_team_id=self.team_id, context_enterprise_id=self.enterprise_id)
        return payload

    async def event(self, event: JSONDict) -> DriverResponse:
        return await self.post(json.dumps(self.event_payload(event)).encode(), "application/json")

    def app_home_opened_event(self, user_id: str, tab: str = "home") -> JSONDict:
        event: JSONDict = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": self.slack.dm_channel(user_id),
            "tab": tab,
            "event_ts": self._ts(),
        }
        home = self.slack.home(user_id)
        if home is not None:
            event["view"] = copy_json(home.view)
        return event

    async def app_home_opened(self, user_id: str, tab: str = "home") -> DriverResponse:
        """Open the app's Home (or Messages) tab."""
        return await self.event(self.app_home_opened_event(user_id, tab))
