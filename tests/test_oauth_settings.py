"""OAuth installs as an operator configures them: SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and
SLACK_STATE_SECRET all or none, then a valid SLACK_TOKEN_ENCRYPTION_KEY, HTTP mode only; each
problem is one line naming the variable, never echoing a value. ``check`` reports the install mode
and, for OAuth, the installations stored.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store.models.installation import Installation

from bot.sandbox import Sandbox
from bot.settings import Settings, SettingsError
from bot.store import Store
from bot.store.token_cipher import TokenCipher

KEY = Fernet.generate_key().decode()
CLIENT_SECRET = "oauth-test-client-secret-value"
STATE_SECRET = "oauth-test-state-secret-value"
MALFORMED_KEY = "oauth-test-malformed-key-value"
SIGNING_SECRET = "oauth-test-signing-secret"
NEXTHINK = {
    "nexthink_base_url": "http://127.0.0.1:9",
    "nexthink_client_id": "oauth-test",
    "nexthink_client_secret": "oauth-test-nexthink-secret",
}
OAUTH = {
    "slack_client_id": "1111111111.2222222222",
    "slack_client_secret": CLIENT_SECRET,
    "slack_state_secret": STATE_SECRET,
    "slack_token_encryption_key": KEY,
}
SECRETS = (CLIENT_SECRET, STATE_SECRET, MALFORMED_KEY, KEY, SIGNING_SECRET)


def _load(mode: str = "serve", **values: object) -> Settings:
    return Settings.load(mode, **NEXTHINK, **values)  # type: ignore[arg-type]


# -- in process ----------------------------------------------------------------------------


def test_without_oauth_settings_the_bot_token_serves_as_before() -> None:
    """No OAuth setting: SLACK_BOT_TOKEN is required and the install mode is one token (HTTP) or Socket Mode."""
    settings = _load(slack_bot_token="xoxb-1", slack_signing_secret=SIGNING_SECRET)
    assert (settings.oauth, settings.install_mode) == (False, "token")
    socket = _load(slack_bot_token="xoxb-1", slack_app_token="xapp-1-x")
    assert socket.install_mode == "socket"
    with pytest.raises(SettingsError, match=r"^SLACK_BOT_TOKEN is required"):
        _load(slack_signing_secret=SIGNING_SECRET, slack_token_encryption_key=KEY)


def test_all_three_oauth_settings_and_a_key_make_oauth_mode_without_a_bot_token() -> None:
    """With client id, client secret, state secret and a key, serve needs no SLACK_BOT_TOKEN; the secrets go to the redactor."""
    settings = _load(slack_signing_secret=SIGNING_SECRET, **OAUTH)
    assert (settings.oauth, settings.install_mode) == (True, "oauth")
    assert set(settings.secrets()) >= {CLIENT_SECRET, STATE_SECRET, KEY, SIGNING_SECRET}
    assert "1111111111.2222222222" not in settings.secrets()
    assert _load("check", **OAUTH).install_mode == "oauth"


def test_two_keys_for_rotation_are_accepted_and_each_is_a_secret() -> None:
    """SLACK_TOKEN_ENCRYPTION_KEY may be 'new,old'; each key alone is known to the redactor."""
    old = Fernet.generate_key().decode()
    settings = _load(
        slack_signing_secret=SIGNING_SECRET,
        **(OAUTH | {"slack_token_encryption_key": f"{KEY}, {old}"}),
    )
    assert {KEY, old} <= set(settings.secrets())


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        pytest.param(
            {"slack_client_id": "1.2"}, "SLACK_CLIENT_SECRET and SLACK_STATE_SECRET", id="id-only"
        ),
        pytest.param(
            {"slack_client_id": "1.2", "slack_client_secret": CLIENT_SECRET},
            "SLACK_STATE_SECRET is required",
            id="no-state-secret",
        ),
        pytest.param(
            {"slack_client_secret": CLIENT_SECRET, "slack_state_secret": STATE_SECRET},
            "SLACK_CLIENT_ID is required",
            id="no-client-id",
        ),
        pytest.param(
            {
                "slack_client_id": "1.2",
                "slack_client_secret": "",
                "slack_state_secret": STATE_SECRET,
            },
            "SLACK_CLIENT_SECRET is required",
            id="empty-client-secret",
        ),
    ],
)
def test_some_of_the_three_oauth_settings_is_one_line_naming_the_missing(
    given: dict[str, str], missing: str
) -> None:
    """Setting only some of SLACK_CLIENT_ID / SLACK_CLIENT_SECRET / SLACK_STATE_SECRET names the missing ones, in every mode but sandbox."""
    for mode in ("serve", "check", "console"):
        with pytest.raises(SettingsError, match=missing) as raised:
            _load(mode, slack_bot_token="xoxb-1", slack_signing_secret=SIGNING_SECRET, **given)
        message = str(raised.value)
        assert "\n" not in message
        assert CLIENT_SECRET not in message
        assert STATE_SECRET not in message
    Settings.load("sandbox", **given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(None, "SLACK_TOKEN_ENCRYPTION_KEY is required with OAuth", id="missing"),
        pytest.param("", "SLACK_TOKEN_ENCRYPTION_KEY is required with OAuth", id="empty"),
        pytest.param(
            MALFORMED_KEY, "SLACK_TOKEN_ENCRYPTION_KEY: the key is not a Fernet key", id="malformed"
        ),
        pytest.param(
            f"{KEY},{MALFORMED_KEY}", "key 2 of 2 is not a Fernet key", id="second-malformed"
        ),
    ],
)
def test_oauth_without_a_valid_key_is_one_line_that_does_not_echo_it(
    key: str | None, expected: str
) -> None:
    """A missing or malformed SLACK_TOKEN_ENCRYPTION_KEY stops serve with one line naming it, without the value."""
    values = OAUTH | {"slack_token_encryption_key": key}
    with pytest.raises(SettingsError, match=expected) as raised:
        _load(slack_signing_secret=SIGNING_SECRET, **values)
    message = str(raised.value)
    assert "\n" not in message
    for secret in SECRETS:
        assert secret not in message


def test_oauth_with_socket_mode_or_a_bot_token_is_refused() -> None:
    """OAuth is HTTP mode only (SLACK_APP_TOKEN refused) and brings its own tokens (SLACK_BOT_TOKEN refused)."""
    with pytest.raises(SettingsError, match=r"^SLACK_APP_TOKEN .*cannot be used with OAuth"):
        _load(slack_app_token="xapp-1-x", **OAUTH)
    with pytest.raises(SettingsError, match=r"^SLACK_BOT_TOKEN must not be set with OAuth"):
        _load(slack_bot_token="xoxb-1", slack_signing_secret=SIGNING_SECRET, **OAUTH)
    with pytest.raises(SettingsError, match=r"^SLACK_SIGNING_SECRET is required"):
        _load(**OAUTH)


# -- the commands, as an operator runs them -------------------------------------------------


def _executable() -> str:
    script = Path(sys.executable).with_name("nexthink-bot")
    assert script.exists(), f"{script}: install the project (./dev does) to get the console script"
    return str(script)


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "PORT": "0",
        "LOG_FORMAT": "json",
    }
    env |= {name.upper(): value for name, value in NEXTHINK.items()}
    env |= {name.upper(): value for name, value in OAUTH.items()}
    env |= values
    return {name: value for name, value in env.items() if value != "-"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "changes"),
    [
        pytest.param("SLACK_STATE_SECRET", {"SLACK_STATE_SECRET": "-"}, id="state-secret-missing"),
        pytest.param(
            "SLACK_TOKEN_ENCRYPTION_KEY", {"SLACK_TOKEN_ENCRYPTION_KEY": "-"}, id="key-missing"
        ),
        pytest.param(
            "SLACK_TOKEN_ENCRYPTION_KEY",
            {"SLACK_TOKEN_ENCRYPTION_KEY": MALFORMED_KEY},
            id="key-malformed",
        ),
        pytest.param("SLACK_APP_TOKEN", {"SLACK_APP_TOKEN": "xapp-1-x"}, id="socket-mode"),
    ],
)
def test_serve_stops_with_one_line_on_a_bad_oauth_setting(
    tmp_path: Path, variable: str, changes: dict[str, str]
) -> None:
    """`serve` with a bad OAuth configuration exits non-zero with one line naming the variable and no secret."""
    done = subprocess.run(  # noqa: S603 - the project's own console script
        [_executable(), "serve"],
        env=_env(tmp_path, **changes),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("nexthink-bot: ")
    assert variable in lines[0]
    everything = done.stdout + done.stderr
    assert "Traceback" not in everything
    for secret in SECRETS:
        assert secret not in everything


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


async def _check(env: dict[str, str], cwd: Path) -> tuple[int, list[str], str]:
    process = await asyncio.create_subprocess_exec(
        _executable(),
        "check",
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode().splitlines(), err.decode()


async def _store_two_installs(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        installs = store.slack_installations(
            client_id=OAUTH["slack_client_id"], cipher=TokenCipher.from_setting(KEY)
        )
        await installs.async_save(
            Installation(
                app_id="A0NEXTHINK",
                enterprise_id="E0GRID",
                team_id=None,
                bot_token="xoxb-org-check-test",
                bot_user_id="U0BOT",
                user_id="W0ADMIN",
                is_enterprise_install=True,
            )
        )
        await installs.async_save(
            Installation(
                app_id="A0NEXTHINK",
                team_id="T0SOLO",
                bot_token="xoxb-workspace-check-test",
                bot_user_id="U0BOT2",
                user_id="U0ADMIN",
            )
        )
    finally:
        await store.close()


@pytest.mark.slow
async def test_check_counts_oauth_installs_and_fails_on_a_key_that_cannot_read_them(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """`check` in OAuth mode says how many installations are stored, by kind; with another key it fails that line, without echoing a key."""
    await _store_two_installs(f"sqlite:///{tmp_path}/bot.db")
    env = _env(
        tmp_path,
        NEXTHINK_BASE_URL=sandbox.url,
        NEXTHINK_CLIENT_ID=sandbox.client_id,
        NEXTHINK_CLIENT_SECRET=sandbox.client_secret,
    )
    code, lines, err = await _check(env, tmp_path)
    assert code == 0, "\n".join(lines) + err
    (install,) = [line for line in lines if line.startswith("ok   slack install:")]
    assert "OAuth installs (client id 1111111111.2222222222" in install
    assert "2 stored (1 org-wide, 1 workspace)" in install
    assert any(line.startswith("ok   slack auth.test: not run") for line in lines)

    other = Fernet.generate_key().decode()
    code, lines, err = await _check(env | {"SLACK_TOKEN_ENCRYPTION_KEY": other}, tmp_path)
    assert code == 1
    (install,) = [line for line in lines if line.startswith("FAIL slack install:")]
    assert "SLACK_TOKEN_ENCRYPTION_KEY cannot decrypt the tokens of 2 of them" in install
    for secret in (*SECRETS, other):
        assert secret not in "\n".join(lines) + err
