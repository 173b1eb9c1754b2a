"""Bad input, fuzzed, through the real bot over HTTP: whatever people type, whatever reaches the
waits webhook, whatever Slack payload arrives signed, whatever Nexthink answers, the bot answers
clearly, never with a 5xx, never with a failed background task, and sends Nexthink nothing that
the input did not ask for.

Hypothesis runs with ``derandomize=True`` and a bounded number of examples, so every run tries the
same inputs and the file stays fast. Each property test shares one ``World`` across its examples.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.console.world import WEBHOOK_TOKEN, World
from bot.sandbox import Fault, Sandbox
from handlers import ids
from handlers.grammar import SUBCOMMANDS, GrammarError, Help, OpenModal, Run, parse
from handlers.wait_views import decision_action_id
from tests.support.e2e import PatientWorld, ack_problems, answers, executes, text_of, world_at

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WORKFLOW_UUID = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"  # the sandbox's pausing request_software
ALICE = "U0ALICE"
ALICE_UPN = "alice@example.com"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path) as w:
        yield w


def _journal(world: World) -> int:
    assert world.sandbox is not None
    return len(world.sandbox.journal)


def _sent(world: World, *endpoints: str) -> int:
    assert world.sandbox is not None
    return sum(len(world.sandbox.requests(e)) for e in endpoints)


# -- the slash command ----------------------------------------------------------------------

_PIECES = [
    *SUBCOMMANDS,
    "RUN",
    "restart_teams",
    "fix-teams",
    "clear_disk_space",
    "#restart_teams",
    "user:",
    "device:",
    "user:<@U0BOB>",
    "<@U0BOB|bob>",
    "<@U0ALICE>",
    "user:bob@example.com",
    f"user:{ALICE_UPN}",
    "device:LAPTOP-42",
    "device:3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "user:S-1-5-21-1-2-3-1001",
    "<#C0SUPPORT|it-support>",
    "<!subteam^S0LEADS|@it-leads>",
    "<mailto:bob@example.com|bob@example.com>",
    "<http://evil.example|x>",
    "&lt;@U0BOB&gt;",
    "mode=soft",
    'note="disk full"',
    "note='it''s'",
    "=",
    ":",
    '"',
    "'",
    "“",
    "\\",
    "\u200b",
    "\u00a0",
    "\x00",
    "visible",
    "payload",
    "note=payload",
    WORKFLOW_UUID,
    str(uuid.UUID(int=7)),
    "*bold*",
    "`code`",
    "x" * 1200,
]
_soup = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=12)), max_size=10).map(
    " ".join
)
COMMAND_TEXT = st.one_of(
    st.text(max_size=200),
    _soup,
    st.tuples(st.sampled_from(SUBCOMMANDS), _soup).map(" ".join),
)


@FUZZ
@given(text=COMMAND_TEXT)
async def test_any_command_text_is_answered_and_only_valid_runs_on_oneself_reach_nexthink(
    world: World, text: str
) -> None:
    """Whatever follows `/nexthink`, the bot acknowledges it; text the grammar refuses is answered
    in an ephemeral ack naming the problem with nothing sent to Nexthink, anything else gets one
    answer, and every execute targets only the requester."""
    assert world.driver is not None
    assert world.bot is not None
    seen_before = len(answers(world, ALICE))
    journal_before = _journal(world)
    executes_before = len(executes(world))
    response = await world.driver.command(ALICE, text, channel_id="C0GENERAL")
    assert response.status == 200
    assert ack_problems(response) == (), response.problems  # Slack would show the ack as sent
    await world.settle()
    assert world.bot.tasks.failures == 0
    command: Any = None
    problem = None
    try:
        command = parse(text)
    except GrammarError as exc:
        problem = exc.problem
    if problem is not None:
        assert isinstance(response.body, dict)
        assert response.body["response_type"] == "ephemeral"
        assert response.body["text"] == problem
        assert problem.strip()
        assert _journal(world) == journal_before, "a refused command reached Nexthink"
        assert len(answers(world, ALICE)) == seen_before
        return
    if isinstance(command, OpenModal):
        return
    if isinstance(command, Help):
        assert isinstance(response.body, dict)
        assert response.body["response_type"] == "ephemeral"
        return
    replies = answers(world, ALICE)
    assert len(replies) == seen_before + 1, "the command got no answer (or more than one)"
    last = replies[-1]
    assert last.ephemeral
    assert text_of(last).strip()
    assert _sent(world, "trigger", "execute_v1") == 0
    sent = executes(world)
    if len(sent) > executes_before:
        assert isinstance(command, Run)
        assert len(sent) == executes_before + 1
        assert sent[-1]["users"] == [{"upn": ALICE_UPN}]
        assert sent[-1]["devices"] == []


async def test_a_command_holding_the_word_payload_is_answered(world: World) -> None:
    """Bolt takes any form body containing "payload" for an interaction's ``payload=`` field; a
    command whose text holds the word still runs (it went unanswered with a 404 before)."""
    assert world.driver is not None
    response = await world.driver.command(ALICE, "run restart_teams note=payload")
    assert response.status == 200
    await world.settle()
    (sent,) = executes(world)
    assert sent["params"] == {"note": "payload"}
    assert "sent to Nexthink" in text_of(answers(world, ALICE)[-1])


# -- the waits webhook ----------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["C0SUPPORT", ALICE_UPN, WORKFLOW_UUID, "primary", "U0BOB", "@it-leads"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = [
    "workflowUuid",
    "executionUuid",
    "channel",
    "user",
    "text",
    "options",
    "approvers",
    "approverParameter",
    "expiresInMinutes",
    "requester",
    "surprise",
]


def _valid_question(execution_uuid: str) -> dict[str, Any]:
    return {
        "workflowUuid": WORKFLOW_UUID,
        "executionUuid": execution_uuid,
        "channel": "C0SUPPORT",
        "text": "Alice asks to reinstall Office. Approve?",
    }


@st.composite
def _mutated_question(draw: st.DrawFn) -> dict[str, Any]:
    body = _valid_question(str(draw(st.uuids())))
    for name in draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3, unique=True)):
        if draw(st.booleans()) and name in body:
            del body[name]
        else:
            body[name] = draw(JSON_VALUES)
    return body


WEBHOOK_BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    _mutated_question().map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
)


async def _webhook(
    world: World, content: bytes, authorization: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    headers["Authorization"] = authorization or f"Bearer {WEBHOOK_TOKEN}"
    async with httpx.AsyncClient(timeout=15) as client:
        return await client.post(f"{world.url}/nexthink/waits", content=content, headers=headers)


def _assert_clear_4xx(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error = response.json()["error"]
    assert isinstance(error, str)
    assert error.strip()


@FUZZ
@given(content=WEBHOOK_BODIES)
async def test_any_webhook_body_gets_a_4xx_with_a_reason_or_a_201(
    world: World, content: bytes
) -> None:
    """Any body (JSON of any shape, a valid question with fields removed or of the wrong type,
    bytes that are not JSON) is answered 201 with the question posted, or 4xx with an error."""
    assert world.bot is not None
    response = await _webhook(world, content)
    if response.status_code == 201:
        answer = response.json()
        assert world.slack.find_message(answer["channel"], answer["ts"]) is not None
    else:
        _assert_clear_4xx(response)
    await world.settle()
    assert world.bot.tasks.failures == 0


@FUZZ
@given(
    authorization=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
)
async def test_any_wrong_credential_is_refused_with_401_and_posts_nothing(
    world: World, authorization: str
) -> None:
    """Any Authorization header other than the webhook token (Bearer or Basic) gets 401 and
    posts nothing."""
    authorization = authorization.strip()  # HTTP itself refuses surrounding whitespace
    if authorization in {f"Bearer {WEBHOOK_TOKEN}", ""}:
        return
    posted = len(world.slack.calls_to("chat.postMessage"))
    response = await _webhook(
        world, json.dumps(_valid_question(str(uuid.uuid4()))).encode(), authorization
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]
    assert len(world.slack.calls_to("chat.postMessage")) == posted


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("content", "status"),
    [
        pytest.param(_nested(30_000), 400, id="nested-60-kib"),
        pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, id="nested-objects"),
        pytest.param(b"\xff\xfe\x00{", 400, id="not-utf8"),
        pytest.param(b"", 400, id="empty"),
        pytest.param(b"null", 400, id="null"),
        pytest.param(b"1e999999", 400, id="huge-number"),
        pytest.param(b'"' + b"x" * 60_000 + b'"', 400, id="a-long-string"),
        pytest.param(b" " * 70_000, 413, id="over-64-kib-of-spaces"),
        pytest.param(json.dumps({"text": "x" * 2_000_000}).encode(), 413, id="2-mib"),
    ],
)
async def test_hostile_webhook_bodies_are_refused_with_a_reason(
    world: World, content: bytes, status: int
) -> None:
    """Deeply nested, non-UTF-8, empty, huge-number and oversized bodies get a 4xx with a reason."""
    assert world.bot is not None
    response = await _webhook(world, content)
    assert response.status_code == status, response.text[:300]
    _assert_clear_4xx(response)
    assert world.bot.tasks.failures == 0


# -- Slack payloads with missing or odd fields ----------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value (dict keys and list indexes), the value's own path left out."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _mutate(payload: Any, path: tuple[Any, ...], new: Any, delete: bool) -> None:
    parent = payload
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new


async def _bases(world: World) -> dict[str, tuple[str, dict[str, Any]]]:
    """Real payloads of every kind the bot listens to: ``name -> (encoding, payload)``."""
    assert world.driver is not None
    driver = world.driver
    # a paused execution's question, and a click on it
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(
            f"{world.url}/nexthink/waits",
            json=_valid_question(str(uuid.uuid4())),
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
    assert response.status_code == 201, response.text
    answer = response.json()
    question = world.slack.find_message(answer["channel"], answer["ts"])
    assert question is not None
    click = driver.click_payload("U0BOB", question, decision_action_id(0))
    # the run form, its workflow menu and its submission
    await driver.command(ALICE, "")
    await world.settle()
    (view,) = [v for v in world.slack.views.values() if v.callback_id == ids.RUN_MODAL]
    chosen = driver.click_payload(ALICE, view, ids.MODAL_WORKFLOW, "restart_teams")
    submit = driver.view_submission_payload(ALICE, view.id)
    approve = json.loads(json.dumps(click))
    approve["actions"][0].update(action_id=ids.APPROVAL_APPROVE, value="no-such-approval")
    deny = json.loads(json.dumps(approve))
    deny["actions"][0]["action_id"] = ids.APPROVAL_DENY
    home_run = json.loads(json.dumps(click))
    home_run["actions"][0].update(action_id=ids.HOME_RUN, value="restart_teams")
    unknown = json.loads(json.dumps(click))
    unknown["actions"][0]["action_id"] = "nobody_listens_to_this"
    deny_reason = json.loads(json.dumps(submit))
    deny_reason["view"].update(
        callback_id=ids.DENY_REASON_MODAL, private_metadata=json.dumps({"a": "no-such"})
    )
    return {
        "wait_click": ("payload", click),
        "modal_workflow": ("payload", chosen),
        "modal_submit": ("payload", submit),
        "approve": ("payload", approve),
        "deny": ("payload", deny),
        "deny_reason": ("payload", deny_reason),
        "home_run": ("payload", home_run),
        "unknown_action": ("payload", unknown),
        "view_closed": ("payload", {**submit, "type": "view_closed", "is_cleared": False}),
        "suggestion": ("payload", {**chosen, "type": "block_suggestion", "value": "re"}),
        "global_shortcut": ("payload", driver.shortcut_payload(ALICE)),
        "message_shortcut": ("payload", driver.message_shortcut_payload(ALICE, question)),
        "home_opened": ("json", driver.event_payload(driver.app_home_opened_event(ALICE))),
        "command": ("form", driver.command_payload(ALICE, "run restart_teams")),
    }


_BASES: dict[int, dict[str, tuple[str, dict[str, Any]]]] = {}
_BASE_NAMES = [
    "wait_click",
    "modal_workflow",
    "modal_submit",
    "approve",
    "deny",
    "deny_reason",
    "home_run",
    "unknown_action",
    "view_closed",
    "suggestion",
    "global_shortcut",
    "message_shortcut",
    "home_opened",
    "command",
]


async def _post_payload(world: World, encoding: str, payload: dict[str, Any]) -> Any:
    assert world.driver is not None
    if encoding == "payload":
        return await world.driver.post_interactive(payload)
    if encoding == "json":
        return await world.driver.post(json.dumps(payload).encode(), "application/json")
    fields = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in payload.items()}
    return await world.driver.post(urlencode(fields).encode())


@FUZZ
@given(data=st.data())
async def test_signed_payloads_with_missing_or_odd_fields_never_break_the_bot(
    world: World, data: st.DataObject
) -> None:
    """Real payloads (clicks, form submissions, shortcuts, events, commands) with fields removed
    or replaced by values of the wrong type, properly signed, are answered without a 5xx and
    without a failed background task, and never resume a question twice."""
    assert world.bot is not None
    assert world.sandbox is not None
    if id(world) not in _BASES:  # built once per world, on its first example
        _BASES.clear()
        _BASES[id(world)] = await _bases(world)
    bases = _BASES[id(world)]
    name = data.draw(st.sampled_from(_BASE_NAMES), label="payload")
    encoding, base = bases[name]
    payload = json.loads(json.dumps(base))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = list(_paths(payload))
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        delete = data.draw(st.booleans(), label="delete")
        _mutate(payload, path, None if delete else data.draw(JSON_VALUES, label="value"), delete)
    response = await _post_payload(world, encoding, payload)
    assert response.status < 500, (name, response.status, response.body)
    await world.settle()
    assert world.bot.tasks.failures == 0
    triggers: dict[str, int] = {}
    for entry in world.sandbox.requests("trigger"):
        triggers[entry.path] = triggers.get(entry.path, 0) + 1
    assert all(count == 1 for count in triggers.values()), triggers
    for sent in executes(world):
        assert len(sent["users"]) == 1
        assert sent["devices"] == []


# -- Nexthink answers that break the reference ----------------------------------------------


class BrokenNexthink:
    """A Nexthink in front of the sandbox: it forwards every request, except that endpoints a test
    names get the answer the test sets instead (the sandbox never sees those requests)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.answers: dict[str, tuple[int, str, bytes]] = {}
        self.received: list[str] = []
        self._runner: web.AppRunner | None = None
        self._http = httpx.AsyncClient(base_url=upstream, timeout=30)

    @staticmethod
    def endpoint(path: str) -> str:
        if path.endswith("/token"):
            return "token"
        if path.endswith("/trigger"):
            return "trigger"
        return {
            "/api/v1/workflows": "list",
            "/api/v1/workflows/details": "get",
            "/api/v2/workflows/execute": "execute_v2",
            "/api/v1/workflows/execute": "execute_v1",
            "/api/v2/nql/execute": "nql",
        }.get(path, "unknown")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        await self._http.aclose()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        endpoint = self.endpoint(request.path)
        self.received.append(endpoint)
        if endpoint in self.answers:
            status, content_type, body = self.answers[endpoint]
            return web.Response(status=status, body=body, headers={"Content-Type": content_type})
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}
        }
        answer = await self._http.request(
            request.method, request.path_qs, content=await request.read(), headers=headers
        )
        kept = {
            k: v for k, v in answer.headers.items() if k.lower() in {"content-type", "retry-after"}
        }
        return web.Response(status=answer.status_code, body=answer.content, headers=kept)


