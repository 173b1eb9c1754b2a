"""The Nexthink client's aiohttp transport, against raw loopback servers that misbehave.

What matters is the client's contract (``bot.nexthink._http``): a failure before the request
can have left is "nothing was sent" (and may be retried), anything after it is "may have run"
(never resent). Each server here counts the requests it read, so "sent once" is exact.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web

from bot.nexthink import NexthinkClient, OutcomeUnknown, Unavailable
from bot.nexthink.models import ExternalIdsExecutionRequest, UserData
from bot.nexthink.transport import AiohttpTransport

TOKEN = json.dumps({"access_token": "tok-1234567890", "expires_in": 900, "token_type": "Bearer"})
TOKEN_ANSWER = (
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(TOKEN)}\r\n\r\n{TOKEN}"
).encode()

PATIENCE = 30.0  # seconds: generous, the test waits for events

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


class RawServer:
    """Answers the token request properly and every other request with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []  # the request lines of the non-token requests
        self.url = ""
        self._open: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._closed = asyncio.Event()  # set whenever a connection ends

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._open[me] = writer
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                if b"/token" in head.split(b"\r\n", 1)[0]:
                    writer.write(TOKEN_ANSWER)
                    await writer.drain()
                    continue
                self.requests.append(head.split(b"\r\n", 1)[0])
                await self.answer(reader, writer, body)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._open.pop(me, None)
            self._closed.set()

    async def until_at_most(self, connections: int) -> None:
        """Wait until no more than ``connections`` connections are open."""
        while len(self._open) > connections:
            self._closed.clear()
            await asyncio.wait_for(self._closed.wait(), PATIENCE)

    @asynccontextmanager
    async def running(self, sock: socket.socket | None = None) -> AsyncIterator[RawServer]:
        if sock is None:
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        else:
            server = await asyncio.start_server(self._serve, sock=sock)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            server.close()
            for writer in self._open.values():  # idle keep-alive connections end their reads
                writer.transport.abort()
            await asyncio.gather(*self._open, return_exceptions=True)


def client_for(url: str, **options: float) -> NexthinkClient:
    return NexthinkClient(
        base_url=url,
        token_url=url + "/oauth2/default/v1/token",
        client_id="bot-client",
        client_secret="s3cret-Client-Value-42",
        backoff=0.01,
        connect_timeout=options.get("connect_timeout", 2.0),
        read_timeout=options.get("read_timeout", 5.0),
    )


def run_request() -> ExternalIdsExecutionRequest:
    return ExternalIdsExecutionRequest(
        workflow_id="restart_teams", users=[UserData(upn="alice@example.com")], params={}
    )


async def _garbage(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _b: bytes) -> None:
    writer.write(b"SMTP ready\r\n\r\nthis is not HTTP\r\n\r\n")
    await writer.drain()
    writer.close()


async def _cut_short(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _b: bytes) -> None:
    writer.write(
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"req'
    )
    await writer.drain()
    writer.close()


async def _reset(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _b: bytes) -> None:
    writer.transport.abort()  # RST, no answer


@pytest.mark.parametrize(
    ("answer", "phrase"),
    [
        (_garbage, "closed without an answer"),
        (_cut_short, "reset"),
        (_reset, ""),
    ],
    ids=["not-http", "body-cut-short", "reset"],
)
async def test_a_run_whose_answer_breaks_after_it_was_read_is_unknown_and_sent_once(
    answer: Answer, phrase: str
) -> None:
    """The request was read: whatever comes back broken, the run may have happened; it is
    reported so, and never sent again."""
    server = RawServer(answer)
    async with server.running(), client_for(server.url) as client:
        with pytest.raises(OutcomeUnknown, match="may or may not have run") as caught:
            await client.execute(run_request())
    assert phrase in str(caught.value)
    assert len(server.requests) == 1


async def test_a_refused_connection_is_nothing_sent() -> None:
    """Nothing listens: the run was not sent (and the message says so)."""
    server = RawServer(_garbage)
    async with server.running():
        url = server.url
    async with client_for(url, connect_timeout=1.0) as client:
        with pytest.raises(Unavailable, match="nothing was sent"):
            await client.execute(run_request())
    assert server.requests == []


