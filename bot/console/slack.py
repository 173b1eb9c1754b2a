"""A local stand-in for Slack: the Web API methods the bot uses, response URLs, triggers and views.

`LocalSlack` is an aiohttp server that behaves like Slack for the bot: the test suite's fake Slack
(richer than bolt-python's ``tests/mock_web_api_server``) and the backend of ``nexthink-bot console``.
It keeps state (users, user groups, channels, messages, open views), journals every call, checks
Block Kit where that is cheap, and publishes every visible change on `subscribe()` queues.

Routes, under the base URL `start()` returns:

- ``/api/{method}``: the Web API (GET query, POST form or JSON; ``Authorization: Bearer``).
- ``/hooks/{commands|actions}/{team}/{n}/{secret}``: response URLs (`new_response_url`).

Choices where Slack cannot be copied exactly, so tests can rely on them:

- Channels: ``C…``/``G…`` IDs that were never added are created on first use when
  ``auto_create_channels`` is true (the default; the bot posts wherever a Nexthink wait asks). ``D…``
  IMs exist only once opened by ``conversations.open`` or by posting to a ``U…`` ID. Anything else
  answers ``channel_not_found``.
- Response URLs answer 200 ``{"ok": true}``; refusals are plain text like Slack's webhooks: 404
  ``expired_url`` (after 30 minutes), ``used_url`` (after 5 uses), ``no_service`` (unknown URL),
  ``message_not_found`` (nothing to replace or delete); 400 ``no_text``, ``invalid_blocks``,
  ``invalid_payload``. They are journalled as calls to the pseudo-method ``response_url``.
- ``replace_original``/``delete_original`` act on the message the URL was issued for (a click), else
  on the last message posted through the same URL; with nothing to replace, a new message is posted.
- Blocks and elements without ``block_id``/``action_id`` get generated ones, as Slack does, so a
  driver can click them and state values can be keyed by them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import web

from bot.console.blockkit import NO_ACTION_ID, json_pointer, validate_blocks, validate_view

__all__ = [
    "ApiCall",
    "Channel",
    "Event",
    "EventKind",
    "LocalSlack",
    "Message",
    "SlackError",
    "User",
    "Usergroup",
    "View",
    "validate_blocks",
    "validate_view",
]

JSONDict = dict[str, Any]

EventKind = Literal[
    "message_posted",
    "message_updated",
    "message_deleted",
    "view_opened",
    "view_updated",
    "view_pushed",
    "view_closed",
    "view_published",
    "view_errors",
]


@dataclass
class ApiCall:
    """One request to the Web API (or, as method ``response_url``, to a response URL)."""

    method: str
    params: JSONDict  # query, form and JSON merged; blocks/attachments/view/metadata decoded
    token: str | None
    at: float
    status: int = 200
    response: JSONDict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


@dataclass
class User:
    id: str
    name: str
    real_name: str = ""
    email: str | None = None
    is_bot: bool = False
    deleted: bool = False

    def to_slack(self, team_id: str) -> JSONDict:
        profile: JSONDict = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.name,
            "display_name_normalized": self.name,
            "team": team_id,
        }
        if self.email is not None:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": self.real_name,
            "tz": "Europe/Zurich",
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1700000000,
        }


@dataclass
class Usergroup:
    id: str
    handle: str
    name: str
    members: list[str]


@dataclass
class Channel:
    id: str
    name: str
    user: str | None = None  # the other party of an IM

    @property
    def is_im(self) -> bool:
        return self.id.startswith("D")


@dataclass
class Message:
    """A message as people see it; ``user`` is the ephemeral's recipient or a person author."""

    channel: str
    ts: str
    user: str | None
    text: str
    blocks: list[JSONDict] | None
    thread_ts: str | None = None
    ephemeral: bool = False
    updated: int = 0
    via: str = "chat.postMessage"  # chat.postEphemeral | response_url | ack | user
    author: str = ""  # the bot user ID, or the person who posted it (`LocalSlack.add_message`)
    attachments: list[JSONDict] | None = None
    metadata: JSONDict | None = None

    def to_slack(self, *, bot_user_id: str, bot_id: str, app_id: str, team_id: str) -> JSONDict:
        """The message object Slack puts in payloads (``message`` of block_actions, shortcuts)."""
        out: JSONDict = {"type": "message", "text": self.text, "ts": self.ts, "team": team_id}
        if self.author == bot_user_id:
            out.update(user=bot_user_id, bot_id=bot_id, app_id=app_id)
        else:
            out["user"] = self.author
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.attachments is not None:
            out["attachments"] = self.attachments
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.updated:
            out["edited"] = {"user": self.author, "ts": self.ts}
        return out


