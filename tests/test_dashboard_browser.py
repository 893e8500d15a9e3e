"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright, against the
real service under uvicorn with a fake Anthropic upstream, all on loopback.

Screenshots of every page, light and dark, at 1400 and 390 px, go to
``tests/.artifacts/screenshots`` (gitignored; ``BETTER_CCFLARE_SCREENSHOTS`` names another
directory) for a person to look at.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from playwright.async_api import (
    ConsoleMessage,
    Error,
    Locator,
    Page,
    async_playwright,
    expect,
)

from better_ccflare.core import (
    Account,
    ApiKey,
    ApiKeyRole,
    Credentials,
    ProviderKind,
    RateLimitState,
    RequestRecord,
    UsageSnapshot,
    UsageWindow,
)
from better_ccflare.logger import LogBus, LogBusHandler
from better_ccflare.proxy import generate_api_key, hash_api_key
from better_ccflare.server import Service

from .support.chromium import CHROMIUM_ARGS, ensure_chromium
from .support.fake_upstream import FakeUpstream, RecordedRequest, Reply
from .support.messages import MODEL, message_json
from .support.plugin import PLUGIN_TYPE, install_plugin
from .support.service import console_account, running_proxy

SCREENSHOTS = Path(
    os.environ.get("BETTER_CCFLARE_SCREENSHOTS")
    or Path(__file__).parent / ".artifacts" / "screenshots"
)
PAGES = (
    "overview",
    "requests",
    "accounts",
    "usage",
    "analytics",
    "agents",
    "api-keys",
    "logs",
    "settings",
)

Scheme = Literal["light", "dark"]


@dataclass
class Dashboard:
    url: str
    service: Service
    upstream: FakeUpstream
    page: Page
    console_errors: list[str] = field(default_factory=list[str])

    def path(self, name: str) -> str:
        return f"{self.url}/" if name == "overview" else f"{self.url}/{name}"

    async def open(self, name: str) -> None:
        """Load a page and wait until its module has drawn the data."""
        await self.page.goto(self.path(name))
        await self.page.wait_for_selector("body[data-ready=true]", timeout=10_000)

    async def scheme(self) -> str:
        """The theme the page shows: ``light`` or ``dark``."""
        return await self.page.evaluate("document.documentElement.dataset.theme")

    async def screenshot(self, name: str) -> None:
        await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
        await self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)

    async def proxy_message(self, text: str = "Hi", *, status: int = 200) -> httpx2.Response:
        """Send one Messages API request through the proxy, answered by the fake upstream."""
        reply = (
            Reply.json(message_json(f"Answer to: {text}"))
            if status == 200
            else Reply.json(
                {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
                status=status,
            )
        )
        self.upstream.enqueue(reply)
        async with httpx2.AsyncClient() as client:
            return await client.post(
                f"{self.url}/v1/messages",
                json={
                    "model": MODEL,
                    "max_tokens": 100,
                    "system": "You are terse.",
                    "messages": [{"role": "user", "content": text}],
                },
                headers={"anthropic-version": "2023-06-01", "x-api-key": "client-key"},
                timeout=10,
            )

    async def api(self, path: str, **headers: str) -> Any:
        async with httpx2.AsyncClient() as client:
            response = await client.get(f"{self.url}{path}", headers=headers, timeout=10)
            response.raise_for_status()
            return response.json()


async def _wait_for_requests(service: Service, count: int) -> None:
    """The proxy writes request rows in the background; wait until ``count`` are stored."""
    for _ in range(200):
        if len(await service.store.requests.list_recent(count)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} request rows were not stored within 10 s")


@pytest.fixture
async def dashboard(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncGenerator[Dashboard]:
    scheme: Scheme = getattr(request, "param", "light")
    # Claude Code's agent files: the test's own (tmp_path/home/.claude/agents), read on first use.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    chromium = ensure_chromium()
    bus = LogBus()
    handler = LogBusHandler(bus)
    app_logger = logging.getLogger("better_ccflare")
    level = app_logger.level
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("primary", upstream), log_bus=bus) as (
            service,
            url,
        ),
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=list(CHROMIUM_ARGS)
        )
        try:
            context = await browser.new_context(
                color_scheme=scheme, viewport={"width": 1360, "height": 900}
            )
            page = await context.new_page()
            board = Dashboard(url=url, service=service, upstream=upstream, page=page)

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    board.console_errors.append(f"{message.text} ({message.location})")

            page.on("console", on_console)
            page.on("pageerror", lambda exc: board.console_errors.append(f"uncaught: {exc}"))
            yield board
            await context.close()
        finally:
            await browser.close()
            app_logger.removeHandler(handler)
            app_logger.setLevel(level)


@pytest.mark.parametrize("dashboard", ["light", "dark"], indirect=True)
async def test_every_page_loads_without_console_errors(dashboard: Dashboard) -> None:
    await dashboard.proxy_message("What is 2+2?")
    await dashboard.proxy_message("Break", status=400)
    await _wait_for_requests(dashboard.service, 2)
    scheme = await dashboard.scheme()
    for name in PAGES:
        await dashboard.open(name)
        await expect(dashboard.page.locator("nav a[aria-current=page]")).to_have_count(1)
        await dashboard.screenshot(f"{scheme}-{name}")
    assert dashboard.console_errors == []


