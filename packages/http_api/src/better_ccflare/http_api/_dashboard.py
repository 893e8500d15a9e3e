"""The web dashboard: server-rendered page shells plus plain ES modules, no build step.

Each page is a static HTML fragment (``dashboard/pages/<page>.html``) placed inside one shared
layout; the browser modules under ``dashboard/assets/`` then fill it from the management API.
Nothing secret is ever rendered into the HTML: the operator's API key lives in the browser's
``localStorage`` and the modules send it with each API call, so the pages themselves need no
authentication.
"""

from __future__ import annotations

import asyncio
import functools
import html
from pathlib import Path
from typing import Any, Final

import msgspec
from litestar import MediaType, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.handlers import HTTPRouteHandler

# Its ``PathLike`` parameter is unparameterised upstream, hence "partially unknown".
from litestar.static_files import (
    create_static_files_router,  # pyright: ignore[reportUnknownVariableType]
)
from litestar.types import ControllerRouterHandler

__all__ = ["DASHBOARD_PAGES", "DASHBOARD_SECURITY_HEADERS", "DashboardPage", "dashboard_handlers"]

_ROOT: Final = Path(__file__).parent / "dashboard"


class DashboardPage(msgspec.Struct, frozen=True):
    """One page of the dashboard: its name, navigation label, title and where it is served."""

    name: str
    """The fragment and the browser module share this name (``pages/<name>.html|.js``)."""
    label: str
    title: str
    paths: tuple[str, ...]


DASHBOARD_PAGES: Final = (
    DashboardPage("overview", "Overview", "Overview", ("/", "/dashboard")),
    DashboardPage("requests", "Requests", "Requests", ("/requests",)),
    DashboardPage("accounts", "Accounts", "Accounts", ("/accounts",)),
    DashboardPage("usage", "Usage", "Usage history", ("/usage",)),
    DashboardPage("analytics", "Analytics", "Analytics", ("/analytics",)),
    DashboardPage("agents", "Agents", "Agents", ("/agents",)),
    DashboardPage("api-keys", "API keys", "API keys", ("/api-keys",)),
    DashboardPage("logs", "Logs", "Logs", ("/logs",)),
    DashboardPage("settings", "Settings", "Settings", ("/settings",)),
)

# Scripts and styles come only from this origin (Chart.js is vendored, so no CDN is needed);
# the API is same-origin; nothing may frame the dashboard. Chart.js sizes its canvas through
# the CSSOM, which CSP allows without 'unsafe-inline'.
_CSP: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

DASHBOARD_SECURITY_HEADERS: Final = {
    "content-security-policy": _CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
"""Sent with every dashboard response, pages and assets alike."""


@functools.cache
def _render(name: str) -> str:
    """The full HTML of page ``name``: the layout with its navigation and the page fragment.

    Cached, so the files are read once per process; the handlers call it in a worker thread,
    so that first read never blocks the event loop.
    """
    page = next(p for p in DASHBOARD_PAGES if p.name == name)
    layout = (_ROOT / "layout.html").read_text(encoding="utf-8")
    body = (_ROOT / "pages" / f"{name}.html").read_text(encoding="utf-8")
    current = ' aria-current="page"'
    nav = "\n".join(
        f'<a href="{p.paths[0]}"{current if p is page else ""}>{html.escape(p.label)}</a>'
        for p in DASHBOARD_PAGES
    )
    return (
        layout.replace("{{title}}", html.escape(page.title))
        .replace("{{page}}", page.name)
        .replace("{{nav}}", nav)
        .replace("{{content}}", body)
    )


def _page_handler(page: DashboardPage) -> HTTPRouteHandler:
    @get(
        list(page.paths),
        name=f"dashboard-{page.name}",
        media_type=MediaType.HTML,
        include_in_schema=False,
        cache_control=CacheControlHeader(no_cache=True),
    )
    async def show() -> Response[str]:
        return Response(await asyncio.to_thread(_render, page.name), media_type=MediaType.HTML)

    return show


def dashboard_handlers() -> list[ControllerRouterHandler]:
    """Route handlers serving every dashboard page and its assets under ``/dashboard/assets``.

    Returns:
        One router to add to the Litestar app's ``route_handlers``. Every response it makes
        carries :data:`DASHBOARD_SECURITY_HEADERS`.
    """
    assets = create_static_files_router(
        path="/dashboard/assets",
        directories=[_ROOT / "assets"],
        name="dashboard-assets",
        # No build step means no content-hashed file names: browsers revalidate each time.
        cache_control=CacheControlHeader(no_cache=True),
    )
    router = Router(
        path="/",
        route_handlers=[*(_page_handler(p) for p in DASHBOARD_PAGES), assets],
        after_request=_secure,
        include_in_schema=False,
    )
    return [router]


def _secure(response: Response[Any]) -> Response[Any]:
    """Add the security headers (an after-request hook, so static files get them too)."""
    for name, value in DASHBOARD_SECURITY_HEADERS.items():
        response.headers[name] = value
    return response
