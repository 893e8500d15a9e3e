"""The seam between the proxy and the HTTP client that talks to upstreams.

The pipeline only ever sees :class:`UpstreamTransport` and :class:`UpstreamResponse`, two tiny
abstractions in the spirit of httpx's transports. That keeps the client swappable (the
benchmarks compare clients behind this seam) and lets tests substitute an in-memory one.
The production implementations are :class:`~._h1_transport.H1Transport` and
:class:`~._aiohttp_transport.AiohttpTransport`; the test suite holds a third, on httpx2, that
the transport contract tests run against as well.

Timeouts are split the way a streaming proxy needs them: connecting, waiting for the response
headers (the first byte), and silence between two body chunks. A single client-level "read"
timeout cannot express "long wait for headers, shorter idle gaps", so each transport enforces
the header and idle deadlines itself (a rescheduled ``asyncio`` timeout per response).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

import msgspec

from better_ccflare.providers import UpstreamRequest

__all__ = [
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