async def test_dashboard_pages_carry_the_security_headers(dashboard: Dashboard) -> None:
    response = await dashboard.page.goto(dashboard.path("accounts"))
    assert response is not None
    headers = await response.all_headers()
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


async def test_an_account_is_added_through_the_form(dashboard: Dashboard) -> None:
    page = dashboard.page
    await dashboard.open("accounts")
    await page.click("#add-account-button")
    form = page.locator("#add-account-form")
    await form.locator("select[name=type]").select_option("claude-console-api")
    await expect(form.locator("input[name=apiKey]")).to_be_visible()
    await expect(form.locator("input[name=projectId]")).to_be_hidden()
    await form.locator("input[name=name]").fill("backup key")
    await form.locator("input[name=priority]").fill("5")
    await form.locator("input[name=apiKey]").fill("sk-ant-api03-browser-test")
    await form.locator("input[name=customEndpoint]").fill(dashboard.upstream.url)
    await dashboard.screenshot("accounts-add-form")
    await form.locator("button[type=submit]").click()

    card = page.locator("tr.account[data-account-name='backup key']")
    await expect(card).to_be_visible()
    await expect(card).to_contain_text("Anthropic Console")
    await expect(card).to_contain_text("Priority 5")
    listed = {a["name"]: a for a in await dashboard.api("/api/accounts")}
    assert listed["backup key"]["provider"] == "claude-console-api"
    assert listed["backup key"]["customEndpoint"] == dashboard.upstream.url
    assert listed["backup key"]["priority"] == 5
    assert "sk-ant-api03-browser-test" not in await page.content()
    await dashboard.screenshot("accounts-added")
    assert dashboard.console_errors == []


@pytest.fixture
def plugin_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, monkeypatch)


async def test_a_plugin_account_is_added_through_the_form_it_declares(
    plugin_installed: None, dashboard: Dashboard
) -> None:
    """The form offers the installed plugin's type and asks for exactly its declared fields."""
    page = dashboard.page
    await dashboard.open("accounts")
    await page.click("#add-account-button")
    form = page.locator("#add-account-form")
    await expect(form.locator(f"select[name=type] option[value={PLUGIN_TYPE}]")).to_contain_text(
        "Test gateway · plugin better-ccflare-provider-test-gateway"
    )
    await form.locator("select[name=type]").select_option(PLUGIN_TYPE)
    await expect(form.locator("input[name=tenant]")).to_be_visible()
    await expect(form.locator("input[name=apiKey]")).to_have_attribute("type", "password")
    await expect(form.locator("input[name=projectId]")).to_be_hidden()
    await form.locator("input[name=name]").fill("gateway")
    await form.locator("input[name=apiKey]").fill("gw-browser-key")
    await form.locator("input[name=customEndpoint]").fill(dashboard.upstream.url)
    await form.locator("button[type=submit]").click()
    await expect(form.locator("[data-role=error]")).to_contain_text("Tenant")
    await form.locator("input[name=tenant]").fill("acme")
    await form.locator("button[type=submit]").click()

    await expect(page.locator("tr.account[data-account-name=gateway]")).to_be_visible()
    [added] = [a for a in await dashboard.service.store.accounts.list_all() if a.name == "gateway"]
    assert added.provider == PLUGIN_TYPE
    assert added.credentials.api_key == "gw-browser-key"
    assert dashboard.console_errors == []


async def test_a_rejected_account_shows_the_servers_reason_in_the_form(
    dashboard: Dashboard,
) -> None:
    page = dashboard.page
    await dashboard.open("accounts")
    await page.click("#add-account-button")
    form = page.locator("#add-account-form")
    await form.locator("select[name=type]").select_option("claude-console-api")
    await form.locator("input[name=name]").fill("primary")
    await form.locator("input[name=apiKey]").fill("sk-ant-api03-again")
    await form.locator("input[name=customEndpoint]").fill(dashboard.upstream.url)
    await form.locator("button[type=submit]").click()
    error = form.locator("[data-role=error]")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("primary")
    await expect(page.locator("#add-account-dialog")).to_have_attribute("open", "")


async def menu_action(row: Locator, name: str) -> None:
    """Click an account's action in its "More" menu."""
    await row.locator("summary").click()
    await row.get_by_role("button", name=name, exact=True).click()


