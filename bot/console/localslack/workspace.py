"""The state of one LocalSlack workspace and the bookkeeping every Web API method shares.

`Workspace` keeps users, user groups, channels, messages, open views, the journal of calls, the
triggers and response URLs issued, and publishes every visible change on `subscribe()` queues.
The method families (`directory`, `messages`, `views`, `response_urls`) build on it, and
`LocalSlack` (`server`) serves them over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from bot.console.blockkit import NO_ACTION_ID
from bot.console.localslack.records import (
    ApiCall,
    Channel,
    Event,
    EventKind,
    Grant,
    Installation,
    JSONDict,
    Message,
    ResponseUrl,
    SlackError,
    Team,
    Trigger,
    User,
    Usergroup,
    View,
)

__all__ = ["DEFAULT_SCOPES", "Workspace", "element_keys", "iter_elements", "truthy"]

#: the bot scopes of the installation LocalSlack starts with (those of manifest.yaml)
DEFAULT_SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
)


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def iter_elements(block: JSONDict) -> Iterator[JSONDict]:
    if isinstance(block.get("accessory"), dict):
        yield block["accessory"]
    if isinstance(block.get("element"), dict):
        yield block["element"]
    if block.get("type") == "actions" and isinstance(block.get("elements"), list):
        yield from (e for e in block["elements"] if isinstance(e, dict))


def element_keys(blocks: list[JSONDict]) -> Iterator[tuple[str, str]]:
    for block in blocks:
        for element in iter_elements(block):
            yield str(block.get("block_id")), str(element.get("action_id"))


class Workspace:
    """One Slack workspace's state: people, groups, channels, messages and views.

    With ``enterprise_id`` it is the first workspace of an Enterprise Grid org (add more with
    `LocalSlack.add_team`), and ``bot_token`` belongs to an org-wide install unless ``org_install``
    is false. Each Web API call acts as the installation its token belongs to (``_caller``).
    """

    def __init__(
        self,
        bot_token: str = "xoxb-local",  # noqa: S107 - the token this fake workspace accepts
        team_id: str = "T0LOCAL",
        bot_user_id: str = "U0BOT",
        *,
        bot_id: str = "B0BOT",
        app_id: str = "A0LOCAL",
        team_domain: str = "local",
        bot_name: str = "nexthink",
        clock: Callable[[], float] = time.time,
        trigger_ttl: float = 3.0,
        response_url_ttl: float = 30 * 60,
        response_url_uses: int = 5,
        auto_create_channels: bool = True,
        enterprise_id: str | None = None,
        enterprise_name: str = "Local Org",
        org_install: bool | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.clock = clock
        self.trigger_ttl = trigger_ttl
        self.response_url_ttl = response_url_ttl
        self.response_url_uses = response_url_uses
        self.auto_create_channels = auto_create_channels
        self.enterprise_id = enterprise_id
        self.enterprise_name = enterprise_name
        org_wide = enterprise_id is not None if org_install is None else org_install
        if org_wide and enterprise_id is None:
            raise ValueError("an org-wide install needs an enterprise_id")

        self.teams: dict[str, Team] = {team_id: Team(team_id, team_domain.title(), team_domain)}
        self.installations: list[Installation] = [
            Installation(
                bot_token=bot_token,
                bot_user_id=bot_user_id,
                bot_id=bot_id,
                team_id=None if org_wide else team_id,
                enterprise_id=enterprise_id,
                is_enterprise_install=org_wide,
                teams={team_id},
                scopes=list(DEFAULT_SCOPES),
            )
        ]
        #: the installation the Web API call being answered acts as
        self._caller: Installation = self.installations[0]
        self.users: dict[str, User] = {}
        self.usergroups: dict[str, Usergroup] = {}
        self.channels: dict[str, Channel] = {}
        self.calls: list[ApiCall] = []
        self.messages: dict[str, list[Message]] = {}
        #: the first message of each (channel, ts): ``find_message`` without a scan, which made
        #: ``chat.update`` slower with every message kept (seconds in a 100,000-command soak)
        self._by_ts: dict[tuple[str, str], Message] = {}
        self.views: dict[str, View] = {}

        self._triggers: dict[str, Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._grants: dict[str, Grant] = {}
        self._home_view_ids: dict[str, str] = {}
        self._subscribers: list[asyncio.Queue[Event]] = []
        self._ids = itertools.count(1)
        self._last_micros = 0
        self._url: str | None = None
        self.add_user(id=bot_user_id, name=bot_name, real_name=bot_name.title(), is_bot=True)

    @property
    def url(self) -> str:
        """The base URL, once `LocalSlack.start()` serves the workspace."""
        if self._url is None:
            raise RuntimeError("LocalSlack is not started")
        return self._url

    @property
    def api_url(self) -> str:
        """The Web API base URL, for ``SLACK_API_URL`` or ``AsyncWebClient(base_url=...)``."""
        return f"{self.url}/api/"

    # -- the workspace ------------------------------------------------------------------------

    def add_user(
        self,
        *,
        id: str,
        name: str,
        real_name: str = "",
        email: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        team_id: str | None = None,
        teams: list[str] | None = None,
        external: bool = False,
        enterprise_id: str | None = None,
    ) -> User:
        """A person; ``team_id`` is their home workspace (default the first), ``teams`` every
        workspace of the org they are in (default the home one): ``W…`` IDs for org users.
        ``external``: a Slack Connect member of another organisation, whose ``team_id`` (and
        ``enterprise_id``, if their org is a Grid) are their own; every token sees them."""
        home = team_id or (teams[0] if teams else self.team_id)
        user = User(
            id=id,
            name=name,
            real_name=real_name,
            email=email,
            is_bot=is_bot,
            deleted=deleted,
            team_id=home,
            teams=list(teams or [home]),
            external=external,
            enterprise_id=enterprise_id,
        )
        self.users[id] = user
        return user

    def add_usergroup(
        self,
        *,
        handle: str,
        id: str,
        members: list[str],
        name: str | None = None,
        team_id: str | None = None,
    ) -> Usergroup:
        """A user group of ``team_id`` (default the first workspace); an org-level group when
        ``team_id`` is the enterprise ID."""
        group = Usergroup(
            id=id,
            handle=handle,
            name=name or handle,
            members=list(members),
            team_id=team_id or self.team_id,
        )
        self.usergroups[id] = group
        return group

    def add_channel(self, *, id: str, name: str, team_id: str | None = None) -> Channel:
        channel = Channel(id=id, name=name, team_id=team_id or self.team_id)
        self.channels[id] = channel
        return channel

    def dm_channel(self, user_id: str) -> str:
        """The bot's IM with a user (a stable ``D…`` ID), opened if needed."""
        channel_id = "D" + user_id[1:]
        if channel_id not in self.channels:
            user = self.users.get(user_id)
            self.channels[channel_id] = Channel(
                id=channel_id,
                name="directmessage",
                user=user_id,
                team_id=user.team_id if user else self.team_id,
            )
        return channel_id

    def channel_name(self, channel_id: str) -> str:
        channel = self.channels.get(channel_id)
        return channel.name if channel else channel_id.lower()

    def add_message(
        self, channel: str, user: str, text: str, *, blocks: list[JSONDict] | None = None
    ) -> Message:
        """A message a person posted (to run a message shortcut on, for instance)."""
        self._ensure_channel(channel)
        message = Message(channel, self._next_ts(), user, text, blocks, via="user", author=user)
        self._add(message)
        return message

    # -- observing ----------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    def messages_in(self, channel: str) -> list[Message]:
        return list(self.messages.get(channel, []))

    def find_message(self, channel: str, ts: str) -> Message | None:
        return self._by_ts.get((channel, ts))

    def home(self, user_id: str) -> View | None:
        view_id = self._home_view_ids.get(user_id)
        return self.views.get(view_id) if view_id else None

    def subscribe(self) -> asyncio.Queue[Event]:
        """A queue receiving every change people would see, from now on."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    # -- shared by the Web API methods ------------------------------------------------------

    def _fill_ids(self, blocks: Any) -> Any:
        """A copy of ``blocks`` in which every block and interactive element has an ID."""
        if not isinstance(blocks, list):
            return blocks
        filled: list[JSONDict] = json.loads(json.dumps(blocks))
        for block in filled:
            block.setdefault("block_id", f"b{next(self._ids)}")
            for element in iter_elements(block):
                if element.get("type") not in NO_ACTION_ID:
                    element.setdefault("action_id", f"a{next(self._ids)}")
        return filled

    def _ensure_channel(self, channel_id: str) -> None:
        if channel_id not in self.channels:
            self.channels[channel_id] = Channel(
                id=channel_id, name=channel_id.lower(), team_id=self._home_team()
            )

    # -- who is calling -----------------------------------------------------------------------

    @property
    def is_grid(self) -> bool:
        return self.enterprise_id is not None

    def _home_team(self) -> str:
        """The workspace the caller acts in by default: its own, else the first it may reach."""
        caller = self._caller
        if caller.team_id is not None:
            return caller.team_id
        return self.team_id if self.team_id in caller.teams else min(caller.teams)

    def _reaches(self, team_id: str) -> bool:
        """Whether the caller may act in ``team_id`` (its own, or org-level for an org install)."""
        caller = self._caller
        if team_id == self.enterprise_id:
            return caller.enterprise_id == team_id
        return team_id in caller.teams

    def _sees_user(self, user: User) -> bool:
        """A workspace token sees its workspace's people; an org-wide token the whole org's;
        everyone sees the Slack Connect members of shared channels."""
        if self._caller.is_enterprise_install or user.external:
            return True
        return any(self._reaches(team) for team in user.teams or [user.team_id])

    def _team_scope(self, params: JSONDict, *, required: bool) -> str | None:
        """The workspace a call acts in: a workspace token's own (``team_id`` ignored, as Slack
        ignores it); for an org-wide token the ``team_id`` passed, which ``required`` methods need
        (``missing_argument``) and which must be a workspace the app was added to
        (``team_access_not_granted``)."""
        caller = self._caller
        if not caller.is_enterprise_install:
            return caller.team_id
        team_id = str(params.get("team_id") or "")
        if not team_id:
            if required:
                raise SlackError("missing_argument", messages=["team_id is required"])
            return None
        if team_id not in caller.teams:
            raise SlackError("team_access_not_granted")
        return team_id

    def _next_ts(self) -> str:
        micros = max(int(self.clock() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _slack_message(self, message: Message) -> JSONDict:
        channel = self.channels.get(message.channel)
        return message.to_slack(
            bot_user_id=self._caller.bot_user_id,
            bot_id=self._caller.bot_id,
            app_id=self.app_id,
            team_id=channel.team_id if channel and channel.team_id else self.team_id,
        )

    def _add(self, message: Message) -> None:
        self.messages.setdefault(message.channel, []).append(message)
        self._by_ts.setdefault((message.channel, message.ts), message)
        self._publish("message_posted", message=message)

    def _remove(self, message: Message) -> None:
        kept = self.messages[message.channel]
        kept.remove(message)
        key = (message.channel, message.ts)
        if self._by_ts.get(key) is message:  # another of the same ts (rare) takes its place
            del self._by_ts[key]
            other = next((m for m in kept if m.ts == message.ts), None)
            if other is not None:
                self._by_ts[key] = other
        self._publish("message_deleted", message=message)

    def _publish(
        self,
        kind: EventKind,
        *,
        message: Message | None = None,
        view: View | None = None,
        errors: dict[str, str] | None = None,
    ) -> None:
        event = Event(
            kind,
            message=replace(message) if message else None,
            view=replace(view, view=json.loads(json.dumps(view.view)), stack=list(view.stack))
            if view
            else None,
            errors=errors,
            at=self.clock(),
        )
        for queue in self._subscribers:
            queue.put_nowait(event)
