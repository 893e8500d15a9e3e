"""The interactive API docs at ``/schema`` in a real browser with no network but loopback.

Debian's headless Chromium, driven by Playwright, opens the docs of the real service under
uvicorn; every request the page makes to another host is refused and recorded. The docs must
render the operations from the package's own copy of Scalar, and ask nothing of the internet
(no CDN, no web fonts, no telemetry). A screenshot goes to ``tests/.artifacts/screenshots``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Route, async_playwright, expect

from .support.chromium import CHROMIUM_ARGS, ensure_chromium
from .support.service import running_proxy

SCREENSHOTS = Path(__file__).parent / ".artifacts" / "screenshots"


class OfflineDocs:
    def __init__(self, url: str, page: Page) -> None:
        self.url = url
        self.page = page
        self.refused: list[str] = []
        self.console_errors: list[str] = []

    async def only_loopback(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1" or route.request.url.startswith(
            "data:"
        ):
            await route.continue_()
        else:
            self.refused.append(route.request.url)
            await route.abort("internetdisconnected")


@pytest.fixture
async def docs(tmp_path: Path) -> AsyncGenerator[OfflineDocs]:
    chromium = ensure_chromium()
    async with running_proxy(tmp_path) as (_, url), async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=list(CHROMIUM_ARGS)
        )
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 900})
            page = await context.new_page()
            offline = OfflineDocs(url, page)
            await context.route("**/*", offline.only_loopback)
            page.on(
                "console",
                lambda m: offline.console_errors.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda exc: offline.console_errors.append(f"uncaught: {exc}"))
            yield offline
            await context.close()
        finally:
            await browser.close()


async def test_the_docs_render_every_area_offline_from_the_packaged_scalar(
    docs: OfflineDocs,
) -> None:
    page = docs.page
    response = await page.goto(f"{docs.url}/schema")
    assert response is not None
    assert response.status == 200
    # The first area's operations, drawn by Scalar from /schema/openapi.json.
    await expect(
        page.get_by_text("Liveness: 200 while the process serves, with the pool's state").first
    ).to_be_visible(timeout=20_000)
    sidebar = await page.locator("nav, aside").first.inner_text()
    for tag in ("accounts", "oauth", "api-keys", "requests", "analytics", "config", "agents"):
        assert tag in sidebar.lower(), tag
    for hosted in ("Ask AI", "Deploy API", "Generate SDK"):  # Scalar's hosted services
        await expect(page.get_by_text(hosted, exact=True)).to_have_count(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "api-docs.png")
    assert docs.refused == []
    assert docs.console_errors == []
