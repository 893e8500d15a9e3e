"""An :class:`UpstreamTransport` on httpx2, for the transport contract tests.

The proxy once sent its upstream requests through httpx2; the server now uses
:class:`~better_ccflare.proxy.H1Transport` and, for environment proxies,
:class:`~better_ccflare.proxy.AiohttpTransport`. This implementation lives on here so the
contract tests (``tests/test_transport.py``) keep proving the seam against a third,
independently written client: a behaviour all three share is the seam's, not one client's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2

from better_ccflare.providers import UpstreamRequest
from better_ccflare.proxy import (
    Timeouts,
    UpstreamConnectError,
    UpstreamResponse,
    UpstreamTimeoutError,
    UpstreamTransport,
)

__all__ = ["Httpx2Transport"]


class _Httpx2Response(UpstreamResponse):
    __slots__ = ("_idle_s", "_response", "headers", "status")

    def __init__(self, response: httpx2.Response, idle_s: float) -> None:
        self._response = response
        self._idle_s = idle_s
        self.status = response.status_code
        self.headers = [(k.lower(), v) for k, v in response.headers.multi_items()]

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        idle = self._idle_s
        try:
            async with asyncio.timeout(loop.time() + idle) as deadline:
                async for chunk in self._response.aiter_raw():
                    yield chunk
                    deadline.reschedule(loop.time() + idle)
        except TimeoutError:
            raise UpstreamTimeoutError("idle") from None
        except httpx2.TransportError as exc:
            raise UpstreamConnectError(str(exc) or type(exc).__name__) from exc

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_raw()])

    async def aclose(self) -> None:
        await self._response.aclose()


class Httpx2Transport(UpstreamTransport):
    """One pooled ``httpx2.AsyncClient`` for every upstream (the provider library's client)."""

    def __init__(
        self, *, max_connections: int = 200, client: httpx2.AsyncClient | None = None
    ) -> None:
        limits = httpx2.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        )
        self._client = client or httpx2.AsyncClient(limits=limits, follow_redirects=False)
        self._timeout_for: Timeouts | None = None
        self._timeout = httpx2.Timeout(None)

    def _client_timeout(self, timeouts: Timeouts) -> httpx2.Timeout:
        """httpx2's view of ``timeouts``, built once per settings rather than per request."""
        if self._timeout_for is not timeouts:
            self._timeout = httpx2.Timeout(
                connect=timeouts.connect_s,
                read=None,
                write=timeouts.connect_s,
                pool=timeouts.connect_s,
            )
            self._timeout_for = timeouts
        return self._timeout

    @property
    def client(self) -> httpx2.AsyncClient:
        """The underlying client, shared with providers for token refresh and usage calls."""
        return self._client

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        built = self._client.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.body,
            timeout=self._client_timeout(timeouts),
        )
        try:
            async with asyncio.timeout(timeouts.first_byte_s):
                response = await self._client.send(built, stream=True)
        except TimeoutError:
            raise UpstreamTimeoutError("first_byte") from None
        except httpx2.TimeoutException:
            raise UpstreamTimeoutError("connect") from None
        except httpx2.TransportError as exc:
            raise UpstreamConnectError(str(exc) or type(exc).__name__) from exc
        return _Httpx2Response(response, timeouts.idle_s)

    async def aclose(self) -> None:
        await self._client.aclose()