async def test_a_gzip_answer_is_decoded_and_headers_keep_their_case() -> None:
    """Bodies are decoded by httpx as with its own transport; the header names are sent as
    written (``Source``), and Nexthink's answer reaches the caller whole."""
    seen: dict[str, str] = {}

    async def handle(request: web.Request) -> web.Response:
        seen.update((k.decode(), v.decode()) for k, v in request.raw_headers)
        body = gzip.compress(json.dumps({"hello": "world" * 200}).encode())
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    app = web.Application()
    app.router.add_post("/x", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
            response = await http.post(
                f"http://127.0.0.1:{port}/x", json={"a": 1}, headers={"Source": "chatops"}
            )
    finally:
        await runner.cleanup()
    assert response.json() == {"hello": "world" * 200}
    assert seen["Source"] == "chatops"


async def test_the_proxy_of_the_environment_is_used_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``HTTP_PROXY`` sends the request through the proxy, as httpx's own transport does with
    ``trust_env``; a host in ``NO_PROXY`` is called directly."""
    through_proxy: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        through_proxy.append(str(request.url))
        return web.json_response({"via": "proxy"})

    async def direct(_request: web.Request) -> web.Response:
        return web.json_response({"via": "direct"})

    runners = []
    ports = []
    for handler in (proxy, direct):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{ports[0]}")
    monkeypatch.setenv("NO_PROXY", "localhost")
    try:
        async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
            proxied = await http.get(f"http://nexthink.invalid:{ports[1]}/api/v1/x")
            direct_answer = await http.get(f"http://localhost:{ports[1]}/api/v1/x")
    finally:
        for runner in runners:
            await runner.cleanup()
    assert proxied.json() == {"via": "proxy"}
    assert through_proxy == [f"http://nexthink.invalid:{ports[1]}/api/v1/x"]
    assert direct_answer.json() == {"via": "direct"}


def test_a_client_made_outside_any_loop_works_in_the_loop_that_uses_it() -> None:
    """``from_settings`` makes the client before the loop runs: the connection pool is made
    on first use, in the loop that uses it, and closed with the client."""

    async def ok(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _b: bytes) -> None:
        body = b'{"requestUuid": "r-1", "executionsUuids": ["e-1"]}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    listening = socket.create_server(("127.0.0.1", 0))
    server = RawServer(ok)
    client = client_for(f"http://127.0.0.1:{listening.getsockname()[1]}")  # no loop runs yet

    async def use() -> list[str]:
        async with server.running(listening), client:
            answer = await client.execute(run_request())
        return list(answer.executions_uuids)

    assert asyncio.run(use()) == ["e-1"]
    assert len(server.requests) == 1


async def test_after_a_burst_at_most_twenty_connections_stay_open() -> None:
    """As httpx's own pool (``max_keepalive_connections=20``): 60 calls at once open 60
    connections; once they are answered, 20 stay for reuse and the rest are closed."""
    in_flight = 0
    all_in = asyncio.Event()

    async def held(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _b: bytes) -> None:
        nonlocal in_flight
        in_flight += 1
        if in_flight == 60:
            all_in.set()
        await all_in.wait()  # every call holds its own connection until all 60 are in
        body = b"{}"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    server = RawServer(held)
    async with (
        server.running(),
        httpx.AsyncClient(
            transport=AiohttpTransport(keepalive=300)  # no expiry during the test
        ) as http,
    ):
        url = server.url + "/api/v2/workflows/execute"
        answers = await asyncio.wait_for(
            asyncio.gather(*(http.post(url, json={}) for _ in range(60))), PATIENCE
        )
        assert [a.status_code for a in answers] == [200] * 60
        await server.until_at_most(20)  # the client closes the 40 beyond the cap
        for _ in range(20):  # the 20 kept are reused: no new connection
            assert (await http.post(url, json={})).status_code == 200
        assert len(server._open) == 20
