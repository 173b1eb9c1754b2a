"""Send the bot what Slack would send it, signed as Slack signs it.

`SlackDriver` plays the Slack client's part against a running bot: slash commands, button clicks,
modal submissions, options requests, shortcuts and events, built like Slack's own payloads (see
``tests/fixtures/``) with response URLs and trigger IDs issued by a `LocalSlack`. It then does what
Slack does with the bot's acknowledgement: a slash command's ack body is shown to the user, a
``view_submission`` ack closes, updates, pushes or annotates the modal.

Each ``*_payload`` method only builds the payload, for tests that feed the app Socket Mode envelopes
(`socket_envelope`); the methods without the suffix also post it to ``events_url`` (HTTP mode).

Clicks use the blocks of the message or view passed in, as a person clicks what their screen shows:
pass a copy (``dataclasses.replace(message)``) to click a stale rendering after an update.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import httpx

from bot.console.localslack import JSONDict, LocalSlack, Message, SlackError, View
from handlers import ids

__all__ = ["DriverResponse", "SlackDriver", "Transport", "socket_envelope"]

# (body, headers) -> (status, headers, body): posts a signed request somewhere other than over HTTP
Transport = Callable[[bytes, dict[str, str]], Awaitable[tuple[int, Mapping[str, str], bytes]]]

_REQUIRED = "Please complete this required field."
_SOCKET_TYPES = {
    "block_actions": "interactive",
    "block_suggestion": "interactive",
    "view_submission": "interactive",
    "view_closed": "interactive",
    "shortcut": "interactive",
    "message_action": "interactive",
    "event_callback": "events_api",
}


@dataclass(frozen=True)
class DriverResponse:
    """The bot's answer: ``status`` 0 means never sent (Slack's client would refuse, see problems)."""

    status: int
    body: Any  # the JSON answer decoded, else its text ("" when empty)
    elapsed: float
    problems: tuple[str, ...] = ()


def socket_envelope(
    type: str,
    payload: JSONDict,
    *,
    envelope_id: str | None = None,
    accepts_response_payload: bool | None = None,
) -> JSONDict:
    """A Socket Mode envelope (``slash_commands``, ``interactive`` or ``events_api``) around ``payload``.

    ``type`` may also be a payload type (``block_actions``, ``event_callback``, ...).
    """
    kind = _SOCKET_TYPES.get(type, type)
    envelope: JSONDict = {
        "envelope_id": envelope_id or str(uuid.uuid4()),
        "type": kind,
        "payload": payload,
        "accepts_response_payload": (
            kind != "events_api" if accepts_response_payload is None else accepts_response_payload
        ),
    }
    if kind == "events_api":
        envelope.update(retry_attempt=0, retry_reason="")
    return envelope


class SlackDriver:
    """A Slack client's side of the conversation with the bot, for one workspace."""

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
        self.events_url = events_url
        self.slack = slack
        self.team_id = team_id or slack.team_id
        self.clock = clock
        self.api_app_id = api_app_id or slack.app_id
        self.verification_token = verification_token
        self.enterprise_id = enterprise_id
        self.ack_deadline = ack_deadline
        self._secret = signing_secret.encode()
        self._transport = transport
        self._http = httpx.AsyncClient(timeout=timeout) if transport is None else None
        self._events = itertools.count(1)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- signing and sending ------------------------------------------------------------------

    def sign(self, body: bytes, timestamp: int) -> dict[str, str]:
        """The headers Slack adds: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
        base = b"v0:" + str(timestamp).encode() + b":" + body
        signature = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        return {"x-slack-signature": signature, "x-slack-request-timestamp": str(timestamp)}

    async def post(
        self, body: bytes, content_type: str = "application/x-www-form-urlencoded"
    ) -> DriverResponse:
        """Post a raw body to the bot, signed now."""
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **self.sign(body, int(self.clock())),
        }
        started = time.perf_counter()
        if self._transport is not None:
            status, answer_headers, content = await self._transport(body, headers)
        else:
            assert self._http is not None
            response = await self._http.post(self.events_url, content=body, headers=headers)
            status, answer_headers, content = (
                response.status_code,
                response.headers,
                response.content,
            )
        elapsed = time.perf_counter() - started
        late: tuple[str, ...] = ()
        if elapsed > self.ack_deadline:
            late = (
                f"operation_timeout: answered after {elapsed:.1f} s; Slack waits {self.ack_deadline:g} s",
            )
        body = _decode(content, answer_headers.get("content-type", ""))
        return DriverResponse(status, body, elapsed, late)

    async def post_interactive(self, payload: JSONDict) -> DriverResponse:
        return await self.post(
            urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        )

    # -- slash commands -----------------------------------------------------------------------

    def command_payload(
        self, user_id: str, text: str, *, channel_id: str = "C0SUPPORT", command: str = ids.COMMAND
    ) -> dict[str, str]:
        """A slash command's fields, in Slack's order, with a fresh response URL and trigger."""
        fields = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.slack.team_domain,
            "channel_id": channel_id,
            "channel_name": self.slack.channel_name(channel_id),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
        }
        if self.enterprise_id:
            fields.update(enterprise_id=self.enterprise_id, enterprise_name="Local Org")
        fields["response_url"] = self.slack.new_response_url(user_id, channel_id)
        fields["trigger_id"] = self.slack.new_trigger_id(user_id)
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
        return _with(response, problems)

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
        found_block, element = _find_element(blocks or [], action_id, block_id, value)
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
            state = _element_state(element, value)
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
            payload.update(container=container, trigger_id=self.slack.new_trigger_id(user_id))
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
                live.state.setdefault(found_block, {})[action_id] = _element_state(element, value)
            trigger_id = self.slack.new_trigger_id(user_id, view_id=live.id)
            payload.update(container={"type": "view", "view_id": live.id}, trigger_id=trigger_id)
            payload.update(self._team_fields(), view=_copy(live.view))
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
        return _with(
            response,
            [] if response.status == 200 else [f"interaction failed: http {response.status}"],
        )

    # -- modals ---------------------------------------------------------------------------------

    def view_submission_payload(
        self, user_id: str, view_id: str, values: Mapping[str, Mapping[str, Any]] | None = None
    ) -> JSONDict:
        """The ``view_submission`` payload, ``state.values`` shaped per element type.

        ``values`` maps block ID -> action ID -> a value: a string (text inputs, the option value of
        selects and radio buttons, a user/conversation/channel ID, a date), a list of those for
        multi-selects and checkboxes, or a dict used as the element's state as is. Elements left out
        keep what the person chose before, else their initial value.
        """
        view = self._view(view_id)
        state = _view_state(view, values or {})
        view.state.clear()
        view.state.update(state)
        return {
            "type": "view_submission",
            **self._team_fields(),
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": self.slack.new_trigger_id(user_id, view_id=view_id),
            "view": _copy(view.view),
            "response_urls": [],
        }

    async def submit_view(
        self, user_id: str, view_id: str, values: Mapping[str, Mapping[str, Any]] | None = None
    ) -> DriverResponse:
        """Submit a modal, then close, update, push or annotate it as the ack's ``response_action`` says.

        Required inputs left empty are refused before sending, as Slack's client does (status 0).
        """
        payload = self.view_submission_payload(user_id, view_id, values)
        missing = _missing_required(payload["view"])
        if missing:
            errors = dict.fromkeys(missing, _REQUIRED)
            self.slack.show_view_errors(view_id, errors)
            body = {"response_action": "errors", "errors": errors}
            return DriverResponse(0, body, 0.0, tuple(f"{b}: {_REQUIRED}" for b in missing))
        response = await self.post_interactive(payload)
        return _with(response, self._apply_view_answer(view_id, response))

    def _apply_view_answer(self, view_id: str, response: DriverResponse) -> list[str]:
        if response.status != 200:
            return [f"We had some trouble connecting (http {response.status})"]
        body = response.body if isinstance(response.body, dict) else {}
        action = body.get("response_action")
        try:
            if action == "errors":
                self.slack.show_view_errors(view_id, dict(body.get("errors") or {}))
            elif action == "update":
                self.slack.replace_view(view_id, body.get("view") or {})
            elif action == "push":
                self.slack.push_view(view_id, body.get("view") or {})
            elif action == "clear":
                self.slack.close_view(view_id, clear=True)
            else:
                self.slack.close_view(view_id)
        except SlackError as exc:
            return [
                f"response_action {action} refused: {exc.error} {' '.join(exc.messages)}".strip()
            ]
        return []

    async def close_view(self, user_id: str, view_id: str) -> DriverResponse | None:
        """Close a modal with its close button; Slack tells the bot only if ``notify_on_close``."""
        view = self._view(view_id)
        response = None
        if view.view.get("notify_on_close"):
            payload = {
                "type": "view_closed",
                **self._team_fields(),
                "user": self._user(user_id),
                "api_app_id": self.api_app_id,
                "token": self.verification_token,
                "view": _copy(view.view),
                "is_cleared": bool(view.view.get("clear_on_close")),
            }
            response = await self.post_interactive(payload)
        self.slack.close_view(view_id, clear=bool(view.view.get("clear_on_close")))
        return response

    def suggestion_payload(
        self, user_id: str, view_id: str, action_id: str, value: str
    ) -> JSONDict:
        """The ``block_suggestion`` payload for typing ``value`` in an external select."""
        view = self._view(view_id)
        block_id, _ = _find_element(view.view.get("blocks") or [], action_id, None, None)
        return {
            "type": "block_suggestion",
            "user": self._user(user_id),
            "container": {"type": "view", "view_id": view_id},
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "action_id": action_id,
            "block_id": block_id,
            "value": value,
            **self._team_fields(),
            "view": _copy(view.view),
        }

    async def suggest(
        self, user_id: str, view_id: str, action_id: str, value: str
    ) -> DriverResponse:
        """Type in an external select; the answer's body holds the options Slack would list."""
        response = await self.post_interactive(
            self.suggestion_payload(user_id, view_id, action_id, value)
        )
        body = response.body if isinstance(response.body, dict) else {}
        options = body.get("options") or [
            o for g in body.get("option_groups") or [] for o in g.get("options", [])
        ]
        problems = []
        if response.status != 200:
            problems.append(f"options request failed: http {response.status}")
        elif len(options) > 100:
            problems.append(f"{len(options)} options: Slack shows at most 100")
        return _with(response, problems)

    # -- shortcuts and events -------------------------------------------------------------------

    def shortcut_payload(self, user_id: str, callback_id: str = ids.GLOBAL_SHORTCUT) -> JSONDict:
        return {
            "type": "shortcut",
            "token": self.verification_token,
            "action_ts": self._ts(),
            **self._team_fields(),
            "user": {"id": user_id, "username": self._user_name(user_id), "team_id": self.team_id},
            "callback_id": callback_id,
            "trigger_id": self.slack.new_trigger_id(user_id),
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
            "trigger_id": self.slack.new_trigger_id(user_id),
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
        """An Events API ``event_callback`` around ``event``."""
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._events):08d}LOCAL",
            "event_time": int(self.clock()),
            "authorizations": [
                {
                    "enterprise_id": self.enterprise_id,
                    "team_id": self.team_id,
                    "user_id": self.slack.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

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
            event["view"] = _copy(home.view)
        return event

    async def app_home_opened(self, user_id: str, tab: str = "home") -> DriverResponse:
        """Open the app's Home (or Messages) tab."""
        return await self.event(self.app_home_opened_event(user_id, tab))

    # -- helpers ------------------------------------------------------------------------------

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


# -- payload shaping ----------------------------------------------------------------------------


def _decode(content: bytes, content_type: str) -> Any:
    text = content.decode("utf-8", errors="replace")
    if "json" in content_type or text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _with(response: DriverResponse, problems: list[str]) -> DriverResponse:
    combined = (*response.problems, *problems)
    return DriverResponse(response.status, response.body, response.elapsed, combined)


def _copy(value: JSONDict) -> JSONDict:
    copied: JSONDict = json.loads(json.dumps(value))
    return copied


def _elements(blocks: list[JSONDict]) -> Iterator[tuple[JSONDict, JSONDict]]:
    for block in blocks:
        if isinstance(block.get("accessory"), dict):
            yield block, block["accessory"]
        if isinstance(block.get("element"), dict):
            yield block, block["element"]
        if block.get("type") == "actions":
            for element in block.get("elements") or []:
                yield block, element


def _find_element(
    blocks: list[JSONDict], action_id: str, block_id: str | None, value: Any
) -> tuple[str, JSONDict]:
    found = [
        (str(block.get("block_id", "")), element)
        for block, element in _elements(blocks)
        if element.get("action_id") == action_id and block_id in (None, block.get("block_id"))
    ]
    buttons = [(b, e) for b, e in found if e.get("type") == "button"]
    if value is not None and buttons:
        found = [(b, e) for b, e in buttons if e.get("value") == value]
    if not found:
        present = sorted({str(e.get("action_id")) for _, e in _elements(blocks)})
        raise LookupError(
            f"no element {action_id!r} (block {block_id!r}, value {value!r}); present: {present}"
        )
    return found[0]


def _options(element: JSONDict) -> Iterator[JSONDict]:
    yield from element.get("options") or []
    for group in element.get("option_groups") or []:
        yield from group.get("options") or []


def _option(element: JSONDict, value: Any) -> JSONDict:
    if isinstance(value, dict):
        return value
    for option in _options(element):
        if option.get("value") == value:
            return option
    if element["type"].endswith("external_select"):
        return {
            "text": {"type": "plain_text", "text": str(value), "emoji": True},
            "value": str(value),
        }
    raise LookupError(f"{element.get('action_id')!r} has no option {value!r}")


# element type -> (state key, initial key, multiple)
_STATE_KEYS: dict[str, tuple[str, str, bool]] = {
    "plain_text_input": ("value", "initial_value", False),
    "email_text_input": ("value", "initial_value", False),
    "url_text_input": ("value", "initial_value", False),
    "number_input": ("value", "initial_value", False),
    "rich_text_input": ("rich_text_value", "initial_value", False),
    "static_select": ("selected_option", "initial_option", False),
    "external_select": ("selected_option", "initial_option", False),
    "radio_buttons": ("selected_option", "initial_option", False),
    "overflow": ("selected_option", "initial_option", False),
    "multi_static_select": ("selected_options", "initial_options", True),
    "multi_external_select": ("selected_options", "initial_options", True),
    "checkboxes": ("selected_options", "initial_options", True),
    "users_select": ("selected_user", "initial_user", False),
    "multi_users_select": ("selected_users", "initial_users", True),
    "conversations_select": ("selected_conversation", "initial_conversation", False),
    "multi_conversations_select": ("selected_conversations", "initial_conversations", True),
    "channels_select": ("selected_channel", "initial_channel", False),
    "multi_channels_select": ("selected_channels", "initial_channels", True),
    "datepicker": ("selected_date", "initial_date", False),
    "timepicker": ("selected_time", "initial_time", False),
    "datetimepicker": ("selected_date_time", "initial_date_time", False),
}
_MISSING = object()


def _element_state(element: JSONDict, value: Any = _MISSING) -> JSONDict:
    """One entry of ``state.values``, as Slack builds it for this element type."""
    kind = element["type"]
    state: JSONDict = {"type": kind}
    if isinstance(value, dict) and kind not in (
        "static_select",
        "external_select",
        "radio_buttons",
        "overflow",
    ):
        return {**state, **value}
    key, initial, multiple = _STATE_KEYS.get(kind, ("value", "initial_value", False))
    if value is _MISSING or value is None:
        state[key] = element.get(initial, [] if multiple else None)
        return state
    with_options = "option" in key
    if multiple:
        items = list(value) if isinstance(value, list | tuple) else [value]
        state[key] = [_option(element, v) for v in items] if with_options else items
    else:
        state[key] = _option(element, value) if with_options else value
    return state


def _view_state(
    view: View, values: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, JSONDict]]:
    blocks = view.view.get("blocks") or []
    by_key = {
        (str(b.get("block_id")), str(e.get("action_id"))): (b, e) for b, e in _elements(blocks)
    }
    for block_id, actions in values.items():
        for action_id in actions:
            if (block_id, action_id) not in by_key:
                raise LookupError(
                    f"view {view.id} has no element {block_id}/{action_id}; present: {sorted(by_key)}"
                )
    state: dict[str, dict[str, JSONDict]] = {}
    for (block_id, action_id), (block, element) in by_key.items():
        if element.get("type") == "button":
            continue
        chosen = values.get(block_id, {})
        if action_id in chosen:
            entry = _element_state(element, chosen[action_id])
        elif action_id in view.state.get(block_id, {}):
            entry = view.state[block_id][action_id]
        elif block.get("type") == "input":
            entry = _element_state(element)
        else:
            continue
        state.setdefault(block_id, {})[action_id] = entry
    return state


def _missing_required(view: JSONDict) -> list[str]:
    values = view.get("state", {}).get("values", {})
    missing = []
    for block in view.get("blocks") or []:
        if block.get("type") != "input" or block.get("optional"):
            continue
        entry = values.get(block.get("block_id"), {}).get(
            block.get("element", {}).get("action_id"), {}
        )
        filled = [v for k, v in entry.items() if k != "type" and v not in (None, "", [])]
        if not filled:
            missing.append(str(block.get("block_id")))
    return missing
