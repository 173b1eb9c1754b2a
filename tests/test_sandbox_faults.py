"""Injected faults, the /_sandbox HTTP switches and ``run_sandbox``, over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sandbox import ENDPOINTS, FAULT_KINDS, Fault, Sandbox, parse_fault, run_sandbox
from tests.support.sandbox_helpers import DETAILS, TOKEN_PATH, Caller, basic, eventually

BODY = {"workflowId": "restart_teams", "users": [{"upn": "alice@example.com"}], "devices": []}
FORM = {"grant_type": "client_credentials", "scope": "service:integration"}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(execution_delay=0.05) as sb:
        yield sb


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[Caller]:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=2.0) as client:
        caller = Caller(client)
        await caller.get_token()
        yield caller


async def execute(api: Caller, **kwargs: Any) -> httpx.Response:
    return await api.execute_v2(BODY, check=False, **kwargs)


# -- the text form ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("execute_v2:429:times=2:retry_after=1", Fault(endpoint="execute_v2", kind="429", times=2)),
        ("503", Fault(kind="503")),
        ("*:latency:delay=0.3", Fault(kind="latency", delay=0.3)),
        ("trigger:500:processed=true", Fault(endpoint="trigger", kind="500", processed=True)),
        ("token:401:times=always", Fault(endpoint="token", kind="401", times=None)),
        ("nql:timeout:delay=5:times=3", Fault(endpoint="nql", kind="timeout", delay=5, times=3)),
        (" list : garbage ", Fault(endpoint="list", kind="garbage")),
    ],
    ids=["full", "kind-only", "latency", "processed", "always", "timeout", "spaces"],
)
def test_parse_fault_reads_the_text_form(spec: str, expected: Fault) -> None:
    """parse_fault turns ENDPOINT:KIND[:key=value]... into a Fault, and spec() reads back."""
    fault = parse_fault(spec)
    assert fault == expected
    assert parse_fault(fault.spec()) == fault


_PROCESSABLE = {"500", "timeout", "reset", "html", "garbage"}


@st.composite
def faults(draw: st.DrawFn) -> Fault:
    kind = draw(st.sampled_from(FAULT_KINDS))
    seconds = st.integers(min_value=0, max_value=10_000).map(lambda n: n / 100)
    return Fault(
        endpoint=draw(st.sampled_from(("*", *ENDPOINTS))),
        kind=kind,  # type: ignore[arg-type]
        times=draw(st.none() | st.integers(min_value=1, max_value=10_000)),
        retry_after=draw(seconds),
        delay=draw(st.none() | seconds),
        processed=kind in _PROCESSABLE and draw(st.booleans()),
    )


@given(faults())
def test_fault_text_form_round_trips(fault: Fault) -> None:
    """Any fault's spec() parses back to a fault with the same behaviour and the same spec."""
    again = parse_fault(fault.spec())
    assert again.spec() == fault.spec()
    assert (again.endpoint, again.kind, again.times, again.processed) == (
        fault.endpoint,
        fault.kind,
        fault.times,
        fault.processed,
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty fault"),
        ("execute:429", "unknown endpoint 'execute'"),
        ("execute_v2:418", "unknown fault kind '418'"),
        ("execute_v2", "is not a fault kind"),
        ("execute_v2:429:times=0", "times must be at least 1"),
        ("execute_v2:429:times=two", "whole number"),
        ("execute_v2:429:retry_after=-1", "must not be negative"),
        ("execute_v2:429:processed=true", "never processes"),
        ("execute_v2:500:processed=maybe", "true or false"),
        ("execute_v2:500:colour=red", "unknown fault field"),
        ("execute_v2:500:oops", "not key=value"),
    ],
    ids=[
        "empty",
        "bad-endpoint",
        "bad-kind",
        "no-kind",
        "zero-times",
        "word-times",
        "negative",
        "processed-429",
        "bad-flag",
        "unknown-option",
        "no-equals",
    ],
)
def test_parse_fault_says_what_is_wrong(spec: str, message: str) -> None:
    """A malformed fault spec raises ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        parse_fault(spec)


# -- each kind -------------------------------------------------------------------------------


async def test_latency_delays_a_normal_answer(sandbox: Sandbox, api: Caller) -> None:
    """A latency fault holds the answer for its delay, then answers and processes normally."""
    sandbox.faults.add(Fault(endpoint="execute_v2", kind="latency", delay=0.2))
    started = time.monotonic()
    response = await api.execute_v2(BODY)
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 200
    assert len(sandbox.executions) == 1


async def test_401_fault_answers_as_if_the_token_expired(sandbox: Sandbox, api: Caller) -> None:
    """A 401 fault answers 401 without a body and without processing; the next call succeeds."""
    sandbox.faults.add("execute_v2:401")
    response = await api.execute_v2(BODY)
    assert (response.status_code, response.content) == (401, b"")
    assert sandbox.executions == {}
    assert (await api.execute_v2(BODY)).status_code == 200
    assert [e.status for e in sandbox.requests("execute_v2")] == [401, 200]
    assert sandbox.requests("execute_v2")[0].fault == "execute_v2:401:times=1"


@pytest.mark.parametrize("kind", ["429", "503"])
async def test_throttling_faults_carry_retry_after_and_process_nothing(
    sandbox: Sandbox, api: Caller, kind: str
) -> None:
    """429 and 503 faults answer with Retry-After and an ErrorResponse, and are not processed."""
    sandbox.faults.add(f"execute_v2:{kind}:times=2:retry_after=0.2")
    for _ in range(2):
        response = await execute(api)
        assert response.status_code == int(kind)
        assert response.headers["Retry-After"] == "0.2"
        assert set(response.json()) == {"code", "details"}
    assert sandbox.executions == {}
    assert (await execute(api)).status_code == 200


async def test_403_fault_answers_an_error_response(sandbox: Sandbox, api: Caller) -> None:
    """A 403 fault answers the reference's 403 ErrorResponse and processes nothing."""
    sandbox.faults.add("execute_v2:403")
    response = await api.execute_v2(BODY)
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert sandbox.executions == {}


