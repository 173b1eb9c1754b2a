"""Enterprise Grid and OAuth installs end to end, over loopback (``World``, LocalSlack, the sandbox).

The org E0ORG has the workspaces T0LOCAL (the World's people, channels and groups) and T0SALES
(U0SAM, the channel C0SALES, the group @sales-it); W0DAVE is a ``W…`` person in both. With
``SLACK_BOT_TOKEN`` the app is installed org-wide (token ``xoxb-org``); with OAuth settings each
installation comes through ``/slack/install`` and its token is kept encrypted in the store.
"""

from __future__ import annotations

import contextlib
import sqlite3
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from bot import waits
from bot.console.localslack import Installation, LocalSlack
from bot.console.world import WEBHOOK_TOKEN, World
from bot.store import InstallationStore
from handlers import ids
from handlers.installs import NOT_INSTALLED
from handlers.slack_client import WorkspaceClient
from tests.support.e2e import PatientWorld, ack_problems, executes, last_answer, text_of
from tests.support.outcomes import FOLLOW, eventually, reads
from tests.test_e2e_replicas import database_url  # noqa: F401 - the PostgreSQL fixture

ORG_TOKEN = "xoxb-org"
STATE_SECRET = "local-state-secret"
POLICY = """\
roles:
  sales:
    members: ["@sales-it"]
    workflows: ["*"]
  dave:
    members: ["W0DAVE"]
    workflows: ["*"]
"""


def _org(*, org_install: bool = True) -> LocalSlack:
    slack = LocalSlack(
        bot_token=ORG_TOKEN,
        enterprise_id="E0ORG",
        enterprise_name="Acme Org",
        org_install=org_install,
    )
    slack.add_team("T0SALES", name="Sales", domain="acme-sales")
    slack.add_user(
        id="W0DAVE", name="wdave", email="dave@example.com", teams=["T0LOCAL", "T0SALES"]
    )
    slack.add_user(id="U0SAM", name="sam", email="bob@example.com", team_id="T0SALES")
    slack.add_usergroup(handle="sales-it", id="S0SALESIT", members=["U0SAM"], team_id="T0SALES")
    slack.add_channel(id="C0SALES", name="sales-it", team_id="T0SALES")
    return slack


def _policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(POLICY))
    return path


async def _command(world: World, team: str, user: str, text: str, channel: str) -> str:
    """``/nexthink`` from ``user`` in workspace ``team``; the text of the bot's last answer."""
    assert world.driver is not None
    response = await world.driver.for_team(team).command(user, text, channel_id=channel)
    assert response.status == 200
    assert not ack_problems(response)
    await world.settle()
    return text_of(last_answer(world, user))


# -- one org-wide install, SLACK_BOT_TOKEN -------------------------------------------------------


async def test_commands_from_two_workspaces_run_with_the_org_token_and_their_team_id(
    tmp_path: Path,
) -> None:
    """A command from each workspace of the org runs with the one org token; the user-group
    look-up names the workspace the command came from; a ``W…`` member of the policy matches."""
    slack = _org()
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=_policy(tmp_path),
        execution_delay=0.05,
        slack=slack,
    ) as world:
        sales = await _command(world, "T0SALES", "U0SAM", "run restart_teams", "C0SALES")
        assert "sent to Nexthink" in sales
        local = await _command(world, "T0LOCAL", "W0DAVE", "run restart_teams", "C0SUPPORT")
        assert "sent to Nexthink" in local
        from_sales = await _command(world, "T0SALES", "W0DAVE", "run restart_teams", "C0SALES")
        assert "sent to Nexthink" in from_sales
        refused = await _command(world, "T0LOCAL", "U0ALICE", "run restart_teams", "C0SUPPORT")
        assert "sent to Nexthink" not in refused
        assert len(executes(world)) == 3

        groups = slack.calls_to("usergroups.list")
        assert {(c.params.get("team_id"), c.ok) for c in groups} == {
            ("T0SALES", True),
            ("T0LOCAL", True),
        }
        web_api = [c for c in slack.calls if c.method != "response_url"]  # the Web API's
        assert {c.method for c in web_api} >= {"auth.test", "users.info", "usergroups.list"}
        assert {c.token for c in web_api} == {ORG_TOKEN}
        assert world.bot is not None
        records = await world.bot.store.history("W0DAVE")
        assert {(r.team_id, r.enterprise_id) for r in records} == {
            ("T0LOCAL", "E0ORG"),
            ("T0SALES", "E0ORG"),
        }
        # the audit trail too, the refusal included
        trail = {
            (e.event, e.actor, e.team_id, e.enterprise_id)
            async for e in world.bot.store.iter_audit()
        }
        assert ("run_requested", "U0SAM", "T0SALES", "E0ORG") in trail
        assert ("run_refused", "U0ALICE", "T0LOCAL", "E0ORG") in trail
        assert world.bot.tasks.failures == 0


