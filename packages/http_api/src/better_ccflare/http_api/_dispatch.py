"""The application's front door: who may come in, then proxy traffic to the proxy, the rest to
Litestar.

``/v1/*`` is the hot path. Sending it through the framework's router would cost time on every
request and would rewrite the path (mounted apps see it without their prefix), so a few lines
of plain ASGI split the traffic before any framework code runs. Lifespan events go to Litestar,
which owns start-up and shutdown.

Before the split, every request's ``Host`` must name this server (:class:`TrustedHosts`), a
browser's proxy call (one with an ``Origin``) must come from a page this server trusts, and a
state-changing ``/api`` call must come from this server's own pages and carry JSON as JSON: a
browser sends ``text/plain`` bodies cross-site without asking first, so a body of any other type
is refused rather than read. ``docs/security.md`` explains the rules to operators.
"""

from __future__ import annotations

import msgspec
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from better_ccflare.proxy import LOCAL_ANSWER_PATHS

from ._trusted_hosts import TrustedHosts

__all__ = ["Dispatcher"]

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON = b"application/json"


class Dispatcher:
    """Refuses requests from outside, routes ``/v1/*`` (and Claude Code's telemetry paths) to
    ``proxy``, all else to ``app``."""

    __slots__ = ("_app", "_hosts", "_proxy")

    def __init__(self, *, proxy: ASGIApp, app: ASGIApp, hosts: TrustedHosts) -> None:
        self._proxy = proxy
        self._app = app
        self._hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            host: bytes | None = None
            origin: bytes | None = None
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value
                elif name == b"origin":
                    origin = value
            if host is not None and not self._hosts.allows_host(host):
                await _refuse(send, path, 403, _foreign_host_message(host))
                return
            if path.startswith("/v1/") or path in LOCAL_ANSWER_PATHS:
                # SDKs and Claude Code send no Origin; a browser does, and a page from another
                # site must not spend the pool (a keyless install would serve it).
                if origin is not None and not self._hosts.allows_origin(origin, host):
                    await _refuse(send, path, 403, _foreign_origin_message(origin))
                    return
                await self._proxy(scope, receive, send)
                return
            if path.startswith("/api/") and scope["method"] in _STATE_CHANGING:
                refusal = self._cross_site_refusal(scope, host)
                if refusal is not None:
                    await _refuse(send, path, *refusal)
                    return
        await self._app(scope, receive, send)

    def _cross_site_refusal(self, scope: Scope, host: bytes | None) -> tuple[int, str] | None:
        """Why a state-changing ``/api`` call is refused (status, message), or ``None``."""
        origin = content_type = length = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if origin is not None and not self._hosts.allows_origin(origin, host):
            return 403, _foreign_origin_message(origin)
        has_body = chunked or (length is not None and length.strip() != b"0")
        if has_body and (content_type or b"").split(b";")[0].strip().lower() != _JSON:
            shown = _shown(content_type) if content_type else "none"
            return 415, f"The request body must be JSON sent as application/json (got {shown})."
        return None


def _shown(value: bytes) -> str:
    """A client-sent header value, shortened, for an error message."""
    text = value.decode("latin-1")
    return text if len(text) <= 100 else text[:100] + "..."


def _foreign_origin_message(origin: bytes) -> str:
    return (
        f"Calls from the page at {_shown(origin)} are not accepted here; use the dashboard this "
        "server serves, the CLI, an SDK or a script, or list the page's host name in "
        "BETTER_CCFLARE_ALLOWED_HOSTS; see docs/security.md."
    )


def _foreign_host_message(host: bytes) -> str:
    return (
        f"This server does not answer to the host name {_shown(host)!r}. If that name is "
        "meant to reach it, add it to BETTER_CCFLARE_ALLOWED_HOSTS (comma-separated; '*' "
        "allows any, for a reverse proxy that sets Host); see docs/security.md."
    )


async def _refuse(send: Send, path: str, status: int, message: str) -> None:
    """Answer in the shape the path's clients read: Anthropic's for the proxy, the management
    API's ``{"error": ...}`` elsewhere."""
    if path.startswith("/v1/"):
        kind = "permission_error" if status == 403 else "invalid_request_error"
        body = msgspec.json.encode({"type": "error", "error": {"type": kind, "message": message}})
    else:
        body = msgspec.json.encode({"error": message})
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(end)
