"""LocalSlack (the local Slack Web API) and SlackDriver (what Slack sends the bot), over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import httpx
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.console import LocalSlack, SlackDriver, socket_envelope, validate_blocks
from handlers import ids

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "xoxb-local"
SECRET = "local-signing-secret"


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[LocalSlack]:
    local = LocalSlack(bot_token=TOKEN, team_id="T0LOCAL", bot_user_id="U0BOT", clock=clock)
    local.add_user(id="U0ALICE", name="alice", real_name="Alice Martin", email="Alice@Example.com")
    local.add_user(id="U0BOB", name="bob", real_name="Bob Stone", email=None)
    local.add_user(id="U0GONE", name="gone", email="gone@example.com", deleted=True)
    local.add_usergroup(handle="it-support", id="S0ITSUPPORT", members=["U0BOB"])
    local.add_channel(id="C0SUPPORT", name="it-support")
    await local.start()
    yield local
    await local.stop()


@pytest.fixture
def client(slack: LocalSlack) -> AsyncWebClient:
    return AsyncWebClient(base_url=slack.api_url, token=TOKEN)


@dataclass
class Receiver:
    """A stand-in for the bot's /slack/events: records requests, answers with ``answer``."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answer: Callable[[bytes], web.Response] = lambda body: web.Response(status=200)

    def payload(self, index: int = -1) -> dict[str, Any]:
        body = self.requests[index][1].decode()
        loaded: dict[str, Any] = json.loads(dict(parse_qsl(body))["payload"])
        return loaded


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recorded = Receiver()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        recorded.requests.append((dict(request.headers), body))
        return recorded.answer(body)

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    recorded.url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    yield recorded
    await runner.cleanup()


@pytest.fixture
async def driver(slack: LocalSlack, receiver: Receiver) -> AsyncIterator[SlackDriver]:
    async with SlackDriver(
        events_url=receiver.url, signing_secret=SECRET, slack=slack
    ) as slack_driver:
        yield slack_driver


def _modal(
    title: str = "Run a workflow", blocks: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": ids.RUN_MODAL,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Run"},
        "blocks": blocks
        if blocks is not None
        else [_input("note", "note_input", {"type": "plain_text_input"})],
        **extra,
    }


def _input(
    block_id: str, action_id: str, element: dict[str, Any], *, optional: bool = False
) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": block_id},
        "element": {**element, "action_id": action_id},
    }


def _buttons(*values: str, action_id: str = ids.WAIT_DECISION) -> list[dict[str, Any]]:
    return [
        {
            "type": "actions",
            "block_id": f"decide-{value}",
            "elements": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "text": {"type": "plain_text", "text": value},
                    "value": value,
                }
            ],
        }
        for value in values
    ]


def _options(*values: str) -> list[dict[str, Any]]:
    return [{"text": {"type": "plain_text", "text": v.title()}, "value": v} for v in values]


# -- Web API: identity ---------------------------------------------------------------------------


async def test_auth_test_names_the_team_and_bot_user(client: AsyncWebClient) -> None:
    """auth.test answers with the workspace and the bot's user and bot IDs."""
    answer = await client.auth_test()
    assert answer["ok"] is True
    assert (answer["team_id"], answer["user_id"], answer["bot_id"]) == ("T0LOCAL", "U0BOT", "B0BOT")


@pytest.mark.parametrize(
    ("token", "error"),
    [(None, "not_authed"), ("xoxb-wrong", "invalid_auth")],
    ids=["missing", "wrong"],
)
async def test_bad_tokens_are_refused(slack: LocalSlack, token: str | None, error: str) -> None:
    """A missing or wrong token gets Slack's not_authed / invalid_auth, and the call is journalled."""
    with pytest.raises(SlackApiError) as refused:
        await AsyncWebClient(base_url=slack.api_url, token=token).auth_test()
    assert refused.value.response["error"] == error
    assert slack.calls_to("auth.test")[-1].response["error"] == error


async def test_users_info_includes_the_email_only_when_the_profile_has_one(
    client: AsyncWebClient,
) -> None:
    """users.info returns profile.email for a user with an email and leaves it out otherwise."""
    alice = (await client.users_info(user="U0ALICE"))["user"]
    bob = (await client.users_info(user="U0BOB"))["user"]
    assert alice["profile"]["email"] == "Alice@Example.com"
    assert alice["real_name"] == "Alice Martin"
    assert "email" not in bob["profile"]


async def test_users_info_of_an_unknown_user_is_user_not_found(client: AsyncWebClient) -> None:
    """users.info of an ID nobody has answers user_not_found."""
    with pytest.raises(SlackApiError) as refused:
        await client.users_info(user="U0NOBODY")
    assert refused.value.response["error"] == "user_not_found"


@pytest.mark.parametrize(
    ("email", "found"),
    [("alice@example.com", "U0ALICE"), ("nobody@example.com", None), ("gone@example.com", None)],
    ids=["case-insensitive", "unknown", "deleted"],
)
async def test_lookup_by_email(client: AsyncWebClient, email: str, found: str | None) -> None:
    """users.lookupByEmail finds active users regardless of case, else answers users_not_found."""
    if found:
        assert (await client.users_lookupByEmail(email=email))["user"]["id"] == found
    else:
        with pytest.raises(SlackApiError) as refused:
            await client.users_lookupByEmail(email=email)
        assert refused.value.response["error"] == "users_not_found"


