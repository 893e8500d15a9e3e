"""The proxy's upstream leg as plain HTTP/1.1 on asyncio protocols, parsed by httptools.

A proxy's upstream leg needs very little of an HTTP client: send bytes it already has, hand the
response's bytes on as they arrive, reuse connections. General clients pay per request for
what a proxy never uses (request and response objects built for every feature, cookie jars,
redirects, decoding, per-request timers), and on the hot path that cost is most of a Python
proxy's overhead. Measured behind uvicorn with a forwarding-only ASGI app (SSE at concurrency
16, ``docs/performance.md``): aiohttp 0.19 ms of CPU per request, this design 0.07 ms.

What it does:

- keep-alive connections per origin (scheme, host, port), newest reused first, closed after
  30 s idle; at most ``max_connections`` open, further requests wait for one up to the connect
  deadline;
- the request goes out as one write; nothing is added but ``Host`` and ``Content-Length``;
- the response body is passed on exactly as received (no decompression; chunked framing
  removed, as any client does), whatever arrived together handed over as one piece; reading
  pauses while more than 1 MiB waits for a slow client;
- a connection that was reused and closed before answering a single byte (the upstream closed
  it while idle) is retried once on a fresh one, as httpx2 and aiohttp do;
- TLS with SNI, checked against certifi's roots or ``SSL_CERT_FILE``/``SSL_CERT_DIR``;
  ``HTTP(S)_PROXY``/``NO_PROXY`` requests go through the
  ``proxied`` transport instead (aiohttp, which speaks CONNECT), read once at construction.

Deadlines are plain loop timers, one per wait: connecting (and waiting for a free connection),
the response headers, and silence between body chunks.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import ssl
from collections.abc import AsyncIterator
from operator import itemgetter
from typing import NamedTuple, cast
from urllib.parse import urlsplit

import certifi
import httptools

from better_ccflare.providers import UpstreamRequest

from ._env_proxies import EnvironmentProxies
from ._transport import (
    Timeouts,
    UpstreamConnectError,
    UpstreamResponse,
    UpstreamTimeoutError,
    UpstreamTransport,
)

__all__ = ["H1Transport"]

_HIGH_WATER = 1 << 20
"""Bytes waiting for the client before the upstream socket stops being read."""
_KEEPALIVE_S = 30.0
_MAX_IDLE_PER_ORIGIN = 64
_NOT_FORWARDED = frozenset(("host", "content-length", "transfer-encoding", "connection"))
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FRAMING = frozenset(("content-length", "transfer-encoding"))
"""A response with neither header is delimited by the connection's close (checked with a set
test over the names, a third of a generator's cost per response)."""
_name = itemgetter(0)


class _Origin(NamedTuple):
    scheme: str
    host: str
    port: int


class _Target(NamedTuple):
    origin: _Origin
    host_header: str
    request_target: str


