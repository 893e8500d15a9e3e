"""Proxy authentication: who may call which path, and that the slow hash stays off the hot path."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import better_ccflare.proxy._api_key_auth as auth_module
from better_ccflare.core import ApiKey, ApiKeyRole, FakeClock
from better_ccflare.database import SecretKey, Store
from better_ccflare.proxy import (
    LOCAL_ANSWER_PATHS,
    ApiKeyAuthenticator,
    generate_api_key,
    hash_api_key,
    verify_api_key,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "db.sqlite", key=SecretKey.generate(), clock=clock)
    yield store
    await store.close()


@pytest.fixture
def auth(store: Store, clock: FakeClock) -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(store, clock)


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts scrypt verifications made by the authenticator."""
    calls: list[str] = []

    def counting(key: str, hashed: str) -> bool:
        calls.append(hashed)
        return verify_api_key(key, hashed)

    monkeypatch.setattr(auth_module, "verify_api_key", counting)
    return calls


async def add_key(
    store: Store, role: ApiKeyRole = ApiKeyRole.API_ONLY, *, key: str | None = None
) -> tuple[str, ApiKey]:
    key = key or generate_api_key()
    key_id = str(uuid.uuid4())
    row = ApiKey(
        id=key_id,
        name=f"key-{key_id[:8]}",
        hashed_key=hash_api_key(key),
        prefix_last_8=key[-8:],
        created_at_ms=1,
        role=role,
    )
    await store.api_keys.add(row)
    return key, row


def wrong_key_with_same_suffix(key: str) -> str:
    body = key[4:-8]
    flipped = ("A" if body[0] != "A" else "B") + body[1:]
    return "btr-" + flipped + key[-8:]


async def test_without_active_keys_everything_is_allowed(auth: ApiKeyAuthenticator) -> None:
    for path in ("/v1/messages", "/api/accounts", "/api/debug/state", "/"):
        result = await auth.authenticate({"x-api-key": "nonsense"}, path)
        assert result.allowed
        assert result.status == 200
        assert result.key is None
    assert not auth.auth_enabled


async def test_disabled_keys_do_not_turn_auth_on(store: Store, auth: ApiKeyAuthenticator) -> None:
    _, row = await add_key(store)
    await store.api_keys.set_active(row.id, False)
    assert (await auth.authenticate({}, "/v1/messages")).allowed
    assert not auth.auth_enabled


async def test_missing_key_is_401_telling_how_to_send_one(
    store: Store, auth: ApiKeyAuthenticator
) -> None:
    await add_key(store)
    result = await auth.authenticate({}, "/v1/messages")
    assert (result.allowed, result.status, result.key) == (False, 401, None)
    assert "x-api-key" in result.message
    assert "Bearer" in result.message
    assert auth.auth_enabled


async def test_wrong_key_is_401_without_echoing_it(store: Store, auth: ApiKeyAuthenticator) -> None:
    key, _ = await add_key(store)
    for wrong in (wrong_key_with_same_suffix(key), generate_api_key(), "garbage"):
        result = await auth.authenticate({"x-api-key": wrong}, "/v1/messages")
        assert (result.allowed, result.status) == (False, 401)
        assert wrong not in result.message


async def test_key_in_x_api_key_is_accepted(store: Store, auth: ApiKeyAuthenticator) -> None:
    key, row = await add_key(store)
    result = await auth.authenticate({"x-api-key": key}, "/v1/messages")
    assert (result.allowed, result.status, result.key) == (True, 200, row)


async def test_key_as_bearer_token_is_accepted(store: Store, auth: ApiKeyAuthenticator) -> None:
    key, row = await add_key(store)
    for header in (f"Bearer {key}", f"bearer  {key} "):
        result = await auth.authenticate({"authorization": header}, "/v1/messages")
        assert result.allowed
        assert result.key == row


async def test_x_api_key_wins_over_authorization(store: Store, auth: ApiKeyAuthenticator) -> None:
    key, _ = await add_key(store)
    headers = {"x-api-key": "btr-wrong", "authorization": f"Bearer {key}"}
    assert (await auth.authenticate(headers, "/v1/messages")).status == 401


async def test_api_only_key_is_forbidden_on_the_management_api(
    store: Store, auth: ApiKeyAuthenticator
) -> None:
    key, row = await add_key(store, ApiKeyRole.API_ONLY)
    for path in ("/api/accounts", "/api/debug/state", "/api/api-keys"):
        result = await auth.authenticate({"x-api-key": key}, path)
        assert (result.allowed, result.status, result.key) == (False, 403, row)
        assert "api-only" in result.message
        assert key not in result.message