async def test_account_actions_from_the_table_change_the_pool(dashboard: Dashboard) -> None:
    """Pause, resume, rename, priority, mappings and delete, each through its button."""
    page, service = dashboard.page, dashboard.service
    await dashboard.open("accounts")
    card = page.locator("tr.account[data-account-name='primary']")

    await card.get_by_role("button", name="Pause", exact=True).click()
    await expect(card.get_by_role("button", name="Resume", exact=True)).to_be_visible()
    paused = service.pool.get("primary")
    assert paused is not None
    assert paused.paused
    await card.get_by_role("button", name="Resume", exact=True).click()
    await expect(card.get_by_role("button", name="Pause", exact=True)).to_be_visible()

    dialog = page.locator("#edit-dialog")
    await menu_action(card, "Priority")
    await dialog.locator("input[name=priority]").fill("7")
    await dialog.locator("[data-role=submit]").click()
    await expect(card).to_contain_text("Priority 7")

    await menu_action(card, "Model mappings")
    await dialog.locator("textarea[name=modelMappings]").fill("opus = claude-opus-5")
    await dialog.locator("[data-role=submit]").click()
    await expect(dialog).not_to_have_attribute("open", "")

    await menu_action(card, "Rename")
    await dialog.locator("input[name=name]").fill("main")
    await dialog.locator("[data-role=submit]").click()
    renamed = page.locator("tr.account[data-account-name='main']")
    await expect(renamed).to_be_visible()
    stored = await service.store.accounts.get("primary")
    assert stored is not None
    assert (stored.name, stored.priority) == ("main", 7)
    assert stored.model_mappings == {"opus": ("claude-opus-5",)}

    await menu_action(renamed, "Delete…")
    await dialog.locator("input[name=confirm]").fill("mian")
    await dialog.locator("[data-role=submit]").click()
    await expect(dialog.locator("[data-role=error]")).to_be_visible()
    assert await service.store.accounts.get("primary") is not None
    await dialog.locator("input[name=confirm]").fill("main")
    await dialog.locator("[data-role=submit]").click()
    await expect(renamed).to_have_count(0)
    assert await service.store.accounts.get("primary") is None
    assert dashboard.console_errors == []


async def test_an_account_whose_credentials_are_refused_is_flagged_until_reset(
    dashboard: Dashboard,
) -> None:
    page = dashboard.page
    assert (await dashboard.proxy_message(status=401)).status_code == 502
    await dashboard.open("accounts")
    card = page.locator("tr.account[data-account-name='primary']")

    await expect(card.locator(".badge.bad")).to_contain_text("Credentials rejected")
    await expect(card.get_by_role("alert")).to_contain_text("refused this account's credentials")
    await dashboard.screenshot("accounts-credentials-rejected")
    await card.get_by_role("button", name="Reset rate limit", exact=True).click()

    await expect(card.locator(".badge.ok")).to_have_text("Ready")
    assert dashboard.console_errors == []


async def test_a_proxied_request_appears_live_on_the_requests_page(dashboard: Dashboard) -> None:
    page = dashboard.page
    await dashboard.open("requests")
    await page.wait_for_selector("body[data-live=live]", timeout=10_000)
    await expect(page.locator("#requests-table tbody tr.empty")).to_be_visible()

    response = await dashboard.proxy_message("Tell me a joke")
    assert response.status_code == 200

    row = page.locator("#requests-table tbody tr[data-id]")
    await expect(row).to_have_count(1, timeout=10_000)
    await expect(row).to_contain_text(MODEL)
    await expect(row).to_contain_text("primary")
    await expect(row).to_contain_text("200")
    await dashboard.screenshot("requests-live")

    # The payload is written in the background, just after the row is announced.
    request_id = await row.get_attribute("data-id")
    for _ in range(100):
        try:
            await dashboard.api(f"/api/requests/payload/{request_id}")
            break
        except httpx2.HTTPStatusError:
            await asyncio.sleep(0.05)
    await row.click()
    dialog = page.locator("#request-dialog")
    conversation = dialog.locator("[data-panel=conversation]")
    await expect(conversation).to_contain_text("Tell me a joke")
    await expect(conversation).to_contain_text("Answer to: Tell me a joke")
    await expect(conversation).to_contain_text("You are terse.")
    await dashboard.screenshot("requests-detail")
    await dialog.locator("[data-tab=request]").click()
    await expect(dialog.locator("[data-panel=request]")).to_contain_text('"max_tokens": 100')
    await dialog.locator("[data-tab=response]").click()
    await expect(dialog.locator("[data-panel=response]")).to_contain_text("end_turn")
    assert dashboard.console_errors == []


async def test_the_overview_numbers_match_the_analytics_of_its_one_period(
    dashboard: Dashboard,
) -> None:
    for text in ("one", "two", "three"):
        await dashboard.proxy_message(text)
    await dashboard.proxy_message("broken", status=400)
    await _wait_for_requests(dashboard.service, 4)
    page = dashboard.page
    await dashboard.open("overview")
    for period, label in (("24h", "Last 24 hours"), ("7d", "Last 7 days")):
        await page.select_option("#overview-range", period)
        # The cards, both charts and the page's subtitle all name the one period.
        for heading in await page.locator("[data-role=period]").all():
            await expect(heading).to_have_text(label)
        await expect(page.locator("#period-label")).to_have_text(f"the {label.lower()}")
        totals = (await dashboard.api(f"/api/analytics?range={period}"))["totals"]
        assert totals["requests"] == 4
        cards = page.locator("[data-stat]")
        assert await cards.count() == 6
        for card in await cards.all():
            name = await card.get_attribute("data-stat")
            assert name is not None
            await expect(card).to_have_attribute("data-value", _js_number(totals[name]))
            shown = await page.evaluate(
                "([name, value]) => import('/dashboard/assets/pages/overview.js')"
                ".then((m) => m.formatStat(name, value))",
                [name, totals[name]],
            )
            await expect(card).to_have_text(shown)
    await expect(page.locator("[data-stat=requests]")).to_have_text("4")
    await expect(page.locator("[data-stat=successRate]")).to_have_text("75%")
    # Replies that were not streamed have no output speed, rather than thousands of tokens/s.
    await expect(page.locator("[data-stat=avgTokensPerSecond]")).to_have_text("–")  # noqa: RUF001
    await expect(page.locator("[data-pool=configured]")).to_have_text("1")
    await expect(page.locator("[data-pool=routable]")).to_have_text("1")
    await expect(page.locator("#recent-errors tbody")).to_contain_text("400")
    # The period is remembered.
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.locator("#overview-range")).to_have_value("7d")
    assert dashboard.console_errors == []


