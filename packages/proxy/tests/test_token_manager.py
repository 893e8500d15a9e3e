"""The token manager against a real store and a real token endpoint on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx2
import pytest

from better_ccflare.core import Account, Credentials, FakeClock, ProviderKind
from better_ccflare.database import SecretKey, Store
from better_ccflare.providers import ProviderRegistry, builtin_providers
from better_ccflare.proxy._token_manager import CredentialsUnavailableError, TokenManager

HOUR_MS = 3_600_000
Reply = tuple[int, dict[str, object]]
Handler = Callable[[dict[str, str]], Awaitable[Reply]]


class TokenServer:
    """A minimal OAuth token endpoint: records each request body, answers with ``handler``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.handler: Handler = self.rotate
        self.delay_s = 0.0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1/oauth/token"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def rotate(self, body: dict[str, str]) -> Reply:
        """A successful refresh that rotates the refresh token."""
        n = len(self.requests)
        return 200, {"access_token": f"at-{n}", "refresh_token": f"rt-{n}", "expires_in": 28_800}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        body: dict[str, str] = json.loads(await reader.readexactly(length))
        self.requests.append(body)
        await asyncio.sleep(self.delay_s)
        status, payload = await self.handler(body)
        data = json.dumps(payload).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()


def invalid_grant() -> Reply:
    return 400, {"error": "invalid_grant", "error_description": "Refresh token not found"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.generate()


@pytest.fixture
async def store(tmp_path: Path, key: SecretKey, clock: FakeClock) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "db.sqlite", key=key, clock=clock)
    yield opened
    await opened.close()


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TokenServer]:
    token_server = TokenServer()
    await token_server.start()
    monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", token_server.url)
    yield token_server
    await token_server.stop()


@pytest.fixture
def updates() -> list[Account]:
    return []


@pytest.fixture
async def manager(
    store: Store, server: TokenServer, clock: FakeClock, updates: list[Account]
) -> AsyncIterator[TokenManager]:
    async with httpx2.AsyncClient() as client:
        tokens = TokenManager(
            store=store,
            registry=ProviderRegistry(builtins=builtin_providers(), plugins=()),
            client=client,
            clock=clock,
            on_update=updates.append,
        )
        yield tokens
        await tokens.aclose()


async def add_oauth_account(
    store: Store, clock: FakeClock, *, expires_in_ms: int, refresh_token: str = "rt-old"
) -> Account:
    account = Account(
        id="acc-1",
        name="work",
        provider=ProviderKind.CLAUDE_OAUTH.value,
        created_at_ms=clock.now_ms(),
        credentials=Credentials(
            access_token="at-old",
            refresh_token=refresh_token,
            expires_at_ms=clock.now_ms() + expires_in_ms,
            refresh_token_issued_at_ms=clock.now_ms() - HOUR_MS,
        ),
    )
    await store.accounts.add(account)
    return account


async def stored(store: Store, account_id: str = "acc-1") -> Account:
    account = await store.accounts.get(account_id)
    assert account is not None
    return account


async def test_fresh_token_is_returned_without_a_refresh(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=5 * HOUR_MS)

    assert await manager.credentials_for(account) == account.credentials
    assert server.requests == []


async def test_token_inside_the_refresh_window_is_refreshed_and_persisted(
    manager: TokenManager,
    store: Store,
    server: TokenServer,
    clock: FakeClock,
    key: SecretKey,
    tmp_path: Path,
    updates: list[Account],
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=20 * 60_000)  # not yet expired

    fresh = await manager.credentials_for(account)

    assert server.requests == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "rt-old",
            "client_id": server.requests[0]["client_id"],
        }
    ]
    assert fresh.access_token == "at-1"
    assert fresh.refresh_token == "rt-1"
    assert fresh.expires_at_ms == clock.now_ms() + 28_800_000
    assert [u.credentials for u in updates] == [fresh]
    await store.close()
    async with await Store.open(tmp_path / "db.sqlite", key=key, clock=clock) as reopened:
        again = await reopened.accounts.get("acc-1")
    assert again is not None
    assert again.credentials == fresh


async def test_concurrent_callers_cause_exactly_one_refresh(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)
    server.delay_s = 0.05

    results = await asyncio.gather(*(manager.credentials_for(account) for _ in range(20)))

    assert len(server.requests) == 1
    assert {c.access_token for c in results} == {"at-1"}


async def test_stale_account_object_after_a_refresh_does_not_refresh_again(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)
    await manager.credentials_for(account)

    again = await manager.credentials_for(account)  # the pool has not caught up yet

    assert again.access_token == "at-1"
    assert len(server.requests) == 1


