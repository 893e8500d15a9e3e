"""The seam between the proxy and the HTTP client that talks to upstreams.

The pipeline only ever sees :class:`UpstreamTransport` and :class:`UpstreamResponse`, two tiny
abstractions in the spirit of httpx's transports. That keeps the client swappable (the
benchmarks compare clients behind this seam) and lets tests substitute an in-memory one.

Timeouts are split the way a streaming proxy needs them: connecting, waiting for the response
headers (the first byte), and silence between two body chunks. A single client-level "read"
timeout cannot express "long wait for headers, shorter idle gaps", so the header and idle
deadlines are enforced here with one rescheduled ``asyncio.timeout`` per response.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

import httpx2
import msgspec

from better_ccflare.providers import UpstreamRequest

__all__ = [
    "Httpx2Transport",
    "Timeouts",
    "UpstreamConnectError",
    "UpstreamResponse",
    "UpstreamTimeoutError",
    "UpstreamTransport",
]


class Timeouts(msgspec.Struct, frozen=True, kw_only=True):
    """Seconds. The defaults stay under Claude Code's 300-second stall detector."""

    connect_s: float = 10.0
    first_byte_s: float = 240.0
    idle_s: float = 240.0


class UpstreamConnectError(Exception):
    """The upstream could not be reached (refused, DNS, TLS, reset before the response)."""


class UpstreamTimeoutError(Exception):
    """A deadline passed: ``phase`` is ``connect``, ``first_byte`` or ``idle``."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        super().__init__(f"upstream {phase} timeout")


class UpstreamResponse(ABC):
    """A response whose headers have arrived and whose body has not been read yet."""

    status: int
    headers: list[tuple[str, str]]
    """Lower-case names, in upstream order; repeated headers stay repeated."""

    @abstractmethod
    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as the upstream sent it, chunk by chunk, with the idle deadline enforced."""

    @abstractmethod
    async def aread(self) -> bytes:
        """The whole body (for error bodies and small JSON responses)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the connection. Safe to call more than once."""

    def complete(self) -> bool:
        """Whether the body has ended and every byte of it was handed out, so the piece just
        read is the last: the proxy then ends its response with that piece instead of a
        separate empty write. Transports that cannot tell cheaply say False."""
        return False

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or ``None``."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class UpstreamTransport(ABC):
    """Sends one request upstream and returns once the response headers are in."""

    @abstractmethod
    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        """Raises :class:`UpstreamConnectError` or :class:`UpstreamTimeoutError`."""

    @abstractmethod
    async def aclose(self) -> None: ...


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