async def test_requests_no_account_served_are_named_in_words(dashboard: Dashboard) -> None:
    await dashboard.service.pool.reload()
    primary = dashboard.service.pool.get("primary")
    assert primary is not None
    async with httpx2.AsyncClient() as client:
        paused = await client.post(f"{dashboard.url}/api/accounts/{primary.id}/pause", timeout=10)
        assert paused.is_success
    assert (await dashboard.proxy_message("nobody")).status_code in (429, 503)
    await _wait_for_requests(dashboard.service, 1)
    await dashboard.open("overview")
    accounts = dashboard.page.locator("#account-stats tbody")
    await expect(accounts).to_contain_text("no account available")
    await expect(accounts).not_to_contain_text("no_account")
    await dashboard.open("analytics")
    await expect(dashboard.page.locator("#account-performance tbody")).to_contain_text(
        "no account available"
    )
    assert dashboard.console_errors == []


async def test_strategy_descriptions_come_from_the_api(dashboard: Dashboard) -> None:
    strategies = await dashboard.api("/api/strategies")
    await dashboard.open("settings")
    for strategy in strategies:
        option = dashboard.page.locator(f"#strategy-options [data-strategy='{strategy['name']}']")
        await expect(option.locator(".desc")).to_have_text(strategy["description"])
    least_used = dashboard.page.locator("#strategy-options [data-strategy=least-used] .desc")
    await expect(least_used).to_contain_text("lowest priority number")
    await expect(least_used).not_to_contain_text("fewest requests")
    assert dashboard.console_errors == []


async def test_a_request_without_a_price_shows_unknown_not_zero(dashboard: Dashboard) -> None:
    dashboard.upstream.enqueue(Reply.json({**message_json(), "model": "house-model"}))
    async with httpx2.AsyncClient() as client:
        response = await client.post(
            f"{dashboard.url}/v1/messages",
            json={"model": "house-model", "max_tokens": 8, "messages": []},
            timeout=10,
        )
    assert response.status_code == 200
    await _wait_for_requests(dashboard.service, 1)

    await dashboard.open("requests")
    row = dashboard.page.locator("#requests-table tbody tr[data-id]")
    await expect(row).to_contain_text("house-model")
    await expect(row).to_contain_text("unknown")
    await dashboard.open("overview")
    await expect(dashboard.page.locator("[data-stat-sub=unpricedRequests]")).to_have_text(
        "+ 1 request with unknown price"
    )
    await dashboard.open("analytics")
    await expect(dashboard.page.locator("[data-total-sub=unpricedRequests]")).to_have_text(
        "+ 1 request with unknown price"
    )
    assert dashboard.console_errors == []


def _js_number(value: float) -> str:
    """How JavaScript's String() writes a JSON number (1.0 → "1")."""
    return str(int(value)) if float(value).is_integer() else repr(value)


async def test_with_api_keys_the_dashboard_asks_for_an_admin_key(dashboard: Dashboard) -> None:
    key = generate_api_key()
    await dashboard.service.store.api_keys.add(
        ApiKey(
            id="k1",
            name="ops",
            hashed_key=hash_api_key(key),
            prefix_last_8=key[-8:],
            created_at_ms=0,
            role=ApiKeyRole.ADMIN,
        )
    )
    await dashboard.service.auth.refresh()
    page = dashboard.page
    await page.goto(dashboard.path("settings"))
    dialog = page.locator("#api-key-dialog")
    await expect(dialog).to_have_attribute("open", "")
    await dashboard.screenshot("api-key-prompt")
    await dialog.locator("input[name=apiKey]").fill(key)
    await dialog.locator("button[type=submit]").click()
    await page.wait_for_selector("body[data-ready=true]", timeout=10_000)
    await expect(page.locator("#strategy-options input:checked")).to_have_value("session")
    # The stored key is sent from then on: other pages load without asking again.
    await dashboard.open("accounts")
    await expect(dialog).not_to_have_attribute("open", re.compile(".*"))
    assert await page.evaluate("localStorage.getItem('better-ccflare.apiKey')") == key


async def test_a_new_proxy_key_is_shown_once(dashboard: Dashboard) -> None:
    page = dashboard.page
    await dashboard.open("api-keys")
    await page.locator("#new-key-form input[name=name]").fill("laptop")
    await page.locator("#new-key-form select[name=role]").select_option("admin")
    await page.locator("#new-key-form button[type=submit]").click()
    secret = page.locator("#new-key-value")
    await expect(secret).to_have_text(re.compile(r"^btr-[A-Za-z0-9]{32}$"))
    key = await secret.text_content()
    assert key is not None
    await expect(page.locator("#keys-table tbody tr[data-key-name=laptop]")).to_contain_text(
        key[-8:]
    )
    await dashboard.screenshot("api-keys-new")
    await page.click("#dismiss-new-key")
    await expect(secret).to_have_text("")
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    assert key not in await page.content()


