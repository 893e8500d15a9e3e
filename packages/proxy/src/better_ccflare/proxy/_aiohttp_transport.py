"""The upstream leg on aiohttp: the transport seam, at about half the CPU of httpx2.

The server's proxy leg is :class:`~better_ccflare.proxy.H1Transport` (cheaper still); this
transport carries the requests an environment ``HTTP(S)_PROXY`` must take, since aiohttp speaks
CONNECT. Token refreshes, usage polls and OAuth stay on httpx2, which the provider library is
written against.

It behaves like the other transports of the seam (the httpx2 one the contract tests keep in
``tests/support`` included) where that matters to a proxy: bytes pass through
exactly as the upstream sent them (no decompression, ``content-encoding`` kept in the headers),
repeated response headers stay repeated, nothing is added to the request but ``Host``,
``Accept: */*`` and the body's length, and ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` with
``NO_PROXY`` are honoured, read once at construction. Two choices differ on purpose: no cookie
jar (an upstream's cookies for one account must never ride along on another account's requests)
and no ``User-Agent`` of its own (a client that sent none reaches the upstream without one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from better_ccflare.providers import UpstreamRequest

from ._env_proxies import EnvironmentProxies
from ._transport import (
    Timeouts,
    UpstreamConnectError,
    UpstreamResponse,
    UpstreamTimeoutError,
    UpstreamTransport,
)

__all__ = ["AiohttpTransport"]

_SKIPPED_AUTO_HEADERS = ("User-Agent", "Content-Type", "Accept-Encoding")
"""aiohttp would otherwise invent these (``Accept-Encoding`` is always set by the providers)."""


class _AiohttpResponse(UpstreamResponse):
    __slots__ = ("_idle_s", "_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, idle_s: float) -> None:
        self._response = response
        self._idle_s = idle_s
        self.status = response.status
        # Latin-1 both ways: the pipeline re-encodes with it, so any byte survives the trip.
        self.headers = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.raw_headers
        ]

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        idle = self._idle_s
        content = self._response.content
        try:
            async with asyncio.timeout(loop.time() + idle) as deadline:
                async for chunk in content.iter_any():
                    yield chunk
                    deadline.reschedule(loop.time() + idle)
        except aiohttp.ClientError as exc:
            raise UpstreamConnectError(str(exc) or type(exc).__name__) from exc
        except TimeoutError:
            raise UpstreamTimeoutError("idle") from None

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_raw()])

    async def aclose(self) -> None:
        # Releasing a response whose body was read in full returns the connection to the pool;
        # releasing one that is still streaming closes the connection, which is what tells the
        # upstream to stop generating when the client has gone.
        self._response.release()


class AiohttpTransport(UpstreamTransport):
    """One pooled ``aiohttp.ClientSession`` for every upstream, created on first use (aiohttp
    binds a session to the running event loop)."""

    __slots__ = (
        "_closed",
        "_max_connections",
        "_proxies",
        "_session",
        "_timeout",
        "_timeout_for",
    )

    def __init__(self, *, max_connections: int = 200) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._timeout_for: Timeouts | None = None
        self._timeout = aiohttp.ClientTimeout()
        self._proxies = EnvironmentProxies()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise RuntimeError("AiohttpTransport is closed")
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=0, keepalive_timeout=30.0
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=_SKIPPED_AUTO_HEADERS,
                trust_env=False,  # it would look up ~/.netrc in a thread on every request
            )
        return self._session

    def _client_timeout(self, timeouts: Timeouts) -> aiohttp.ClientTimeout:
        """aiohttp's view of ``timeouts``, built once per settings rather than per request.

        ``connect`` covers waiting for a pooled connection too, as httpx2's pool timeout does;
        the first-byte and idle deadlines are ours, not aiohttp's.
        """
        if self._timeout_for is not timeouts:
            self._timeout = aiohttp.ClientTimeout(total=None, connect=timeouts.connect_s)
            self._timeout_for = timeouts
        return self._timeout

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        session = self._get_session()
        try:
            async with asyncio.timeout(timeouts.first_byte_s):
                response = await session.request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    data=request.body or None,  # no content-length on an empty GET
                    allow_redirects=False,
                    timeout=self._client_timeout(timeouts),
                    proxy=self._proxies.for_url(request.url),
                )
        except aiohttp.ServerTimeoutError:
            # Raised by aiohttp's own connect deadline; it subclasses TimeoutError, so it must
            # be told apart from our first-byte deadline before that is caught below.
            raise UpstreamTimeoutError("connect") from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectError(str(exc) or type(exc).__name__) from exc
        except TimeoutError:
            raise UpstreamTimeoutError("first_byte") from None
        return _AiohttpResponse(response, timeouts.idle_s)

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
