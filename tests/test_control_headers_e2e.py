"""The reference's control headers under a real server: project attribution and forced accounts."""

from __future__ import annotations

from pathlib import Path

import anthropic
import httpx2
import msgspec
import pytest

from better_ccflare.core import ApiKeyRole

from .support.client import add_api_key, recorded, sdk
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy


async def _ask(url: str, headers: dict[str, str], api_key: str = "client-key") -> None:
    async with sdk(url, api_key) as client:
        await client.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers=headers,
        )


async def test_a_project_header_is_recorded_never_forwarded_and_filters_analytics(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            await _ask(url, {"x-better-ccflare-project": "alpha"})
            await _ask(url, {"x-project": "beta"})
            await _ask(url, {"x-better-ccflare-project": "alpha", "x-project": "beta"})
            await _ask(url, {})
            rows = await recorded(service, 4)
            async with httpx2.AsyncClient(base_url=url, timeout=10) as http:
                alpha = (await http.get("/api/analytics", params={"project": "alpha"})).json()
                both = (await http.get("/api/analytics", params={"project": "alpha,beta"})).json()

    assert [row.project for row in rows] == [None, "alpha", "beta", "alpha"]
    for request in upstream.requests:
        assert "x-project" not in request.headers
        assert "x-better-ccflare-project" not in request.headers
    assert alpha["totals"]["requests"] == 2
    assert both["totals"]["requests"] == 3


async def test_a_forced_account_serves_the_request_by_id_or_name(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        first = console_account("first", upstream)
        named = msgspec.structs.replace(console_account("second", upstream, 1), id="id-2")
        async with running_proxy(tmp_path, first, named) as (service, url):
            await _ask(url, {"x-better-ccflare-account-id": "id-2"})
            await _ask(url, {"x-better-ccflare-account-id": "second"})
            rows = await recorded(service, 2)

    assert [row.account_id for row in rows] == ["id-2", "id-2"]
    assert all("x-better-ccflare-account-id" not in r.headers for r in upstream.requests)


async def test_a_forced_account_is_not_failed_over(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        limited = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
        upstream.enqueue(Reply.json(limited, status=429, headers={"retry-after": "60"}))
        broken = console_account("broken", upstream)
        spare = console_account("spare", upstream, 1)
        async with running_proxy(tmp_path, broken, spare) as (service, url):
            with pytest.raises(anthropic.APIStatusError):
                await _ask(url, {"x-better-ccflare-account-id": "broken"})
            [row] = await recorded(service)

    [sent] = upstream.requests
    assert sent.headers["x-api-key"] == "sk-ant-api03-broken"
    assert (row.status_code, row.success) == (429, False)


async def test_an_unknown_forced_account_is_a_400_naming_it(tmp_path: Path) -> None:
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (_, url),
    ):
        with pytest.raises(anthropic.BadRequestError) as raised:
            await _ask(url, {"x-better-ccflare-account-id": "nobody"})

    assert "'nobody'" in raised.value.message
    assert upstream.requests == []


async def test_only_admin_keys_may_force_an_account(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            admin = await add_api_key(service, ApiKeyRole.ADMIN)
            api_only = await add_api_key(service, ApiKeyRole.API_ONLY)
            with pytest.raises(anthropic.PermissionDeniedError) as raised:
                await _ask(url, {"x-better-ccflare-account-id": "a"}, api_only)
            await _ask(url, {"x-better-ccflare-account-id": "a"}, admin)
            [row] = await recorded(service)

    assert raised.value.body is not None
    assert "admin" in raised.value.message
    assert "x-better-ccflare-account-id" in raised.value.message
    assert row.account_id == "a"
    assert len(upstream.requests) == 1