@pytest.fixture
async def broken(tmp_path: Path) -> AsyncIterator[tuple[World, BrokenNexthink]]:
    async with Sandbox(execution_delay=0.05, webhook_token=WEBHOOK_TOKEN) as sandbox:
        proxy = BrokenNexthink(sandbox.url)
        url = await proxy.start()
        try:
            async with PatientWorld(
                database_url=f"sqlite:///{tmp_path}/bot.db",
                nexthink_base_url=url,
                nexthink_client_id=sandbox.client_id,
                nexthink_client_secret=sandbox.client_secret,
                sandbox=sandbox,
            ) as world:
                yield world, proxy
                assert world.bot is not None
                assert world.bot.tasks.failures == 0
        finally:
            await proxy.stop()


_HTML = b"<html><body><h1>Service temporarily unavailable</h1></body></html>"
_BREAKAGES = {
    "wrong-types": (200, "application/json", b'{"requestUuid": 42, "executionsUuids": "no"}'),
    "missing-fields": (200, "application/json", b"{}"),
    "empty-body": (200, "application/json", b""),
    "html-page": (200, "text/html", _HTML),
    "not-json": (200, "application/json", b"{'requestUuid': 'single quotes'"),
}


@pytest.mark.parametrize("breakage", list(_BREAKAGES))
async def test_an_execute_answer_that_breaks_the_reference_is_unexpected_and_maybe_run(
    broken: tuple[World, BrokenNexthink], breakage: str
) -> None:
    """An execute answered 200 with wrong types, missing fields, nothing, HTML or broken JSON is
    sent once and reported as "Nexthink answered unexpectedly", never as "nothing was run"."""
    world, proxy = broken
    assert world.driver is not None
    proxy.answers["execute_v2"] = _BREAKAGES[breakage]
    await world.driver.command(ALICE, "run restart_teams")
    await world.settle()
    assert proxy.received.count("execute_v2") == 1
    shown = text_of(answers(world, ALICE)[-1])
    assert "Nexthink answered unexpectedly" in shown
    assert "may or may not have run" in shown
    assert "Nothing was run" not in shown
    assert world.bot is not None
    (record,) = await world.bot.store.history(ALICE)
    assert record.state == "unknown"


