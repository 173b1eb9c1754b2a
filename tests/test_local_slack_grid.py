"""LocalSlack as an Enterprise Grid org, OAuth v2 installs and revoked tokens, over loopback.

The org: enterprise E0ORG with workspaces T0LOCAL (Local) and T0SALES (Sales), the app installed
org-wide (token ``xoxb-org``) and added to both; T0LAB is a third workspace the app was not added
to. W0ALICE is in Local and Sales, U0SAM only in Sales.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import FileInstallationStore
from slack_sdk.oauth.state_store import FileOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.console import LocalSlack, SlackDriver, socket_envelope
from bot.console.session import Console
from bot.console.world import World
from handlers import ids

ORG_TOKEN = "xoxb-org"
SECRET = "local-signing-secret"


@pytest.fixture
async def org() -> AsyncIterator[LocalSlack]:
    slack = LocalSlack(bot_token=ORG_TOKEN, enterprise_id="E0ORG", enterprise_name="Acme Org")
    slack.add_team("T0SALES", name="Sales", domain="acme-sales")
    slack.add_team("T0LAB", name="Lab", app_added=False)
    slack.add_user(
        id="W0ALICE", name="alice", email="alice@example.com", teams=["T0LOCAL", "T0SALES"]
    )
    slack.add_user(id="U0SAM", name="sam", team_id="T0SALES")
    slack.add_usergroup(handle="it-support", id="S0LOCALIT", members=["W0ALICE"])
    slack.add_usergroup(handle="sales-it", id="S0SALESIT", members=["U0SAM"], team_id="T0SALES")
    slack.add_usergroup(handle="it-leads", id="S0ORGLEADS", members=["W0ALICE"], team_id="E0ORG")
    slack.add_channel(id="C0LOCAL", name="it-support")
    slack.add_channel(id="C0SALES", name="sales-it", team_id="T0SALES")
    slack.add_channel(id="C0LAB", name="lab", team_id="T0LAB")
    await slack.start()
    yield slack
    await slack.stop()


def _client(slack: LocalSlack, token: str = ORG_TOKEN) -> AsyncWebClient:
    return AsyncWebClient(base_url=slack.api_url, token=token)


async def _error(call: Awaitable[Any]) -> str:
    with pytest.raises(SlackApiError) as raised:
        await call
    return str(raised.value.response["error"])


# -- the org through the Web API -----------------------------------------------------------------


async def test_auth_test_of_an_org_wide_token_names_the_org(org: LocalSlack) -> None:
    answer = await _client(org).auth_test()
    assert answer["team_id"] == "E0ORG"
    assert answer["enterprise_id"] == "E0ORG"
    assert answer["is_enterprise_install"] is True
    assert answer["url"] == "https://local.enterprise.slack.com/"
    assert (answer["user_id"], answer["bot_id"]) == ("U0BOT", "B0BOT")


async def test_usergroups_need_the_team_id_of_a_granted_workspace(org: LocalSlack) -> None:
    client = _client(org)
    assert await _error(client.usergroups_list()) == "missing_argument"
    assert await _error(client.usergroups_list(team_id="T0LAB")) == "team_access_not_granted"
    assert await _error(client.usergroups_users_list(usergroup="S0SALESIT")) == "missing_argument"

    sales = await client.usergroups_list(team_id="T0SALES", include_users=True)
    by_handle = {g["handle"]: g for g in sales["usergroups"]}
    assert set(by_handle) == {"sales-it", "it-leads"}  # the workspace's and the org-level ones
    assert by_handle["sales-it"]["team_id"] == "T0SALES"
    assert by_handle["it-leads"]["team_id"] == "E0ORG"
    assert by_handle["sales-it"]["users"] == ["U0SAM"]

    local = await client.usergroups_list(team_id="T0LOCAL")
    assert {g["handle"] for g in local["usergroups"]} == {"it-support", "it-leads"}
    members = await client.usergroups_users_list(usergroup="S0SALESIT", team_id="T0SALES")
    assert members["users"] == ["U0SAM"]
    wrong = client.usergroups_users_list(usergroup="S0SALESIT", team_id="T0LOCAL")
    assert await _error(wrong) == "no_such_subteam"

    sent = [c.params.get("team_id") for c in org.calls_to("usergroups.list")]
    assert sent == [None, "T0LAB", "T0SALES", "T0LOCAL"]


async def test_conversations_list_needs_a_team_id_with_an_org_token(org: LocalSlack) -> None:
    client = _client(org)
    assert await _error(client.conversations_list()) == "missing_argument"
    sales = await client.conversations_list(team_id="T0SALES")
    assert [c["id"] for c in sales["channels"]] == ["C0SALES"]


async def test_a_workspace_install_acts_only_in_its_workspace() -> None:
    async with LocalSlack(bot_token="xoxb-ws", enterprise_id="E0ORG", org_install=False) as slack:
        slack.add_team("T0SALES", name="Sales")
        slack.add_user(id="U0SAM", name="sam", team_id="T0SALES")
        slack.add_usergroup(handle="sales-it", id="S0SALESIT", members=["U0SAM"], team_id="T0SALES")
        slack.add_usergroup(handle="it-support", id="S0LOCALIT", members=[])
        slack.add_channel(id="C0SALES", name="sales-it", team_id="T0SALES")
        client = _client(slack, "xoxb-ws")
        answer = await client.auth_test()
        assert (answer["team_id"], answer["enterprise_id"]) == ("T0LOCAL", "E0ORG")
        assert answer["is_enterprise_install"] is False
        # team_id is ignored with a workspace token, as Slack documents
        groups = await client.usergroups_list(team_id="T0SALES")
        assert [g["handle"] for g in groups["usergroups"]] == ["it-support"]
        assert await _error(client.chat_postMessage(channel="C0SALES", text="hi")) == (
            "channel_not_found"
        )
        assert await _error(client.users_info(user="U0SAM")) == "user_not_found"


async def test_org_users_carry_enterprise_user_and_their_workspaces(org: LocalSlack) -> None:
    client = _client(org)
    alice = (await client.users_info(user="W0ALICE"))["user"]
    assert alice["team_id"] == "T0LOCAL"
    assert alice["enterprise_user"]["enterprise_id"] == "E0ORG"
    assert alice["enterprise_user"]["enterprise_name"] == "Acme Org"
    assert alice["enterprise_user"]["teams"] == ["T0LOCAL", "T0SALES"]
    sam = (await client.users_lookupByEmail(email="alice@example.com"))["user"]
    assert sam["id"] == "W0ALICE"
    assert (await client.users_info(user="U0SAM"))["user"]["team_id"] == "T0SALES"


async def test_org_token_posts_in_every_workspace_it_was_added_to(org: LocalSlack) -> None:
    client = _client(org)
    posted = await client.chat_postMessage(channel="C0SALES", text="hello sales")
    assert posted["message"]["team"] == "T0SALES"
    await client.chat_postMessage(channel="C0LOCAL", text="hello local")
    assert await _error(client.chat_postMessage(channel="C0LAB", text="x")) == "channel_not_found"
    assert [m.text for m in org.messages_in("C0SALES")] == ["hello sales"]
    dm = await client.chat_postMessage(channel="U0SAM", text="hi sam")
    assert org.channels[dm["channel"]].team_id == "T0SALES"


# -- org-wide payloads ---------------------------------------------------------------------------


@dataclass
class Receiver:
    """A stand-in for the bot's /slack/events: records the bodies, answers 200."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)

    def form(self, index: int = -1) -> dict[str, str]:
        return dict(parse_qsl(self.bodies[index].decode()))

    def payload(self, index: int = -1) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.form(index)["payload"])
        return loaded

    def event(self, index: int = -1) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.bodies[index])
        return loaded


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recorded = Receiver()

    async def handle(request: web.Request) -> web.Response:
        recorded.bodies.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    recorded.url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    yield recorded
    await runner.cleanup()


