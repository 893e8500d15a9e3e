"""The domain Structs: serialization round-trips and the behaviour they carry."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.core import (
    Account,
    ApiKey,
    Credentials,
    OAuthMode,
    OAuthSession,
    RateLimitState,
    RequestRecord,
    TokenUsage,
    UsageSnapshot,
)
from better_ccflare.core.testing import (
    accounts,
    api_keys,
    oauth_sessions,
    request_records,
    token_usages,
    usage_snapshots,
)


def roundtrip(value: Any, kind: type[Any]) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value), type=kind)


@given(accounts)
def test_account_roundtrips_through_json(account: Account) -> None:
    assert roundtrip(account, Account) == account


@given(request_records)
def test_request_record_roundtrips_through_json(record: RequestRecord) -> None:
    assert roundtrip(record, RequestRecord) == record


@given(api_keys)
def test_api_key_roundtrips_through_json(key: ApiKey) -> None:
    assert roundtrip(key, ApiKey) == key


@given(oauth_sessions)
def test_oauth_session_roundtrips_through_json(session: OAuthSession) -> None:
    assert roundtrip(session, OAuthSession) == session


@given(usage_snapshots)
def test_usage_snapshot_roundtrips_through_json(snapshot: UsageSnapshot) -> None:
    assert roundtrip(snapshot, UsageSnapshot) == snapshot


@given(accounts)
def test_account_roundtrips_through_msgpack(account: Account) -> None:
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(account), type=Account) == account


@given(token_usages)
def test_token_totals_add_up(usage: TokenUsage) -> None:
    assert usage.cache_creation_input_tokens == (
        usage.cache_write_5m_input_tokens + usage.cache_write_1h_input_tokens
    )
    assert usage.total_tokens == (
        usage.input_tokens
        + usage.output_tokens
        + usage.cache_read_input_tokens
        + usage.cache_creation_input_tokens
    )


@given(accounts, st.lists(st.uuids().map(lambda u: f"sk-ant-{u.hex}"), min_size=3, max_size=3))
def test_account_repr_never_shows_credentials(account: Account, secrets: list[str]) -> None:
    api_key, access, refresh = secrets
    held = msgspec.structs.replace(
        account,
        credentials=Credentials(api_key=api_key, access_token=access, refresh_token=refresh),
    )
    shown = repr(held)
    assert not any(secret in shown for secret in secrets)


def test_credentials_repr_names_what_is_held_without_values() -> None:
    shown = repr(Credentials(access_token="sk-ant-oat01-secretvalue", refresh_token="rt-secret"))
    assert "secretvalue" not in shown
    assert "rt-secret" not in shown
    assert "access_token" in shown
    assert "refresh_token" in shown


def test_oauth_session_repr_hides_verifier() -> None:
    session = OAuthSession(
        id="s",
        account_name="a",
        verifier="the-verifier-value",
        mode=OAuthMode.CONSOLE,
        created_at_ms=0,
        expires_at_ms=1,
    )
    assert "the-verifier-value" not in repr(session)


def test_credentials_expiry_window() -> None:
    creds = Credentials(access_token="t", expires_at_ms=10_000)
    assert creds.expires_within(now_ms=9_000, window_ms=2_000)
    assert not creds.expires_within(now_ms=5_000, window_ms=2_000)
    assert not Credentials(api_key="k").expires_within(now_ms=0, window_ms=10**12)


@given(st.integers(min_value=0, max_value=10**13), st.integers(min_value=0, max_value=10**13))
def test_cooldown_ends_exactly_at_its_end(until: int, now: int) -> None:
    state = RateLimitState(limited_until_ms=until)
    assert state.cooling_down(now) == (now < until)


def test_account_availability() -> None:
    base = Account(id="a", name="a", provider="anthropic", created_at_ms=0)
    assert base.is_available(0)
    assert not msgspec.structs.replace(base, paused=True).is_available(0)
    assert not msgspec.structs.replace(base, requires_reauth=True).is_available(0)
    cooling = msgspec.structs.replace(base, rate_limit=RateLimitState(limited_until_ms=100))
    assert not cooling.is_available(99)
    assert cooling.is_available(100)