async def test_the_run_form_from_the_second_workspace_runs_there(tmp_path: Path) -> None:
    """The form opened from Sales (its submission says ``team: null``, org-wide) is checked
    against Sales' groups and recorded in Sales."""
    slack = _org()
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=_policy(tmp_path),
        execution_delay=0.05,
        slack=slack,
    ) as world:
        assert world.driver is not None
        sales = world.driver.for_team("T0SALES")
        assert (await sales.command("U0SAM", "", channel_id="C0SALES")).status == 200
        await world.settle()
        [view] = [v for v in slack.views.values() if v.user_id == "U0SAM"]
        assert view.callback_id == ids.RUN_MODAL
        chosen = await sales.click("U0SAM", view, ids.MODAL_WORKFLOW, "restart_teams")
        assert chosen.status == 200
        await world.settle()
        submitted = await sales.submit_view("U0SAM", view.id, {})
        assert submitted.status == 200
        assert not ack_problems(submitted)
        await world.settle()
        assert [e["workflowId"] for e in executes(world)] == ["restart_teams"]
        groups = slack.calls_to("usergroups.list")
        assert {c.params.get("team_id") for c in groups} == {"T0SALES"}
        assert all(c.ok and c.token == ORG_TOKEN for c in groups)
        assert world.bot is not None
        [record] = await world.bot.store.history("U0SAM")
        assert (record.team_id, record.enterprise_id, record.state) == ("T0SALES", "E0ORG", "sent")


async def test_an_approval_asked_in_sales_is_approved_from_local_by_a_w_user(
    tmp_path: Path,
) -> None:
    """Buttons work across the org's workspaces: Sam (Sales) asks, the approval request goes to
    Local's approval channel, W0DAVE (an approver by ``W…`` id) approves there, and the run goes
    to Nexthink once, all with the org token."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        textwrap.dedent(POLICY)
        + "workflows:\n"
        + "  restart_teams:\n"
        + '    approval: {channel: C0APPROVALS, approvers: ["W0DAVE"], count: 1}\n'
    )
    slack = _org()
    async with PatientWorld(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        policy_file=policy,
        execution_delay=0.05,
        slack=slack,
    ) as world:
        assert world.driver is not None
        shown = await _command(world, "T0SALES", "U0SAM", "run restart_teams", "C0SALES")
        assert executes(world) == []
        assert "approv" in shown.lower()
        [asked] = [m for m in slack.messages_in("C0APPROVALS") if not m.ephemeral]
        clicked = await world.driver.for_team("T0LOCAL").click(
            "W0DAVE", asked, ids.APPROVAL_APPROVE
        )
        assert clicked.status == 200
        await world.settle()
        assert len(executes(world)) == 1
        assert world.bot is not None
        [record] = await world.bot.store.history("U0SAM")
        assert (record.team_id, record.enterprise_id) == ("T0SALES", "E0ORG")
        assert record.approved_by == ("W0DAVE",)
        web_api = [c for c in slack.calls if c.method != "response_url"]
        assert {c.token for c in web_api} == {ORG_TOKEN}
        assert all(c.ok for c in web_api), [c.method for c in web_api if not c.ok]


# -- OAuth installs ------------------------------------------------------------------------------


def _oauth(slack: LocalSlack, key: str) -> dict[str, Any]:
    return {
        "slack_bot_token": None,
        "slack_client_id": slack.client_id,
        "slack_client_secret": slack.client_secret,
        "slack_state_secret": STATE_SECRET,
        "slack_token_encryption_key": key,
    }


async def _install(world: World, team: str) -> Installation:
    """An admin installs the app from the bot's /slack/install in ``team`` (``E…``: org-wide)."""
    slack = world.slack
    slack.redirect_uri = f"{world.url}/slack/oauth_redirect"
    async with httpx.AsyncClient(follow_redirects=False, timeout=60) as browser:
        install = await browser.get(f"{world.url}/slack/install")
        assert install.status_code == 302, install.text
        authorize = install.headers["location"]
        assert authorize.startswith(slack.oauth_authorize_url)
        approved = await browser.get(f"{authorize}&team={team}")
        assert approved.status_code == 302
        # Bolt's state cookie is Secure: a browser sends it back over https
        cookie = install.headers["set-cookie"].split(";", 1)[0]
        finished = await browser.get(approved.headers["location"], headers={"Cookie": cookie})
        assert finished.status_code == 200, finished.text
    installation = slack.installation_for(None if team.startswith("E") else team)
    assert installation is not None
    assert installation.bot_token != ORG_TOKEN
    return installation