@pytest.fixture
async def driver(org: LocalSlack, receiver: Receiver) -> AsyncIterator[SlackDriver]:
    async with SlackDriver(receiver.url, SECRET, org) as slack_driver:
        yield slack_driver


async def test_slash_commands_say_org_wide_and_name_the_workspace(
    driver: SlackDriver, receiver: Receiver
) -> None:
    await driver.command("W0ALICE", "list", channel_id="C0LOCAL")
    await driver.for_team("T0SALES").command("W0ALICE", "list", channel_id="C0SALES")
    local, sales = receiver.form(0), receiver.form(1)
    for fields in (local, sales):
        assert fields["is_enterprise_install"] == "true"
        assert (fields["enterprise_id"], fields["enterprise_name"]) == ("E0ORG", "Acme Org")
        assert fields["user_id"] == "W0ALICE"
    assert (local["team_id"], local["team_domain"]) == ("T0LOCAL", "local")
    assert (sales["team_id"], sales["team_domain"]) == ("T0SALES", "acme-sales")
    assert driver.team_id == "T0LOCAL"  # for_team made a sibling


async def test_interactions_carry_enterprise_and_a_null_team_from_modals(
    driver: SlackDriver, receiver: Receiver, org: LocalSlack
) -> None:
    sales = driver.for_team("T0SALES")
    client = _client(org)
    message = await client.chat_postMessage(
        channel="C0SALES",
        text="pick",
        blocks=[
            {
                "type": "actions",
                "block_id": "b",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ids.WAIT_DECISION,
                        "text": {"type": "plain_text", "text": "ok"},
                        "value": "ok",
                    }
                ],
            }
        ],
    )
    await sales.click("U0SAM", org.messages_in("C0SALES")[-1], ids.WAIT_DECISION)
    clicked = receiver.payload()
    assert clicked["is_enterprise_install"] is True
    assert clicked["enterprise"] == {"id": "E0ORG", "name": "Acme Org"}
    assert clicked["team"]["id"] == "T0SALES"
    assert clicked["team"]["enterprise_id"] == "E0ORG"
    assert clicked["user"]["team_id"] == "T0SALES"
    assert clicked["message"]["team"] == "T0SALES"
    assert clicked["message"]["ts"] == message["ts"]

    await sales.shortcut("U0SAM")
    shortcut = receiver.payload()
    assert (shortcut["is_enterprise_install"], shortcut["user"]["team_id"]) == (True, "T0SALES")
    opened = await client.views_open(
        trigger_id=shortcut["trigger_id"],
        view={
            "type": "modal",
            "callback_id": ids.RUN_MODAL,
            "title": {"type": "plain_text", "text": "Run"},
            "submit": {"type": "plain_text", "text": "Run"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": "note",
                    "label": {"type": "plain_text", "text": "Note"},
                    "element": {"type": "plain_text_input", "action_id": "note_input"},
                }
            ],
        },
    )
    assert opened["view"]["team_id"] == "T0SALES"
    assert opened["view"]["app_installed_team_id"] == "E0ORG"
    await sales.submit_view("U0SAM", opened["view"]["id"], {"note": {"note_input": "hi"}})
    submitted = receiver.payload()
    assert submitted["type"] == "view_submission"
    assert submitted["team"] is None
    assert submitted["is_enterprise_install"] is True
    assert submitted["enterprise"] == {"id": "E0ORG", "name": "Acme Org"}
    assert submitted["user"]["team_id"] == "T0SALES"
    assert submitted["view"]["team_id"] == "T0SALES"


