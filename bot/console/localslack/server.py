"""LocalSlack: a local stand-in for Slack's Web API, served over HTTP.

`LocalSlack` is an aiohttp server that behaves like Slack for the bot: the test suite's fake Slack
(richer than bolt-python's ``tests/mock_web_api_server``) and the backend of ``nexthink-bot console``.
It keeps state (users, user groups, channels, messages, open views), journals every call, checks
Block Kit where that is cheap, and publishes every visible change on `subscribe()` queues.

Routes, under the base URL `start()` returns:

- ``/api/{method}``: the Web API (GET query, POST form or JSON; ``Authorization: Bearer``).
- ``/hooks/{commands|actions}/{team}/{n}/{secret}``: response URLs (`new_response_url`).
- ``/oauth/v2/authorize``: an admin approving an install (`bot.console.localslack.installs`).
- ``/archives/{channel}/p{ts}``: a permalink (``chat.getPermalink``): the message, as JSON.

Enterprise Grid: ``LocalSlack(enterprise_id="E0…")`` is an org whose first workspace is
``team_id``, served by an org-wide install (``org_install=False``: a workspace install); add
workspaces with `add_team`, ``W…`` people in several with ``add_user(teams=[...])``, org-level
groups with ``add_usergroup(team_id=<enterprise id>)``. Every token is an `Installation`'s: a
call acts as it (``auth.test``, who may be seen, which channels reached); tokens of other
workspaces answer ``channel_not_found``/``user_not_found`` there; org-wide tokens must pass a
granted ``team_id`` where Slack requires one (``missing_argument``, ``team_access_not_granted``).

Choices where Slack cannot be copied exactly, so tests can rely on them:

- Channels: ``C…``/``G…`` IDs that were never added are created on first use when
  ``auto_create_channels`` is true (the default; the bot posts wherever a Nexthink wait asks). ``D…``
  IMs exist only once opened by ``conversations.open`` or by posting to a ``U…`` ID. Anything else
  answers ``channel_not_found``.
- Response URLs: see `bot.console.localslack.response_urls`.
- ``replace_original``/``delete_original`` act on the message the URL was issued for (a click), else
  on the last message posted through the same URL; with nothing to replace, a new message is posted.
- Blocks and elements without ``block_id``/``action_id`` get generated ones, as Slack does, so a
  driver can click them and state values can be keyed by them.

Where each part lives: `records` (the dataclasses), `workspace` (state, events), `directory`
(users, groups, conversations), `messages` (``chat.*``), `views` (``views.*``, triggers),
`response_urls`; this module routes HTTP and arms failures and delays.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiohttp import web

from bot.console.localslack.directory import DirectoryMethods
from bot.console.localslack.installs import Installs
from bot.console.localslack.records import ApiCall, Installation, JSONDict, SlackError
from bot.console.localslack.response_urls import ResponseUrls
from bot.console.localslack.views import ViewMethods

__all__ = ["LocalSlack"]


@dataclass
class _Failure:
    error: str
    times: int
    retry_after: int


class LocalSlack(DirectoryMethods, ResponseUrls, ViewMethods, Installs):
    """Slack's Web API, response URLs, triggers and OAuth for one workspace or an Enterprise Grid
    org, served over HTTP."""

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
        super().__init__(
            bot_token,
            team_id,
            bot_user_id,
            bot_id=bot_id,
            app_id=app_id,
            team_domain=team_domain,
            bot_name=bot_name,
            clock=clock,
            trigger_ttl=trigger_ttl,
            response_url_ttl=response_url_ttl,
            response_url_uses=response_url_uses,
            auto_create_channels=auto_create_channels,
            enterprise_id=enterprise_id,
            enterprise_name=enterprise_name,
            org_install=org_install,
        )
        self._failures: dict[str, list[_Failure]] = {}
        self._delays: dict[str, list[float]] = {}
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the base URL."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/hooks/{path:.+}", self._handle_response_url)
        app.router.add_get("/oauth/v2/authorize", self._handle_authorize)
        app.router.add_get("/archives/{channel}/{stamp}", self._handle_permalink)
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

    # -- faults -------------------------------------------------------------------------------

    def fail(
        self, method: str, error: str = "ratelimited", times: int = 1, retry_after: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail: 429 + Retry-After for ``ratelimited``."""
        self._failures.setdefault(method, []).append(_Failure(error, times, retry_after))

    def slow(self, method: str, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` answer ``seconds`` late (after doing their
        work), like a Slack under load: for tests of what happens meanwhile."""
        self._delays.setdefault(method, []).extend([seconds] * times)

    def _authenticate(self, token: str | None) -> Installation:
        if not token:
            raise SlackError("not_authed")
        installation = self.installation_of(token)
        if installation is None:
            raise SlackError("invalid_auth")
        if token in installation.revoked:
            raise SlackError("token_revoked")
        return installation

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    # -- HTTP ---------------------------------------------------------------------------------

    async def _handle_permalink(self, request: web.Request) -> web.Response:
        message = self.message_at(f"{self.url}{request.path}")
        if message is None:
            return web.json_response({"ok": False, "error": "message_not_found"}, status=404)
        return web.json_response(
            {"ok": True, "channel": message.channel, "message": self._slack_message(message)}
        )

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: JSONDict = dict(request.query)
        token = None
        status, headers = 200, {}
        try:
            params.update(await _read_body(request))
            authorization = request.headers.get("Authorization", "")
            token = _bearer(request) or params.pop("token", None)
            handler = _METHODS.get(method)
            oauth = method == "oauth.v2.access"
            credentials = (params.pop("client_id", None), params.pop("client_secret", None))
            if handler is None and not oauth:
                raise SlackError("unknown_method")
            if not oauth and method not in _UNAUTHENTICATED:
                self._caller = self._authenticate(token)
            failure = self._take_failure(method)
            if failure is not None and failure.error == "ratelimited":
                status, headers = 429, {"Retry-After": str(failure.retry_after)}
                raise SlackError("ratelimited")
            if failure is not None:
                raise SlackError(failure.error)
            if handler is None:
                body = self._oauth_v2_access(params, authorization, credentials)
            else:
                body = handler(self, params)
        except SlackError as exc:
            body = exc.body()
        finally:
            self._caller = self.installations[0]
        delays = self._delays.get(method)
        if delays:
            await asyncio.sleep(delays.pop(0))
        self.calls.append(ApiCall(method, params, token, self.clock(), status, body))
        return web.json_response(body, status=status, headers=headers)


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


#: methods Slack answers without a token
_UNAUTHENTICATED = frozenset({"api.test"})

_METHODS: dict[str, Callable[[LocalSlack, JSONDict], JSONDict]] = {
    "api.test": lambda slack, params: {"ok": True, "args": params},
    "auth.test": LocalSlack._auth_test,
    "users.info": LocalSlack._users_info,
    "users.lookupByEmail": LocalSlack._users_lookup_by_email,
    "usergroups.list": LocalSlack._usergroups_list,
    "usergroups.users.list": LocalSlack._usergroups_users_list,
    "conversations.open": LocalSlack._conversations_open,
    "conversations.list": LocalSlack._conversations_list,
    "chat.postMessage": LocalSlack._chat_post_message,
    "chat.postEphemeral": LocalSlack._chat_post_ephemeral,
    "chat.update": LocalSlack._chat_update,
    "chat.delete": LocalSlack._chat_delete,
    "chat.getPermalink": LocalSlack._chat_get_permalink,
    "views.open": LocalSlack._views_open,
    "views.push": LocalSlack._views_push,
    "views.update": LocalSlack._views_update,
    "views.publish": LocalSlack._views_publish,
}