@pytest.mark.parametrize(
    ("endpoint", "command", "answer"),
    [
        ("list", "list", (200, "application/json", b'{"workflows": []}')),
        ("list", "run restart_teams", (200, "text/html", _HTML)),
        ("list", "list", (200, "application/json", b"")),
        ("get", "info restart_teams", (200, "application/json", b'[{"id": 7, "name": []}]')),
        ("token", "list", (200, "application/json", b'{"access_token": 5, "expires_in": "soon"}')),
    ],
    ids=["list-object", "list-html", "list-empty", "get-wrong-types", "token-wrong-types"],
)
async def test_a_reading_answer_that_breaks_the_reference_is_reported_and_nothing_runs(
    broken: tuple[World, BrokenNexthink],
    endpoint: str,
    command: str,
    answer: tuple[int, str, bytes],
) -> None:
    """A listing, a workflow's details or a token answered with the wrong shape is reported as
    "Nexthink answered unexpectedly", with nothing executed."""
    world, proxy = broken
    assert world.driver is not None
    if endpoint == "get":
        await world.driver.command(ALICE, "list")  # the listing itself works
        await world.settle()
    proxy.answers[endpoint] = answer
    await world.driver.command(ALICE, command)
    await world.settle()
    shown = text_of(answers(world, ALICE)[-1])
    assert "Nexthink answered unexpectedly" in shown, shown
    assert "execute_v2" not in proxy.received
    assert executes(world) == []