@functools.lru_cache(maxsize=512)
def _target(url: str) -> _Target:
    """Where ``url`` is sent and how the request line names it; cached, since a proxy sends
    to a handful of URLs over and over."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UpstreamConnectError(f"invalid upstream URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        raise UpstreamConnectError(f"unsupported upstream URL {url!r}")
    default_port = _DEFAULT_PORTS[scheme]
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port in (None, default_port) else f"{shown}:{port}"
    path = parts.path or "/"
    request_target = f"{path}?{parts.query}" if parts.query else path
    return _Target(_Origin(scheme, host, port or default_port), host_header, request_target)


def _encode_request(request: UpstreamRequest, target: _Target) -> bytes:
    """Request line and headers, ready to write. A header that would break the framing (a
    line break pasted into an API key, say) fails the request instead of being sent."""
    lines = [f"{request.method} {target.request_target} HTTP/1.1", f"host: {target.host_header}"]
    lines.extend(
        f"{name}: {value}" for name, value in request.headers.items() if name not in _NOT_FORWARDED
    )
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(request.body)}")
    lines.append("\r\n")
    head = "\r\n".join(lines)
    if head.count("\n") != len(lines) or head.count("\r") != len(lines):
        raise UpstreamConnectError("a request header contains a line break")
    try:
        return head.encode("latin-1")
    except UnicodeEncodeError:
        raise UpstreamConnectError("a request header is not Latin-1 text") from None


class _StaleConnectionError(UpstreamConnectError):
    """A reused connection closed before a byte of the response: safe to send again."""


_WOKEN = False
_TIMED_OUT = True


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


class _H1Response(UpstreamResponse):
    """One response: headers, then the body as a queue the connection fills."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_done",
        "_error",
        "_idle_s",
        "_loop",
        "_waiter",
        "close_delimited",
        "head_only",
        "headers",
        "received",
        "status",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, *, idle_s: float, head_only: bool) -> None:
        self._loop = loop
        self._idle_s = idle_s
        self.head_only = head_only
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._done = False
        self._error: UpstreamConnectError | None = None
        self._waiter: asyncio.Future[bool] | None = None
        self._conn: _Connection | None = None
        self.received = False
        """Whether any byte of the response arrived (a stale connection sends none)."""
        self.close_delimited = False

    # -- fed by the connection ------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(_WOKEN)

    def headers_done(self, status: int, raw: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
        framed = not _FRAMING.isdisjoint(map(_name, self.headers))
        self.close_delimited = not framed and not self.head_only and status not in (204, 304)
        self._wake()

    def feed(self, chunk: bytes, conn: _Connection) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > _HIGH_WATER:
            conn.pause()
        self._wake()

    def end(self) -> None:
        self._done = True
        self._conn = None
        self._wake()

    def fail(self, error: UpstreamConnectError) -> None:
        self._error = error
        self._conn = None
        self._wake()

    # -- read by the pipeline -------------------------------------------------------------

    async def wait(self, seconds: float) -> bool:
        """Sleep until the connection has news or ``seconds`` pass; True when they passed."""
        loop = self._loop
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(seconds, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def wait_headers(self, deadline: float) -> None:
        while not self.status:
            if self._error is not None:
                raise self._error
            if await self.wait(deadline - self._loop.time()):
                raise UpstreamTimeoutError("first_byte")

    def attach(self, conn: _Connection) -> None:
        self._conn = conn

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        chunks = self._chunks
        while True:
            if chunks:
                # Whatever arrived together goes on together: one send instead of several.
                piece = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                conn = self._conn
                if conn is not None:
                    conn.resume()
                yield piece
            elif self._error is not None:
                raise self._error
            elif self._done:
                return
            elif await self.wait(self._idle_s):
                raise UpstreamTimeoutError("idle")

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_raw()])

    def complete(self) -> bool:
        return self._done and not self._chunks

    async def aclose(self) -> None:
        conn = self._conn
        if conn is not None:
            # Still streaming: closing the connection is what tells the upstream to stop.
            self._conn = None
            conn.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one response at a time."""

    def __init__(self, transport_owner: H1Transport, origin: _Origin) -> None:
        self._owner = transport_owner
        self.origin = origin
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self.response: _H1Response | None = None
        self.used = False
        """Whether it served a request before: only such a connection can be stale."""
        self.idle_since = 0.0
        self._paused = False

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)
        self._owner.opened(self)

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:
            self.close()  # nobody asked: an idle connection must not talk
            return
        response.received = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._drop(UpstreamConnectError(f"invalid HTTP response from upstream ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._owner.lost(self)
        response = self.response
        if response is None:
            return
        if response.status and response.close_delimited and exc is None:
            self.response = None
            response.end()  # the body ran to the close, as its headers said it would
        elif not response.received and self.used:
            self._drop(_StaleConnectionError("the upstream closed an idle connection"))
        else:
            reason = f" ({exc})" if exc is not None else ""
            self._drop(UpstreamConnectError(f"the upstream closed the connection{reason}"))

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._raw_headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        response = self.response
        if response is None or status < 200:
            return  # 1xx: an interim answer, the real one follows
        response.headers_done(status, self._raw_headers)
        if response.head_only:
            # httptools cannot be told a HEAD answer has no body; end it here and do not
            # reuse a connection whose parser would wait for one.
            self.response = None
            response.end()
            self.close()

    def on_body(self, body: bytes) -> None:
        response = self.response
        if response is not None:
            response.feed(body, self)

    def on_message_complete(self) -> None:
        response = self.response
        if response is None or response.status < 200:
            return
        self.response = None
        response.end()
        if self._parser.should_keep_alive():
            self.resume()  # the read that ended the body may also have paused reading
            self._owner.release(self)
        else:
            self.close()

    # -- used by the transport and the response -------------------------------------------

    def start(self, response: _H1Response, head: bytes, body: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            if self.used:
                raise _StaleConnectionError("the upstream closed an idle connection")
            raise UpstreamConnectError("the upstream closed the connection")
        self.response = response
        response.attach(self)
        if body:
            transport.writelines((head, body))
        else:
            transport.write(head)

    def usable(self, now: float) -> bool:
        transport = self._transport
        return (
            transport is not None
            and not transport.is_closing()
            and now - self.idle_since < _KEEPALIVE_S
        )

    def pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _drop(self, error: UpstreamConnectError) -> None:
        response = self.response
        self.response = None
        if response is not None:
            response.fail(error)


class H1Transport(UpstreamTransport):
    """Pooled HTTP/1.1 connections for every upstream; see the module docstring."""

    __slots__ = (
        "_closed",
        "_connecting",
        "_idle",
        "_max_connections",
        "_open",
        "_proxied",
        "_proxies",
        "_slot_waiters",
        "_ssl",
    )

    def __init__(self, *, proxied: UpstreamTransport, max_connections: int = 200) -> None:
        self._proxied = proxied
        self._proxies = EnvironmentProxies()
        self._max_connections = max_connections
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._connecting = 0
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    # -- pool bookkeeping (called by connections) ------------------------------------------

    def opened(self, conn: _Connection) -> None:
        self._open.add(conn)

    def lost(self, conn: _Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle is not None and conn in idle:
            idle.remove(conn)
        self._wake_slot_waiter()

    def release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if self._closed or len(idle) >= _MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        conn.used = True
        idle.append(conn)
        self._wake_slot_waiter()

    def _wake_slot_waiter(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # -- sending ----------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        """Certificates are checked against ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set (a
        company's inspecting proxy, say), else certifi's roots, as httpx2 does."""
        if self._ssl is None:
            cafile = os.environ.get("SSL_CERT_FILE") or certifi.where()
            context = ssl.create_default_context(
                cafile=cafile, capath=os.environ.get("SSL_CERT_DIR") or None
            )
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    async def _acquire(self, origin: _Origin, connect_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + connect_s
        while True:
            idle = self._idle.get(origin)
            now = loop.time()
            while idle:
                conn = idle.pop()
                if conn.usable(now):
                    return conn
                conn.close()
            if len(self._open) + self._connecting < self._max_connections:
                return await self._connect(origin, deadline)
            waiter: asyncio.Future[None] = loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise UpstreamTimeoutError("connect") from None

    async def _connect(self, origin: _Origin, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        self._connecting += 1
        try:
            tls = self._ssl_context() if origin.scheme == "https" else None
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError:
            raise UpstreamTimeoutError("connect") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamConnectError(str(exc) or type(exc).__name__) from exc
        finally:
            self._connecting -= 1
        return conn

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        if self._closed:
            raise RuntimeError("H1Transport is closed")
        if self._proxies.for_url(request.url) is not None:
            return await self._proxied.send(request, timeouts)
        target = _target(request.url)
        head = _encode_request(request, target)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.first_byte_s
        while True:
            conn = await self._acquire(target.origin, timeouts.connect_s)
            response = _H1Response(loop, idle_s=timeouts.idle_s, head_only=request.method == "HEAD")
            try:
                conn.start(response, head, request.body)
                await response.wait_headers(deadline)
            except _StaleConnectionError:
                # Only a reused connection goes stale, so this ends, at the latest, on a new one.
                conn.close()
                continue
            except BaseException:
                conn.close()  # cancelled or failed while waiting: stop the upstream's work
                raise
            return response

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        await self._proxied.aclose()
