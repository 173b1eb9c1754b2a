"""``nexthink-bot`` as an operator meets it: a bad setting stops ``serve`` with one line naming
the variable, and ``check`` reports what works against a local Slack and the sandbox."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.console.localslack import LocalSlack
from bot.sandbox import Sandbox
from tests.support.secret_scan import remember_environment, subprocess_output

pytestmark = pytest.mark.slow

SIGNING_SECRET = "cli-test-signing-secret-value"
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _executable() -> str:
    script = Path(sys.executable).with_name("nexthink-bot")
    assert script.exists(), f"{script}: install the project (./dev does) to get the console script"
    return str(script)


def _base_env(tmp_path: Path) -> dict[str, str]:
    """A complete HTTP-mode configuration; nothing in it is contacted before the failures tested."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "SLACK_BOT_TOKEN": "xoxb-cli-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": f"{NOWHERE}/api/",
        "NEXTHINK_BASE_URL": NOWHERE,
        "NEXTHINK_CLIENT_ID": "cli-test",
        "NEXTHINK_CLIENT_SECRET": "cli-test-client-secret",
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "PORT": "0",
        "LOG_FORMAT": "json",
    }


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _serve(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the project's own console script
        [_executable(), "serve"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


MALFORMED_POLICY = "roles:\n  everyone:\n    members: [\"*\"\n    workflows: ['*']\n"
UNKNOWN_KEYS_POLICY = "roles:\n  everyone:\n    members: ['*']\n    workflows: 7\n"


@pytest.mark.parametrize(
    ("variable", "changes"),
    [
        pytest.param("PORT", {"PORT": "abc"}, id="port-not-a-number"),
        pytest.param("PORT", {"PORT": "70000"}, id="port-out-of-range"),
        pytest.param("SLACK_BOT_TOKEN", {"SLACK_BOT_TOKEN": None}, id="bot-token-missing"),
        pytest.param("SLACK_BOT_TOKEN", {"SLACK_BOT_TOKEN": "xapp-1-x"}, id="bot-token-wrong-kind"),
        pytest.param("SLACK_APP_TOKEN", {"SLACK_APP_TOKEN": "bad"}, id="app-token-malformed"),
        pytest.param(
            "SLACK_SIGNING_SECRET", {"SLACK_SIGNING_SECRET": None}, id="http-mode-without-secret"
        ),
        pytest.param("DATABASE_URL", {"DATABASE_URL": "mysql://x"}, id="database-unsupported"),
        pytest.param(
            "DATABASE_URL",
            {"DATABASE_URL": "sqlite:////no/such/directory/bot.db"},
            id="sqlite-directory-missing",
        ),
        pytest.param(
            "DATABASE_URL",
            {"DATABASE_URL": f"postgresql://bot:pw-not-shown@127.0.0.1:{_closed_port()}/bot"},
            id="postgresql-unreachable",
        ),
        pytest.param("NEXTHINK_BASE_URL", {"NEXTHINK_BASE_URL": None}, id="nexthink-url-missing"),
        pytest.param(
            "NEXTHINK_BASE_URL", {"NEXTHINK_BASE_URL": "ftp://x"}, id="nexthink-url-not-http"
        ),
        pytest.param(
            "NEXTHINK_CLIENT_SECRET", {"NEXTHINK_CLIENT_SECRET": None}, id="client-secret-missing"
        ),
        pytest.param("LOG_LEVEL", {"LOG_LEVEL": "chatty"}, id="log-level-unknown"),
    ],
)
def test_a_bad_setting_stops_serve_with_one_line_naming_it(
    tmp_path: Path, variable: str, changes: dict[str, str | None]
) -> None:
    """`serve` with a missing or malformed setting exits non-zero printing one line that names the variable, and no secret."""
    env = _base_env(tmp_path)
    for name, value in changes.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    done = _serve(env, tmp_path)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    assert f"{variable}: {variable}" not in lines[0], "the variable is named once"
    assert lines[0].startswith("nexthink-bot: ")
    everything = done.stdout + done.stderr
    assert "Traceback" not in everything
    for secret in (SIGNING_SECRET, "cli-test-client-secret", "xoxb-cli-test-token", "pw-not-shown"):
        assert secret not in everything


@pytest.mark.parametrize(
    ("content", "where"),
    [
        pytest.param(MALFORMED_POLICY, "line", id="malformed-yaml"),
        pytest.param(UNKNOWN_KEYS_POLICY, "workflows", id="wrong-shape"),
        pytest.param(None, "policy.yaml", id="missing-file"),
    ],
)
def test_a_bad_policy_file_stops_serve_with_one_line(
    tmp_path: Path, content: str | None, where: str
) -> None:
    """A POLICY_FILE that is malformed YAML, has the wrong shape, or is missing stops `serve` with one line naming POLICY_FILE."""
    policy = tmp_path / "policy.yaml"
    if content is not None:
        policy.write_text(content)
    env = _base_env(tmp_path) | {"POLICY_FILE": str(policy)}
    done = _serve(env, tmp_path)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "POLICY_FILE" in lines[0]
    assert where in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_port_in_use_stops_serve_with_one_line(tmp_path: Path, listening: int) -> None:
    """A PORT another process holds stops `serve` with one line naming PORT, and the bot closes what it opened."""
    env = _base_env(tmp_path) | {"PORT": str(listening)}
    done = _serve(env, tmp_path)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "PORT" in lines[0]
    assert str(listening) in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert "Unclosed" not in done.stdout + done.stderr


def test_help_lists_the_four_commands(tmp_path: Path) -> None:
    """`nexthink-bot --help` names serve, console, sandbox and check, and exits 0."""
    done = subprocess.run(  # noqa: S603 - the project's own console script
        [_executable(), "--help"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    for command in ("serve", "console", "sandbox", "check"):
        assert command in done.stdout


# -- check ----------------------------------------------------------------------------------


@pytest.fixture
async def local() -> AsyncIterator[tuple[Sandbox, LocalSlack]]:
    async with Sandbox() as sandbox, LocalSlack() as slack:
        yield sandbox, slack


async def _check(env: dict[str, str], cwd: Path) -> tuple[int, list[str], str]:
    """Run `nexthink-bot check` without blocking the loop that serves the sandbox and Slack."""
    process = await asyncio.create_subprocess_exec(
        _executable(),
        "check",
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    remember_environment(env)
    out, err = b"", b""
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        subprocess_output("check", out)
        subprocess_output("check", err)
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode().splitlines(), err.decode()


def _check_env(tmp_path: Path, sandbox: Sandbox, slack: LocalSlack) -> dict[str, str]:
    return _base_env(tmp_path) | {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_API_URL": slack.api_url,
        "NEXTHINK_BASE_URL": sandbox.url,
        "NEXTHINK_CLIENT_ID": sandbox.client_id,
        "NEXTHINK_CLIENT_SECRET": sandbox.client_secret,
    }


async def test_check_reports_all_good_against_slack_and_the_sandbox(
    tmp_path: Path, local: tuple[Sandbox, LocalSlack]
) -> None:
    """`check` gets a token, lists workflows, opens the store, calls auth.test, prints an ok line for each and exits 0."""
    sandbox, slack = local
    code, lines, err = await _check(_check_env(tmp_path, sandbox, slack), tmp_path)
    assert code == 0, "\n".join(lines) + err
    assert lines[-1] == "all good"
    checks = {line[5:].split(":", 1)[0]: line[:4] for line in lines[:-1]}
    assert checks == {
        "configuration": "ok  ",
        "policy": "ok  ",
        "nexthink token": "ok  ",
        "nexthink workflows": "ok  ",
        "nexthink execute API": "ok  ",
        "nexthink status query": "ok  ",
        "store": "ok  ",
        "slack install": "ok  ",
        "slack auth.test": "ok  ",
        "waits webhook": "ok  ",
    }
    assert any("restart_teams" in line for line in lines)
    assert len(sandbox.requests("token")) == 1
    assert len(slack.calls_to("auth.test")) == 1
    assert any("outcomes are not followed" in line for line in lines)
    (api,) = [line for line in lines if line.startswith("ok   nexthink execute API:")]
    assert "v2 (not yet probed): NEXTHINK_EXECUTE_API=auto" in api
    assert "ok   slack install: one bot token (SLACK_BOT_TOKEN), HTTP mode" in "\n".join(lines)


async def test_check_says_an_org_wide_token_serves_the_org(tmp_path: Path) -> None:
    """Enterprise Grid: `check`'s auth.test line says the token is installed org-wide, and where."""
    async with (
        Sandbox() as sandbox,
        LocalSlack(bot_token="xoxb-org", enterprise_id="E0ORG", enterprise_name="Acme") as slack,
    ):
        code, lines, err = await _check(_check_env(tmp_path, sandbox, slack), tmp_path)
    assert code == 0, "\n".join(lines) + err
    [auth] = [line for line in lines if line.startswith("ok   slack auth.test:")]
    assert "installed org-wide in Acme (E0ORG)" in auth


async def test_check_runs_the_status_query_when_one_is_set(
    tmp_path: Path, local: tuple[Sandbox, LocalSlack]
) -> None:
    """With NEXTHINK_STATUS_QUERY_ID set, `check` runs that NQL query once and reports it works."""
    sandbox, slack = local
    env = _check_env(tmp_path, sandbox, slack) | {
        "NEXTHINK_STATUS_QUERY_ID": "#chatops_execution_status"
    }
    code, lines, err = await _check(env, tmp_path)
    assert code == 0, "\n".join(lines) + err
    (query,) = [line for line in lines if line.startswith("ok   nexthink status query:")]
    assert "#chatops_execution_status runs" in query
    (nql,) = sandbox.requests("nql")
    assert nql.body["queryId"] == "#chatops_execution_status"


async def test_check_fails_clearly_on_a_wrong_client_secret(
    tmp_path: Path, local: tuple[Sandbox, LocalSlack]
) -> None:
    """With a wrong NEXTHINK_CLIENT_SECRET, `check` prints a FAIL line for the token that names the setting, never the secret, and exits 1."""
    sandbox, slack = local
    env = _check_env(tmp_path, sandbox, slack) | {"NEXTHINK_CLIENT_SECRET": "not-the-secret"}
    code, lines, err = await _check(env, tmp_path)
    assert code == 1
    (token,) = [line for line in lines if line.startswith("FAIL nexthink token:")]
    assert "NEXTHINK_CLIENT_SECRET" in token
    assert any(line.startswith("ok   slack auth.test:") for line in lines)
    assert lines[-1].endswith("problem(s)")
    assert "not-the-secret" not in "\n".join(lines) + err


async def test_check_fails_clearly_on_a_slack_token_slack_refuses(
    tmp_path: Path, local: tuple[Sandbox, LocalSlack]
) -> None:
    """With a bot token Slack refuses, `check` prints one FAIL line with Slack's error code and exits 1."""
    sandbox, slack = local
    env = _check_env(tmp_path, sandbox, slack) | {"SLACK_BOT_TOKEN": "xoxb-revoked"}
    code, lines, err = await _check(env, tmp_path)
    assert code == 1
    (auth,) = [line for line in lines if line.startswith("FAIL slack auth.test:")]
    assert "invalid_auth" in auth
    assert any(line.startswith("ok   nexthink token:") for line in lines)
    assert "xoxb-revoked" not in "\n".join(lines) + err


async def test_check_reports_a_configuration_error_as_a_fail_line(tmp_path: Path) -> None:
    """`check` with no configuration at all prints one FAIL line naming the first missing variable and exits 1."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    code, lines, _ = await _check(env, tmp_path)
    assert code == 1
    assert lines == [lines[0]]
    assert lines[0].startswith("FAIL configuration: NEXTHINK_BASE_URL")