async def test_a_trigger_answer_that_breaks_the_reference_leaves_the_question_open(
    broken: tuple[World, BrokenNexthink],
) -> None:
    """A click whose trigger is answered with garbage is sent once, reported on the question as
    unclear, and leaves it open for an approver to try again."""
    world, proxy = broken
    assert world.driver is not None
    response = await _webhook(world, json.dumps(_valid_question(str(uuid.uuid4()))).encode())
    assert response.status_code == 201
    answer = response.json()
    question = world.slack.find_message(answer["channel"], answer["ts"])
    assert question is not None
    proxy.answers["trigger"] = (200, "application/json", b'[{"requestUuid": null}]')
    await world.driver.click("U0BOB", question, decision_action_id(0))
    await world.settle()
    assert proxy.received.count("trigger") == 1
    updated = world.slack.find_message(answer["channel"], answer["ts"])
    assert updated is not None
    assert "Nexthink answered unexpectedly" in text_of(updated)
    assert any(b.get("type") == "actions" for b in updated.blocks or []), "the buttons are gone"


@pytest.mark.parametrize("kind", ["garbage", "html"])
async def test_the_sandboxs_garbage_and_gateway_page_faults_on_execute_are_reported_once(
    tmp_path: Path, kind: str
) -> None:
    """The sandbox's truncated-JSON (200) and HTML gateway page (502) answers to a processed
    execute: sent once, executed once, and the person is told it may or may not have run."""
    async with world_at(tmp_path) as world:
        assert world.driver is not None
        assert world.sandbox is not None
        world.sandbox.faults.add(Fault(endpoint="execute_v2", kind=kind, processed=True))  # type: ignore[arg-type]
        await world.driver.command(ALICE, "run restart_teams")
        await world.settle()
        assert len(executes(world)) == 1
        assert len(world.sandbox.executions) == 1
        shown = text_of(answers(world, ALICE)[-1])
        assert "may or may not have run" in shown
        if kind == "garbage":
            assert "Nexthink answered unexpectedly" in shown