async def test_force_refresh_after_another_request_refreshed_reuses_the_new_token(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)
    rejected = account.credentials
    await manager.credentials_for(account)

    retry_with = await manager.force_refresh(account, rejected)

    assert retry_with.access_token == "at-1"
    assert len(server.requests) == 1


async def test_force_refresh_refreshes_a_rejected_token_that_had_not_expired(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=5 * HOUR_MS)

    retry_with = await manager.force_refresh(account, account.credentials)

    assert retry_with.access_token == "at-1"
    assert (await stored(store)).credentials.refresh_token == "rt-1"


async def test_concurrent_401s_cause_exactly_one_forced_refresh(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=5 * HOUR_MS)
    server.delay_s = 0.05

    results = await asyncio.gather(
        *(manager.force_refresh(account, account.credentials) for _ in range(10))
    )

    assert len(server.requests) == 1
    assert {c.access_token for c in results} == {"at-1"}


async def test_fresher_stored_tokens_are_adopted_without_a_refresh(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)
    relogin = Credentials(
        access_token="at-cli", refresh_token="rt-cli", expires_at_ms=clock.now_ms() + 8 * HOUR_MS
    )
    await store.accounts.set_credentials(account.id, relogin)

    assert await manager.credentials_for(account) == relogin
    assert server.requests == []


async def test_rotation_by_a_concurrent_writer_wins_over_ours(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)
    theirs = Credentials(
        access_token="at-theirs",
        refresh_token="rt-theirs",
        expires_at_ms=clock.now_ms() + 8 * HOUR_MS,
    )

    async def rotate_elsewhere_first(body: dict[str, str]) -> Reply:
        await store.accounts.set_credentials(account.id, theirs)  # between our read and our CAS
        return await server.rotate(body)

    server.handler = rotate_elsewhere_first

    result = await manager.credentials_for(account)

    assert result == theirs
    assert (await stored(store)).credentials == theirs
    assert len(server.requests) == 1


async def test_dead_refresh_token_flags_the_account_for_reauth(
    manager: TokenManager,
    store: Store,
    server: TokenServer,
    clock: FakeClock,
    updates: list[Account],
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)

    async def refuse(body: dict[str, str]) -> Reply:
        return invalid_grant()

    server.handler = refuse

    with pytest.raises(CredentialsUnavailableError) as caught:
        await manager.credentials_for(account)

    assert caught.value.reauth_required
    assert caught.value.account_id == account.id
    assert "rt-old" not in str(caught.value)
    assert (await stored(store)).requires_reauth
    assert updates[-1].requires_reauth
    with pytest.raises(CredentialsUnavailableError):
        await manager.credentials_for(account)  # the dead token is not sent again
    assert len(server.requests) == 1


async def test_dead_token_with_a_newer_one_stored_meanwhile_adopts_it_without_flagging(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)
    relogin = Credentials(
        access_token="at-cli", refresh_token="rt-cli", expires_at_ms=clock.now_ms() + 8 * HOUR_MS
    )

    async def relogin_then_refuse(body: dict[str, str]) -> Reply:
        await store.accounts.set_credentials(account.id, relogin)
        return invalid_grant()

    server.handler = relogin_then_refuse

    assert await manager.credentials_for(account) == relogin
    assert not (await stored(store)).requires_reauth
    assert len(server.requests) == 1


async def test_dead_token_with_an_expired_newer_one_stored_retries_once_with_it(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)
    relogin = Credentials(
        access_token="at-cli", refresh_token="rt-cli", expires_at_ms=clock.now_ms() - 1
    )

    async def relogin_then_refuse(body: dict[str, str]) -> Reply:
        if body["refresh_token"] == "rt-old":
            await store.accounts.set_credentials(account.id, relogin)
            return invalid_grant()
        return await server.rotate(body)

    server.handler = relogin_then_refuse

    result = await manager.credentials_for(account)

    assert [r["refresh_token"] for r in server.requests] == ["rt-old", "rt-cli"]
    assert result.access_token == "at-2"
    assert (await stored(store)).credentials == result
    assert not (await stored(store)).requires_reauth