async def test_events_of_an_org_wide_install_have_a_null_authorized_team(
    driver: SlackDriver, receiver: Receiver
) -> None:
    await driver.for_team("T0SALES").app_home_opened("U0SAM")
    event = receiver.event()
    assert (event["team_id"], event["enterprise_id"]) == ("T0SALES", "E0ORG")
    assert event["authorizations"] == [
        {
            "enterprise_id": "E0ORG",
            "team_id": None,
            "user_id": "U0BOT",
            "is_bot": True,
            "is_enterprise_install": True,
        }
    ]


async def test_single_workspace_payloads_stay_the_default(receiver: Receiver) -> None:
    async with LocalSlack() as slack, SlackDriver(receiver.url, SECRET, slack) as driver:
        slack.add_user(id="U0ALICE", name="alice")
        await driver.command("U0ALICE", "list")
        fields = receiver.form()
        assert fields["is_enterprise_install"] == "false"
        assert "enterprise_id" not in fields
        await driver.shortcut("U0ALICE")
        shortcut = receiver.payload()
        assert (shortcut["enterprise"], shortcut["is_enterprise_install"]) == (None, False)
        assert shortcut["team"] == {"id": "T0LOCAL", "domain": "local"}
        assert "enterprise_id" not in (await _client(slack, slack.bot_token).auth_test()).data