# -- outside text stays text (issue 13, observations 3 and 4) ---------------------------------

_HOSTILE_PIECES = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0EVIL>",
    "<!subteam^S0EVIL|@it-leads>",
    "<https://evil.example|Approve here>",
    "<!date^1^x|y>",
    "*URGENT*",
    "_really_",
    "~gone~",
    "`",
    "```",
    "\n",
    "\r\n",
    "\u2028",
    "\n> quoted FAKE",
    "\n\n*:white_check_mark: FAKE approved by @carol*",
    "&amp;",
    "&lt;!channel&gt;",
    ">",
    "<",
    "&",
]
HOSTILE = st.lists(
    st.one_of(st.sampled_from(_HOSTILE_PIECES), st.text(max_size=8)), min_size=1, max_size=8
).map("".join)


def _looks(text: str) -> str:
    """What a person reads: the look-alikes ``shown`` and ``code`` use read as what they show
    (also where the person typed a look-alike: ``˃`` reads as ``>`` either way)."""
    for alike, char in (("\u2217", "*"), ("\u02cd", "_"), ("\u223c", "~"), ("\u02cb", "`")):
        text = text.replace(alike, char)
    return text.replace("\u02c3", ">").replace("\ua789", ":")


def _unshown(text: str) -> str:
    """What a person reads in ``shown``'s output: the look-alikes and the escapes undone."""
    text = _looks(text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(text=HOSTILE)
@example(text="\u02c3")  # a look-alike typed by the person: it reads as what it shows
def test_shown_and_code_are_inert_and_read_as_typed(text: str) -> None:
    """``shown`` and ``code`` output holds no ``<`` or ``>`` (no mention, link or date), no line
    break, no formatting marker that could open or close, a code span that ends where the bot
    ends it; and it reads as typed (line breaks as ⏎)."""
    from bot.text import Outside
    from handlers.blocks import NEWLINE, code, shown

    typed = text.replace("\r\n", NEWLINE)
    for brk in ("\n", "\r", "\v", "\f", "\x85", "\u2028", "\u2029"):
        typed = typed.replace(brk, NEWLINE)
    out = shown(Outside(text))
    assert "<" not in out
    assert ">" not in out
    assert not any(brk in out for brk in "\n\r\u2028\u2029")
    assert "`" not in out
    for at, char in enumerate(out):
        if char in "*_~":
            assert 0 < at < len(out) - 1, out
            assert out[at - 1].isalnum(), out
            assert out[at + 1].isalnum(), out
    assert _unshown(out) == _looks(typed)
    span = code(Outside(text), None)
    assert span.startswith("`")
    assert span.endswith("`")
    assert span.count("`") == 2
    assert "<" not in span
    assert ">" not in span
    assert "\n" not in span
    assert _unshown(span[1:-1]) == _looks(typed) or not text


@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=HOSTILE, label=HOSTILE, value=HOSTILE)
async def test_hostile_questions_labels_and_values_never_become_live_markup(
    world: World, text: str, label: str, value: str
) -> None:
    """A webhook question whose text and option label are hostile, a click on it, and a run
    whose parameter value is hostile: every message, ephemeral and view the bot sent holds no
    live mention, link or formatting from them, and no line they started."""
    from tests.support.inert import live_markup

    assert world.driver is not None
    body = _valid_question(str(uuid.uuid4()))
    body["text"] = text
    body["options"] = [{"label": label[:75] or "x", "style": "primary"}, {"label": "Deny"}]
    response = await _webhook(world, json.dumps(body).encode())
    if response.status_code == 201:
        answer = response.json()
        question = world.slack.find_message(answer["channel"], answer["ts"])
        assert question is not None
        await world.driver.click("U0BOB", question, decision_action_id(0))
    else:
        _assert_clear_4xx(response)  # e.g. a label of blanks only
    quoted = value.replace('"', "'").replace("\\", "/")
    await world.driver.command(ALICE, f'run restart_teams note="{quoted}"')
    await world.settle()
    problems = live_markup(world)
    assert problems == [], "\n".join(problems[:5])