async def test_an_agents_model_is_set_and_cleared_from_the_agents_page(
    dashboard: Dashboard, tmp_path: Path
) -> None:
    agents = tmp_path / "home" / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "reviewer.md").write_text(
        "---\nname: reviewer\ndescription: Reviews diffs\nmodel: sonnet\n---\nReview.\n"
    )
    page = dashboard.page
    await dashboard.open("agents")
    reviewer = page.locator("#agents-table tbody tr[data-agent=reviewer]")
    await expect(reviewer).to_contain_text("Reviews diffs")
    await expect(reviewer.locator("[data-role=preferred]")).to_have_text("as the client asks")
    await reviewer.locator("input[name=model]").fill("claude-opus-5")
    await reviewer.get_by_role("button", name="Set").click()
    await expect(reviewer.locator("[data-role=preferred]")).to_have_text("claude-opus-5")
    stored = await dashboard.service.store.agent_preferences.get("reviewer")
    assert stored is not None
    assert stored.model == "claude-opus-5"
    await dashboard.screenshot("agents-set")
    await reviewer.get_by_role("button", name="Clear").click()
    await expect(reviewer.locator("[data-role=preferred]")).to_have_text("as the client asks")
    assert await dashboard.service.store.agent_preferences.get("reviewer") is None
    assert dashboard.console_errors == []


async def test_the_browser_refuses_to_frame_the_dashboard(dashboard: Dashboard) -> None:
    page = dashboard.page
    await dashboard.open("overview")
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text))
    await page.set_content(f'<iframe src="{dashboard.url}/"></iframe>')
    frame_ok = True
    try:
        await page.frames[1].wait_for_selector("body[data-ready=true]", timeout=2_000)
    except (Error, IndexError):
        frame_ok = False
    assert not frame_ok
    dashboard.console_errors.clear()


def oauth_account(name: str, *, requires_reauth: bool = False) -> Account:
    return Account(
        id=name,
        name=name,
        provider=ProviderKind.CLAUDE_OAUTH.value,
        created_at_ms=0,
        priority=1,
        requires_reauth=requires_reauth,
        credentials=Credentials(
            access_token="at-old", refresh_token="rt-old", expires_at_ms=int(time.time() * 1000)
        ),
    )


def token_server(request: RecordedRequest) -> Reply:
    """Anthropic's OAuth token endpoint, accepting only the code ``the-code``."""
    if request.json()["code"] != "the-code":
        return Reply.json({"error": "invalid_grant", "error_description": "bad code"}, status=400)
    return Reply.json({"access_token": "at-new", "refresh_token": "rt-new", "expires_in": 28800})


async def paste_code(dashboard: Dashboard, code: str) -> None:
    """Read the state from the authorize link, as the person's browser would carry it."""
    link = await dashboard.page.locator("#oauth-link").get_attribute("href")
    assert link is not None
    assert link.startswith("https://claude.ai/oauth/authorize?")
    state = parse_qs(urlsplit(link).query)["state"][0]
    await dashboard.page.locator("#oauth-code").fill(f"{code}#{state}")
    await dashboard.page.locator("#oauth-form button[type=submit]").click()


