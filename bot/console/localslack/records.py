"""What a LocalSlack workspace holds: users, user groups, channels, messages, views, and the calls,
events and refusals it reports; also the triggers and response URLs it has issued."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ApiCall",
    "Channel",
    "Event",
    "EventKind",
    "Grant",
    "Installation",
    "JSONDict",
    "Message",
    "ResponseUrl",
    "SlackError",
    "Team",
    "Trigger",
    "User",
    "Usergroup",
    "View",
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
    """A person (or bot); ``team_id`` is their home workspace, ``teams`` all they belong to."""

    id: str
    name: str
    real_name: str = ""
    email: str | None = None
    is_bot: bool = False
    deleted: bool = False
    team_id: str = ""
    teams: list[str] = field(default_factory=list)
    #: a Slack Connect member of another organisation (``team_id`` and ``enterprise_id`` theirs)
    external: bool = False
    enterprise_id: str | None = None

    def to_slack(self, team_id: str, *, enterprise: tuple[str, str] | None = None) -> JSONDict:
        """The user object as ``users.info`` shows it in ``team_id``; in an Enterprise Grid org
        (``enterprise`` = (id, name)) with the ``enterprise_user`` Slack adds there."""
        profile: JSONDict = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.name,
            "display_name_normalized": self.name,
            "team": team_id,
        }
        if self.email is not None:
            profile["email"] = self.email
        out: JSONDict = {
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
        if enterprise is not None:
            out["enterprise_user"] = {
                "id": self.id,
                "enterprise_id": enterprise[0],
                "enterprise_name": enterprise[1],
                "is_admin": False,
                "is_owner": False,
                "is_primary_owner": False,
                "teams": list(self.teams or [self.team_id]),
            }
        return out


@dataclass
class Team:
    """A workspace; in an Enterprise Grid org, one of the org's workspaces."""

    id: str
    name: str
    domain: str


@dataclass
class Installation:
    """The app installed in one workspace, or org-wide (``is_enterprise_install``), and its tokens.

    ``teams`` are the workspaces its bot token may act in: its own, or for an org-wide install the
    org's workspaces where an admin added the app. ``revoked`` tokens answer ``token_revoked``.
    """

    bot_token: str
    bot_user_id: str
    bot_id: str
    team_id: str | None  # None for an org-wide install
    enterprise_id: str | None
    is_enterprise_install: bool
    teams: set[str]
    scopes: list[str] = field(default_factory=list)
    user_id: str | None = None  # who installed it
    user_token: str | None = None
    user_scopes: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    @property
    def active(self) -> bool:
        return self.bot_token not in self.revoked

    @property
    def key(self) -> tuple[str | None, str | None]:
        """(enterprise_id, team_id): what a reinstall replaces."""
        return self.enterprise_id, self.team_id


@dataclass
class Usergroup:
    """A user group; ``team_id`` is its workspace, or the enterprise ID for an org-level group."""

    id: str
    handle: str
    name: str
    members: list[str]
    team_id: str = ""


@dataclass
class Channel:
    id: str
    name: str
    user: str | None = None  # the other party of an IM
    team_id: str = ""

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
class Trigger:
    user_id: str | None
    view_id: str | None
    expires: float
    used: bool = False
    team_id: str | None = None  # the workspace the person acted in


@dataclass
class ResponseUrl:
    user_id: str
    channel_id: str
    expires: float
    uses_left: int
    target: tuple[str, str] | None  # (channel, ts) of the message it was issued for
    last: tuple[str, str] | None = None  # (channel, ts) of the last message posted through it


@dataclass
class Grant:
    """What an admin approved, waiting for ``oauth.v2.access`` to exchange its code."""

    team_id: str | None  # None: org-wide
    enterprise_id: str | None
    scopes: list[str]
    user_scopes: list[str]
    redirect_uri: str
    user_id: str
    expires: float
    used: bool = False
