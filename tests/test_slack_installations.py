"""Slack OAuth installations and states in the store, on a real SQLite file and the real PostgreSQL
(``TEST_DATABASE_URL``, a schema of its own per test, dropped afterwards; PostgreSQL cases fail
rather than skip when it is unreachable: CI has one).

What Bolt does with them is what is called here: ``async_save`` after the OAuth redirect,
``async_find_bot`` / ``async_find_installation`` to authorize a request (``is_enterprise_install``
as the payload says), ``async_delete_bot`` / ``async_delete_installation`` on ``tokens_revoked`` and
``async_delete_all`` on ``app_uninstalled``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import MetaData, Table, func, inspect, select
from sqlalchemy.engine import make_url

from bot.store import Store
from bot.store.installations import InstallationStore
from bot.store.schema import (
    SLACK_TOKEN_COLUMNS,
    slack_bots,
    slack_installations,
    slack_oauth_states,
)
from bot.store.token_cipher import TokenCipher, TokenKeyMismatch

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
CLIENT_ID = "1111111111.2222222222"
KEY = Fernet.generate_key().decode()
OTHER_KEY = Fernet.generate_key().decode()
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

# the tokens of the installs below; none may ever be found in clear in the database
ORG_TOKEN = "xoxb-org-E0GRID-0123456789-abcdefghijklmnopqrstuvwx"
WORKSPACE_TOKEN = "xoxb-ws-T0SOLO-0123456789-abcdefghijklmnopqrstuvwx"
USER_TOKEN = "xoxp-user-T0SOLO-0123456789-abcdefghijklmnopqrstuvw"
# a rotating token is longer than VARCHAR(200) once encrypted
ROTATING_TOKEN = "xoxe.xoxb-1-" + "M" * 140
REFRESH_TOKEN = "xoxe-1-" + "R" * 140


@dataclass
class Backend:
    name: str
    url: str
    schema: str | None = None

    async def open(self) -> Store:
        return await Store.open(self.url, schema=self.schema)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'bot.db'}")
        return
    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(f"PostgreSQL is unreachable ({type(exc).__name__}: {exc}); CI has one")
    schema = f"test_slack_{uuid4().hex[:16]}"
    try:
        yield Backend("postgresql", PG_URL, schema)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = await backend.open()
    yield opened
    await opened.close()


def _installations(store: Store, key: str = KEY) -> InstallationStore:
    return store.slack_installations(client_id=CLIENT_ID, cipher=TokenCipher.from_setting(key))


def _org_install(**kw: Any) -> Installation:
    values: dict[str, Any] = {
        "app_id": "A0NEXTHINK",
        "enterprise_id": "E0GRID",
        "enterprise_name": "Acme Grid",
        "team_id": None,
        "bot_token": ORG_TOKEN,
        "bot_id": "B0ORG",
        "bot_user_id": "U0BOTORG",
        "bot_scopes": "commands,chat:write,users:read",
        "user_id": "W0ADMIN",
        "is_enterprise_install": True,
        "installed_at": T0.timestamp(),
    }
    values.update(kw)
    return Installation(**values)


def _workspace_install(**kw: Any) -> Installation:
    values: dict[str, Any] = {
        "app_id": "A0NEXTHINK",
        "enterprise_id": None,
        "team_id": "T0SOLO",
        "team_name": "Solo",
        "bot_token": WORKSPACE_TOKEN,
        "bot_id": "B0SOLO",
        "bot_user_id": "U0BOTSOLO",
        "bot_scopes": "commands,chat:write,users:read",
        "user_id": "U0ADMIN",
        "user_token": USER_TOKEN,
        "user_scopes": "identity.basic",
        "is_enterprise_install": False,
        "installed_at": T0.timestamp(),
    }
    values.update(kw)
    return Installation(**values)


async def _raw_rows(store: Store, table: Table) -> list[dict[str, Any]]:
    async with store._read() as conn:
        return [dict(row) for row in (await conn.execute(select(table))).mappings()]


# -- save and find -------------------------------------------------------------------------


async def test_a_workspace_install_is_found_for_its_workspace_only(store: Store) -> None:
    """A workspace install answers its own team's bot and installation, and nothing for another team."""
    installs = _installations(store)
    await installs.async_save(_workspace_install())

    bot = await installs.async_find_bot(enterprise_id=None, team_id="T0SOLO")
    assert bot is not None
    assert (bot.bot_token, bot.bot_user_id, bot.team_id) == (WORKSPACE_TOKEN, "U0BOTSOLO", "T0SOLO")
    installation = await installs.async_find_installation(enterprise_id=None, team_id="T0SOLO")
    assert installation is not None
    assert (installation.bot_token, installation.user_token) == (WORKSPACE_TOKEN, USER_TOKEN)
    assert installation.is_enterprise_install is False

    assert await installs.async_find_bot(enterprise_id=None, team_id="T0OTHER") is None
    assert await installs.async_find_installation(enterprise_id=None, team_id="T0OTHER") is None