@pytest.mark.parametrize("dashboard", ["light", "dark"], indirect=True)
async def test_accounts_show_usage_bars_and_a_clear_relogin_state(
    dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = dashboard.service
    await service.store.accounts.add(oauth_account("max-ok"))
    await service.store.accounts.add(oauth_account("max-expired", requires_reauth=True))
    await service.pool.reload()
    now = int(time.time() * 1000)
    service.usage.update(
        "max-ok",
        [
            UsageWindow(key="five_hour", utilization=42, resets_at_ms=now + 2 * 3_600_000),
            UsageWindow(key="seven_day", utilization=93, resets_at_ms=now + 3 * 86_400_000),
        ],
    )
    async with FakeUpstream() as tokens:
        tokens.set_default(token_server)
        monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", f"{tokens.url}/v1/oauth/token")
        page = dashboard.page
        await dashboard.open("accounts")
        healthy = page.locator("tr.account[data-account-name=max-ok]")
        await expect(healthy.locator("[data-window=five_hour] [role=meter]")).to_have_attribute(
            "aria-valuenow", "42"
        )
        await expect(healthy.locator("[data-window=seven_day]")).to_contain_text("93%")
        expired = page.locator("tr.account[data-account-name=max-expired]")
        await expect(expired.locator("[role=alert]")).to_contain_text("Needs re-login")
        scheme = await dashboard.scheme()
        await dashboard.screenshot(f"{scheme}-accounts-usage-and-relogin")

        await expired.get_by_role("button", name="Log in again").click()
        await expect(page.locator("#oauth-dialog")).to_have_attribute("open", "")
        await dashboard.screenshot(f"{scheme}-accounts-oauth-dialog")
        await paste_code(dashboard, "the-code")
        await expect(expired.locator("[role=alert]")).to_have_count(0)
        await expect(expired).to_contain_text("Ready")
    refreshed = await service.store.accounts.get("max-expired")
    assert refreshed is not None
    assert not refreshed.requires_reauth
    assert refreshed.credentials.refresh_token == "rt-new"
    assert dashboard.console_errors == []


async def test_a_claude_subscription_is_added_with_the_browser_login(
    dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeUpstream() as tokens:
        tokens.set_default(token_server)
        monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", f"{tokens.url}/v1/oauth/token")
        page = dashboard.page
        await dashboard.open("accounts")
        await page.click("#add-account-button")
        form = page.locator("#add-account-form")
        await form.locator("select[name=type]").select_option("anthropic")
        await expect(form.locator("input[name=apiKey]")).to_be_hidden()
        await form.locator("input[name=name]").fill("max-1")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#oauth-dialog")).to_have_attribute("open", "")

        await paste_code(dashboard, "wrong-code")
        error = page.locator("#oauth-form [data-role=error]")
        await expect(error).to_contain_text("bad code")

        await form.page.click("#oauth-dialog [data-action=close]")
        await page.click("#add-account-button")
        await form.locator("select[name=type]").select_option("anthropic")
        await form.locator("input[name=name]").fill("max-1")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#oauth-dialog")).to_have_attribute("open", "")
        await paste_code(dashboard, "the-code")
        card = page.locator("tr.account[data-account-name=max-1]")
        await expect(card).to_contain_text("Claude subscription")
    [added] = [a for a in await dashboard.service.store.accounts.list_all() if a.name == "max-1"]
    assert added.provider == ProviderKind.CLAUDE_OAUTH.value
    assert added.credentials.refresh_token == "rt-new"


async def test_log_lines_stream_into_the_logs_page(dashboard: Dashboard) -> None:
    log = logging.getLogger("better_ccflare.browser_test")
    await dashboard.open("logs")
    view = dashboard.page.locator("#log-view")
    await dashboard.page.wait_for_selector("#live-status[data-state=live]")
    # The server subscribes to the log just after it answers, so a line written in that instant
    # is not streamed; write until one arrives.
    for attempt in range(50):
        log.warning("written while watching (%d)", attempt)
        if await view.get_by_text("written while watching").count():
            break
        await asyncio.sleep(0.1)
    await expect(view.locator(".log-level.WARN").first).to_be_visible()
    await expect(view).to_contain_text("better_ccflare.browser_test")
    await dashboard.screenshot("logs-live")
    assert dashboard.console_errors == []


async def test_an_account_failing_its_requests_is_flagged_instead_of_ready(
    dashboard: Dashboard,
) -> None:
    for _ in range(3):
        await dashboard.proxy_message("Break", status=400)
    await _wait_for_requests(dashboard.service, 3)
    await dashboard.open("accounts")
    row = dashboard.page.locator("tr.account[data-account-name=primary]")
    await expect(row.locator(".badge.warn")).to_have_text("Failing requests")
    await expect(row).to_contain_text("Only 0% of its 3 requests in the last hour succeeded.")
    await expect(row.locator(".badge.ok")).to_have_count(0)
    await dashboard.screenshot("accounts-failing")
    assert dashboard.console_errors == []


async def test_accounts_offer_only_the_actions_that_apply(dashboard: Dashboard) -> None:
    service = dashboard.service
    await service.store.accounts.add(oauth_account("max"))
    await service.pool.reload()
    page = dashboard.page
    await dashboard.open("accounts")
    api_key_row = page.locator("tr.account[data-account-name=primary]")
    oauth_row = page.locator("tr.account[data-account-name=max]")
    # Nothing is limited, so there is no limit to reset.
    await expect(page.get_by_role("button", name="Reset rate limit")).to_have_count(0)
    await api_key_row.locator("summary").click()
    await expect(api_key_row.get_by_role("button", name="Rename")).to_be_visible()
    await expect(api_key_row.get_by_text("Auto-refresh")).to_have_count(0)
    await expect(api_key_row.get_by_text("Auto-fallback")).to_have_count(0)
    await page.keyboard.press("Escape")
    await expect(api_key_row.get_by_role("button", name="Rename")).to_be_hidden()
    await oauth_row.locator("summary").click()
    toggle = oauth_row.get_by_label("Auto-refresh")
    await expect(toggle).to_be_visible()
    await toggle.check()
    await expect(page.locator(".toast")).to_contain_text("Auto-refresh on for max.")
    stored = await service.store.accounts.get("max")
    assert stored is not None
    assert stored.auto_refresh_enabled
    await dashboard.screenshot("accounts-menu")

    # A rate-limited account gets the reset, and only that one.
    until = int(time.time() * 1000) + 3_600_000
    await service.store.accounts.update_rate_limit(
        "max", RateLimitState(limited_until_ms=until, status="rate_limited")
    )
    await service.pool.reload()
    await page.keyboard.press("Escape")
    await dashboard.open("accounts")
    await expect(oauth_row.get_by_role("button", name="Reset rate limit")).to_be_visible()
    await expect(api_key_row.get_by_role("button", name="Reset rate limit")).to_have_count(0)
    await oauth_row.get_by_role("button", name="Reset rate limit").click()
    await expect(oauth_row.get_by_role("button", name="Reset rate limit")).to_have_count(0)
    assert dashboard.console_errors == []


async def test_usage_history_charts_each_accounts_windows(dashboard: Dashboard) -> None:
    service = dashboard.service
    await service.store.accounts.add(oauth_account("max"))
    await service.pool.reload()
    now = int(time.time() * 1000)
    for minutes_ago, five_hour, seven_day in ((90, 10.0, 40.0), (60, 35.0, 42.0), (5, 80.0, 47.0)):
        await service.store.usage.record(
            UsageSnapshot(
                account_id="max",
                timestamp_ms=now - minutes_ago * 60_000,
                windows=(
                    UsageWindow(
                        key="five_hour", utilization=five_hour, resets_at_ms=now + 3_600_000
                    ),
                    UsageWindow(key="seven_day", utilization=seven_day, resets_at_ms=None),
                ),
            )
        )
    service.usage.update(
        "max", [UsageWindow(key="five_hour", utilization=80, resets_at_ms=now + 3_600_000)]
    )
    page = dashboard.page
    await dashboard.open("usage")
    panel = page.locator("section[data-account=max]")
    await expect(panel.locator("canvas")).to_have_count(1)
    await expect(panel).to_contain_text("6 readings")
    await expect(panel.locator("[data-window=five_hour]")).to_contain_text("80%")
    legend = await page.evaluate(
        "Chart.getChart(document.querySelector('section[data-account=max] canvas'))"
        ".data.datasets.map((d) => [d.label, d.data.map((p) => p.y)])"
    )
    assert legend == [["5-hour", [10, 35, 80]], ["7-day", [40, 42, 47]]]
    # The API-key account has no readings, and says so rather than drawing an empty chart.
    await expect(page.locator("section[data-account=primary]")).to_contain_text("No usage readings")
    await page.select_option("#usage-account", "max")
    await expect(page.locator("section[data-account=primary]")).to_have_count(0)
    assert "account=max" in page.url
    await dashboard.screenshot("usage-history")
    assert dashboard.console_errors == []


def stored_request(index: int, now_ms: int, model: str = MODEL) -> RequestRecord:
    """A request from the history, ``index`` minutes before ``now_ms``."""
    return RequestRecord(
        id=f"req-{index:04d}",
        timestamp_ms=now_ms - index * 60_000,
        method="POST",
        path="/v1/messages",
        account_id="primary",
        status_code=200,
        success=True,
        response_time_ms=800,
        model=model,
    )


async def test_requests_are_paged_and_searched_on_the_server(dashboard: Dashboard) -> None:
    service = dashboard.service
    now = int(time.time() * 1000)
    for index in range(120):
        service.store.requests.record(stored_request(index, now))
    # Three days old, far past the first page: only a search over the whole history finds it.
    service.store.requests.record(stored_request(4320, now, model="rare-model-x"))
    await service.store.flush()
    page = dashboard.page
    await dashboard.open("requests")
    rows = page.locator("#requests-table tbody tr[data-id]")
    await expect(rows).to_have_count(50)
    await expect(rows.first).to_have_attribute("data-id", "req-0000")
    await expect(page.locator("#page-info")).to_contain_text("Rows 1–50")  # noqa: RUF001
    # The time column carries the date, not only the time of day.
    stamp = await page.evaluate(
        "(t) => import('/dashboard/assets/format.js').then((m) => m.fmtStamp(t))",
        now - 4320 * 60_000,
    )
    await expect(page.locator("#page-newer")).to_be_disabled()
    await page.click("#page-older")
    await expect(rows.first).to_have_attribute("data-id", "req-0050")
    await page.click("#page-older")
    await expect(rows).to_have_count(21)
    await expect(rows.last).to_have_attribute("data-id", "req-4320")
    await expect(rows.last.locator("td").first).to_have_text(stamp)
    await expect(page.locator("#page-older")).to_be_disabled()
    await page.click("#page-newer")
    await expect(rows.first).to_have_attribute("data-id", "req-0050")

    await page.fill("#request-filter", "RARE-model")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", "req-4320")
    await expect(page.locator("#page-newer")).to_be_disabled()
    await page.fill("#request-filter", "nothing like it")
    await expect(page.locator("#requests-table tbody tr.empty")).to_contain_text(
        "No request matches the search."
    )
    await page.fill("#request-filter", "")
    await expect(rows).to_have_count(50)
    assert dashboard.console_errors == []


async def test_the_theme_toggle_overrides_the_system_and_is_remembered(
    dashboard: Dashboard,
) -> None:
    page = dashboard.page
    await dashboard.open("overview")
    assert await dashboard.scheme() == "light"  # the system's preference in this context
    background = "getComputedStyle(document.body).backgroundColor"
    light = await page.evaluate(background)
    await page.select_option("#theme-select", "dark")
    assert await dashboard.scheme() == "dark"
    assert await page.evaluate(background) != light
    await dashboard.open("accounts")
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    await expect(page.locator("#theme-select")).to_have_value("dark")
    await page.emulate_media(color_scheme="dark")
    await page.select_option("#theme-select", "auto")
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    await page.emulate_media(color_scheme="light")
    await expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert await page.evaluate("localStorage.getItem('better-ccflare.theme')") is None
    assert dashboard.console_errors == []


WIDTHS = (1400, 390)


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_every_page_at_desktop_and_phone_width_in_both_themes(
    dashboard: Dashboard, theme: Scheme
) -> None:
    """The screenshots for review, and at 390 px: a menu with every section, no sideways
    scrolling, and table rows stacked into short cards rather than squeezed into tall rows."""
    service = dashboard.service
    await service.store.accounts.add(oauth_account("max"))
    await service.pool.reload()
    now = int(time.time() * 1000)
    service.usage.update(
        "max",
        [
            UsageWindow(key="five_hour", utilization=64, resets_at_ms=now + 2 * 3_600_000),
            UsageWindow(key="seven_day", utilization=91, resets_at_ms=now + 3 * 86_400_000),
        ],
    )
    for minutes_ago in (120, 60, 1):
        await service.store.usage.record(
            UsageSnapshot(
                account_id="max",
                timestamp_ms=now - minutes_ago * 60_000,
                windows=(UsageWindow(key="five_hour", utilization=64 - minutes_ago / 4),),
            )
        )
    await dashboard.proxy_message("What is 2+2? Please answer with a long explanation of it.")
    await dashboard.proxy_message("Break", status=400)
    await _wait_for_requests(service, 2)
    page = dashboard.page
    await dashboard.open("overview")
    await page.select_option("#theme-select", theme)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        for name in PAGES:
            await dashboard.open(name)
            assert await dashboard.scheme() == theme
            sideways = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert sideways <= 0, f"{name} scrolls sideways at {width} px"
            await dashboard.screenshot(f"{width}-{theme}-{name}")
            if width < 800:
                await _check_phone_layout(page, name)
    await dashboard.screenshot(f"{WIDTHS[-1]}-{theme}-menu-open")
    assert dashboard.console_errors == []


async def _check_phone_layout(page: Page, name: str) -> None:
    nav = page.locator("#nav")
    await expect(nav).to_be_hidden()
    await page.click("#nav-toggle")
    await expect(nav).to_be_visible()
    links = [await a.text_content() for a in await nav.locator("a").all()]
    assert len(links) == len(PAGES)
    for link in await nav.locator("a").all():
        await expect(link).to_be_visible()
    await page.click("#nav-toggle")
    await expect(nav).to_be_hidden()
    for table in await page.locator("main table.table").all():
        if not await table.is_visible():
            continue
        await expect(table.locator("thead")).to_be_hidden()
        for row in (await table.locator("tbody tr:not(.empty)").all())[:3]:
            for cell in await row.locator("td").all():
                # Each cell spans the card with its column's name beside the value, instead
                # of a narrow column whose text wraps into a row hundreds of pixels tall.
                box = await cell.bounding_box()
                assert box is not None
                assert 300 <= box["width"] <= 390, (name, box)
                assert box["height"] < 120, (name, await cell.inner_text(), box)
                label = await cell.evaluate("(td) => getComputedStyle(td, '::before').content")
                header = await cell.get_attribute("data-label")
                assert label == (f'"{header}"' if header else "none"), (name, label)
    await page.click("#nav-toggle")
    await expect(nav).to_be_visible()


def poll_reads(service: Service, account_id: str, **windows: tuple[float, int]) -> None:
    """The usage poller reads ``windows`` for the account: each key's (percent used, ms to
    its reset)."""
    now = int(time.time() * 1000)
    service.usage.update(
        account_id,
        [
            UsageWindow(key=k, utilization=u, resets_at_ms=now + ms)
            for k, (u, ms) in windows.items()
        ],
    )


async def test_the_overview_shows_the_pools_capacity(dashboard: Dashboard) -> None:
    service = dashboard.service
    await service.store.accounts.add(console_account("spare", dashboard.upstream, 1))
    await service.pool.reload()
    poll_reads(service, "primary", five_hour=(100, 2 * 3_600_000), seven_day=(40, 3 * 86_400_000))
    poll_reads(service, "spare", five_hour=(50, 3_600_000))
    page = dashboard.page
    await dashboard.open("overview")
    panel = page.locator("#capacity[data-ready=true]")
    await expect(panel.locator("[data-state=serving]")).to_have_text("Serving now")
    await expect(panel.locator("[data-window=five_hour] meter")).to_have_attribute("value", "75")
    await expect(panel.locator("[data-window=five_hour]")).to_contain_text("1 of 2 used up")
    await expect(panel.locator("li[data-account=primary]")).to_contain_text("window used up")
    await expect(panel.locator("li[data-account=spare]")).to_contain_text("ready")

    poll_reads(service, "spare", five_hour=(100, 5_400_000))
    await dashboard.open("overview")
    await expect(panel.locator("[data-state=windows]")).to_contain_text("Usage limit reached")
    await expect(panel.locator("[data-state=windows]")).to_contain_text("back in 1 h 30 min")
    await dashboard.screenshot(f"{await dashboard.scheme()}-overview-capacity")
    assert dashboard.console_errors == []