async def test_api_only_key_may_use_the_proxy_routes(
    store: Store, auth: ApiKeyAuthenticator
) -> None:
    key, _ = await add_key(store, ApiKeyRole.API_ONLY)
    for path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/models?limit=5", "/v1/"):
        assert (await auth.authenticate({"x-api-key": key}, path)).allowed


async def test_api_only_key_may_look_up_a_session_and_nothing_near_it(
    store: Store, auth: ApiKeyAuthenticator
) -> None:
    key, _ = await add_key(store, ApiKeyRole.API_ONLY)
    allowed = await auth.authenticate({"x-api-key": key}, "/api/sessions/abc-123/account")
    assert allowed.allowed
    for path in (
        "/api/sessions",
        "/api/sessions/abc",
        "/api/sessions/abc/account/more",
        "/api/sessions/abc/requests",
        "/api/sessions/../accounts/account",
        "/api/sessions//account",
    ):
        assert (await auth.authenticate({"x-api-key": key}, path)).status == 403, path
    assert (await auth.authenticate({}, "/api/sessions/abc-123/account")).status == 401


async def test_admin_key_may_use_everything(store: Store, auth: ApiKeyAuthenticator) -> None:
    key, row = await add_key(store, ApiKeyRole.ADMIN)
    for path in ("/v1/messages", "/api/accounts", "/api/debug/state", "/api/api-keys"):
        result = await auth.authenticate({"x-api-key": key}, path)
        assert result.allowed
        assert result.key == row


async def test_exempt_paths_need_no_key(store: Store, auth: ApiKeyAuthenticator) -> None:
    await add_key(store)
    exempt = (
        "/health",
        "/api/version/check",
        "/api/event_logging/batch",
        "/api/system/package-manager",
        "/",
        "/index.html",
        "/assets/app.js",
    )
    for path in exempt:
        assert (await auth.authenticate({}, path)).allowed, path


async def test_oauth_login_routes_need_an_admin_key(
    store: Store, auth: ApiKeyAuthenticator
) -> None:
    """Unlike the reference: an OAuth login adds an upstream account, an admin's job."""
    key, _ = await add_key(store, ApiKeyRole.API_ONLY)
    for path in ("/api/oauth/init", "/api/oauth/callback"):
        assert (await auth.authenticate({}, path)).status == 401, path
        assert (await auth.authenticate({"x-api-key": key}, path)).status == 403, path


async def test_dot_segments_do_not_borrow_an_exemption(
    store: Store, auth: ApiKeyAuthenticator
) -> None:
    key, _ = await add_key(store, ApiKeyRole.API_ONLY)
    for path in ("/health/../api/accounts", "/assets/../api/accounts", "//api/accounts"):
        assert (await auth.authenticate({}, path)).status == 401, path
    assert (await auth.authenticate({"x-api-key": key}, "/v1/../api/accounts")).status == 403


async def test_every_locally_answered_path_needs_no_key(
    store: Store, auth: ApiKeyAuthenticator
) -> None:
    await add_key(store)
    for path in LOCAL_ANSWER_PATHS:
        assert (await auth.authenticate({}, path)).allowed, path


async def test_disabling_a_key_applies_at_once_after_invalidate(
    store: Store, auth: ApiKeyAuthenticator
) -> None:
    key, row = await add_key(store)
    await add_key(store)  # keeps auth on once the first key is gone
    assert (await auth.authenticate({"x-api-key": key}, "/v1/messages")).allowed
    await store.api_keys.set_active(row.id, False)
    auth.invalidate()
    assert (await auth.authenticate({"x-api-key": key}, "/v1/messages")).status == 401


async def test_disabling_a_key_applies_after_the_refresh_interval(
    store: Store, auth: ApiKeyAuthenticator, clock: FakeClock
) -> None:
    key, row = await add_key(store)
    await add_key(store)
    assert (await auth.authenticate({"x-api-key": key}, "/v1/messages")).allowed
    await store.api_keys.delete(row.id)
    clock.advance(1_999)
    assert (await auth.authenticate({"x-api-key": key}, "/v1/messages")).allowed
    clock.advance(1)
    assert (await auth.authenticate({"x-api-key": key}, "/v1/messages")).status == 401


async def test_last_key_disabled_turns_auth_off(store: Store, auth: ApiKeyAuthenticator) -> None:
    _, row = await add_key(store)
    assert (await auth.authenticate({}, "/v1/messages")).status == 401
    await store.api_keys.set_active(row.id, False)
    auth.invalidate()
    assert (await auth.authenticate({}, "/v1/messages")).allowed
    assert not auth.auth_enabled