def _tokens(slack: LocalSlack, start: int) -> set[str | None]:
    """The tokens of the Web API calls since ``start`` (response URLs take none)."""
    return {c.token for c in slack.calls[start:] if c.method != "response_url"}


def _database_bytes(tmp_path: Path) -> tuple[bytes, list[str]]:
    """The bytes of the SQLite database and its journal files, and how each stored bot token
    begins."""
    raw = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("bot.db*")))
    with sqlite3.connect(tmp_path / "bot.db") as db:
        rows = db.execute("SELECT bot_token FROM slack_bots").fetchall()
    return raw, [str(token)[:5] for (token,) in rows]


def _installations(world: World) -> InstallationStore:
    assert world.bot is not None
    client = world.bot.slack
    assert isinstance(client, WorkspaceClient)
    assert client.tokens is not None
    return client.tokens.store


@contextlib.asynccontextmanager
async def _oauth_world(
    tmp_path: Path, policy: str = POLICY, **overrides: Any
) -> AsyncIterator[World]:
    """A bot with OAuth settings in the org, where the app is not installed yet."""
    slack = _org(org_install=False)
    await slack.start()
    slack.uninstall(slack.installations[0])  # the app arrives only through OAuth here
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(textwrap.dedent(policy))
    key = Fernet.generate_key().decode()
    try:
        async with PatientWorld(
            database_url=f"sqlite:///{tmp_path}/bot.db",
            policy_file=policy_file,
            execution_delay=0.05,
            slack=slack,
            overrides=_oauth(slack, key) | overrides,
        ) as world:
            yield world
            assert world.bot is not None
            assert world.bot.tasks.failures == 0
    finally:
        await slack.stop()


@pytest.fixture
async def oauth_world(tmp_path: Path) -> AsyncIterator[World]:
    async with _oauth_world(tmp_path) as world:
        yield world