@pytest.mark.parametrize("processed", [False, True], ids=["not-processed", "processed"])
async def test_500_fault_may_or_may_not_have_processed(
    sandbox: Sandbox, api: Caller, processed: bool
) -> None:
    """A 500 fault answers 500; with processed=true the executions exist and the journal keeps
    the answer the fault hid."""
    sandbox.faults.add(Fault(endpoint="execute_v2", kind="500", processed=processed))
    response = await execute(api)
    assert response.status_code == 500
    assert len(sandbox.executions) == (1 if processed else 0)
    [entry] = sandbox.requests("execute_v2")
    assert entry.response["code"] == "INTERNAL_ERROR"
    if processed:
        assert entry.processed_response["executionsUuids"] == list(sandbox.executions)
    else:
        assert entry.processed_response is None


@pytest.mark.parametrize("processed", [False, True], ids=["not-processed", "processed"])
async def test_timeout_fault_never_answers(sandbox: Sandbox, api: Caller, processed: bool) -> None:
    """A timeout fault holds the request past the client's read timeout, processed or not."""
    sandbox.faults.add(Fault(endpoint="execute_v2", kind="timeout", processed=processed))
    with pytest.raises(httpx.ReadTimeout):
        await execute(api, time_limit=0.2)
    assert len(sandbox.executions) == (1 if processed else 0)
    [entry] = sandbox.requests("execute_v2")
    assert entry.status is None


async def test_timeout_fault_ends_when_the_sandbox_stops() -> None:
    """A held request is dropped (connection closed) when the sandbox stops, not left to time out."""
    sb = Sandbox(faults=["get:timeout"])
    await sb.start()
    async with httpx.AsyncClient(base_url=sb.url, timeout=120.0) as client:
        api = Caller(client)
        await api.get_token()
        pending = asyncio.create_task(api.call("GET", DETAILS, query="nqlId=x", check=False))
        await eventually(lambda: sb.requests("get"))
        await sb.stop()
        with pytest.raises(httpx.TransportError) as dropped:
            await pending
        assert not isinstance(dropped.value, httpx.TimeoutException), dropped.value


@pytest.mark.parametrize("processed", [False, True], ids=["not-processed", "processed"])
async def test_reset_fault_drops_the_connection(
    sandbox: Sandbox, api: Caller, processed: bool
) -> None:
    """A reset fault closes the connection without an answer, after processing if asked."""
    sandbox.faults.add(Fault(endpoint="execute_v2", kind="reset", processed=processed))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await execute(api)
    assert len(sandbox.executions) == (1 if processed else 0)
    assert (await execute(api)).status_code == 200


async def test_html_fault_answers_a_gateway_page(sandbox: Sandbox, api: Caller) -> None:
    """An html fault answers 502 with a text/html gateway page."""
    sandbox.faults.add("execute_v2:html")
    response = await execute(api)
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text


async def test_garbage_fault_answers_200_that_is_not_json(sandbox: Sandbox, api: Caller) -> None:
    """A garbage fault answers 200 application/json with a body that is not valid JSON."""
    sandbox.faults.add("execute_v2:garbage:processed=true")
    response = await execute(api)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert len(sandbox.executions) == 1


async def test_faults_apply_only_to_their_endpoint_and_star_to_all(
    sandbox: Sandbox, api: Caller
) -> None:
    """An endpoint's fault leaves other endpoints alone; "*" with times=always hits every one."""
    sandbox.faults.add("trigger:503")
    assert (await api.call("GET", DETAILS, query="nqlId=restart_teams")).status_code == 200
    sandbox.faults.clear()
    sandbox.faults.add(Fault(kind="503", times=None))
    for _ in range(3):
        response = await api.client.post(
            TOKEN_PATH, data=FORM, headers={"Authorization": basic("sandbox", "sandbox")}
        )
        assert response.status_code == 503
    assert len(sandbox.faults) == 1
    assert sandbox.faults.clear() == 1
    assert (await api.call("GET", DETAILS, query="nqlId=restart_teams")).status_code == 200


# -- the HTTP switches -----------------------------------------------------------------------