# -- OAuth ---------------------------------------------------------------------------------------


async def _authorize(slack: LocalSlack, **query: str) -> dict[str, list[str]]:
    """Follow the authorize URL as the admin's browser does; the redirect's query."""
    params = {
        "client_id": slack.client_id,
        "scope": "commands,chat:write",
        "state": "s1",
        "redirect_uri": "https://bot.example/slack/oauth_redirect",
        **query,
    }
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(slack.oauth_authorize_url, params=params)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert location.netloc == "bot.example"
    return parse_qs(location.query)


async def _exchange(slack: LocalSlack, code: str, secret: str | None = None) -> dict[str, Any]:
    client = AsyncWebClient(base_url=slack.api_url)
    answer = await client.oauth_v2_access(
        client_id=slack.client_id,
        client_secret=secret or slack.client_secret,
        code=code,
        redirect_uri="https://bot.example/slack/oauth_redirect",
    )
    return dict(answer.data)  # type: ignore[arg-type]


async def test_oauth_installs_a_workspace_with_its_own_token(org: LocalSlack) -> None:
    redirected = await _authorize(org, team="T0LAB", user_scope="users:read")
    assert redirected["state"] == ["s1"]
    access = await _exchange(org, redirected["code"][0])
    assert access["is_enterprise_install"] is False
    assert access["team"] == {"id": "T0LAB", "name": "Lab"}
    assert access["enterprise"] == {"id": "E0ORG", "name": "Acme Org"}
    assert access["token_type"] == "bot"
    assert access["scope"] == "commands,chat:write"
    assert access["access_token"].startswith("xoxb-")
    assert access["access_token"] != ORG_TOKEN
    assert access["bot_user_id"] != "U0BOT"
    assert access["authed_user"]["scope"] == "users:read"
    assert access["authed_user"]["access_token"].startswith("xoxp-")

    lab = _client(org, access["access_token"])
    identity = await lab.auth_test()
    assert (identity["team_id"], identity["is_enterprise_install"]) == ("T0LAB", False)
    assert identity["user_id"] == access["bot_user_id"]
    await lab.chat_postMessage(channel="C0LAB", text="hello lab")
    [call] = org.calls_to("chat.postMessage")
    assert call.token == access["access_token"]
    assert "client_secret" not in org.calls_to("oauth.v2.access")[0].params


async def test_oauth_org_wide_install_has_no_team(org: LocalSlack) -> None:
    redirected = await _authorize(org, team="E0ORG")
    access = await _exchange(org, redirected["code"][0])
    assert access["is_enterprise_install"] is True
    assert access["team"] is None
    assert access["enterprise"] == {"id": "E0ORG", "name": "Acme Org"}
    assert "access_token" not in access["authed_user"]
    identity = await _client(org, access["access_token"]).auth_test()
    assert (identity["team_id"], identity["is_enterprise_install"]) == ("E0ORG", True)


async def test_oauth_refuses_bad_codes_secrets_and_clients(org: LocalSlack) -> None:
    code = (await _authorize(org))["code"][0]
    assert await _error(_exchange(org, code, secret="wrong")) == "bad_client_secret"
    await _exchange(org, code)
    assert await _error(_exchange(org, code)) == "invalid_code"  # good once
    assert await _error(_exchange(org, "made-up")) == "invalid_code"
    denied = await _authorize(org, deny="1")
    assert denied == {"error": ["access_denied"], "state": ["s1"]}
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(org.oauth_authorize_url, params={"client_id": "nope"})
    assert (answer.status_code, answer.text) == (400, "invalid_client_id")


