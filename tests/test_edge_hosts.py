"""Who the server answers: a ``Host`` that names it, and state changes only from its own pages.

The real service under uvicorn on 127.0.0.1, real HTTP clients (httpx2, the official
``anthropic`` SDK, Debian's Chromium through Playwright) and a fake upstream. A DNS-rebinding
page reaches the server with ``Host: evil.example``; a cross-site form or ``fetch`` reaches it
with its own ``Origin`` and a ``text/plain`` body. Both must be refused before anything changes.
"""

from __future__ import annotations

from pathlib import Path

import anthropic
import httpx2
import pytest
from playwright.async_api import async_playwright, expect

from .support.chromium import CHROMIUM_ARGS, ensure_chromium
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy

SETTING = "BETTER_CCFLARE_ALLOWED_HOSTS"


def port_of(url: str) -> str:
    return url.rsplit(":", 1)[1]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/messages"),
        ("GET", "/api/accounts"),
        ("GET", "/"),
        ("GET", "/accounts"),
        ("GET", "/health"),
        ("GET", "/schema/openapi.json"),
    ],
)
async def test_a_host_that_does_not_name_the_server_is_refused_on_every_route(
    tmp_path: Path, method: str, path: str
) -> None:
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (_, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        response = await client.request(
            method,
            path,
            headers={"host": "evil.example", "anthropic-version": "2023-06-01"},
            json={"model": MODEL, "max_tokens": 5, "messages": []} if method == "POST" else None,
        )
        assert response.status_code == 403
        assert SETTING in response.text
        assert "evil.example" in response.text
        assert upstream.requests == []


async def test_a_rebound_page_cannot_repoint_an_account(tmp_path: Path) -> None:
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (service, url),
        httpx2.AsyncClient(base_url=url, headers={"host": f"evil.example:{port_of(url)}"}) as page,
    ):
        read = await page.get("/api/accounts")
        repoint = await page.post(
            "/api/accounts/a/custom-endpoint",
            json={"customEndpoint": "http://evil.example"},
            headers={"origin": f"http://evil.example:{port_of(url)}"},
        )
        assert (read.status_code, repoint.status_code) == (403, 403)
        stored = await service.store.accounts.get("a")
        assert stored is not None
        assert stored.custom_endpoint == upstream.url


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "[::1]", "dashboard.localhost"])
async def test_loopback_names_are_answered(tmp_path: Path, name: str) -> None:
    async with (
        running_proxy(tmp_path) as (_, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        with_port = await client.get("/api/accounts", headers={"host": f"{name}:{port_of(url)}"})
        without_port = await client.get("/api/accounts", headers={"host": name})
        assert (with_port.status_code, without_port.status_code) == (200, 200)


async def test_the_allowed_hosts_setting_admits_its_names_and_no_others(tmp_path: Path) -> None:
    async with (
        running_proxy(tmp_path, BETTER_CCFLARE_ALLOWED_HOSTS="proxy.example, other.example") as (
            _,
            url,
        ),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        admitted = await client.get("/api/accounts", headers={"host": "Proxy.Example:443"})
        refused = await client.get("/api/accounts", headers={"host": "third.example"})
        assert (admitted.status_code, refused.status_code) == (200, 403)


async def test_a_star_in_the_allowed_hosts_admits_any_host(tmp_path: Path) -> None:
    async with (
        running_proxy(tmp_path, BETTER_CCFLARE_ALLOWED_HOSTS="*") as (_, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        response = await client.get("/api/accounts", headers={"host": "behind-a-proxy.example"})
        assert response.status_code == 200


async def test_a_non_wildcard_bound_address_is_a_name_of_the_server(tmp_path: Path) -> None:
    async with (
        running_proxy(tmp_path, BETTER_CCFLARE_HOST="127.0.0.1") as (_, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        # 127.0.0.1 is loopback anyway; what matters is that a bound name is not refused.
        assert (await client.get("/api/accounts")).status_code == 200


async def test_a_cross_site_text_plain_post_creates_no_api_key(tmp_path: Path) -> None:
    async with (
        running_proxy(tmp_path) as (service, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        # What a page on evil.example can send without a preflight: a "simple" request.
        response = await client.post(
            "/api/api-keys",
            content=b'{"name": "attacker"}',
            headers={"content-type": "text/plain", "origin": "https://evil.example"},
        )
        assert response.status_code == 403
        assert "evil.example" in response.json()["error"]
        assert await service.store.api_keys.list_all() == []


async def test_a_text_plain_body_is_refused_even_without_an_origin(tmp_path: Path) -> None:
    async with (
        running_proxy(tmp_path) as (service, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        response = await client.post(
            "/api/api-keys",
            content=b'{"name": "attacker"}',
            headers={"content-type": "text/plain;charset=UTF-8"},
        )
        assert response.status_code == 415
        assert "application/json" in response.json()["error"]
        assert await service.store.api_keys.list_all() == []


async def test_a_foreign_origin_cannot_change_state_even_without_a_body(tmp_path: Path) -> None:
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (service, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        response = await client.post(
            "/api/accounts/a/pause", headers={"origin": "http://evil.example"}
        )
        assert response.status_code == 403
        stored = await service.store.accounts.get("a")
        assert stored is not None
        assert not stored.paused


async def test_same_origin_json_and_body_less_calls_still_change_state(tmp_path: Path) -> None:
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (service, url),
        httpx2.AsyncClient(base_url=url, headers={"origin": url}) as client,
    ):
        created = await client.post("/api/api-keys", json={"name": "ops"})
        paused = await client.post(
            "/api/accounts/a/pause", headers={"x-api-key": created.json()["data"]["apiKey"]}
        )
        assert (created.status_code, paused.status_code) == (201, 201)
        stored = await service.store.accounts.get("a")
        assert stored is not None
        assert stored.paused


async def test_the_sdk_and_scripts_work_unchanged(tmp_path: Path) -> None:
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (_, url),
        anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0) as sdk,
        httpx2.AsyncClient(base_url=url) as script,
    ):
        upstream.set_default(Reply.json(message_json("Hello")))
        message = await sdk.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
        renamed = await script.post("/api/accounts/a/rename", json={"name": "b"})
        assert message.content[0].type == "text"
        assert renamed.status_code == 201


async def test_the_dashboard_works_from_a_configured_host_name(tmp_path: Path) -> None:
    """Chromium resolves ``dash.example`` (allowed) and ``evil.example`` (not) to 127.0.0.1."""
    chromium = ensure_chromium()
    async with (
        FakeUpstream() as upstream,
        running_proxy(
            tmp_path, console_account("a", upstream), BETTER_CCFLARE_ALLOWED_HOSTS="dash.example"
        ) as (
            service,
            url,
        ),
        async_playwright() as playwright,
    ):
        rules = "--host-resolver-rules=MAP dash.example 127.0.0.1, MAP evil.example 127.0.0.1"
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=[*CHROMIUM_ARGS, rules]
        )
        try:
            page = await browser.new_page()
            rebound = await page.goto(f"http://evil.example:{port_of(url)}/accounts")
            assert rebound is not None
            assert rebound.status == 403

            await page.goto(f"http://dash.example:{port_of(url)}/accounts")
            await page.wait_for_selector("body[data-ready=true]", timeout=10_000)
            await page.click("#add-account-button")
            form = page.locator("#add-account-form")
            await form.locator("select[name=type]").select_option("claude-console-api")
            await form.locator("input[name=name]").fill("from the named host")
            await form.locator("input[name=apiKey]").fill("sk-ant-api03-named-host")
            await form.locator("button[type=submit]").click()
            card = page.locator("tr.account[data-account-name='from the named host']")
            await expect(card).to_be_visible()
        finally:
            await browser.close()
        names = {account.name for account in await service.store.accounts.list_all()}
        assert "from the named host" in names


async def test_a_browser_page_from_another_site_cannot_spend_the_pool(tmp_path: Path) -> None:
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (_, url),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        upstream.set_default(Reply.json(message_json("hi")))
        body = b'{"model": "%s", "max_tokens": 5, "messages": []}' % MODEL.encode()
        # A "simple" cross-site request: no preflight, and this install has no proxy keys.
        refused = await client.post(
            "/v1/messages",
            content=body,
            headers={"content-type": "text/plain", "origin": "https://evil.example"},
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "permission_error"
        assert "evil.example" in refused.json()["error"]["message"]
        assert upstream.requests == []
        # A page this server serves (same origin) and a client without Origin still get through.
        same_site = await client.post(
            "/v1/messages",
            content=body,
            headers={"origin": url, "content-type": "application/json"},
        )
        assert same_site.status_code == 200
        no_origin = await client.post(
            "/v1/messages", content=body, headers={"content-type": "application/json"}
        )
        assert no_origin.status_code == 200
        assert len(upstream.requests) == 2
