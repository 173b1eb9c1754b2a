"""``nexthink-bot check``: what works and what does not, in plain lines; exit 0 only if all is well."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TextIO

from bot.settings import Settings, SettingsError

if TYPE_CHECKING:
    from bot.nexthink.client import NexthinkClient

__all__ = ["run_check"]


async def run_check(out: TextIO | None = None) -> int:
    out = out or sys.stdout
    failures = 0

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        detail = " ".join(detail.split())  # one line per check, whatever the error's text
        out.write(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}\n")

    try:
        settings = Settings.load("check")
    except SettingsError as exc:
        line(False, "configuration", str(exc))
        return 1
    line(True, "configuration", "all required settings are present")
    from bot.logging import configure

    # the report owns stdout; log lines (redacted, warnings and worse) go to stderr
    level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    configure(level=level, fmt=settings.log_format, secrets=settings.secrets(), stream=sys.stderr)

    from bot.nexthink.client import NexthinkClient
    from bot.policy import Policy, PolicyError
    from bot.store import Store

    try:
        policy = Policy.load(settings.policy_file) if settings.policy_file else Policy.default()
        where = f"{settings.policy_file}: " if settings.policy_file else ""
        line(True, "policy", where + policy.summary())
    except PolicyError as exc:
        line(False, "policy", str(exc))

    async def step(what: str, action: Callable[[], Awaitable[str]]) -> None:
        try:
            line(True, what, await action())
        except Exception as exc:
            line(False, what, _describe(exc))

    async with NexthinkClient.from_settings(settings) as nexthink:

        async def token() -> str:
            await nexthink.token()
            return f"token obtained from {settings.token_url}"

        async def workflows() -> str:
            listed = await nexthink.list_api_workflows()
            names = ", ".join(w.id for w in listed[:5]) + (" …" if len(listed) > 5 else "")
            return f"{len(listed)} active API-triggerable workflows ({names})"

        async def status_query() -> str:
            query_id = settings.nexthink_status_query_id
            assert query_id is not None
            # a request id that matches nothing: the query must run and answer no rows
            rows = await nexthink.nql(
                query_id, {"request_id": "00000000-0000-0000-0000-000000000000"}
            )
            return f"{query_id} runs ({len(rows)} rows for an unknown request id): outcomes are followed"

        await step("nexthink token", token)
        await step("nexthink workflows", workflows)
        line(True, "nexthink execute API", _execute_api(settings.nexthink_execute_api, nexthink))
        if settings.nexthink_status_query_id:
            await step("nexthink status query", status_query)
        else:
            line(
                True,
                "nexthink status query",
                "NEXTHINK_STATUS_QUERY_ID unset: run outcomes are not followed",
            )

    async def store() -> str:
        opened = await Store.open(settings.database_url)
        try:
            await opened.ping()
            backend = opened.backend  # asked before closing: a closed store has none
        finally:
            await opened.close()
        return f"{backend} reachable, schema up to date"

    await step("store", store)
    if settings.oauth:
        try:
            ok, detail = await _oauth_installs(settings)
        except Exception as exc:
            ok, detail = False, _describe(exc)
        line(ok, "slack install", detail)
        line(True, "slack auth.test", "not run: with OAuth each installation has its own token")
    else:
        line(True, "slack install", _INSTALL_MODES[settings.install_mode])
        await _auth_test(settings, step)
    if settings.nexthink_webhook_token is None:
        line(
            True,
            "waits webhook",
            "disabled (no NEXTHINK_WEBHOOK_TOKEN): POST /nexthink/waits answers 503",
        )
    else:
        line(True, "waits webhook", "enabled: POST /nexthink/waits requires the bearer token")
    out.write("all good\n" if failures == 0 else f"{failures} problem(s)\n")
    return 0 if failures == 0 else 1


_INSTALL_MODES = {
    "token": "one bot token (SLACK_BOT_TOKEN), HTTP mode: Slack posts to /slack/events",
    "socket": "one bot token (SLACK_BOT_TOKEN), Socket Mode (SLACK_APP_TOKEN)",
}


async def _oauth_installs(settings: Settings) -> tuple[bool, str]:
    """OAuth: how many installations the store holds, and whether the key decrypts their tokens."""
    from bot.store import Store
    from bot.store.token_cipher import TokenCipher

    assert settings.slack_client_id
    assert settings.slack_token_encryption_key
    cipher = TokenCipher.from_setting(settings.slack_token_encryption_key.get_secret_value())
    opened = await Store.open(settings.database_url)
    try:
        installs = opened.slack_installations(client_id=settings.slack_client_id, cipher=cipher)
        census = await installs.census()
    finally:
        await opened.close()
    stored = (
        f"OAuth installs (client id {settings.slack_client_id}, GET /slack/install): "
        f"{census.total} stored ({census.org_wide} org-wide, {census.workspaces} "
        f"workspace{'' if census.workspaces == 1 else 's'})"
    )
    if census.unreadable:
        return False, (
            f"{stored}; SLACK_TOKEN_ENCRYPTION_KEY cannot decrypt the tokens of "
            f"{census.unreadable} of them (they were encrypted with another key)"
        )
    return True, stored


async def _auth_test(
    settings: Settings, step: Callable[[str, Callable[[], Awaitable[str]]], Awaitable[None]]
) -> None:
    from bot.app import slack_client

    slack = slack_client(settings)

    async def auth() -> str:
        response = await slack.auth_test()
        if response.get("is_enterprise_install"):  # one org-level token: Enterprise Grid
            where = f"installed org-wide in {response.get('team')} ({response.get('team_id')})"
        else:
            where = f"in workspace {response.get('team')}"
        return f"bot {response.get('user')} {where} ({settings.slack_api_url})"

    try:
        await step("slack auth.test", auth)
    finally:
        session = getattr(slack, "session", None)
        if session is not None:
            await session.close()


def _execute_api(setting: str, nexthink: NexthinkClient) -> str:
    """Which execute runs will go through, and why (``check`` runs nothing to find out)."""
    in_use = nexthink.execute_api
    if setting == "auto":
        return (
            f"{in_use}: NEXTHINK_EXECUTE_API=auto uses V2, and V1 for SIDs and Collector UUIDs "
            "if the V2 execute answers 404"
        )
    if setting == "v1":
        return f"{in_use}: NEXTHINK_EXECUTE_API=v1, runs can target only SIDs and Collector UUIDs"
    return f"{in_use}: NEXTHINK_EXECUTE_API=v2"


def _describe(exc: Exception) -> str:
    """What went wrong, for a person: Slack's error code rather than slack_sdk's whole dump."""
    data = getattr(getattr(exc, "response", None), "data", None)  # a SlackApiError's answer
    error = data.get("error") if isinstance(data, dict) else None
    if error:
        return f"Slack answered {error!r}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
