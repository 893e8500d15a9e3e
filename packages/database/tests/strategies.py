"""Hypothesis strategies for the core values the store keeps, within what SQLite can hold."""

from __future__ import annotations

from hypothesis import strategies as st

from better_ccflare.core import (
    Account,
    BillingType,
    Credentials,
    PauseReason,
    RateLimitReason,
    RateLimitState,
    RequestRecord,
    SessionState,
    StreamTerminalState,
    TokenUsage,
)

ms = st.integers(min_value=0, max_value=4_102_444_800_000)
count = st.integers(min_value=0, max_value=2**40)
text = st.text(max_size=40)
maybe = st.none().__or__
real = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)

credentials = st.builds(
    Credentials,
    api_key=maybe(text),
    access_token=maybe(text),
    refresh_token=maybe(text),
    expires_at_ms=maybe(ms),
    refresh_token_issued_at_ms=maybe(ms),
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
    rate_limit=st.builds(
        RateLimitState,
        status=maybe(text),
        reset_at_ms=maybe(ms),
        remaining=maybe(count),
        limited_until_ms=maybe(ms),
        reason=maybe(st.sampled_from(RateLimitReason)),
        limited_at_ms=maybe(ms),
        consecutive=st.integers(min_value=0, max_value=1000),
    ),
    session=st.builds(SessionState, started_at_ms=maybe(ms), request_count=count),
    last_used_ms=maybe(ms),
    request_count=count,
    total_requests=count,
    auto_fallback_enabled=st.booleans(),
    auto_refresh_enabled=st.booleans(),
    auto_pause_on_overage_enabled=st.booleans(),
    peak_hours_pause_enabled=st.booleans(),
    custom_endpoint=maybe(text),
    model_mappings=st.dictionaries(text, st.lists(text, max_size=3).map(tuple)),
    billing_type=maybe(st.sampled_from(BillingType)),
)
request_records = st.builds(
    RequestRecord,
    id=text,
    timestamp_ms=ms,
    method=text,
    path=text,
    account_id=maybe(text),
    status_code=maybe(st.integers(min_value=100, max_value=599)),
    success=st.booleans(),
    error_message=maybe(text),
    response_time_ms=maybe(count),
    failover_attempts=st.integers(min_value=0, max_value=50),
    model=maybe(text),
    usage=st.builds(
        TokenUsage,
        input_tokens=count,
        output_tokens=count,
        cache_read_input_tokens=count,
        cache_write_5m_input_tokens=count,
        cache_write_1h_input_tokens=count,
    ),
    cost_usd=real,
    output_tokens_per_second=maybe(real),
    agent_used=maybe(text),
    api_key_id=maybe(text),
    api_key_name=maybe(text),
    project=maybe(text),
    billing_type=maybe(st.sampled_from(BillingType)),
    original_model=maybe(text),
    applied_model=maybe(text),
    stream_terminal_state=maybe(st.sampled_from(StreamTerminalState)),
    client_session_id=maybe(text),
)