async def test_verified_key_is_not_hashed_again(
    store: Store, auth: ApiKeyAuthenticator, hash_calls: list[str]
) -> None:
    key, _ = await add_key(store)
    for _ in range(5):
        assert (await auth.authenticate({"x-api-key": key}, "/v1/messages")).allowed
    assert len(hash_calls) == 1


async def test_role_change_applies_without_hashing_again(
    store: Store, auth: ApiKeyAuthenticator, hash_calls: list[str]
) -> None:
    key, row = await add_key(store, ApiKeyRole.ADMIN)
    assert (await auth.authenticate({"x-api-key": key}, "/api/accounts")).allowed
    await store.api_keys.set_role(row.id, ApiKeyRole.API_ONLY)
    auth.invalidate()
    assert (await auth.authenticate({"x-api-key": key}, "/api/accounts")).status == 403
    assert len(hash_calls) == 1


async def test_concurrent_first_uses_share_one_hash(
    store: Store, auth: ApiKeyAuthenticator, hash_calls: list[str]
) -> None:
    key, row = await add_key(store)
    results = await asyncio.gather(
        *(auth.authenticate({"x-api-key": key}, "/v1/messages") for _ in range(10))
    )
    assert all(r.allowed and r.key == row for r in results)
    assert len(hash_calls) == 1


async def test_only_keys_with_the_same_last_8_are_hashed(
    store: Store, auth: ApiKeyAuthenticator, hash_calls: list[str]
) -> None:
    key, row = await add_key(store)
    for _ in range(3):
        await add_key(store)
    assert (await auth.authenticate({"x-api-key": key}, "/v1/messages")).key == row
    assert hash_calls == [row.hashed_key]
    assert (
        await auth.authenticate({"x-api-key": generate_api_key()}, "/v1/messages")
    ).status == 401
    assert len(hash_calls) == 1


async def test_a_repeated_wrong_key_is_hashed_once(
    store: Store, auth: ApiKeyAuthenticator, hash_calls: list[str]
) -> None:
    key, _ = await add_key(store)
    wrong = wrong_key_with_same_suffix(key)
    for _ in range(3):
        assert (await auth.authenticate({"x-api-key": wrong}, "/v1/messages")).status == 401
    assert len(hash_calls) == 1


async def test_a_failed_key_works_once_it_is_added(store: Store, auth: ApiKeyAuthenticator) -> None:
    key, _ = await add_key(store)
    newcomer = wrong_key_with_same_suffix(key)
    assert (await auth.authenticate({"x-api-key": newcomer}, "/v1/messages")).status == 401
    _, row = await add_key(store, key=newcomer)
    auth.invalidate()
    assert (await auth.authenticate({"x-api-key": newcomer}, "/v1/messages")).key == row


async def test_use_is_recorded_at_most_once_per_interval(
    store: Store, auth: ApiKeyAuthenticator, clock: FakeClock
) -> None:
    key, row = await add_key(store)
    for _ in range(3):
        await auth.authenticate({"x-api-key": key}, "/v1/messages")
    await store.flush()
    stored = await store.api_keys.get(row.id)
    assert stored is not None
    assert (stored.usage_count, stored.last_used_ms) == (1, clock.now_ms())
    clock.advance(5_000)
    await auth.authenticate({"x-api-key": key}, "/v1/messages")
    await store.flush()
    stored = await store.api_keys.get(row.id)
    assert stored is not None
    assert (stored.usage_count, stored.last_used_ms) == (2, clock.now_ms())


async def test_forbidden_and_failed_requests_record_no_use(
    store: Store, auth: ApiKeyAuthenticator
) -> None:
    key, row = await add_key(store)
    await auth.authenticate({"x-api-key": key}, "/api/accounts")
    await auth.authenticate({"x-api-key": wrong_key_with_same_suffix(key)}, "/v1/messages")
    await store.flush()
    stored = await store.api_keys.get(row.id)
    assert stored is not None
    assert stored.usage_count == 0


async def test_failed_reload_keeps_enforcing_the_known_keys(
    store: Store, auth: ApiKeyAuthenticator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _ = await add_key(store)
    assert (await auth.authenticate({"x-api-key": key}, "/v1/messages")).allowed

    async def broken(self: object) -> list[ApiKey]:
        raise OSError("disk gone")

    monkeypatch.setattr(type(store.api_keys), "list_active", broken)
    clock.advance(10_000)
    assert (await auth.authenticate({}, "/v1/messages")).status == 401
    assert (await auth.authenticate({"x-api-key": key}, "/v1/messages")).allowed