async def test_an_oauth_install_is_stored_encrypted_used_and_removed_on_uninstall(
    oauth_world: World, tmp_path: Path
) -> None:
    world, slack = oauth_world, oauth_world.slack
    async with httpx.AsyncClient(timeout=60) as client:  # ready before any install: Slack answers
        ready = await client.get(f"{world.url}/readyz")
    assert ready.status_code == 200, ready.text
    installation = await _install(world, "E0ORG")  # org-wide
    assert installation.is_enterprise_install
    assert [c.ok for c in slack.calls_to("oauth.v2.access")] == [True]

    # stored, encrypted: the token is nowhere in the database file's bytes
    store = _installations(world)
    found = await store.async_find_bot(
        enterprise_id="E0ORG", team_id=None, is_enterprise_install=True
    )
    assert found is not None
    assert found.bot_token == installation.bot_token
    raw, sealed = _database_bytes(tmp_path)
    assert b"xoxb-" not in raw
    assert installation.bot_token.encode() not in raw
    assert sealed == ["gAAAA"]  # one bot token, Fernet's

    # used for its events: a command in each workspace, and the Home tab
    first = len(slack.calls)
    shown = await _command(world, "T0SALES", "U0SAM", "run restart_teams", "C0SALES")
    assert "sent to Nexthink" in shown
    assert world.driver is not None
    opened = await world.driver.for_team("T0LOCAL").app_home_opened("W0DAVE")
    assert opened.status == 200
    await world.settle()
    used = slack.calls[first:]
    used = [c for c in used if c.method != "response_url"]
    assert {c.method for c in used} >= {"auth.test", "usergroups.list", "views.publish"}
    assert {c.token for c in used} == {installation.bot_token}
    assert all(c.ok for c in used)
    # the command's groups are Sales', the Home's (opened in Local) Local's
    teams = [c.params.get("team_id") for c in slack.calls_to("usergroups.list")]
    assert teams == ["T0SALES", "T0LOCAL"]

    # removed on uninstall: Slack's two events, then nothing of it is left
    revoked, uninstalled = await world.driver.uninstall(installation)
    assert (revoked.status, uninstalled.status) == (200, 200)
    gone = await store.async_find_bot(
        enterprise_id="E0ORG", team_id=None, is_enterprise_install=True
    )
    assert gone is None
    assert (await store.census()).total == 0
    before = len(slack.calls)
    refused = await world.driver.for_team("T0SALES").command(
        "U0SAM", "run restart_teams", channel_id="C0SALES"
    )
    await world.settle()
    assert refused.status == 200
    assert [c.method for c in slack.calls[before:]] == ["response_url"]  # no Web API call
    assert text_of(last_answer(world, "U0SAM")) == NOT_INSTALLED
    assert len(executes(world)) == 1


async def test_each_workspace_installed_by_oauth_is_served_with_its_own_token(
    oauth_world: World,
) -> None:
    """Two workspace installs: commands, the waits webhook (``team``) and the expiry sweep each
    use the token of the workspace they are about."""
    world, slack = oauth_world, oauth_world.slack
    local = await _install(world, "T0LOCAL")
    sales = await _install(world, "T0SALES")
    assert local.bot_token != sales.bot_token

    start = len(slack.calls)
    assert "sent to Nexthink" in await _command(
        world, "T0SALES", "U0SAM", "run restart_teams", "C0SALES"
    )
    assert _tokens(slack, start) == {sales.bot_token}
    start = len(slack.calls)
    assert "sent to Nexthink" in await _command(
        world, "T0LOCAL", "W0DAVE", "run restart_teams", "C0SUPPORT"
    )
    assert _tokens(slack, start) == {local.bot_token}

    # the webhook names the workspace; the sweep later finds it on the wait's record
    start = len(slack.calls)
    async with httpx.AsyncClient(timeout=60) as client:
        posted = await client.post(
            f"{world.url}/nexthink/waits",
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            json={
                "workflowUuid": "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a",
                "executionUuid": "fecab46b-ee58-b8bc-b61e-912a2dc2bcbc",
                "channel": "C0SALES",
                "text": "Sam asks for Visio. Approve?",
                "team": "T0SALES",
            },
        )
    assert posted.status_code == 201, posted.text
    assert posted.json()["channel"] == "C0SALES"
    assert world.bot is not None
    later = datetime.now(UTC) + timedelta(days=2)
    assert await waits.sweep_expired(world.bot, now=later) == 1
    calls = slack.calls[start:]
    assert [c.method for c in calls] == ["chat.postMessage", "chat.update"]
    assert {(c.token, c.ok) for c in calls} == {(sales.bot_token, True)}
    wait = await world.bot.store.get_wait(posted.json()["id"])
    assert wait is not None
    assert (wait.team_id, wait.state) == ("T0SALES", "expired")

    # a webhook that names no workspace, with two installed, is refused with a clear answer
    async with httpx.AsyncClient(timeout=60) as client:
        unnamed = await client.post(
            f"{world.url}/nexthink/waits",
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            json={
                "workflowUuid": "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a",
                "executionUuid": "0ecab46b-ee58-b8bc-b61e-912a2dc2bcbc",
                "channel": "C0SALES",
                "text": "Which workspace?",
            },
        )
    assert unnamed.status_code == 400
    assert "name the workspace T… or org E…" in unnamed.json()["error"]


