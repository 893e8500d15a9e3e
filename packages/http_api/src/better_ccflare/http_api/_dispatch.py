"""The application's front door: proxy traffic goes straight to the proxy, the rest to Litestar.

``/v1/*`` is the hot path. Sending it through the framework's router would cost time on every
request and would rewrite the path (mounted apps see it without their prefix), so a few lines
of plain ASGI split the traffic before any framework code runs. Lifespan events go to Litestar,
which owns start-up and shutdown.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Receive, Scope, Send

from better_ccflare.proxy import LOCAL_ANSWER_PATHS

__all__ = ["Dispatcher"]


class Dispatcher:
    """Routes ``/v1/*`` (and Claude Code's telemetry paths) to ``proxy``, all else to ``app``."""

    __slots__ = ("_app", "_proxy")

    def __init__(self, *, proxy: ASGIApp, app: ASGIApp) -> None:
        self._proxy = proxy
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith("/v1/") or path in LOCAL_ANSWER_PATHS:
                await self._proxy(scope, receive, send)
                return
        await self._app(scope, receive, send)