async def test_an_org_wide_install_serves_every_workspace_of_its_org(store: Store) -> None:
    """An org-wide install (no team) is found from any workspace of the org, as Bolt asks with is_enterprise_install, and not for another org."""
    installs = _installations(store)
    await installs.async_save(_org_install())

    for team in ("T0EMEA", "T0AMER", None):
        bot = await installs.async_find_bot(
            enterprise_id="E0GRID", team_id=team, is_enterprise_install=True
        )
        assert bot is not None, team
        assert (bot.bot_token, bot.enterprise_id, bot.team_id) == (ORG_TOKEN, "E0GRID", None)
        assert bot.is_enterprise_install is True
        installation = await installs.async_find_installation(
            enterprise_id="E0GRID", team_id=team, is_enterprise_install=True
        )
        assert installation is not None, team
        assert installation.bot_token == ORG_TOKEN
        assert installation.user_id == "W0ADMIN"

    assert (
        await installs.async_find_bot(
            enterprise_id="E0OTHER", team_id="T0EMEA", is_enterprise_install=True
        )
        is None
    )


async def test_a_workspace_install_inside_an_org_is_kept_apart_from_the_org_install(
    store: Store,
) -> None:
    """In one org, a workspace's own install and the org-wide install each answer their own token."""
    installs = _installations(store)
    await installs.async_save(_org_install())
    await installs.async_save(
        _workspace_install(enterprise_id="E0GRID", team_id="T0EMEA", bot_token=WORKSPACE_TOKEN)
    )
    org = await installs.async_find_bot(
        enterprise_id="E0GRID", team_id="T0EMEA", is_enterprise_install=True
    )
    workspace = await installs.async_find_bot(
        enterprise_id="E0GRID", team_id="T0EMEA", is_enterprise_install=False
    )
    assert org is not None
    assert workspace is not None
    assert (org.bot_token, workspace.bot_token) == (ORG_TOKEN, WORKSPACE_TOKEN)
    census = await installs.census()
    assert (census.org_wide, census.workspaces, census.unreadable) == (1, 1, 0)


async def test_a_reinstall_replaces_the_token_that_is_answered(store: Store) -> None:
    """Installing again (new token, later) makes the new token the one found; the census still counts one."""
    installs = _installations(store)
    await installs.async_save(_workspace_install())
    later = (T0 + timedelta(days=1)).timestamp()
    await installs.async_save(_workspace_install(bot_token="xoxb-ws-new-token", installed_at=later))
    bot = await installs.async_find_bot(enterprise_id=None, team_id="T0SOLO")
    assert bot is not None
    assert bot.bot_token == "xoxb-ws-new-token"
    assert (await installs.census()).total == 1


async def test_long_rotating_tokens_fit_once_encrypted(store: Store) -> None:
    """Token rotation's long access and refresh tokens are stored and read back whole (TEXT columns)."""
    installs = _installations(store)
    expires = int((T0 + timedelta(hours=12)).timestamp())
    await installs.async_save(
        _workspace_install(
            bot_token=ROTATING_TOKEN,
            bot_refresh_token=REFRESH_TOKEN,
            bot_token_expires_at=expires,
        )
    )
    bot = await installs.async_find_bot(enterprise_id=None, team_id="T0SOLO")
    assert bot is not None
    assert (bot.bot_token, bot.bot_refresh_token) == (ROTATING_TOKEN, REFRESH_TOKEN)
    assert bot.bot_token_expires_at == expires


async def test_two_stores_on_one_database_share_installations(backend: Backend) -> None:
    """An install saved through one replica's store is found, and its removal seen, through another's."""
    first, second = await backend.open(), await backend.open()
    try:
        await _installations(first).async_save(_org_install())
        found = await _installations(second).async_find_bot(
            enterprise_id="E0GRID", team_id="T0EMEA", is_enterprise_install=True
        )
        assert found is not None
        assert found.bot_token == ORG_TOKEN
        await _installations(second).async_delete_all(enterprise_id="E0GRID", team_id=None)
        assert (
            await _installations(first).async_find_bot(
                enterprise_id="E0GRID", team_id="T0EMEA", is_enterprise_install=True
            )
            is None
        )
    finally:
        await first.close()
        await second.close()


