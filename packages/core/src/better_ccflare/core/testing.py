"""Hypothesis strategies for the core Structs, for this and every other package's tests.

Not imported by ``better_ccflare.core`` itself: it needs hypothesis, which is only a test
dependency (``pip install 'better-ccflare-core[testing]'``). Values stay within what every
backend can store: integers below 2**40, finite floats, epoch milliseconds up to 2100.
"""

from __future__ import annotations

from typing import TypeVar

from hypothesis import strategies as st

from better_ccflare.core import (
    Account,
    ApiKey,
    ApiKeyRole,
    BillingType,
    Credentials,
    OAuthMode,
    OAuthSession,
    PauseReason,
    RateLimitReason,
    RateLimitState,
    RequestRecord,
    SessionState,
    StreamTerminalState,
    TokenUsage,
    UsageSnapshot,
    UsageWindow,
)

__all__ = [
    "accounts",
    "api_keys",
    "credentials",
    "oauth_sessions",
    "rate_limit_states",
    "request_records",
    "token_usages",
    "usage_snapshots",
]

_ms = st.integers(min_value=0, max_value=4_102_444_800_000)
_count = st.integers(min_value=0, max_value=2**40)
_text = st.text(max_size=40)
_real = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


_T = TypeVar("_T")


def _maybe(strategy: st.SearchStrategy[_T]) -> st.SearchStrategy[_T | None]:
    return st.none() | strategy


credentials = st.builds(
    Credentials,
    api_key=_maybe(_text),
    access_token=_maybe(_text),
    refresh_token=_maybe(_text),
    expires_at_ms=_maybe(_ms),
    refresh_token_issued_at_ms=_maybe(_ms),
)
rate_limit_states = st.builds(
    RateLimitState,
    status=_maybe(_text),
    reset_at_ms=_maybe(_ms),
    remaining=_maybe(_count),
    limited_until_ms=_maybe(_ms),
    reason=_maybe(st.sampled_from(RateLimitReason)),
    limited_at_ms=_maybe(_ms),
    consecutive=st.integers(min_value=0, max_value=1000),
    failures=st.integers(min_value=0, max_value=1000),
)
accounts = st.builds(
    Account,
    id=_text,
    name=_text,
    provider=_text,
    created_at_ms=_ms,
    credentials=credentials,
    priority=st.integers(min_value=-1000, max_value=1000),
    paused=st.booleans(),
    pause_reason=_maybe(st.sampled_from(PauseReason)),
    requires_reauth=st.booleans(),
    rate_limit=rate_limit_states,
    session=st.builds(SessionState, started_at_ms=_maybe(_ms), request_count=_count),
    last_used_ms=_maybe(_ms),
    request_count=_count,
    total_requests=_count,
    auto_fallback_enabled=st.booleans(),
    auto_refresh_enabled=st.booleans(),
    auto_pause_on_overage_enabled=st.booleans(),
    peak_hours_pause_enabled=st.booleans(),
    custom_endpoint=_maybe(_text),
    model_mappings=st.dictionaries(_text, st.lists(_text, min_size=1, max_size=3).map(tuple)),
    billing_type=_maybe(st.sampled_from(BillingType)),
)
token_usages = st.builds(
    TokenUsage,
    input_tokens=_count,
    output_tokens=_count,
    cache_read_input_tokens=_count,
    cache_write_5m_input_tokens=_count,
    cache_write_1h_input_tokens=_count,
)
request_records = st.builds(
    RequestRecord,
    id=_text,
    timestamp_ms=_ms,
    method=_text,
    path=_text,
    account_id=_maybe(_text),
    status_code=_maybe(st.integers(min_value=100, max_value=599)),
    success=st.booleans(),
    error_message=_maybe(_text),
    response_time_ms=_maybe(_count),
    failover_attempts=st.integers(min_value=0, max_value=50),
    model=_maybe(_text),
    usage=token_usages,
    cost_usd=_maybe(_real),
    output_tokens_per_second=_maybe(_real),
    agent_used=_maybe(_text),
    api_key_id=_maybe(_text),
    api_key_name=_maybe(_text),
    project=_maybe(_text),
    billing_type=_maybe(st.sampled_from(BillingType)),
    original_model=_maybe(_text),
    applied_model=_maybe(_text),
    stream_terminal_state=_maybe(st.sampled_from(StreamTerminalState)),
    client_session_id=_maybe(_text),
)
api_keys = st.builds(
    ApiKey,
    id=_text,
    name=_text,
    hashed_key=_text,
    prefix_last_8=_text,
    created_at_ms=_ms,
    last_used_ms=_maybe(_ms),
    usage_count=_count,
    is_active=st.booleans(),
    role=st.sampled_from(ApiKeyRole),
)
oauth_sessions = st.builds(
    OAuthSession,
    id=_text,
    account_name=_text,
    verifier=_text,
    mode=st.sampled_from(OAuthMode),
    created_at_ms=_ms,
    expires_at_ms=_ms,
    custom_endpoint=_maybe(_text),
    priority=st.integers(min_value=0, max_value=100),
)
usage_snapshots = st.builds(
    UsageSnapshot,
    account_id=_text,
    timestamp_ms=_ms,
    windows=st.lists(
        st.builds(
            UsageWindow,
            key=_text,
            utilization=st.floats(min_value=0, max_value=500, allow_nan=False),
            resets_at_ms=_maybe(_ms),
        ),
        max_size=5,
    ).map(tuple),
)
