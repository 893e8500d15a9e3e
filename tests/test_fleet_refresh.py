"""OAuth refresh across a fleet: several token managers, each over its own store on one real
PostgreSQL database (as several instances are), against a token endpoint that, like
Anthropic's, rotates the refresh token and refuses a used one with ``invalid_grant``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx2
import pytest

from better_ccflare.core import Account, Credentials, ProviderKind, SystemClock
from better_ccflare.database import SecretKey, Store
from better_ccflare.providers import ProviderRegistry, builtin_providers
from better_ccflare.proxy import TokenManager

from .support.fake_upstream import FakeUpstream, RecordedRequest, Reply
from .support.postgres import database_url, postgres_server_url

__all__ = ["database_url", "postgres_server_url"]  # fixtures, imported for pytest to find

INSTANCES = 3


class RotatingTokens:
    """A token endpoint: each refresh token works once and is answered with the next one."""

    def __init__(self) -> None:
        self.live = "rt-0"
        self.issued = 0

    def __call__(self, request: RecordedRequest) -> Reply:
        if request.json()["refresh_token"] != self.live:
            return Reply.json({"error": "invalid_grant", "error_description": "used"}, 400)
        self.issued += 1
        self.live = f"rt-{self.issued}"
        return Reply.json(
            {"access_token": f"at-{self.issued}", "refresh_token": self.live, "expires_in": 28800}
        )


def expiring_account() -> Account:
    now_ms = SystemClock().now_ms()
    return Account(
        id="sub",
        name="sub",
        provider=ProviderKind.CLAUDE_OAUTH.value,
        created_at_ms=now_ms,
        credentials=Credentials(
            access_token="at-0", refresh_token="rt-0", expires_at_ms=now_ms + 60_000
        ),
    )


@pytest.fixture
async def token_endpoint(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as endpoint:
        monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", f"{endpoint.url}/v1/oauth/token")
        yield endpoint


@pytest.fixture
async def fleet(database_url: str) -> AsyncIterator[list[tuple[Store, TokenManager]]]:
    """Stores and token managers of :data:`INSTANCES` instances over one database."""
    key = SecretKey.generate()
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx2.AsyncClient())
        members: list[tuple[Store, TokenManager]] = []
        for _ in range(INSTANCES):
            store = await stack.enter_async_context(await Store.open(database_url, key=key))
            tokens = TokenManager(
                store=store,
                registry=ProviderRegistry(builtins=builtin_providers(), plugins=()),
                client=client,
                clock=SystemClock(),
            )
            stack.push_async_callback(tokens.aclose)
            members.append((store, tokens))
        await members[0][0].accounts.add(expiring_account())
        yield members


async def test_an_expiring_token_wanted_by_every_instance_at_once_is_refreshed_once(
    fleet: list[tuple[Store, TokenManager]], token_endpoint: FakeUpstream
) -> None:
    tokens = RotatingTokens()

    def slow(request: RecordedRequest) -> Reply:
        return dataclasses.replace(tokens(request), headers_delay_s=0.3)

    token_endpoint.set_default(slow)
    account = expiring_account()
    got = await asyncio.gather(
        *(manager.credentials_for(account) for _, manager in fleet for _ in range(10))
    )
    assert len(token_endpoint.requests) == 1
    assert {credentials.access_token for credentials in got} == {"at-1"}
    for store, _ in fleet:
        stored = await store.accounts.get("sub")
        assert stored is not None
        assert stored.credentials.refresh_token == "rt-1"
        assert not stored.requires_reauth


async def test_an_instance_behind_on_the_tokens_adopts_the_stored_ones_without_refreshing(
    fleet: list[tuple[Store, TokenManager]], token_endpoint: FakeUpstream
) -> None:
    token_endpoint.set_default(RotatingTokens())
    (_, first), (_, second), _ = fleet
    stale = expiring_account()  # what the second instance still holds in memory
    assert (await first.credentials_for(stale)).access_token == "at-1"
    assert (await second.credentials_for(stale)).access_token == "at-1"
    assert len(token_endpoint.requests) == 1


async def test_invalid_grant_for_a_token_another_instance_just_rotated_adopts_its_tokens(
    fleet: list[tuple[Store, TokenManager]], token_endpoint: FakeUpstream
) -> None:
    # The other instance's rotation lands while this one's refresh is at the token endpoint
    # (as when it wrote without the lock: a re-login, or a different deployment).
    rotated = Credentials(access_token="at-other", refresh_token="rt-other", expires_at_ms=None)
    refused = json.dumps({"error": "invalid_grant", "error_description": "used"}).encode()
    token_endpoint.set_default(Reply(status=400, body=refused, headers_delay_s=0.5))
    (other, _), (store, manager), _ = fleet

    async def rotate_meanwhile() -> None:
        await asyncio.sleep(0.2)
        assert await other.accounts.update_credentials_if_refresh_token_matches(
            "sub", "rt-0", rotated
        )

    got, _ = await asyncio.gather(manager.credentials_for(expiring_account()), rotate_meanwhile())
    assert got.access_token == "at-other"
    assert len(token_endpoint.requests) == 1
    stored = await store.accounts.get("sub")
    assert stored is not None
    assert not stored.requires_reauth
    assert stored.credentials.refresh_token == "rt-other"