# -- removal -------------------------------------------------------------------------------


async def test_app_uninstalled_removes_the_org_install_and_nothing_else(store: Store) -> None:
    """delete_all for the org (team None, as Bolt's app_uninstalled listener passes it) removes its rows only."""
    installs = _installations(store)
    await installs.async_save(_org_install())
    await installs.async_save(_workspace_install())

    await installs.async_delete_all(enterprise_id="E0GRID", team_id=None)

    assert (
        await installs.async_find_installation(
            enterprise_id="E0GRID", team_id="T0EMEA", is_enterprise_install=True
        )
        is None
    )
    assert (
        await installs.async_find_bot(
            enterprise_id="E0GRID", team_id="T0EMEA", is_enterprise_install=True
        )
        is None
    )
    assert await installs.async_find_bot(enterprise_id=None, team_id="T0SOLO") is not None
    rows = await _raw_rows(store, slack_installations) + await _raw_rows(store, slack_bots)
    assert {row["enterprise_id"] for row in rows} == {None}
    census = await installs.census()
    assert (census.org_wide, census.workspaces) == (0, 1)


async def test_tokens_revoked_for_the_bot_leaves_no_bot_token_to_answer(store: Store) -> None:
    """After delete_bot (tokens_revoked with bot tokens) neither lookup answers the revoked bot token."""
    installs = _installations(store)
    await installs.async_save(_workspace_install())

    await installs.async_delete_bot(enterprise_id=None, team_id="T0SOLO")

    assert await installs.async_find_bot(enterprise_id=None, team_id="T0SOLO") is None
    installation = await installs.async_find_installation(enterprise_id=None, team_id="T0SOLO")
    assert installation is not None, "the user's own token was not revoked"
    assert installation.bot_token is None
    assert installation.user_token == USER_TOKEN
    assert (await installs.census()).total == 0


async def test_tokens_revoked_for_a_user_removes_that_users_installation(store: Store) -> None:
    """delete_installation with the user id (tokens_revoked with oauth tokens) removes that user's installation."""
    installs = _installations(store)
    await installs.async_save(_workspace_install())

    await installs.async_delete_installation(
        enterprise_id=None, team_id="T0SOLO", user_id="U0ADMIN"
    )

    assert (
        await installs.async_find_installation(
            enterprise_id=None, team_id="T0SOLO", user_id="U0ADMIN"
        )
        is None
    )


# -- encryption ----------------------------------------------------------------------------


async def test_no_token_can_be_read_in_the_database(store: Store, backend: Backend) -> None:
    """Every token column holds Fernet ciphertext: no xox… text in any row, nor in the SQLite file."""
    installs = _installations(store)
    await installs.async_save(_org_install())
    await installs.async_save(
        _workspace_install(bot_refresh_token=REFRESH_TOKEN, user_refresh_token=REFRESH_TOKEN)
    )

    for table in (slack_installations, slack_bots):
        rows = await _raw_rows(store, table)
        assert rows
        for row in rows:
            assert "xox" not in repr(row), f"a token in clear in {table.name}"
            for column in SLACK_TOKEN_COLUMNS:
                if column in row and row[column] is not None:
                    assert row[column].startswith("gAAAAA"), f"{table.name}.{column}"
    if backend.name == "sqlite":
        path = Path(make_url(backend.url).database or "")
        files = [path, path.with_name(path.name + "-wal")]
        content = b"".join(f.read_bytes() for f in files if f.exists())
        assert b"E0GRID" in content, "the file does hold the rows"
        assert b"xoxb-" not in content
        assert b"xoxp-" not in content
        assert b"xoxe" not in content


