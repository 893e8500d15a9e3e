"""The dashboard's keys page shows each key's limits and use, and edits the limits (Chromium)."""

from __future__ import annotations

import re

import httpx2
from playwright.async_api import expect

from .support.fake_upstream import Reply
from .support.messages import MODEL, message_json
from .test_dashboard_browser import Dashboard, dashboard

__all__ = ["dashboard"]  # the fixture, shared with the dashboard's own browser tests


async def _generate(board: Dashboard, name: str, role: str) -> str:
    page = board.page
    await page.locator("#new-key-form input[name=name]").fill(name)
    await page.locator("#new-key-form select[name=role]").select_option(role)
    await page.locator("#new-key-form button[type=submit]").click()
    secret = page.locator("#new-key-value")
    await expect(secret).to_have_text(re.compile(r"^btr-"))
    key = await secret.text_content()
    assert key is not None
    await page.click("#dismiss-new-key")
    return key


async def test_a_keys_limits_are_edited_and_its_use_shown_on_the_keys_page(
    dashboard: Dashboard,
) -> None:
    page = dashboard.page
    await dashboard.open("api-keys")
    await _generate(dashboard, "ops", "admin")  # the browser keeps this first admin key
    dev = await _generate(dashboard, "dev", "api-only")
    dashboard.upstream.set_default(Reply.json(message_json()))
    async with httpx2.AsyncClient() as client:
        sent = await client.post(
            f"{dashboard.url}/v1/messages",
            json={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
            headers={"anthropic-version": "2023-06-01", "x-api-key": dev},
            timeout=10,
        )
    assert sent.status_code == 200
    await dashboard.service.store.flush()

    row = page.locator("#keys-table tbody tr[data-key-name=dev]")
    await row.get_by_role("button", name="Limits").click()
    form = page.locator("#limits-form")
    await form.locator("input[name=rpm]").fill("5")
    await form.locator("input[name=budgetDailyUsd]").fill("2.5")
    await form.locator("input[name=models]").fill("claude-sonnet-*, claude-haiku-*")
    await form.locator("input[name=expiresAt]").fill("2099-01-31T18:00")
    await form.locator("button[type=submit]").click()

    await expect(row).to_contain_text("5 req/min")
    await expect(row).to_contain_text("$2.50/day")
    await expect(row).to_contain_text("models claude-sonnet-*, claude-haiku-*")
    await expect(row).to_contain_text("expires 2099-01-31 18:00 UTC")
    await expect(row).to_contain_text("of $2.50 · 17 tok")  # today: spend of the budget, tokens
    stored = await dashboard.service.store.api_keys.get("dev")
    assert stored is not None
    assert stored.limits is not None
    assert (stored.limits.rpm, stored.limits.budget_daily_usd) == (5, 2.5)
    assert stored.limits.models == ("claude-sonnet-*", "claude-haiku-*")
    await dashboard.screenshot("api-keys-limits")

    await row.get_by_role("button", name="Limits").click()
    await form.locator("input[name=rpm]").fill("0")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#limits-error")).to_contain_text("rpm")

    await page.click("#clear-limits")
    await expect(row.locator("td.limits")).to_have_text("none")
    # The only error the browser saw is the refused save's 400 (shown in the form, above).
    assert [e for e in dashboard.console_errors if "status of 400" not in e] == []