async def test_fault_switch_over_http(sandbox: Sandbox, api: Caller) -> None:
    """POST /_sandbox/faults arms faults (text, JSON, query), GET lists, DELETE clears."""
    client = api.client
    added = await client.post("/_sandbox/faults", content=b"execute_v2:429:times=2:retry_after=1")
    assert added.status_code == 201
    assert added.json()["added"][0]["spec"] == "execute_v2:429:times=2:retry_after=1"
    as_json = await client.post(
        "/_sandbox/faults", json=[{"endpoint": "get", "kind": "500"}, "nql:reset"]
    )
    assert as_json.status_code == 201
    by_query = await client.post("/_sandbox/faults", params={"fault": "list:html"})
    assert by_query.status_code == 201
    listed = (await client.get("/_sandbox/faults")).json()["faults"]
    assert [f["spec"] for f in listed] == [
        "execute_v2:429:times=2:retry_after=1",
        "get:500:times=1",
        "nql:reset:times=1",
        "list:html:times=1",
    ]
    assert (await execute(api)).status_code == 429
    assert (await client.get("/_sandbox/faults")).json()["faults"][0]["remaining"] == 1
    assert (await client.delete("/_sandbox/faults")).json() == {"cleared": 4}
    assert (await execute(api)).status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"get:500\nexecute_v2:teapot", "text/plain"),
        (b'{"kind": "500", "colour": "red"}', "application/json"),
        (b'["get:500", 1]', "application/json"),
        (b"{not json", "application/json"),
        (b"", "text/plain"),
    ],
    ids=["bad-spec-among-good", "bad-field", "not-a-fault", "not-json", "nothing"],
)
async def test_fault_switch_refuses_bad_faults_whole(
    sandbox: Sandbox, api: Caller, content: bytes, content_type: str
) -> None:
    """A bad fault sent to the switch answers 400 {"error"} and arms none of the faults sent."""
    response = await api.client.post(
        "/_sandbox/faults", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["error"]
    assert len(sandbox.faults) == 0


async def test_control_routes_show_state_and_expire_tokens(sandbox: Sandbox, api: Caller) -> None:
    """The switches show the journal (credentials masked), catalogue, executions; expire tokens."""
    client = api.client
    answer = (await api.execute_v2(BODY)).json()
    journal = (await client.get("/_sandbox/journal", params={"endpoint": "execute_v2"})).json()
    [entry] = journal["entries"]
    token = api.token or ""
    assert entry["headers"]["Authorization"] == f"Bearer ***{token[-4:]}"
    token_entry = json.dumps((await client.get("/_sandbox/journal?endpoint=token")).json())
    assert token not in token_entry
    assert '"Authorization": "Basic ***"' in token_entry
    executions = (
        await client.get("/_sandbox/executions", params={"request_id": answer["requestUuid"]})
    ).json()
    assert [e["executionUuid"] for e in executions["executions"]] == answer["executionsUuids"]
    catalogue = (await client.get("/_sandbox/catalogue")).json()
    assert {"workflows", "users", "devices"} <= set(catalogue)
    index = (await client.get("/_sandbox")).json()
    assert index["pausingWorkflow"] == "request_software"
    assert (await client.post("/_sandbox/tokens/expire")).json() == {"expired": 1}
    assert (await api.execute_v2(BODY)).status_code == 401
    assert (await client.delete("/_sandbox/journal")).json()["cleared"] >= 2
    assert sandbox.journal == []


# -- run_sandbox -----------------------------------------------------------------------------


async def test_run_sandbox_prints_how_to_use_it_and_serves_until_cancelled() -> None:
    """run_sandbox's first line names the URL, credentials and fault switch; it serves until cancelled."""
    lines: list[str] = []
    task = asyncio.create_task(
        run_sandbox("127.0.0.1", 0, faults=["get:503"], out=lines.append, execution_delay=0.0)
    )
    await eventually(lambda: any("more:" in line for line in lines))
    first = lines[0]
    url = first.split()[3]
    assert url.startswith("http://127.0.0.1:")
    assert "'sandbox'" in first
    assert f"{url}/_sandbox/faults" in first
    assert any("fault armed: get:503:times=1" in line for line in lines)
    async with httpx.AsyncClient(base_url=url) as client:
        api = Caller(client)
        await api.get_token()
        assert (await api.call("GET", DETAILS, query="nqlId=x", check=False)).status_code == 503
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/_sandbox")


async def test_run_sandbox_refuses_a_bad_fault_before_starting() -> None:
    """A malformed fault spec makes run_sandbox raise ValueError without serving."""
    lines: list[str] = []
    with pytest.raises(ValueError, match="unknown fault kind"):
        await run_sandbox("127.0.0.1", 0, faults=["execute_v2:teapot"], out=lines.append)
    assert lines == []


async def test_sandbox_api_outside_start() -> None:
    """url before start raises, a second start raises, and stop may be called twice."""
    sb = Sandbox()
    with pytest.raises(RuntimeError, match="not started"):
        _ = sb.url
    await sb.start()
    with pytest.raises(RuntimeError, match="already started"):
        await sb.start()
    await sb.stop()
    await sb.stop()