async def test_a_wrong_key_fails_clearly_and_the_old_key_after_the_new_one_reads(
    store: Store,
) -> None:
    """Tokens saved with one key: another key raises TokenKeyMismatch naming the setting (the census counts them unreadable); 'new,old' reads them."""
    await _installations(store).async_save(_org_install())

    wrong = _installations(store, OTHER_KEY)
    with pytest.raises(TokenKeyMismatch, match="SLACK_TOKEN_ENCRYPTION_KEY") as raised:
        await wrong.async_find_bot(
            enterprise_id="E0GRID", team_id="T0EMEA", is_enterprise_install=True
        )
    assert KEY not in str(raised.value)
    assert OTHER_KEY not in str(raised.value)
    census = await wrong.census()
    assert (census.total, census.unreadable) == (1, 1)

    rotated = _installations(store, f"{OTHER_KEY},{KEY}")
    bot = await rotated.async_find_bot(
        enterprise_id="E0GRID", team_id=None, is_enterprise_install=True
    )
    assert bot is not None
    assert bot.bot_token == ORG_TOKEN
    assert (await rotated.census()).unreadable == 0


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-fernet-key", id="not-base64-32-bytes"),
        pytest.param("c2hvcnQ=", id="too-short"),
        pytest.param(f"{KEY},", id="empty-second-key"),
    ],
)
def test_a_malformed_key_is_refused_without_echoing_it(value: str) -> None:
    """TokenCipher.from_setting refuses a malformed key with one line naming the setting, not the value."""
    with pytest.raises(ValueError, match="SLACK_TOKEN_ENCRYPTION_KEY") as raised:
        TokenCipher.from_setting(value)
    message = str(raised.value)
    assert "\n" not in message
    for part in value.split(","):
        if part:
            assert part not in message


# -- OAuth states --------------------------------------------------------------------------


async def test_an_oauth_state_is_consumed_once_and_only_if_signed(backend: Backend) -> None:
    """A state issued by one replica is consumed once by another; an altered or foreign-signed state is refused."""
    first, second = await backend.open(), await backend.open()
    try:
        issuer = first.slack_oauth_states(secret="state-secret-one")
        consumer = second.slack_oauth_states(secret="state-secret-one")
        foreign = second.slack_oauth_states(secret="another-secret")

        state = await issuer.async_issue()
        assert await foreign.async_consume(state) is False
        assert await consumer.async_consume(state[:-2] + "xx") is False
        assert await consumer.async_consume(state.split(".")[0]) is False
        assert await consumer.async_consume("é.ü") is False
        assert await consumer.async_consume(state) is True
        assert await consumer.async_consume(state) is False, "a state is accepted once"
    finally:
        await first.close()
        await second.close()


async def test_expired_oauth_states_are_refused_and_cleared(store: Store) -> None:
    """An expired state is refused, and issuing a state removes the expired ones."""
    expired = store.slack_oauth_states(secret="state-secret-one", expiration_seconds=-1)
    states = [await expired.async_issue() for _ in range(3)]
    assert await expired.async_consume(states[0]) is False
    assert len(await _raw_rows(store, slack_oauth_states)) == 1
    fresh = store.slack_oauth_states(secret="state-secret-one")
    await fresh.async_issue()
    async with store._read() as conn:
        count = (await conn.execute(select(func.count()).select_from(slack_oauth_states))).scalar()
    assert count == 1


# -- the tables are the library's ------------------------------------------------------------


async def test_the_migrated_tables_are_the_librarys_with_text_token_columns(store: Store) -> None:
    """slack_installations, slack_bots and slack_oauth_states have slack_sdk's columns, types, nullability and indexes; token columns are TEXT."""
    md = MetaData()
    library = [
        SQLAlchemyInstallationStore.build_installations_table(md, "slack_installations"),
        SQLAlchemyInstallationStore.build_bots_table(md, "slack_bots"),
        SQLAlchemyOAuthStateStore.build_oauth_states_table(md, "slack_oauth_states"),
    ]

    def shape(sync: Any) -> dict[str, Any]:
        found = inspect(sync)
        dialect = sync.dialect
        return {
            table.name: (
                {
                    c["name"]: (c["type"].compile(dialect), c["nullable"])
                    for c in found.get_columns(table.name)
                },
                {(i["name"], tuple(i["column_names"])) for i in found.get_indexes(table.name)},
            )
            for table in library
        }

    async with store._read() as conn:
        actual = await conn.run_sync(shape)
        dialect = conn.dialect
    for table in library:
        expected_columns = {
            c.name: (
                "TEXT" if c.name in SLACK_TOKEN_COLUMNS else c.type.compile(dialect),
                bool(c.nullable) and not c.primary_key,
            )
            for c in table.columns
        }
        expected_indexes = {(i.name, tuple(c.name for c in i.columns)) for i in table.indexes}
        columns, indexes = actual[table.name]
        assert columns == expected_columns, table.name
        assert indexes == expected_indexes, table.name