@dataclass
class View:
    """An open modal (``stack`` lists view IDs from the root to this one) or a published Home tab."""

    id: str
    user_id: str
    trigger_id: str | None
    view: JSONDict  # as Slack returns it: id, hash, state, blocks with IDs filled in, ...
    hash: str
    stack: list[str]

    @property
    def type(self) -> str:
        return str(self.view.get("type", ""))

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id", ""))

    @property
    def external_id(self) -> str:
        return str(self.view.get("external_id", ""))

    @property
    def state(self) -> dict[str, dict[str, JSONDict]]:
        values: dict[str, dict[str, JSONDict]] = self.view.setdefault("state", {}).setdefault(
            "values", {}
        )
        return values


@dataclass(frozen=True)
class Event:
    """A change a person would see; ``message`` and ``view`` are snapshots."""

    kind: EventKind
    message: Message | None = None
    view: View | None = None
    errors: dict[str, str] | None = None
    at: float = 0.0


class SlackError(Exception):
    """Slack's refusal: ``error`` as in ``{"ok": false, "error": ...}``, with details if any."""

    def __init__(self, error: str, *, messages: list[str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []

    def body(self) -> JSONDict:
        out: JSONDict = {"ok": False, "error": self.error}
        if self.messages:
            out["errors"] = self.messages
            out["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in self.messages]}
        return out


@dataclass
class _Failure:
    error: str
    times: int
    retry_after: int


@dataclass
class _Trigger:
    user_id: str | None
    view_id: str | None
    expires: float
    used: bool = False


@dataclass
class _ResponseUrl:
    user_id: str
    channel_id: str
    expires: float
    uses_left: int
    target: tuple[str, str] | None  # (channel, ts) of the message it was issued for
    last: tuple[str, str] | None = None  # (channel, ts) of the last message posted through it


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _iter_elements(block: JSONDict) -> Iterator[JSONDict]:
    if isinstance(block.get("accessory"), dict):
        yield block["accessory"]
    if isinstance(block.get("element"), dict):
        yield block["element"]
    if block.get("type") == "actions" and isinstance(block.get("elements"), list):
        yield from (e for e in block["elements"] if isinstance(e, dict))


def _element_keys(blocks: list[JSONDict]) -> Iterator[tuple[str, str]]:
    for block in blocks:
        for element in _iter_elements(block):
            yield str(block.get("block_id")), str(element.get("action_id"))


# ---------------------------------------------------------------------------------------------


class LocalSlack:
    """Slack's Web API, response URLs and triggers for one workspace, served over HTTP."""

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

        self.users: dict[str, User] = {}
        self.usergroups: dict[str, Usergroup] = {}
        self.channels: dict[str, Channel] = {}
        self.calls: list[ApiCall] = []
        self.messages: dict[str, list[Message]] = {}
        self.views: dict[str, View] = {}

        self._failures: dict[str, list[_Failure]] = {}
        self._delays: dict[str, list[float]] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._home_view_ids: dict[str, str] = {}
        self._subscribers: list[asyncio.Queue[Event]] = []
        self._ids = itertools.count(1)
        self._last_micros = 0
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self.add_user(id=bot_user_id, name=bot_name, real_name=bot_name.title(), is_bot=True)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the base URL."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/hooks/{path:.+}", self._handle_response_url)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        self._url = f"http://{host}:{bound_port}"
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
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
    ) -> User:
        user = User(
            id=id, name=name, real_name=real_name, email=email, is_bot=is_bot, deleted=deleted
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
    ) -> Usergroup:
        group = Usergroup(id=id, handle=handle, name=name or handle, members=list(members))
        self.usergroups[id] = group
        return group

    def add_channel(self, *, id: str, name: str) -> Channel:
        channel = Channel(id=id, name=name)
        self.channels[id] = channel
        return channel

    def dm_channel(self, user_id: str) -> str:
        """The bot's IM with a user (a stable ``D…`` ID), opened if needed."""
        channel_id = "D" + user_id[1:]
        if channel_id not in self.channels:
            self.channels[channel_id] = Channel(id=channel_id, name="directmessage", user=user_id)
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
        return next((m for m in self.messages.get(channel, []) if m.ts == ts), None)

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

    # -- faults, triggers, response URLs ------------------------------------------------------

    def fail(
        self, method: str, error: str = "ratelimited", times: int = 1, retry_after: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail: 429 + Retry-After for ``ratelimited``."""
        self._failures.setdefault(method, []).append(_Failure(error, times, retry_after))

    def slow(self, method: str, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` answer ``seconds`` late (after doing their
        work), like a Slack under load: for tests of what happens meanwhile."""
        self._delays.setdefault(method, []).extend([seconds] * times)

    def new_trigger_id(self, user_id: str | None = None, *, view_id: str | None = None) -> str:
        """A trigger valid ``trigger_ttl`` seconds, once; ``view_id`` is the modal it came from."""
        trigger_id = (
            f"{next(self._ids)}{int(self.clock())}.{self.team_id[1:]}.{secrets.token_hex(8)}"
        )
        self._triggers[trigger_id] = _Trigger(user_id, view_id, self.clock() + self.trigger_ttl)
        return trigger_id

    def new_response_url(
        self,
        user_id: str,
        channel_id: str,
        *,
        kind: Literal["commands", "actions"] = "commands",
        message: Message | None = None,
    ) -> str:
        """A response URL for an interaction; ``message`` is the one clicked, if any."""
        path = f"/hooks/{kind}/{self.team_id}/{next(self._ids)}/{secrets.token_hex(12)}"
        target = (message.channel, message.ts) if message else None
        self._response_urls[path] = _ResponseUrl(
            user_id,
            channel_id,
            self.clock() + self.response_url_ttl,
            self.response_url_uses,
            target,
        )
        return self.url + path

    def deliver(
        self,
        user_id: str,
        channel_id: str,
        payload: JSONDict,
        *,
        via: str,
        target: tuple[str, str] | None = None,
    ) -> Message | None:
        """Show a response-URL style payload (also an ack's body) as Slack would; returns the message."""
        blocks = payload.get("blocks")
        if _truthy(payload.get("delete_original")):
            found = self.find_message(*target) if target else None
            if found is None:
                raise SlackError("message_not_found")
            self._remove(found)
            return None
        if blocks is not None and (problems := validate_blocks(blocks)):
            raise SlackError("invalid_blocks", messages=problems)
        text = str(payload.get("text") or "")
        if not text and not blocks:
            raise SlackError("no_text")
        if _truthy(payload.get("replace_original")) and target:
            found = self.find_message(*target)
            if found is not None:
                found.text, found.blocks = text, self._fill_ids(blocks)
                found.updated += 1
                self._publish("message_updated", message=found)
                return found
        self._ensure_channel(channel_id)
        ephemeral = payload.get("response_type", "ephemeral") != "in_channel"
        message = Message(
            channel_id,
            self._next_ts(),
            user_id if ephemeral else None,
            text,
            self._fill_ids(blocks),
            thread_ts=payload.get("thread_ts"),
            ephemeral=ephemeral,
            via=via,
            author=self.bot_user_id,
        )
        self._add(message)
        return message

    # -- views, for the driver ----------------------------------------------------------------

    def close_view(self, view_id: str, *, clear: bool = False) -> None:
        """Close a modal (and the views pushed on it); ``clear`` closes its whole stack."""
        view = self.views.get(view_id)
        if view is None:
            return
        first = view.stack[0] if clear else view_id
        closing = [v for v in self.views.values() if first in v.stack and v.type == "modal"]
        for closed in closing:
            del self.views[closed.id]
            self._publish("view_closed", view=closed)

    def replace_view(self, view_id: str, spec: JSONDict) -> View:
        """Replace a view's content (``views.update`` and ``response_action: update``)."""
        view = self.views.get(view_id)
        if view is None:
            raise SlackError("not_found")
        if problems := validate_view(spec):
            raise SlackError("invalid_arguments", messages=problems)
        new = self._make_view(
            spec,
            view_id=view.id,
            user_id=view.user_id,
            trigger_id=view.trigger_id,
            stack=view.stack,
        )
        kept = {(b, a) for b, a in _element_keys(new.view["blocks"])}
        for block_id, actions in view.state.items():  # Slack keeps what was typed where IDs persist
            for action_id, entry in actions.items():
                if (block_id, action_id) in kept:
                    new.state.setdefault(block_id, {})[action_id] = entry
        self.views[view.id] = new
        self._publish("view_updated", view=new)
        return new

    def push_view(self, parent_id: str, spec: JSONDict, *, trigger_id: str | None = None) -> View:
        """Push a modal on top of ``parent_id`` (``views.push`` and ``response_action: push``)."""
        parent = self.views.get(parent_id)
        if parent is None:
            raise SlackError("not_found")
        if len(parent.stack) >= 3:
            raise SlackError("push_limit_reached")
        view = self._open(spec, parent.user_id, trigger_id, stack=parent.stack)
        self._publish("view_pushed", view=view)
        return view

    def show_view_errors(self, view_id: str, errors: dict[str, str]) -> None:
        view = self.views.get(view_id)
        if view is not None:
            self._publish("view_errors", view=view, errors=dict(errors))

    # -- HTTP ---------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: JSONDict = dict(request.query)
        token = None
        status, headers = 200, {}
        try:
            params.update(await _read_body(request))
            token = _bearer(request) or params.pop("token", None)
            handler = _METHODS.get(method)
            if handler is None:
                raise SlackError("unknown_method")
            if not token:
                raise SlackError("not_authed")
            if token != self.bot_token:
                raise SlackError("invalid_auth")
            failure = self._take_failure(method)
            if failure is not None and failure.error == "ratelimited":
                status, headers = 429, {"Retry-After": str(failure.retry_after)}
                raise SlackError("ratelimited")
            if failure is not None:
                raise SlackError(failure.error)
            body = handler(self, params)
        except SlackError as exc:
            body = exc.body()
        delays = self._delays.get(method)
        if delays:
            await asyncio.sleep(delays.pop(0))
        self.calls.append(ApiCall(method, params, token, self.clock(), status, body))
        return web.json_response(body, status=status, headers=headers)

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        hook = self._response_urls.get(request.path)
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        params = payload if isinstance(payload, dict) else {}
        status, answer = self._respond(hook, payload)
        self.calls.append(
            ApiCall("response_url", params, None, self.clock(), status, {"ok": status == 200})
        )
        if status == 200:
            return web.json_response({"ok": True})
        return web.Response(status=status, text=answer)

    def _respond(self, hook: _ResponseUrl | None, payload: Any) -> tuple[int, str]:
        if hook is None:
            return 404, "no_service"
        if self.clock() > hook.expires:
            return 404, "expired_url"
        if hook.uses_left <= 0:
            return 404, "used_url"
        hook.uses_left -= 1
        if not isinstance(payload, dict):
            return 400, "invalid_payload"
        try:
            message = self.deliver(
                hook.user_id,
                hook.channel_id,
                payload,
                via="response_url",
                target=hook.target or hook.last,
            )
        except SlackError as exc:
            return (404 if exc.error == "message_not_found" else 400), exc.error
        if message is not None:
            hook.last = (message.channel, message.ts)
        return 200, "ok"

    # -- Web API methods ----------------------------------------------------------------------

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
            if _truthy(params.get("include_users")):
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

    def _chat_post_message(self, params: JSONDict) -> JSONDict:
        channel = self._resolve_channel(params.get("channel"))
        text, blocks = self._message_content(params, required=True)
        message = Message(
            channel.id,
            self._next_ts(),
            None,
            text,
            blocks,
            thread_ts=params.get("thread_ts") or None,
            author=self.bot_user_id,
            attachments=params.get("attachments"),
            metadata=params.get("metadata"),
        )
        self._add(message)
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message.ts,
            "message": self._slack_message(message),
        }

    def _chat_post_ephemeral(self, params: JSONDict) -> JSONDict:
        channel = self._resolve_channel(params.get("channel"))
        user_id = params.get("user")
        if not user_id:
            raise SlackError("invalid_arguments", messages=["missing required field: user"])
        if user_id not in self.users:
            raise SlackError("user_not_found")
        text, blocks = self._message_content(params, required=True)
        message = Message(
            channel.id,
            self._next_ts(),
            str(user_id),
            text,
            blocks,
            thread_ts=params.get("thread_ts") or None,
            ephemeral=True,
            via="chat.postEphemeral",
            author=self.bot_user_id,
            attachments=params.get("attachments"),
        )
        self._add(message)
        return {"ok": True, "message_ts": message.ts}

    def _chat_update(self, params: JSONDict) -> JSONDict:
        message = self._own_message(params, "cant_update_message")
        text, blocks = self._message_content(params, required=False)
        if "text" in params or "markdown_text" in params:
            message.text = text
        if "blocks" in params:
            message.blocks = blocks
        if "attachments" in params:
            message.attachments = params["attachments"]
        message.updated += 1
        self._publish("message_updated", message=message)
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._slack_message(message),
        }

    def _chat_delete(self, params: JSONDict) -> JSONDict:
        message = self._own_message(params, "cant_delete_message")
        self._remove(message)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _views_open(self, params: JSONDict) -> JSONDict:
        trigger = self._take_trigger(params.get("trigger_id"))
        spec = self._view_spec(params, "modal")
        trigger_id = str(params["trigger_id"])
        view = self._open(spec, trigger.user_id or "", trigger_id, stack=[])
        self._publish("view_opened", view=view)
        return {"ok": True, "view": view.view}

    def _views_push(self, params: JSONDict) -> JSONDict:
        trigger = self._take_trigger(params.get("trigger_id"))
        spec = self._view_spec(params, "modal")
        parent_id = trigger.view_id
        if parent_id is None or parent_id not in self.views:
            mine = [
                v for v in self.views.values() if v.user_id == trigger.user_id and v.type == "modal"
            ]
            if not mine:
                raise SlackError("not_found")
            parent_id = max(mine, key=lambda v: len(v.stack)).id
        view = self.push_view(parent_id, spec, trigger_id=str(params["trigger_id"]))
        return {"ok": True, "view": view.view}

    def _views_update(self, params: JSONDict) -> JSONDict:
        view_id, external_id = params.get("view_id"), params.get("external_id")
        if view_id:
            view = self.views.get(str(view_id))
        elif external_id:
            view = next((v for v in self.views.values() if v.external_id == external_id), None)
        else:
            raise SlackError("invalid_arguments", messages=["view_id or external_id is required"])
        if view is None:
            raise SlackError("not_found")
        if params.get("hash") and params["hash"] != view.hash:
            raise SlackError("hash_conflict")
        spec = self._view_spec(params, view.type, view_id=view.id)
        return {"ok": True, "view": self.replace_view(view.id, spec).view}

    def _views_publish(self, params: JSONDict) -> JSONDict:
        user_id = str(params.get("user_id", ""))
        if user_id not in self.users:
            raise SlackError("user_not_found")
        spec = self._view_spec(params, "home")
        current = self.home(user_id)
        if current is not None and params.get("hash") and params["hash"] != current.hash:
            raise SlackError("hash_conflict")
        view_id = self._home_view_ids.setdefault(user_id, self._new_view_id())
        view = self._make_view(
            spec, view_id=view_id, user_id=user_id, trigger_id=None, stack=[view_id]
        )
        self.views[view_id] = view
        self._publish("view_published", view=view)
        return {"ok": True, "view": view.view}

    # -- helpers ------------------------------------------------------------------------------

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    def _take_trigger(self, trigger_id: Any) -> _Trigger:
        trigger = self._triggers.get(str(trigger_id or ""))
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if trigger.used:
            raise SlackError("exchanged_trigger_id")
        if self.clock() > trigger.expires:
            raise SlackError("expired_trigger_id")
        trigger.used = True
        return trigger

    def _view_spec(self, params: JSONDict, kind: str, *, view_id: str | None = None) -> JSONDict:
        spec = params.get("view")
        if not isinstance(spec, dict):
            raise SlackError(
                "invalid_arguments", messages=[f"must be an object {json_pointer('/view')}"]
            )
        problems = validate_view(spec)
        if spec.get("type") != kind:
            problems.insert(0, f"must be {kind} {json_pointer('/view/type')}")
        if problems:
            raise SlackError("invalid_arguments", messages=problems)
        external_id = spec.get("external_id")
        if external_id and any(
            v.external_id == external_id and v.id != view_id for v in self.views.values()
        ):
            raise SlackError("duplicate_external_id")
        return spec

    def _open(
        self, spec: JSONDict, user_id: str, trigger_id: str | None, *, stack: list[str]
    ) -> View:
        view_id = self._new_view_id()
        view = self._make_view(
            spec, view_id=view_id, user_id=user_id, trigger_id=trigger_id, stack=[*stack, view_id]
        )
        self.views[view_id] = view
        return view

    def _new_view_id(self) -> str:
        return f"V{next(self._ids):04d}{secrets.token_hex(3).upper()}"

    def _make_view(
        self,
        spec: JSONDict,
        *,
        view_id: str,
        user_id: str,
        trigger_id: str | None,
        stack: list[str],
    ) -> View:
        view_hash = f"{int(self.clock())}.{secrets.token_urlsafe(6)}"
        body: JSONDict = {
            "id": view_id,
            "team_id": self.team_id,
            "type": spec["type"],
            "blocks": self._fill_ids(spec.get("blocks", [])),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "state": {"values": {}},
            "hash": view_hash,
            "title": spec.get("title"),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "close": spec.get("close"),
            "submit": spec.get("submit"),
            "previous_view_id": stack[-2] if len(stack) > 1 else None,
            "root_view_id": stack[0],
            "app_id": self.app_id,
            "external_id": spec.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        return View(view_id, user_id, trigger_id, body, view_hash, list(stack))

    def _fill_ids(self, blocks: Any) -> Any:
        """A copy of ``blocks`` in which every block and interactive element has an ID."""
        if not isinstance(blocks, list):
            return blocks
        filled: list[JSONDict] = json.loads(json.dumps(blocks))
        for block in filled:
            block.setdefault("block_id", f"b{next(self._ids)}")
            for element in _iter_elements(block):
                if element.get("type") not in NO_ACTION_ID:
                    element.setdefault("action_id", f"a{next(self._ids)}")
        return filled

    def _message_content(
        self, params: JSONDict, *, required: bool
    ) -> tuple[str, list[JSONDict] | None]:
        text = str(params.get("text") or params.get("markdown_text") or "")
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            raise SlackError("invalid_blocks_format")
        if blocks is not None and (problems := validate_blocks(blocks)):
            raise SlackError("invalid_blocks", messages=problems)
        if required and not text and not blocks and not params.get("attachments"):
            raise SlackError("no_text")
        if len(text) > 40000:
            raise SlackError("msg_too_long")
        filled: list[JSONDict] | None = self._fill_ids(blocks)
        return text, filled

    def _own_message(self, params: JSONDict, not_mine: str) -> Message:
        message = self.find_message(str(params.get("channel", "")), str(params.get("ts", "")))
        if message is None or message.ephemeral:
            raise SlackError("message_not_found")
        if message.author != self.bot_user_id:
            raise SlackError(not_mine)
        return message

    def _resolve_channel(self, channel_id: Any) -> Channel:
        key = str(channel_id or "")
        if key in self.channels:
            return self.channels[key]
        if key[:1] in ("U", "W") and key in self.users:
            return self.channels[self.dm_channel(key)]
        by_name = next((c for c in self.channels.values() if c.name == key.lstrip("#")), None)
        if by_name is not None and not by_name.is_im:
            return by_name
        if self.auto_create_channels and key[:1] in ("C", "G") and key[1:].isalnum():
            return self.add_channel(id=key, name=key.lower())
        raise SlackError("channel_not_found")

    def _ensure_channel(self, channel_id: str) -> None:
        if channel_id not in self.channels:
            self.channels[channel_id] = Channel(id=channel_id, name=channel_id.lower())

    def _next_ts(self) -> str:
        micros = max(int(self.clock() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _slack_message(self, message: Message) -> JSONDict:
        return message.to_slack(
            bot_user_id=self.bot_user_id,
            bot_id=self.bot_id,
            app_id=self.app_id,
            team_id=self.team_id,
        )

    def _add(self, message: Message) -> None:
        self.messages.setdefault(message.channel, []).append(message)
        self._publish("message_posted", message=message)

    def _remove(self, message: Message) -> None:
        self.messages[message.channel].remove(message)
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


_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")


async def _read_body(request: web.Request) -> JSONDict:
    """Form or JSON parameters, with the fields Slack takes as JSON strings decoded."""
    if request.method != "POST" or not request.can_read_body:
        return {}
    params: JSONDict
    if request.content_type == "application/json":
        try:
            params = await request.json()
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(params, dict):
            raise SlackError("invalid_json")
    else:
        form = await request.post()
        params = {key: value for key, value in form.items() if isinstance(value, str)}
    for key in _JSON_FIELDS:
        if isinstance(params.get(key), str):
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                continue  # left as a string: the method answers with its own error
    return params


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else None


_METHODS: dict[str, Callable[[LocalSlack, JSONDict], JSONDict]] = {
    "auth.test": LocalSlack._auth_test,
    "users.info": LocalSlack._users_info,
    "users.lookupByEmail": LocalSlack._users_lookup_by_email,
    "usergroups.list": LocalSlack._usergroups_list,
    "usergroups.users.list": LocalSlack._usergroups_users_list,
    "conversations.open": LocalSlack._conversations_open,
    "chat.postMessage": LocalSlack._chat_post_message,
    "chat.postEphemeral": LocalSlack._chat_post_ephemeral,
    "chat.update": LocalSlack._chat_update,
    "chat.delete": LocalSlack._chat_delete,
    "views.open": LocalSlack._views_open,
    "views.push": LocalSlack._views_push,
    "views.update": LocalSlack._views_update,
    "views.publish": LocalSlack._views_publish,
}
