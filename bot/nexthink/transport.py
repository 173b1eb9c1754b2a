"""The Nexthink client's HTTP transport: httpx's client API on an aiohttp connection pool.

httpx stays the client (auth, URLs, timeouts, the ``Response`` every caller reads); only the
connection pool underneath is aiohttp's, which the bot already runs for its web server and for
Slack. Measured by ``bench/transport.py``: one POST on httpx's own pool (httpcore on anyio) cost
0.57 ms of CPU alone and 1.5 ms with 50 in flight, against 0.27-0.40 ms through this transport.

The library that does this (``httpx-aiohttp``) maps aiohttp's ``ClientConnectionError`` (the
base of "the server closed the connection after our request") to ``httpx.ConnectTimeout``,
which the client takes to mean *not sent* and retries, so a run could be sent twice. Here the
mapping is the client's contract (``bot.nexthink._http``): only failures that happen before a
byte of the request can have left become ``ConnectError`` / ``ConnectTimeout``; everything
after is a read, write or protocol error, so a run that may have reached Nexthink is reported,
never retried.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import aiohttp
import httpx

__all__ = ["AiohttpTransport"]

#: httpx's default pool, kept: at most 100 connections, at most 20 of them kept idle, each for 5 s
_LIMIT: Final = 100
_KEEP_IDLE: Final = 20
_KEEPALIVE: Final = 5.0


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool with httpx's cap on idle connections (``max_keepalive_connections``): a
    connection given back while 20 are idle for its host is closed, so a burst of 100 calls
    does not leave 100 sockets open. aiohttp has no option for it; this reads its pool's
    private ``_conns`` (known to work with the pinned aiohttp, 3.14.5) and keeps no cap if
    that is gone (``tests/test_nexthink_transport.py`` fails then)."""

    def _release(self, key: object, protocol: object, *, should_close: bool = False) -> None:
        idle = getattr(self, "_conns", {}).get(key)
        if idle is not None and len(idle) >= _KEEP_IDLE:
            should_close = True
        super()._release(key, protocol, should_close=should_close)  # type: ignore[arg-type]


@contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    """aiohttp's failures as the httpx errors that say whether the request may have left."""
    try:
        yield
    except httpx.HTTPError:
        raise
    except aiohttp.ConnectionTimeoutError as exc:
        # no connection became free, or connecting took too long: nothing was written
        raise httpx.ConnectTimeout(str(exc) or "connecting timed out", request=request) from exc
    except (aiohttp.ClientConnectorError, aiohttp.ClientHttpProxyError) as exc:
        # refused, DNS, TLS handshake, a proxy that would not connect: before it was written
        raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
    except (TimeoutError, aiohttp.SocketTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "no answer in time", request=request) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
    except aiohttp.ClientResponseError as exc:
        # an answer that is not HTTP (aiohttp's parser failed on it)
        raise httpx.RemoteProtocolError(exc.message or "malformed answer", request=request) from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.ReadError(str(exc) or "the answer was cut short", request=request) from exc
    except aiohttp.NonHttpUrlClientError as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.InvalidURL(str(exc)) from exc
    except (aiohttp.ClientError, OSError) as exc:
        # a reset or any other failure once connected: the request may have left
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp ``ClientSession`` under httpx, made on first use (in the loop that uses it:
    the client may be made before any loop runs).

    Like httpx's own transport with ``trust_env``: ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
    ``ALL_PROXY`` / ``NO_PROXY`` and ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are honoured,
    certificates are verified. The proxy is looked up once per scheme and host (aiohttp's own
    ``trust_env`` reads the environment and ``~/.netrc`` in a worker thread on every request). Redirects are
    not followed and bodies are not decompressed here (httpx does both as configured). Each
    answer is read whole before it is returned, so a connection goes back to the pool at once.
    """

    def __init__(
        self, *, verify: ssl.SSLContext | None = None, keepalive: float = _KEEPALIVE
    ) -> None:
        self._ssl = verify
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _proxy_for(self, url: httpx.URL) -> str | None:
        key = (url.scheme, url.host)
        if key not in self._proxies:
            proxies = urllib.request.getproxies_environment()
            proxy = proxies.get(url.scheme) or proxies.get("all")
            if proxy and urllib.request.proxy_bypass(url.host):
                proxy = None
            self._proxies[key] = proxy
        return self._proxies[key]

    def _session_here(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context(trust_env=True)
            connector = _Connector(limit=_LIMIT, keepalive_timeout=self._keepalive, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        connect = timeout.get("connect")
        pool = timeout.get("pool")
        read = timeout.get("read")
        body = await request.aread()
        with _mapped(request):
            session = self._session_here()
            async with session.request(
                request.method,
                str(request.url),
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                data=body or None,
                allow_redirects=False,
                proxy=self._proxy_for(request.url),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=None if connect is None or pool is None else connect + pool,
                    sock_connect=connect,
                    sock_read=read,
                ),
            ) as answer:
                content = await answer.read()
                status = answer.status
                headers = list(answer.raw_headers)
                reason = answer.reason
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("ascii", "replace")
        return httpx.Response(
            status_code=status,
            headers=headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