async def test_the_oauth_routes_are_absent_without_oauth_settings(tmp_path: Path) -> None:
    async with (
        PatientWorld(database_url=f"sqlite:///{tmp_path}/bot.db", execution_delay=0.05) as world,
        httpx.AsyncClient(timeout=60) as browser,
    ):
        install = await browser.get(f"{world.url}/slack/install")
        redirect = await browser.get(f"{world.url}/slack/oauth_redirect?code=x&state=y")
    assert (install.status_code, redirect.status_code) == (404, 404)
    assert ids.BOT_SCOPES[0] == "commands"


async def test_outcome_follow_ups_update_a_run_with_its_workspaces_token(tmp_path: Path) -> None:
    """A visible run in Sales is posted with Sales' token; the follow-up loop, which starts from
    the request's record and no Slack request, updates it with the same token."""
    visible = POLICY.replace(
        '    members: ["@sales-it"]\n', '    members: ["@sales-it"]\n    visible: true\n'
    )
    assert "visible: true" in visible
    async with _oauth_world(tmp_path, visible, **FOLLOW) as world:
        slack = world.slack
        await _install(world, "T0LOCAL")
        sales = await _install(world, "T0SALES")
        assert world.driver is not None
        sent = await world.driver.for_team("T0SALES").command(
            "U0SAM", "run restart_teams", channel_id="C0SALES"
        )
        assert sent.status == 200
        await world.settle()
        [posted] = [m for m in slack.messages_in("C0SALES") if "restart_teams" in text_of(m)]
        await eventually(lambda: reads(posted, "*Outcome:* 1 succeeded"), what="the outcome")
        updates = [c for c in slack.calls_to("chat.update") if c.params.get("ts") == posted.ts]
        assert updates
        assert {(c.token, c.ok) for c in updates} == {(sales.bot_token, True)}
        assert {c.token for c in slack.calls_to("chat.postMessage")} == {sales.bot_token}


# -- two replicas on PostgreSQL ------------------------------------------------------------------


@pytest.mark.postgres
async def test_two_replicas_on_postgresql_share_installations(
    database_url: str,  # noqa: F811 - the fixture imported above
) -> None:
    """Installed through one replica, served by the other; removed through the other, gone for
    the first."""
    slack = _org(org_install=False)
    await slack.start()
    slack.uninstall(slack.installations[0])
    common: dict[str, Any] = {
        "database_url": database_url,
        "slack": slack,
        "execution_delay": 0.05,
        "overrides": _oauth(slack, Fernet.generate_key().decode()),
    }
    try:
        async with PatientWorld(**common) as first, PatientWorld(**common) as second:
            installation = await _install(first, "T0SALES")
            start = len(slack.calls)
            shown = await _command(second, "T0SALES", "U0SAM", "list", "C0SALES")
            assert "restart_teams" in shown
            assert _tokens(slack, start) == {installation.bot_token}
            assert (await _installations(first).census()).workspaces == 1

            assert second.driver is not None
            revoked, uninstalled = await second.driver.uninstall(installation)
            assert (revoked.status, uninstalled.status) == (200, 200)
            assert (await _installations(first).census()).total == 0
            start = len(slack.calls)
            answer = await _command(first, "T0SALES", "U0SAM", "list", "C0SALES")
            assert answer == NOT_INSTALLED
            assert [c.method for c in slack.calls[start:]] == ["response_url"]
    finally:
        await slack.stop()