async def test_revoked_and_uninstalled_tokens_answer_token_revoked(
    org: LocalSlack, driver: SlackDriver, receiver: Receiver
) -> None:
    access = await _exchange(
        org, (await _authorize(org, team="T0LAB", user_scope="users:read"))["code"][0]
    )
    lab = driver.for_team("T0LAB")
    installation = lab.serving()
    assert installation.bot_token == access["access_token"]

    await lab.tokens_revoked(installation, bot=False)
    revoked = receiver.event()
    assert revoked["event"]["type"] == "tokens_revoked"
    assert revoked["event"]["tokens"] == {"oauth": [access["authed_user"]["id"]], "bot": []}
    user_client = _client(org, access["authed_user"]["access_token"])
    assert await _error(user_client.auth_test()) == "token_revoked"
    assert (await _client(org, access["access_token"]).auth_test())["ok"]

    await lab.uninstall(installation)
    tokens, uninstalled = receiver.event(-2), receiver.event(-1)
    assert tokens["event"]["tokens"]["bot"] == [access["bot_user_id"]]
    assert uninstalled["event"] == {"type": "app_uninstalled"}
    assert uninstalled["team_id"] == "T0LAB"
    assert uninstalled["authorizations"][0]["team_id"] == "T0LAB"
    assert uninstalled["authorizations"][0]["is_enterprise_install"] is False
    assert await _error(_client(org, access["access_token"]).auth_test()) == "token_revoked"
    assert await _error(_client(org, "xoxb-never-issued").auth_test()) == "invalid_auth"
    assert (await _client(org).auth_test())["ok"]  # the org-wide install is untouched
    envelope = socket_envelope("event_callback", driver.app_uninstalled_payload())
    assert envelope["type"] == "events_api"
    assert envelope["payload"]["authorizations"][0]["team_id"] is None


async def test_org_wide_uninstall_revokes_the_org_token(
    org: LocalSlack, driver: SlackDriver, receiver: Receiver
) -> None:
    await driver.app_uninstalled()
    event = receiver.event()
    assert (event["team_id"], event["enterprise_id"]) == ("E0ORG", "E0ORG")
    assert event["authorizations"][0]["team_id"] is None
    assert event["authorizations"][0]["is_enterprise_install"] is True
    assert await _error(_client(org).usergroups_list(team_id="T0LOCAL")) == "token_revoked"


# -- a Bolt app doing the whole OAuth dance against LocalSlack -----------------------------------