async def test_server_error_backs_off_then_retries(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)

    async def fail(body: dict[str, str]) -> Reply:
        return 500, {"error": {"type": "api_error", "message": "boom"}}

    server.handler = fail

    with pytest.raises(CredentialsUnavailableError) as caught:
        await manager.credentials_for(account)
    assert not caught.value.reauth_required
    assert caught.value.retry_after_ms == 30_000

    clock.advance(10_000)
    with pytest.raises(CredentialsUnavailableError) as during:
        await manager.credentials_for(account)
    assert during.value.retry_after_ms == 20_000
    assert len(server.requests) == 1

    server.handler = server.rotate
    clock.advance(20_000)
    assert (await manager.credentials_for(account)).access_token == "at-2"
    assert len(server.requests) == 2
    assert not (await stored(store)).requires_reauth


async def test_failed_early_refresh_keeps_serving_the_still_valid_token(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=20 * 60_000)

    async def fail(body: dict[str, str]) -> Reply:
        return 503, {"error": "temporarily_unavailable"}

    server.handler = fail

    assert await manager.credentials_for(account) == account.credentials
    assert await manager.credentials_for(account) == account.credentials
    assert len(server.requests) == 1


async def test_new_login_lifts_the_backoff(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)

    async def fail(body: dict[str, str]) -> Reply:
        return 500, {}

    server.handler = fail
    with pytest.raises(CredentialsUnavailableError):
        await manager.credentials_for(account)
    relogin = Credentials(access_token="at-cli", refresh_token="rt-cli", expires_at_ms=-1)
    await store.accounts.set_credentials(account.id, relogin)
    server.handler = server.rotate

    result = await manager.credentials_for(await stored(store))

    assert result.access_token == "at-2"
    assert server.requests[-1]["refresh_token"] == "rt-cli"


async def test_api_key_accounts_never_refresh(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = Account(
        id="acc-key",
        name="console",
        provider=ProviderKind.CONSOLE.value,
        created_at_ms=clock.now_ms(),
        credentials=Credentials(api_key="sk-ant-api03-test"),
    )
    await store.accounts.add(account)

    assert await manager.credentials_for(account) == account.credentials
    with pytest.raises(CredentialsUnavailableError) as caught:
        await manager.force_refresh(account, account.credentials)

    assert not caught.value.reauth_required
    assert "sk-ant" not in str(caught.value)
    assert server.requests == []
    assert (await stored(store, account.id)).credentials == account.credentials


async def test_refresh_survives_the_cancellation_of_the_request_that_started_it(
    manager: TokenManager, store: Store, server: TokenServer, clock: FakeClock
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)
    server.delay_s = 0.05
    first = asyncio.create_task(manager.credentials_for(account))
    await asyncio.sleep(0.01)  # the refresh is in flight

    first.cancel()  # the client hung up
    with pytest.raises(asyncio.CancelledError):
        await first
    await manager.aclose()

    assert (await stored(store)).credentials.refresh_token == "rt-1"
    assert len(server.requests) == 1


async def test_tokens_never_reach_the_log(
    manager: TokenManager,
    store: Store,
    server: TokenServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG", logger="better_ccflare")
    account = await add_oauth_account(store, clock, expires_in_ms=-1)
    await manager.credentials_for(account)

    async def refuse(body: dict[str, str]) -> Reply:
        return invalid_grant()

    server.handler = refuse
    with pytest.raises(CredentialsUnavailableError):
        await manager.force_refresh(await stored(store), (await stored(store)).credentials)

    assert caplog.records
    assert not any(secret in caplog.text for secret in ("at-old", "rt-old", "at-1", "rt-1"))


@pytest.mark.parametrize(
    ("answer", "reauth_required", "retry_in_ms"),
    [
        ((500, {"error": {"type": "api_error", "message": "boom"}}), False, 30_000),
        (invalid_grant(), True, None),
    ],
    ids=["server-error", "dead-refresh-token"],
)
async def test_a_failed_refresh_is_logged_once_as_a_warning_with_its_fields(
    manager: TokenManager,
    store: Store,
    server: TokenServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    answer: Reply,
    reauth_required: bool,
    retry_in_ms: int | None,
) -> None:
    account = await add_oauth_account(store, clock, expires_in_ms=-1)

    async def fail(body: dict[str, str]) -> Reply:
        return answer

    server.handler = fail

    with caplog.at_level("INFO", logger="better_ccflare.proxy"):
        for _ in range(3):
            with pytest.raises(CredentialsUnavailableError):
                await manager.credentials_for(account)

    [failed] = [r for r in caplog.records if r.getMessage().startswith("Refresh failed")]
    assert failed.levelname == "WARNING"
    data = vars(failed)["data"]
    assert (data["type"], data["account"], data["reauth_required"], data["retry_in_ms"]) == (
        "refresh_failed",
        "work",
        reauth_required,
        retry_in_ms,
    )
