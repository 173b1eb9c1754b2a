"""The redactor in bot/logging.py: every form a secret or a response URL takes in a log line, and
`serve` in Socket Mode at LOG_LEVEL=DEBUG (Bolt's "Received message" line holds the whole
envelope) logging no response URL and no verification token."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from bot.console.driver import SlackDriver, socket_envelope
from bot.console.localslack import LocalSlack
from bot.logging import REDACTED, Redactor, configure_structlog, formatter, get_logger
from bot.sandbox import Sandbox
from tests.test_shutdown import (
    APP_TOKEN,
    SIGNING_SECRET,
    BotProcess,
    SocketModeGateway,
    _add_people,
    response_url_replies,
    until,
)

HOOK = "https://hooks.slack.com/commands/T0LOCAL/1234567890/Zk3pQ9xYw2"
GOV_HOOK = "https://hooks.slack-gov.com/actions/T0LOCAL/1234567890/Zk3pQ9xYw2"
VERIFICATION = "Xy7verificationTokenQ2"


def masked(text: str, *secrets: str) -> str:
    return Redactor(secrets).text(text)


@pytest.mark.parametrize(
    "written",
    [
        HOOK,
        HOOK.replace("/", "\\/"),  # JSON-escaped, as Slack writes it
        HOOK.replace("/", "\\\\/"),  # JSON-escaped twice (a JSON text inside a JSON string)
        quote(HOOK, safe=""),  # percent-encoded, as in a form body
        quote(HOOK, safe="").replace("%2F", "%2f").replace("%3A", "%3a"),
        GOV_HOOK,
        GOV_HOOK.replace("/", "\\/"),
        quote(GOV_HOOK, safe=""),
        HOOK.upper(),
    ],
    ids=[
        "plain",
        "json-escaped",
        "json-escaped-twice",
        "percent-encoded",
        "percent-encoded-lowercase",
        "gov",
        "gov-json-escaped",
        "gov-percent-encoded",
        "upper-case",
    ],
)
def test_a_response_url_is_masked_in_every_form(written: str) -> None:
    line = f"posting to {written} now"
    shown = masked(line)
    assert "Zk3pQ9xYw2" not in shown
    assert shown == f"posting to {REDACTED} now"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:40539/hooks/commands/T0LOCAL/1/b57446757e87a227bd3191d9",
        "https://slack-proxy.example.com/actions/T0LOCAL/1234567890/Zk3pQ9xYw2",
    ],
    ids=["local-slack", "proxy"],
)
def test_a_response_url_is_known_by_its_path_whatever_the_host(url: str) -> None:
    """slack_sdk's "Sending a request - url: ..." names the URL bare, with no key."""
    for form in (url, url.replace("/", "\\/"), quote(url, safe="")):
        shown = masked(f"Sending a request - url: {form}, body: {{}}")
        assert shown == f"Sending a request - url: {REDACTED}, body: {{}}"


def test_a_response_url_is_masked_inside_json_without_eating_the_rest() -> None:
    body = json.dumps({"response_url": HOOK, "trigger_id": "13345224609.738474920.8088930838d88"})
    shown = masked(body.replace("/", "\\/"))
    assert "Zk3pQ9xYw2" not in shown
    assert '"trigger_id": "13345224609.738474920.8088930838d88"' in shown


def test_a_response_url_under_its_key_is_masked_wherever_it_points() -> None:
    local = "http://127.0.0.1:8123/hooks/commands/T0LOCAL/7/0123456789abcdef01234567"
    for line in (
        json.dumps({"response_url": local}),
        json.dumps({"response_url": local}).replace("/", "\\/"),
        json.dumps(json.dumps({"response_url": local})),  # a JSON text inside a JSON string
        repr({"response_url": local}),
        f"command=%2Fnexthink&response_url={quote(local, safe='')}&trigger_id=1",
    ):
        shown = masked(line)
        assert "0123456789abcdef01234567" not in shown, shown
    event = Redactor()(None, "info", {"event": "reply", "response_url": local})
    assert event == {"event": "reply", "response_url": REDACTED}