async def test_usergroups_list_handles_and_members(client: AsyncWebClient) -> None:
    """usergroups.list names each group's handle (and members on request); usergroups.users.list lists them."""
    groups = (await client.usergroups_list(include_users=True))["usergroups"]
    assert [(g["id"], g["handle"], g["users"]) for g in groups] == [
        ("S0ITSUPPORT", "it-support", ["U0BOB"])
    ]
    assert (await client.usergroups_users_list(usergroup="S0ITSUPPORT"))["users"] == ["U0BOB"]
    with pytest.raises(SlackApiError) as refused:
        await client.usergroups_users_list(usergroup="S0NOPE")
    assert refused.value.response["error"] == "no_such_subteam"


# -- Web API: messages ---------------------------------------------------------------------------


async def test_conversations_open_gives_a_stable_dm_that_accepts_messages(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    """conversations.open returns the same D… channel each time, and posting there lands in it."""
    first = (await client.conversations_open(users="U0ALICE"))["channel"]["id"]
    again = (await client.conversations_open(users="U0ALICE"))["channel"]["id"]
    assert first == again
    assert first.startswith("D")
    await client.chat_postMessage(channel=first, text="hello")
    assert [m.text for m in slack.messages[first]] == ["hello"]


async def test_post_message_returns_channel_and_ts_and_keeps_threads(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    """chat.postMessage answers with channel and ts; a reply keeps its thread_ts; the journal has the params."""
    parent = await client.chat_postMessage(channel="C0SUPPORT", text="parent")
    reply = await client.chat_postMessage(channel="C0SUPPORT", text="reply", thread_ts=parent["ts"])
    assert parent["channel"] == "C0SUPPORT"
    assert float(reply["ts"]) > float(parent["ts"])
    posted = slack.messages["C0SUPPORT"]
    assert [(m.text, m.thread_ts, m.via, m.ephemeral) for m in posted] == [
        ("parent", None, "chat.postMessage", False),
        ("reply", parent["ts"], "chat.postMessage", False),
    ]
    call = slack.calls_to("chat.postMessage")[-1]
    assert (call.params["thread_ts"], call.token) == (parent["ts"], TOKEN)


async def test_posting_to_a_user_id_goes_to_the_bots_dm(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    """chat.postMessage with a U… channel lands in the bot's DM with that user, as on Slack."""
    answer = await client.chat_postMessage(channel="U0ALICE", text="psst")
    assert answer["channel"] == slack.dm_channel("U0ALICE")


@pytest.mark.parametrize(
    ("auto", "ok"), [(True, True), (False, False)], ids=["auto-create", "strict"]
)
async def test_unknown_channels(clock: FakeClock, auto: bool, ok: bool) -> None:
    """An unknown C… channel is created on first post unless auto_create_channels is off; D… never is."""
    async with LocalSlack(clock=clock, auto_create_channels=auto) as local:
        client = AsyncWebClient(base_url=local.api_url, token=local.bot_token)
        if ok:
            assert (await client.chat_postMessage(channel="C0NEW", text="hi"))["channel"] == "C0NEW"
        else:
            with pytest.raises(SlackApiError, match="channel_not_found"):
                await client.chat_postMessage(channel="C0NEW", text="hi")
        with pytest.raises(SlackApiError, match="channel_not_found"):
            await client.chat_postMessage(channel="D0NEVEROPENED", text="hi")


async def test_update_and_delete_need_an_existing_bot_message(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    """chat.update/delete act on the bot's messages; a missing ts is message_not_found, a person's message is refused."""
    posted = await client.chat_postMessage(channel="C0SUPPORT", text="pending")
    updated = await client.chat_update(channel="C0SUPPORT", ts=posted["ts"], text="approved")
    assert updated["message"]["text"] == "approved"
    assert (slack.messages["C0SUPPORT"][0].text, slack.messages["C0SUPPORT"][0].updated) == (
        "approved",
        1,
    )
    with pytest.raises(SlackApiError, match="message_not_found"):
        await client.chat_update(channel="C0SUPPORT", ts="1.000001", text="x")
    theirs = slack.add_message("C0SUPPORT", "U0ALICE", "my laptop is slow")
    with pytest.raises(SlackApiError, match="cant_update_message"):
        await client.chat_update(channel="C0SUPPORT", ts=theirs.ts, text="x")
    await client.chat_delete(channel="C0SUPPORT", ts=posted["ts"])
    assert slack.messages_in("C0SUPPORT") == [theirs]


async def test_ephemeral_messages_need_a_user_and_cannot_be_updated(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    """chat.postEphemeral stores the message for its user; without a user it is refused; chat.update cannot reach it."""
    answer = await client.chat_postEphemeral(channel="C0SUPPORT", user="U0ALICE", text="only you")
    [message] = slack.messages["C0SUPPORT"]
    assert (message.ts, message.user, message.ephemeral, message.via) == (
        answer["message_ts"],
        "U0ALICE",
        True,
        "chat.postEphemeral",
    )
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        await client.api_call("chat.postEphemeral", json={"channel": "C0SUPPORT", "text": "x"})
    with pytest.raises(SlackApiError, match="message_not_found"):
        await client.chat_update(channel="C0SUPPORT", ts=answer["message_ts"], text="x")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([_section("x" * 3001)], "/blocks/0/text/text"),
        ([_section("x")] * 51, "/blocks"),
        (
            [{**_section("a"), "block_id": "b"}, {**_section("b"), "block_id": "b"}],
            "/blocks/1/block_id",
        ),
        (
            [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
            "/blocks/0/text/text",
        ),
        ([{"type": "actions", "elements": []}], "/blocks/0/elements"),
        ([{"type": "section"}], "/blocks/0"),
        ([{"type": "banner"}], "/blocks/0/type"),
    ],
    ids=[
        "section-text-3001",
        "51-blocks",
        "duplicate-block-id",
        "header-151",
        "empty-actions",
        "empty-section",
        "unknown-type",
    ],
)
async def test_blocks_slack_would_refuse_are_invalid_blocks(
    client: AsyncWebClient, blocks: list[dict[str, Any]], pointer: str
) -> None:
    """Messages breaking Block Kit limits answer invalid_blocks with a JSON pointer to the culprit, as Slack does."""
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C0SUPPORT", text="fallback", blocks=blocks)
    assert refused.value.response["error"] == "invalid_blocks"
    assert any(
        f"[json-pointer:{pointer}]" in problem for problem in refused.value.response["errors"]
    )


def test_validate_blocks_accepts_limits_exactly() -> None:
    """Blocks exactly at Slack's limits (50 blocks, 3000-character sections) are accepted."""
    assert validate_blocks([_section("x" * 3000)] + [_section("y")] * 49) == []


async def test_a_message_needs_text_or_blocks(client: AsyncWebClient) -> None:
    """chat.postMessage with neither text nor blocks answers no_text."""
    with pytest.raises(SlackApiError, match="no_text"):
        await client.api_call("chat.postMessage", json={"channel": "C0SUPPORT"})


async def test_form_encoded_calls_with_json_fields_and_body_token(slack: LocalSlack) -> None:
    """A form POST with the token in the body and blocks as a JSON string works; the journal holds decoded blocks."""
    blocks = [_section("hi")]
    async with httpx.AsyncClient() as http:
        answer = (
            await http.post(
                slack.api_url + "chat.postMessage",
                data={
                    "token": TOKEN,
                    "channel": "C0SUPPORT",
                    "text": "hi",
                    "blocks": json.dumps(blocks),
                },
            )
        ).json()
        unknown = (await http.post(slack.api_url + "chat.frobnicate", data={"token": TOKEN})).json()
    assert answer["ok"] is True
    assert slack.calls_to("chat.postMessage")[-1].params["blocks"] == blocks
    assert slack.messages["C0SUPPORT"][0].blocks == [
        {**blocks[0], "block_id": slack.messages["C0SUPPORT"][0].blocks[0]["block_id"]}
    ]  # type: ignore[index]
    assert unknown == {"ok": False, "error": "unknown_method"}


async def test_rate_limits_answer_429_with_retry_after_which_slack_sdk_honours(
    client: AsyncWebClient, slack: LocalSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fail() makes the next call a 429 with Retry-After; slack_sdk's rate-limit handler waits that long and retries."""
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(builtin_async_handlers.asyncio, "sleep", record_sleep)
    slack.fail("chat.postMessage", retry_after=7)
    retrying = AsyncWebClient(
        base_url=slack.api_url,
        token=TOKEN,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert (await retrying.chat_postMessage(channel="C0SUPPORT", text="after the wait"))[
        "ok"
    ] is True
    assert [call.status for call in slack.calls_to("chat.postMessage")] == [429, 200]
    assert len(slept) == 1
    assert 7 <= slept[0] < 8


async def test_injected_errors_answer_ok_false_a_given_number_of_times(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    """fail(method, error, times) answers {"ok": false, "error": error} that many times, then recovers."""
    slack.fail("users.info", error="fatal_error", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError, match="fatal_error"):
            await client.users_info(user="U0ALICE")
    assert (await client.users_info(user="U0ALICE"))["ok"] is True


# -- Web API: views ------------------------------------------------------------------------------


async def test_views_open_needs_a_fresh_unused_trigger(
    client: AsyncWebClient, slack: LocalSlack, clock: FakeClock
) -> None:
    """views.open works once per trigger within its 3 seconds: after that exchanged_trigger_id / expired_trigger_id."""
    trigger = slack.new_trigger_id("U0ALICE")
    view = (await client.views_open(trigger_id=trigger, view=_modal()))["view"]
    assert view["id"] in slack.views
    assert (view["hash"], view["root_view_id"], view["callback_id"]) == (
        slack.views[view["id"]].hash,
        view["id"],
        ids.RUN_MODAL,
    )
    assert slack.views[view["id"]].user_id == "U0ALICE"
    with pytest.raises(SlackApiError, match="exchanged_trigger_id"):
        await client.views_open(trigger_id=trigger, view=_modal())
    late = slack.new_trigger_id("U0ALICE")
    clock.now += 3.5
    with pytest.raises(SlackApiError, match="expired_trigger_id"):
        await client.views_open(trigger_id=late, view=_modal())
    with pytest.raises(SlackApiError, match="invalid_trigger_id"):
        await client.views_open(trigger_id="123.456.nope", view=_modal())


async def test_trigger_validity_is_configurable(clock: FakeClock) -> None:
    """trigger_ttl changes how long a trigger stays usable."""
    async with LocalSlack(clock=clock, trigger_ttl=60) as local:
        trigger = local.new_trigger_id("U0BOT")
        clock.now += 30
        client = AsyncWebClient(base_url=local.api_url, token=local.bot_token)
        assert (await client.views_open(trigger_id=trigger, view=_modal()))["ok"] is True


@pytest.mark.parametrize(
    ("view", "pointer"),
    [
        (_modal(title="A title much too long for Slack"), "/view/title/text"),
        (_modal(blocks=[_section("x")] * 101), "/view/blocks"),
        ({**_modal(), "submit": None}, "/view/submit"),
        ({**_modal(), "type": "home"}, "/view/type"),
    ],
    ids=["title-25", "101-blocks", "input-without-submit", "wrong-type"],
)
async def test_views_open_refuses_views_slack_would_refuse(
    client: AsyncWebClient, slack: LocalSlack, view: dict[str, Any], pointer: str
) -> None:
    """Invalid modals answer invalid_arguments with the JSON pointer Slack would name."""
    with pytest.raises(SlackApiError) as refused:
        await client.views_open(trigger_id=slack.new_trigger_id("U0ALICE"), view=view)
    assert refused.value.response["error"] == "invalid_arguments"
    assert any(pointer in m for m in refused.value.response["response_metadata"]["messages"])


async def test_views_update_checks_the_hash_and_finds_external_ids(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    """views.update with the current hash succeeds and changes it; a stale hash is hash_conflict; external_id works."""
    opened = (
        await client.views_open(
            trigger_id=slack.new_trigger_id("U0ALICE"), view=_modal(external_id="run-1")
        )
    )["view"]
    updated = (
        await client.views_update(
            view_id=opened["id"],
            hash=opened["hash"],
            view=_modal(title="Step 2", external_id="run-1"),
        )
    )["view"]
    assert updated["id"] == opened["id"]
    assert updated["hash"] != opened["hash"]
    with pytest.raises(SlackApiError, match="hash_conflict"):
        await client.views_update(
            view_id=opened["id"], hash=opened["hash"], view=_modal(title="Step 3")
        )
    by_external = (
        await client.views_update(
            external_id="run-1", view=_modal(title="Step 3", external_id="run-1")
        )
    )["view"]
    assert by_external["title"]["text"] == "Step 3"
    with pytest.raises(SlackApiError, match="not_found"):
        await client.views_update(view_id="V0NOPE", view=_modal())


async def test_views_push_stacks_at_most_three(client: AsyncWebClient, slack: LocalSlack) -> None:
    """views.push stacks on the modal its trigger came from, up to Slack's three views."""
    root = (await client.views_open(trigger_id=slack.new_trigger_id("U0ALICE"), view=_modal()))[
        "view"
    ]
    second = (
        await client.views_push(
            trigger_id=slack.new_trigger_id("U0ALICE", view_id=root["id"]), view=_modal(title="2")
        )
    )["view"]
    third = (
        await client.views_push(
            trigger_id=slack.new_trigger_id("U0ALICE", view_id=second["id"]), view=_modal(title="3")
        )
    )["view"]
    assert slack.views[third["id"]].stack == [root["id"], second["id"], third["id"]]
    assert (third["previous_view_id"], third["root_view_id"]) == (second["id"], root["id"])
    with pytest.raises(SlackApiError, match="push_limit_reached"):
        await client.views_push(
            trigger_id=slack.new_trigger_id("U0ALICE", view_id=third["id"]), view=_modal(title="4")
        )


async def test_views_publish_keeps_one_home_view_per_user(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    """views.publish stores the user's Home tab under a stable view ID; an unknown user is refused."""
    home = {"type": "home", "blocks": [_section("Welcome")]}
    first = (await client.views_publish(user_id="U0ALICE", view=home))["view"]
    second = (
        await client.views_publish(user_id="U0ALICE", view={**home, "blocks": [_section("Again")]})
    )["view"]
    assert first["id"] == second["id"]
    home_view = slack.home("U0ALICE")
    assert home_view is not None
    assert home_view.view["blocks"][0]["text"]["text"] == "Again"
    with pytest.raises(SlackApiError, match="user_not_found"):
        await client.views_publish(user_id="U0NOBODY", view=home)


async def test_subscribers_see_every_visible_change(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    """subscribe() receives message and view events in order, as snapshots."""
    events = slack.subscribe()
    posted = await client.chat_postMessage(channel="C0SUPPORT", text="one")
    await client.chat_update(channel="C0SUPPORT", ts=posted["ts"], text="two")
    await client.chat_postEphemeral(channel="C0SUPPORT", user="U0ALICE", text="psst")
    await client.views_open(trigger_id=slack.new_trigger_id("U0ALICE"), view=_modal())
    await client.chat_delete(channel="C0SUPPORT", ts=posted["ts"])
    seen = [events.get_nowait() for _ in range(events.qsize())]
    assert [e.kind for e in seen] == [
        "message_posted",
        "message_updated",
        "message_posted",
        "view_opened",
        "message_deleted",
    ]
    assert [e.message.text for e in seen if e.message] == ["one", "two", "psst", "two"]
    assert seen[2].message is not None
    assert seen[2].message.ephemeral


# -- response URLs -------------------------------------------------------------------------------


async def test_response_url_posts_ephemeral_or_in_channel_and_replaces(slack: LocalSlack) -> None:
    """A response URL posts ephemeral (default) or in_channel messages, and replace_original edits the last one."""
    webhook = AsyncWebhookClient(slack.new_response_url("U0ALICE", "C0SUPPORT"))
    assert (await webhook.send(text="working on it")).status_code == 200
    assert (await webhook.send(text="done", replace_original=True)).status_code == 200
    assert (await webhook.send(text="for all", response_type="in_channel")).status_code == 200
    [ephemeral, public] = slack.messages["C0SUPPORT"]
    assert (
        ephemeral.text,
        ephemeral.user,
        ephemeral.ephemeral,
        ephemeral.updated,
        ephemeral.via,
    ) == ("done", "U0ALICE", True, 1, "response_url")
    assert (public.text, public.user, public.ephemeral) == ("for all", None, False)
    assert len(slack.calls_to("response_url")) == 3


async def test_response_url_allows_five_uses_then_answers_used_url(slack: LocalSlack) -> None:
    """The sixth POST to a response URL is refused with 404 used_url."""
    webhook = AsyncWebhookClient(slack.new_response_url("U0ALICE", "C0SUPPORT"))
    statuses = [(await webhook.send(text=f"#{n}")).status_code for n in range(5)]
    refused = await webhook.send(text="one too many")
    assert statuses == [200] * 5
    assert (refused.status_code, refused.body) == (404, "used_url")


async def test_response_url_expires_after_thirty_minutes(
    slack: LocalSlack, clock: FakeClock
) -> None:
    """A response URL is refused with 404 expired_url after 30 minutes; an unknown one is no_service."""
    url = slack.new_response_url("U0ALICE", "C0SUPPORT")
    clock.now += 30 * 60 + 1
    expired = await AsyncWebhookClient(url).send(text="late")
    unknown = await AsyncWebhookClient(url + "x").send(text="?")
    assert (expired.status_code, expired.body) == (404, "expired_url")
    assert (unknown.status_code, unknown.body) == (404, "no_service")
    assert slack.messages_in("C0SUPPORT") == []


async def test_response_url_checks_blocks_and_deletes(slack: LocalSlack) -> None:
    """A response URL refuses invalid blocks with 400 invalid_blocks, and delete_original removes the message."""
    webhook = AsyncWebhookClient(slack.new_response_url("U0ALICE", "C0SUPPORT"))
    refused = await webhook.send(text="x", blocks=[_section("")])
    assert (refused.status_code, refused.body) == (400, "invalid_blocks")
    await webhook.send(text="temporary")
    assert (await webhook.send(delete_original=True)).status_code == 200
    assert slack.messages_in("C0SUPPORT") == []


# -- the driver: signatures and payload shapes -----------------------------------------------------


async def test_signature_matches_slacks_test_vector(slack: LocalSlack) -> None:
    """sign() reproduces the published test vector for the fixture slash command."""
    body = (FIXTURES / "slash_command.form.txt").read_bytes()
    async with SlackDriver(
        events_url="http://127.0.0.1:9/slack/events", signing_secret="secret", slack=slack
    ) as signer:
        headers = signer.sign(body, 1700000000)
    assert len(body) == 307
    assert headers == {
        "x-slack-signature": "v0=627ce4265b49a22720e4b9ffeb06d47b57c6f282c8771cd4c268d3e057ae1f2f",
        "x-slack-request-timestamp": "1700000000",
    }


async def test_requests_carry_signatures_slack_sdk_accepts(
    driver: SlackDriver, receiver: Receiver
) -> None:
    """Every request the driver posts verifies with slack_sdk's SignatureVerifier and the same secret."""
    await driver.command("U0ALICE", "help")
    headers, body = receiver.requests[-1]
    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)


async def test_slash_command_has_slacks_fields(
    driver: SlackDriver, receiver: Receiver, slack: LocalSlack
) -> None:
    """A slash command is form-encoded with the fixture's fields, a working response URL and a live trigger."""
    response = await driver.command("U0ALICE", 'run restart_teams note="disk full"')
    assert response.status == 200
    fields = {
        k: v[0]
        for k, v in parse_qs(receiver.requests[-1][1].decode(), keep_blank_values=True).items()
    }
    expected = set(parse_qs((FIXTURES / "slash_command.form.txt").read_text())) - {
        "enterprise_id",
        "enterprise_name",
    }
    assert expected <= set(fields)
    assert (fields["command"], fields["text"], fields["user_name"], fields["channel_name"]) == (
        "/nexthink",
        'run restart_teams note="disk full"',
        "alice",
        "it-support",
    )
    assert (await AsyncWebhookClient(fields["response_url"]).send(text="ok")).status_code == 200
    client = AsyncWebClient(base_url=slack.api_url, token=TOKEN)
    assert (await client.views_open(trigger_id=fields["trigger_id"], view=_modal()))["ok"] is True


@pytest.mark.parametrize(
    ("ack", "shown"),
    [
        (web.Response(text="Usage: /nexthink help"), ("Usage: /nexthink help", True)),
        (web.json_response({"response_type": "in_channel", "text": "Running"}), ("Running", False)),
        (web.Response(status=200), None),
    ],
    ids=["text", "json-in-channel", "empty"],
)
async def test_slash_command_ack_is_shown_like_slack_shows_it(
    driver: SlackDriver,
    receiver: Receiver,
    slack: LocalSlack,
    ack: web.Response,
    shown: tuple[str, bool] | None,
) -> None:
    """A command's ack body becomes a message (ephemeral unless in_channel); an empty ack shows nothing."""
    receiver.answer = lambda body: ack
    await driver.command("U0ALICE", "help")
    messages = [(m.text, m.ephemeral) for m in slack.messages_in("C0SUPPORT")]
    assert messages == ([shown] if shown else [])
    assert all(m.via == "ack" for m in slack.messages_in("C0SUPPORT"))


async def test_click_on_a_posted_message_matches_the_fixture(
    driver: SlackDriver, receiver: Receiver, slack: LocalSlack, client: AsyncWebClient
) -> None:
    """A click on a channel message sends block_actions with the fixture's keys, the message and a bound response URL."""
    posted = await client.chat_postMessage(
        channel="C0SUPPORT", text="Approve?", blocks=_buttons("approved", "denied")
    )
    message = slack.find_message("C0SUPPORT", posted["ts"])
    assert message is not None
    await driver.click("U0BOB", message, ids.WAIT_DECISION, "denied")
    payload = receiver.payload()
    fixture = json.loads((FIXTURES / "block_actions_message_button_socket_mode.json").read_text())
    assert set(fixture) <= set(payload)
    assert set(fixture["actions"][0]) <= set(payload["actions"][0])
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C0SUPPORT",
        "is_ephemeral": False,
    }
    assert (payload["actions"][0]["value"], payload["actions"][0]["block_id"]) == (
        "denied",
        "decide-denied",
    )
    assert payload["message"]["blocks"] == message.blocks
    await AsyncWebhookClient(payload["response_url"]).send(
        text="Denied by bob", replace_original=True
    )
    assert (message.text, message.updated) == ("Denied by bob", 1)


async def test_click_on_an_ephemeral_message_has_no_message_and_replaces_via_response_url(
    driver: SlackDriver, receiver: Receiver, slack: LocalSlack
) -> None:
    """A click on an ephemeral sends is_ephemeral true without a message, like the fixture; its response URL replaces it."""
    await AsyncWebhookClient(slack.new_response_url("U0ALICE", "C0SUPPORT")).send(
        text="Confirm?", blocks=_buttons("yes")
    )
    [ephemeral] = slack.messages["C0SUPPORT"]
    await driver.click("U0ALICE", ephemeral, ids.WAIT_DECISION)
    payload = receiver.payload()
    fixture = json.loads((FIXTURES / "block_actions_button.json").read_text())
    assert set(fixture) <= set(payload)
    assert "message" not in payload
    assert payload["container"]["is_ephemeral"] is True
    await AsyncWebhookClient(payload["response_url"]).send(text="Done", replace_original=True)
    assert [m.text for m in slack.messages["C0SUPPORT"]] == ["Done"]


async def test_clicking_a_missing_element_fails_loudly(
    driver: SlackDriver, slack: LocalSlack
) -> None:
    """Clicking an action ID the message does not have raises LookupError naming the ones it has."""
    message = slack.add_message("C0SUPPORT", "U0ALICE", "hi", blocks=_buttons("yes"))
    with pytest.raises(LookupError, match=ids.WAIT_DECISION):
        await driver.click("U0ALICE", message, ids.APPROVAL_APPROVE)


RICH_MODAL_BLOCKS = [
    _input("note", "note_input", {"type": "plain_text_input", "initial_value": "hi"}),
    _input("mode", "mode_select", {"type": "static_select", "options": _options("soft", "hard")}),
    _input(
        ids.MODAL_WORKFLOW_BLOCK,
        ids.MODAL_WORKFLOW,
        {"type": "external_select", "min_query_length": 0},
    ),
    _input(ids.MODAL_USERS_BLOCK, ids.MODAL_USERS, {"type": "multi_users_select"}, optional=True),
    _input("when", "when_date", {"type": "datepicker"}, optional=True),
    _input(
        "flags",
        "flags_boxes",
        {"type": "checkboxes", "options": _options("force", "notify")},
        optional=True,
    ),
]


async def _open(
    slack: LocalSlack, client: AsyncWebClient, blocks: list[dict[str, Any]], **extra: Any
) -> str:
    view = await client.views_open(
        trigger_id=slack.new_trigger_id("U0ALICE"), view=_modal(blocks=blocks, **extra)
    )
    view_id: str = view["view"]["id"]
    return view_id


async def test_view_submission_shapes_state_values_per_element_type(
    driver: SlackDriver, receiver: Receiver, slack: LocalSlack, client: AsyncWebClient
) -> None:
    """submit_view sends the fixture's keys with state.values shaped as Slack shapes each element type."""
    view_id = await _open(slack, client, RICH_MODAL_BLOCKS)
    await driver.submit_view(
        "U0ALICE",
        view_id,
        {
            "mode": {"mode_select": "hard"},
            ids.MODAL_WORKFLOW_BLOCK: {ids.MODAL_WORKFLOW: "restart_teams"},
            ids.MODAL_USERS_BLOCK: {ids.MODAL_USERS: ["U0BOB"]},
            "flags": {"flags_boxes": ["force"]},
        },
    )
    payload = receiver.payload()
    fixture = json.loads((FIXTURES / "view_submission.json").read_text())
    assert set(fixture) <= set(payload)
    assert set(fixture["view"]) <= set(payload["view"])
    assert payload["view"]["state"]["values"] == {
        "note": {"note_input": {"type": "plain_text_input", "value": "hi"}},
        "mode": {
            "mode_select": {"type": "static_select", "selected_option": _options("soft", "hard")[1]}
        },
        ids.MODAL_WORKFLOW_BLOCK: {
            ids.MODAL_WORKFLOW: {
                "type": "external_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": "restart_teams", "emoji": True},
                    "value": "restart_teams",
                },
            }
        },
        ids.MODAL_USERS_BLOCK: {
            ids.MODAL_USERS: {"type": "multi_users_select", "selected_users": ["U0BOB"]}
        },
        "when": {"when_date": {"type": "datepicker", "selected_date": None}},
        "flags": {
            "flags_boxes": {
                "type": "checkboxes",
                "selected_options": [_options("force", "notify")[0]],
            }
        },
    }
    assert view_id not in slack.views  # an empty ack closes the modal


async def test_required_inputs_left_empty_are_refused_before_sending(
    driver: SlackDriver, receiver: Receiver, slack: LocalSlack, client: AsyncWebClient
) -> None:
    """Submitting without a required field is stopped client-side, as Slack's client does, with the block named."""
    view_id = await _open(slack, client, RICH_MODAL_BLOCKS)
    response = await driver.submit_view("U0ALICE", view_id, {"mode": {"mode_select": "soft"}})
    assert response.status == 0
    assert set(response.body["errors"]) == {ids.MODAL_WORKFLOW_BLOCK}
    assert receiver.requests == []
    with pytest.raises(LookupError, match="nope"):
        await driver.submit_view("U0ALICE", view_id, {"nope": {"x": "y"}})


@pytest.mark.parametrize(
    ("ack", "open_after"),
    [
        ({"response_action": "errors", "errors": {"note": "Too short"}}, 1),
        ({"response_action": "update", "view": _modal(title="Updated")}, 1),
        ({"response_action": "push", "view": _modal(title="Pushed")}, 2),
        ({"response_action": "clear"}, 0),
    ],
    ids=["errors", "update", "push", "clear"],
)
async def test_view_submission_ack_drives_the_modal(
    driver: SlackDriver,
    receiver: Receiver,
    slack: LocalSlack,
    client: AsyncWebClient,
    ack: dict[str, Any],
    open_after: int,
) -> None:
    """The ack's response_action annotates, updates, pushes on or clears the modal, as Slack does."""
    view_id = await _open(
        slack, client, [_input("note", "note_input", {"type": "plain_text_input"})]
    )
    events = slack.subscribe()
    receiver.answer = lambda body: web.json_response(ack)
    response = await driver.submit_view("U0ALICE", view_id, {"note": {"note_input": "x"}})
    assert (response.status, response.problems) == (200, ())
    assert len(slack.views) == open_after
    kinds = [events.get_nowait().kind for _ in range(events.qsize())]
    assert (
        kinds
        == {
            "errors": ["view_errors"],
            "update": ["view_updated"],
            "push": ["view_pushed"],
            "clear": ["view_closed"],
        }[ack["response_action"]]
    )


async def test_click_inside_a_view_keeps_state_and_binds_the_trigger(
    driver: SlackDriver, receiver: Receiver, slack: LocalSlack, client: AsyncWebClient
) -> None:
    """A select changed inside a modal is remembered in its state, and the click's trigger can push onto that modal."""
    view_id = await _open(slack, client, RICH_MODAL_BLOCKS)
    await driver.click("U0ALICE", slack.views[view_id], "mode_select", "soft")
    payload = receiver.payload()
    assert payload["container"] == {"type": "view", "view_id": view_id}
    assert payload["actions"][0]["selected_option"]["value"] == "soft"
    assert slack.views[view_id].state["mode"]["mode_select"]["selected_option"]["value"] == "soft"
    pushed = await client.views_push(trigger_id=payload["trigger_id"], view=_modal(title="Details"))
    assert slack.views[pushed["view"]["id"]].stack == [view_id, pushed["view"]["id"]]


async def test_block_suggestion_reaches_the_external_select(
    driver: SlackDriver, receiver: Receiver, slack: LocalSlack, client: AsyncWebClient
) -> None:
    """suggest() sends block_suggestion with the select's block and action IDs and returns the options answered."""
    view_id = await _open(slack, client, RICH_MODAL_BLOCKS)
    receiver.answer = lambda body: web.json_response({"options": _options("restart_teams")})
    response = await driver.suggest("U0ALICE", view_id, ids.MODAL_WORKFLOW, "rest")
    payload = receiver.payload()
    assert (payload["type"], payload["block_id"], payload["action_id"], payload["value"]) == (
        "block_suggestion",
        ids.MODAL_WORKFLOW_BLOCK,
        ids.MODAL_WORKFLOW,
        "rest",
    )
    assert response.body == {"options": _options("restart_teams")}


async def test_shortcuts_carry_callback_ids_and_triggers(
    driver: SlackDriver, receiver: Receiver, slack: LocalSlack
) -> None:
    """Global and message shortcuts send their callback_id, a live trigger, and for messages the message itself."""
    await driver.shortcut("U0ALICE")
    authored = slack.add_message("C0SUPPORT", "U0BOB", "Teams keeps crashing")
    await driver.message_shortcut("U0ALICE", authored)
    global_payload, message_payload = receiver.payload(0), receiver.payload(1)
    assert (global_payload["type"], global_payload["callback_id"]) == (
        "shortcut",
        ids.GLOBAL_SHORTCUT,
    )
    assert (message_payload["type"], message_payload["callback_id"]) == (
        "message_action",
        ids.MESSAGE_SHORTCUT,
    )
    assert (message_payload["message"]["user"], message_payload["message"]["text"]) == (
        "U0BOB",
        "Teams keeps crashing",
    )
    assert message_payload["channel"]["id"] == "C0SUPPORT"


async def test_app_home_opened_is_an_event_callback(
    driver: SlackDriver, receiver: Receiver
) -> None:
    """app_home_opened posts a JSON event_callback with the fixture's envelope keys."""
    await driver.app_home_opened("U0ALICE")
    headers, body = receiver.requests[-1]
    envelope = json.loads(body)
    fixture = json.loads((FIXTURES / "event_app_mention.json").read_text())
    assert set(fixture) - {"enterprise_id", "authed_users"} <= set(envelope)
    assert (envelope["event"]["type"], envelope["event"]["user"], envelope["event"]["tab"]) == (
        "app_home_opened",
        "U0ALICE",
        "home",
    )
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("kind", "socket_type", "accepts"),
    [
        ("slash_commands", "slash_commands", True),
        ("block_actions", "interactive", True),
        ("event_callback", "events_api", False),
    ],
    ids=["command", "interactive", "event"],
)
def test_socket_envelopes(kind: str, socket_type: str, accepts: bool) -> None:
    """socket_envelope wraps a payload as Slack's Socket Mode does, with an envelope_id."""
    envelope = socket_envelope(kind, {"x": 1})
    assert (envelope["type"], envelope["payload"], envelope["accepts_response_payload"]) == (
        socket_type,
        {"x": 1},
        accepts,
    )
    assert envelope["envelope_id"]


async def test_stale_renderings_can_still_be_clicked(
    driver: SlackDriver, receiver: Receiver, slack: LocalSlack, client: AsyncWebClient
) -> None:
    """A copy of a message taken before an update can still be clicked, like a double click racing the update."""
    posted = await client.chat_postMessage(
        channel="C0SUPPORT", text="Approve?", blocks=_buttons("approved")
    )
    live = slack.find_message("C0SUPPORT", posted["ts"])
    assert live is not None
    stale = replace(live)
    await client.chat_update(channel="C0SUPPORT", ts=posted["ts"], text="Approved", blocks=[])
    await driver.click("U0BOB", stale, ids.WAIT_DECISION)
    assert receiver.payload()["actions"][0]["value"] == "approved"
    with pytest.raises(LookupError):
        await driver.click("U0BOB", live, ids.WAIT_DECISION)


# -- end to end with a real Bolt app -------------------------------------------------------------


@pytest.fixture
async def bolt_url(slack: LocalSlack) -> AsyncIterator[str]:
    app = AsyncApp(
        client=AsyncWebClient(base_url=slack.api_url, token=TOKEN), signing_secret=SECRET
    )

    @app.command(ids.COMMAND)
    async def command(
        ack: Callable[..., Awaitable[None]], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if body["text"] == "help":
            await ack("Usage: /nexthink run <workflow>")
            return
        await ack()
        await client.views_open(
            trigger_id=body["trigger_id"],
            view=_modal(
                blocks=[
                    *_buttons("go", action_id=ids.HOME_RUN),
                    _input("note", "note_input", {"type": "plain_text_input"}),
                ]
            ),
        )

    @app.view(ids.RUN_MODAL)
    async def submitted(
        ack: Callable[..., Awaitable[None]],
        view: dict[str, Any],
        client: AsyncWebClient,
        body: dict[str, Any],
    ) -> None:
        note = view["state"]["values"]["note"]["note_input"]["value"]
        if note == "bad":
            await ack(response_action="errors", errors={"note": "Not that"})
            return
        await ack()
        await client.chat_postMessage(
            channel="C0SUPPORT",
            text=f"Note from {body['user']['id']}: {note}",
            blocks=_buttons("approved"),
        )

    @app.action(ids.WAIT_DECISION)
    async def decided(
        ack: Callable[..., Awaitable[None]],
        respond: Callable[..., Awaitable[Any]],
        action: dict[str, Any],
    ) -> None:
        await ack()
        await respond(text=f"Decision: {action['value']}", replace_original=True)

    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    await runner.cleanup()


async def test_a_bolt_app_runs_a_whole_conversation_against_local_slack(
    bolt_url: str, slack: LocalSlack
) -> None:
    """A Bolt app accepts the driver's signed requests: command ack, modal, field errors, submission, button and respond."""
    async with SlackDriver(events_url=bolt_url, signing_secret=SECRET, slack=slack) as bolt:
        help_answer = await bolt.command("U0ALICE", "help")
        assert help_answer.status == 200
        assert [m.text for m in slack.messages["C0SUPPORT"]] == ["Usage: /nexthink run <workflow>"]

        await bolt.command("U0ALICE", "")
        for _ in range(400):  # Bolt opens the modal after its ack
            if slack.views:
                break
            await asyncio.sleep(0.05)
        [view] = slack.views.values()
        refused = await bolt.submit_view("U0ALICE", view.id, {"note": {"note_input": "bad"}})
        assert refused.body == {"response_action": "errors", "errors": {"note": "Not that"}}
        assert view.id in slack.views
        await bolt.submit_view("U0ALICE", view.id, {"note": {"note_input": "disk full"}})
        assert slack.views == {}
        for _ in range(400):  # and posts after its ack
            if len(slack.messages["C0SUPPORT"]) > 1:
                break
            await asyncio.sleep(0.05)

        posted = slack.messages["C0SUPPORT"][-1]
        assert posted.text == "Note from U0ALICE: disk full"
        assert (await bolt.click("U0BOB", posted, ids.WAIT_DECISION)).status == 200
        for _ in range(400):  # Bolt responds after its ack
            if posted.updated:
                break
            await asyncio.sleep(0.05)
        assert (posted.text, posted.updated, posted.ephemeral) == ("Decision: approved", 1, False)
    assert [c.method for c in slack.calls][:1] == ["auth.test"]


async def test_views_update_keeps_input_state_where_ids_persist(
    driver: SlackDriver, slack: LocalSlack, client: AsyncWebClient
) -> None:
    """views.update keeps what was chosen in elements whose block and action IDs survive, as Slack does."""
    view_id = await _open(slack, client, RICH_MODAL_BLOCKS)
    await driver.click("U0ALICE", slack.views[view_id], "mode_select", "hard")
    await client.views_update(view_id=view_id, view=_modal(blocks=RICH_MODAL_BLOCKS[1:2]))
    assert slack.views[view_id].state["mode"]["mode_select"]["selected_option"]["value"] == "hard"
    await client.views_update(view_id=view_id, view=_modal(blocks=RICH_MODAL_BLOCKS[:1]))
    assert "mode" not in slack.views[view_id].state


async def test_slow_acks_are_reported_as_operation_timeout(
    slack: LocalSlack, receiver: Receiver
) -> None:
    """An answer slower than the ack deadline (Slack's 3 s by default) is flagged operation_timeout."""
    async with SlackDriver(receiver.url, SECRET, slack, ack_deadline=0.0) as impatient:
        response = await impatient.command("U0ALICE", "help")
    assert response.status == 200
    assert response.problems[0].startswith("operation_timeout")