@pytest.fixture
async def bolt_oauth(
    org: LocalSlack, tmp_path: Path
) -> AsyncIterator[tuple[str, list[Any], FileInstallationStore]]:
    """A Bolt app with Bolt's own OAuth flow and file stores, talking to LocalSlack."""
    seen: list[Any] = []
    store = FileInstallationStore(base_dir=str(tmp_path / "installs"))
    app = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(base_url=org.api_url),
        oauth_settings=AsyncOAuthSettings(
            client_id=org.client_id,
            client_secret=org.client_secret,
            scopes=["commands", "chat:write", "usergroups:read"],
            installation_store=store,
            state_store=FileOAuthStateStore(
                expiration_seconds=600, base_dir=str(tmp_path / "state")
            ),
            authorization_url=org.oauth_authorize_url,
            install_page_rendering_enabled=False,
        ),
    )
    app.enable_token_revocation_listeners()

    @app.command(ids.COMMAND)
    async def command(
        ack: Callable[..., Awaitable[None]], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        await ack()
        seen.append((context.enterprise_id, context.team_id, context.is_enterprise_install))
        await client.usergroups_list(team_id=context.team_id)

    runner = web.AppRunner(app.web_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen, store
    await runner.cleanup()


async def test_a_bolt_app_installs_org_wide_and_answers_each_workspace_with_that_token(
    org: LocalSlack, bolt_oauth: tuple[str, list[Any], FileInstallationStore]
) -> None:
    bolt_url, seen, store = bolt_oauth
    org.uninstall(org.installations[0])  # the app comes only through OAuth here
    org.redirect_uri = f"{bolt_url}/slack/oauth_redirect"  # the app's configured Redirect URL
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        install = await browser.get(f"{bolt_url}/slack/install")
        assert install.status_code == 302
        authorize = install.headers["location"]
        assert authorize.startswith(org.oauth_authorize_url)
        approved = await browser.get(authorize + "&team=E0ORG")
        assert approved.status_code == 302
        # Bolt's state cookie is Secure; a browser would send it back over https
        cookie = install.headers["set-cookie"].split(";", 1)[0]
        finished = await browser.get(approved.headers["location"], headers={"Cookie": cookie})
        assert finished.status_code == 200, finished.text
    org_wide = org.installation_for("T0SALES")
    assert org_wide is not None
    assert org_wide.is_enterprise_install
    assert org_wide.bot_token != ORG_TOKEN
    exchange = org.calls_to("oauth.v2.access")[-1]
    assert exchange.ok

    async with SlackDriver(f"{bolt_url}/slack/events", SECRET, org) as driver:
        await driver.command("W0ALICE", "list", channel_id="C0LOCAL")
        await driver.for_team("T0SALES").command("U0SAM", "list", channel_id="C0SALES")
        for _ in range(200):
            if len(org.calls_to("usergroups.list")) >= 2:
                break
            await asyncio.sleep(0.05)
        assert seen == [("E0ORG", "T0LOCAL", True), ("E0ORG", "T0SALES", True)]
        calls = org.calls_to("usergroups.list")
        assert [(c.token, c.params.get("team_id"), c.ok) for c in calls] == [
            (org_wide.bot_token, "T0LOCAL", True),
            (org_wide.bot_token, "T0SALES", True),
        ]

        stored = await store.async_find_installation(
            enterprise_id="E0ORG", team_id=None, is_enterprise_install=True
        )
        assert stored is not None
        assert stored.bot_token == org_wide.bot_token

        revoked, uninstalled = await driver.uninstall(org_wide)
        assert (revoked.status, uninstalled.status) == (200, 200)
        gone = await store.async_find_installation(
            enterprise_id="E0ORG", team_id=None, is_enterprise_install=True
        )
        assert gone is None  # Bolt's own listeners removed it
    assert await _error(_client(org, org_wide.bot_token).auth_test()) == "token_revoked"


# -- the console ---------------------------------------------------------------------------------


def _console(slack: LocalSlack, driver: SlackDriver) -> tuple[Console, io.StringIO]:
    world = World(database_url="sqlite://", slack=slack)
    world.driver = driver
    out = io.StringIO()

    async def read(prompt: str) -> str | None:
        return None

    return Console(world, read=read, out=out), out


async def test_the_console_switches_workspace_with_team_only_in_an_org(
    org: LocalSlack, driver: SlackDriver, receiver: Receiver
) -> None:
    console, out = _console(org, driver)
    await console.handle("/help")
    assert "/team T0…" in out.getvalue()
    assert "T0SALES (Sales)" in out.getvalue()
    await console.handle("/team T0NOPE")
    assert "No workspace 'T0NOPE'" in out.getvalue()
    await console.handle("/team T0SALES")
    assert "You are now typing in the Sales workspace (T0SALES)." in out.getvalue()
    assert "(T0SALES)>" in console.prompt
    await driver.command("U0SAM", "list", channel_id="C0SALES")
    assert receiver.form()["team_id"] == "T0SALES"

    async with LocalSlack() as single, SlackDriver(receiver.url, SECRET, single) as alone:
        console, out = _console(single, alone)
        await console.handle("/help")
        assert "/team" not in out.getvalue()
        await console.handle("/team T0SALES")
        assert "Not understood: '/team T0SALES'" in out.getvalue()
        assert alone.team_id == "T0LOCAL"