@pytest.mark.parametrize(
    "line",
    [
        # Bolt's Socket Mode "Received message" debug line: the envelope as Slack sent it
        'Received message (type: TEXT, data: {"envelope_id":"e1","payload":{"token":"'
        + VERIFICATION
        + '","team_id":"T0LOCAL","command":"\\/nexthink"}}, extra: None)',
        '{"payload": "{\\"token\\":\\"' + VERIFICATION + '\\",\\"team_id\\":\\"T0LOCAL\\"}"}',
        "{'token': '" + VERIFICATION + "', 'team_id': 'T0LOCAL'}",
        "token=" + VERIFICATION + "&team_id=T0LOCAL&command=%2Fnexthink",
        '{"verification_token": "' + VERIFICATION + '", "team": "T0LOCAL"}',
    ],
    ids=["bolt-received-message", "json-escaped", "python-repr", "form", "named-key"],
)
def test_the_verification_token_is_masked_in_a_payload_text(line: str) -> None:
    shown = masked(line)
    assert VERIFICATION not in shown
    assert REDACTED in shown
    assert "T0LOCAL" in shown  # the rest of the payload is still readable


@pytest.mark.parametrize("secret", ["k", "ab", "x9z", "s3cr"])
def test_a_configured_secret_is_masked_however_short(secret: str) -> None:
    shown = masked(f"the value is {secret}!", secret)
    assert shown == f"the value is {REDACTED}!"


def test_the_formatter_masks_a_library_record_and_a_structlog_event() -> None:
    """The one configuration (bot.logging.formatter and configure_structlog) masks both paths."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    library = logging.getLogger("slack_bolt.test_logging")
    library.addHandler(handler)
    ours = logging.getLogger("bot.test_logging")
    ours.addHandler(handler)
    try:
        configure_structlog()
        library.warning("Received message: %s", '{"token":"' + VERIFICATION + '"}')
        get_logger("bot.test_logging").warning("reply", url=HOOK.replace("/", "\\/"))
    finally:
        library.removeHandler(handler)
        ours.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        'Received message: {"token":"' + REDACTED + '"}',
        "reply",
    ]
    assert lines[1]["url"] == REDACTED
    assert VERIFICATION not in stream.getvalue()
    assert "Zk3pQ9xYw2" not in stream.getvalue()


async def test_socket_mode_at_debug_logs_no_response_url_and_no_verification_token(
    tmp_path: Path,
) -> None:
    """`serve` in Socket Mode at LOG_LEVEL=DEBUG over a real WebSocket: Bolt logs every envelope
    it receives, and still no line holds a response URL or the verification token."""
    async with (
        Sandbox(execution_delay=0.05) as sandbox,
        LocalSlack() as slack,
        SocketModeGateway(slack) as gateway,
        SlackDriver(
            "http://127.0.0.1:9/unused", SIGNING_SECRET, slack, verification_token=VERIFICATION
        ) as driver,
    ):
        _add_people(slack)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_URL": gateway.api_url,
            "NEXTHINK_BASE_URL": sandbox.url,
            "NEXTHINK_CLIENT_ID": sandbox.client_id,
            "NEXTHINK_CLIENT_SECRET": sandbox.client_secret,
            "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
            "PORT": "0",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
        }
        bot = BotProcess(env)
        try:
            await bot.start()
            await bot.event("serving", within=60)
            await asyncio.wait_for(gateway.connected.wait(), 60)
            payloads = [
                driver.command_payload("U0ALICE", "run restart_teams"),
                driver.command_payload("U0BOB", "help"),
            ]
            envelopes = [socket_envelope("slash_commands", p) for p in payloads]
            for envelope in envelopes:
                await gateway.send(envelope)
            await until(
                lambda: all(e["envelope_id"] in gateway.acks for e in envelopes),
                60,
                "every envelope acknowledged over the socket",
            )
            await until(
                lambda: len(response_url_replies(slack, "U0ALICE")) == 1,
                60,
                "Alice's reply through her response URL",
            )
            await until(
                lambda: any("Received message" in json.dumps(e) for e in bot.events),
                60,
                "Bolt's debug line for the envelopes",
            )
        finally:
            await bot.stop()

    lines = [json.dumps(e) for e in bot.events] + bot.stderr
    received = [line for line in lines if "Received message" in line]
    assert len(received) >= len(envelopes), "Bolt logged each envelope at DEBUG"
    assert any("T0LOCAL" in line or slack.team_id in line for line in received)
    # the unique part of each response URL, in whatever form a line could hold it
    uniques = [re.sub(r".*/", "", p["response_url"]) for p in payloads]
    for line in lines:
        for unique in uniques:
            assert unique not in line, line[:600]
        for payload in payloads:
            url = payload["response_url"]
            for form in (url, url.replace("/", "\\/"), quote(url, safe="")):
                assert form not in line, line[:600]
        assert VERIFICATION not in line, line[:600]
        assert slack.bot_token not in line, line[:600]
        assert APP_TOKEN not in line, line[:600]
