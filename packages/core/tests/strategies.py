"""Hypothesis strategies for the core Structs, shared by this package's tests."""

from __future__ import annotations

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

ms = st.integers(min_value=0, max_value=4_102_444_800_000)
count = st.integers(min_value=0, max_value=2**40)
text = st.text(max_size=40)
maybe = st.none().__or__

credentials = st.builds(
    Credentials,
    api_key=maybe(text),
    access_token=maybe(text),
    refresh_token=maybe(text),
    expires_at_ms=maybe(ms),
    refresh_token_issued_at_ms=maybe(ms),
)
rate_limit_states = st.builds(
    RateLimitState,
    status=maybe(text),
    reset_at_ms=maybe(ms),
    remaining=maybe(count),
    limited_until_ms=maybe(ms),
    reason=maybe(st.sampled_from(RateLimitReason)),
    limited_at_ms=maybe(ms),
    consecutive=st.integers(min_value=0, max_value=1000),
)
accounts = st.builds(
    Account,
    id=text,
    name=text,
    provider=text,
    created_at_ms=ms,
    credentials=credentials,
    priority=st.integers(min_value=-1000, max_value=1000),
    paused=st.booleans(),
    pause_reason=maybe(st.sampled_from(PauseReason)),
    requires_reauth=st.booleans(),
    rate_limit=rate_limit_states,
    session=st.builds(SessionState, started_at_ms=maybe(ms), request_count=count),
    last_used_ms=maybe(ms),
    request_count=count,
    total_requests=count,
    auto_fallback_enabled=st.booleans(),
    auto_refresh_enabled=st.booleans(),
    custom_endpoint=maybe(text),
    model_mappings=st.dictionaries(text, st.lists(text, min_size=1, max_size=3).map(tuple)),
    billing_type=maybe(st.sampled_from(BillingType)),
)
token_usages = st.builds(
    TokenUsage,
    input_tokens=count,
    output_tokens=count,
    cache_read_input_tokens=count,
    cache_write_5m_input_tokens=count,
    cache_write_1h_input_tokens=count,
)
request_records = st.builds(
    RequestRecord,
    id=text,
    timestamp_ms=ms,
    method=st.sampled_from(["GET", "POST"]),
    path=text,
    account_id=maybe(text),
    status_code=maybe(st.integers(min_value=100, max_value=599)),
    success=st.booleans(),
    error_message=maybe(text),
    response_time_ms=maybe(count),
    failover_attempts=st.integers(min_value=0, max_value=50),
    model=maybe(text),
    usage=token_usages,
    cost_usd=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    output_tokens_per_second=maybe(st.floats(min_value=0, max_value=1e6, allow_nan=False)),
    billing_type=maybe(st.sampled_from(BillingType)),
    stream_terminal_state=maybe(st.sampled_from(StreamTerminalState)),
    client_session_id=maybe(text),
)
api_keys = st.builds(
    ApiKey,
    id=text,
    name=text,
    hashed_key=text,
    prefix_last_8=text,
    created_at_ms=ms,
    last_used_ms=maybe(ms),
    usage_count=count,
    is_active=st.booleans(),
    role=st.sampled_from(ApiKeyRole),
)
oauth_sessions = st.builds(
    OAuthSession,
    id=text,
    account_name=text,
    verifier=text,
    mode=st.sampled_from(OAuthMode),
    created_at_ms=ms,
    expires_at_ms=ms,
    custom_endpoint=maybe(text),
    priority=st.integers(min_value=0, max_value=100),
)
usage_snapshots = st.builds(
    UsageSnapshot,
    account_id=text,
    timestamp_ms=ms,
    windows=st.lists(
        st.builds(
            UsageWindow,
            key=text,
            utilization=st.floats(min_value=0, max_value=500, allow_nan=False),
            resets_at_ms=maybe(ms),
        ),
        max_size=5,
    ).map(tuple),
)
