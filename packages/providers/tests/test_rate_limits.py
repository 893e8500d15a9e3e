"""Rate-limit classification: the documented table, resets, clamping, and z.ai's body."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.providers import RateLimitInfo, RateLimitKind
from better_ccflare.providers._anthropic_api import classify_anthropic_rate_limit
from better_ccflare.providers._zai import classify_zai_rate_limit

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NOW_S = NOW_MS // 1000
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
U = "anthropic-ratelimit-unified-"


def classify(status: int, headers: dict[str, str], body: bytes | None = None) -> RateLimitInfo:
    return classify_anthropic_rate_limit(status=status, headers=headers, body=body, now_ms=NOW_MS)


# --- Recorded-shape responses -------------------------------------------------------------


def test_plan_window_exhausted_429_is_an_account_quota_until_the_unified_reset() -> None:
    info = classify(
        429,
        {
            U + "status": "rejected",
            U + "reset": str(NOW_S + 5400),
            U + "representative-claim": "five_hour",
            U + "5h-status": "rejected",
            U + "5h-utilization": "1.02",
            U + "fallback-percentage": "0.5",
            "retry-after": "5400",
            "x-should-retry": "true",
        },
    )
    assert info == RateLimitInfo(
        kind=RateLimitKind.ACCOUNT_QUOTA,
        status="rejected",
        reset_at_ms=NOW_MS + 5400 * 1000,
        window="five_hour",
    )


def test_successful_response_carries_soft_status_reset_and_remaining() -> None:
    info = classify(
        200,
        {
            U + "status": "allowed_warning",
            U + "reset": str(NOW_S + 3600),
            U + "remaining": "42",
            U + "representative-claim": "seven_day",
        },
    )
    assert info.kind is RateLimitKind.NONE
    assert not info.limited
    assert (info.status, info.reset_at_ms, info.remaining, info.window) == (
        "allowed_warning",
        NOW_MS + HOUR_MS,
        42,
        "seven_day",
    )


def test_hard_unified_status_limits_even_without_429() -> None:
    for status in ("rate_limited", "blocked", "queueing_hard", "payment_required"):
        assert classify(200, {U + "status": status}).kind is RateLimitKind.ACCOUNT_QUOTA


def test_soft_unified_statuses_do_not_limit() -> None:
    for status in ("allowed", "allowed_warning", "queueing_soft"):
        assert classify(200, {U + "status": status}).kind is RateLimitKind.NONE


def test_out_of_credits_429_is_not_a_long_bench() -> None:
    info = classify(
        429,
        {
            U + "status": "rejected",
            U + "overage-disabled-reason": "out_of_credits",
            U + "overage-status": "rejected",
            U + "reset": str(NOW_S + 4 * 3600),
        },
    )
    assert info.kind is RateLimitKind.OUT_OF_CREDITS


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        (429, "billing_error", "Your account is out of credits."),
        (402, "billing_error", "Payment required."),
        (400, "invalid_request_error", "Your credit balance is too low to access the API."),
        (403, "permission_error", "Your credit balance is too low to access the API."),
    ],
)
def test_an_error_body_saying_the_account_has_no_credit_is_out_of_credits(
    status: int, kind: str, message: str
) -> None:
    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    assert classify(status, {}, body).kind is RateLimitKind.OUT_OF_CREDITS


def test_an_ordinary_invalid_request_is_not_out_of_credits() -> None:
    body = b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens"}}'
    assert classify(400, {}, body).kind is RateLimitKind.NONE


def test_windowless_429_with_should_retry_is_request_scoped() -> None:
    info = classify(
        429,
        {"x-should-retry": "true", "request-id": "req_1", "content-type": "application/json"},
        b'{"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}',
    )
    assert info == RateLimitInfo(kind=RateLimitKind.REQUEST_SCOPED)


def test_bare_429_is_request_scoped_not_benched() -> None:
    assert classify(429, {}).kind is RateLimitKind.REQUEST_SCOPED


def test_console_key_429_uses_retry_after() -> None:
    info = classify(
        429,
        {
            "retry-after": "17",
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:17Z",
        },
    )
    assert info.kind is RateLimitKind.ACCOUNT_QUOTA
    assert info.reset_at_ms == NOW_MS + 17_000


def test_standard_reset_headers_are_the_last_fallback() -> None:
    info = classify(
        429,
        {
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
            "anthropic-ratelimit-tokens-reset": "2026-01-01T00:01:00Z",
        },
    )
    assert info.kind is RateLimitKind.ACCOUNT_QUOTA
    assert info.reset_at_ms == NOW_MS + 60_000


def test_retry_after_may_be_an_http_date() -> None:
    when = datetime.fromtimestamp(NOW_S + 90, UTC)
    info = classify(429, {"retry-after": format_datetime(when, usegmt=True)})
    assert info.reset_at_ms == NOW_MS + 90_000


def test_x_ratelimit_reset_accepts_epoch_seconds_epoch_ms_and_delta_seconds() -> None:
    assert classify(429, {"x-ratelimit-reset": str(NOW_S + 60)}).reset_at_ms == NOW_MS + 60_000
    assert classify(429, {"x-ratelimit-reset": str(NOW_MS + 60_000)}).reset_at_ms == NOW_MS + 60_000
    assert classify(429, {"x-ratelimit-reset": "60"}).reset_at_ms == NOW_MS + 60_000


def test_overloaded_529_is_short_and_its_reset_clamped_to_a_day() -> None:
    info = classify(
        529,
        {U + "reset": str(NOW_S + 3 * 86400)},
        b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    )
    assert info.kind is RateLimitKind.OVERLOADED
    assert info.reset_at_ms == NOW_MS + DAY_MS
    assert classify(529, {}).reset_at_ms is None


def test_past_reset_is_ignored_and_the_next_source_used() -> None:
    info = classify(429, {U + "reset": str(NOW_S - 10), "retry-after": "30"})
    assert info.reset_at_ms == NOW_MS + 30_000
    assert classify(429, {U + "reset": str(NOW_S - 10)}).reset_at_ms is None


def test_reset_more_than_eight_days_out_is_clamped() -> None:
    info = classify(429, {U + "reset": str(NOW_S + 365 * 86400)})
    assert info.reset_at_ms == NOW_MS + 8 * DAY_MS


def test_malformed_values_are_ignored() -> None:
    info = classify(
        200,
        {U + "reset": "soon", U + "remaining": "-3", "retry-after": "NaN", U + "status": " "},
    )
    assert info == RateLimitInfo()


# --- z.ai ---------------------------------------------------------------------------------


def zai_body(reset_local: str, code: str = "1308") -> bytes:
    return json.dumps(
        {
            "error": {
                "code": code,
                "message": f"Usage limit reached for 5 hour. Your limit will reset at "
                f"{reset_local}",
            }
        }
    ).encode()


def test_zai_quota_body_reset_is_read_as_utc_plus_8() -> None:
    # 2026-01-01 13:30:00 in UTC+8 is 05:30:00 UTC.
    info = classify_zai_rate_limit(
        status=429, headers={}, body=zai_body("2026-01-01 13:30:00"), now_ms=NOW_MS
    )
    assert info.kind is RateLimitKind.ACCOUNT_QUOTA
    assert info.reset_at_ms == NOW_MS + 5 * HOUR_MS + 30 * 60_000


def test_zai_quota_code_may_arrive_as_type() -> None:
    body = json.dumps(
        {"error": {"type": "1308", "message": "Limit hit, reset at 2026-01-01 09:00:00"}}
    ).encode()
    info = classify_zai_rate_limit(status=429, headers={}, body=body, now_ms=NOW_MS)
    assert info.reset_at_ms == NOW_MS + HOUR_MS


def test_zai_other_429s_follow_the_anthropic_table() -> None:
    other = zai_body("2026-01-01 13:30:00", code="1302")
    assert (
        classify_zai_rate_limit(status=429, headers={}, body=other, now_ms=NOW_MS).kind
        is RateLimitKind.REQUEST_SCOPED
    )
    truncated = zai_body("2026-01-01 13:30:00")[:40]
    assert (
        classify_zai_rate_limit(
            status=429, headers={"retry-after": "5"}, body=truncated, now_ms=NOW_MS
        ).reset_at_ms
        == NOW_MS + 5000
    )


# --- The documented table, checked over generated header sets ------------------------------

HARD = {"rate_limited", "blocked", "queueing_hard", "payment_required", "rejected"}
SOFT = {"allowed", "allowed_warning", "queueing_soft"}
SIGNAL_PREFIXES = (U,)
SIGNAL_NAMES = {
    "retry-after",
    "x-ratelimit-reset",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
}
GARBAGE = st.sampled_from(["", " ", "soon", "NaN", "inf", "-", "1e400", "\x00", "½", "12abc"])
OFFSETS_S = st.integers(min_value=-2 * 86400, max_value=30 * 86400)


def oracle(status: int, headers: dict[str, str], candidates: list[int | None]) -> RateLimitInfo:
    """The module docstring's table, written out independently of the implementation."""

    def text(name: str) -> str | None:
        value = headers.get(name, "").strip().lower()
        return value or None

    unified = text(U + "status")
    remaining_raw = headers.get(U + "remaining", "").strip()
    remaining = int(remaining_raw) if remaining_raw.isdigit() else None
    window = text(U + "representative-claim")
    signal = any(n.startswith(SIGNAL_PREFIXES) or n in SIGNAL_NAMES for n in headers)
    if status == 429 and text(U + "overage-disabled-reason") == "out_of_credits":
        kind = RateLimitKind.OUT_OF_CREDITS
    elif status == 529:
        kind = RateLimitKind.OVERLOADED
    elif unified in HARD or (status == 429 and signal):
        kind = RateLimitKind.ACCOUNT_QUOTA
    elif status == 429:
        return RateLimitInfo(
            kind=RateLimitKind.REQUEST_SCOPED, status=unified, remaining=remaining, window=window
        )
    else:
        kind = RateLimitKind.NONE
    horizon = NOW_MS + (DAY_MS if kind is RateLimitKind.OVERLOADED else 8 * DAY_MS)
    reset = next((min(c, horizon) for c in candidates if c is not None and c > NOW_MS), None)
    return RateLimitInfo(
        kind=kind, status=unified, reset_at_ms=reset, remaining=remaining, window=window
    )


@st.composite
def responses(draw: st.DrawFn) -> tuple[int, dict[str, str], list[int | None]]:
    """A status, headers, and the reset each reset source means (in source order)."""
    status = draw(st.sampled_from([200, 201, 400, 429, 429, 429, 500, 529]))
    headers: dict[str, str] = {}
    unified: int | None = None
    retry: int | None = None
    x_reset: int | None = None
    standard: int | None = None

    if draw(st.booleans()):
        word = draw(st.sampled_from(sorted(HARD | SOFT)))
        headers[U + "status"] = draw(st.sampled_from([word, word.upper(), f" {word} "]) | GARBAGE)
    if draw(st.booleans()):
        if draw(st.booleans()):
            offset = draw(OFFSETS_S)
            headers[U + "reset"] = str(NOW_S + offset)
            unified = NOW_MS + offset * 1000
        else:
            headers[U + "reset"] = draw(GARBAGE)
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["seconds", "date", "garbage"]))
        offset = draw(st.integers(min_value=-600, max_value=10 * 86400))
        if kind == "seconds":
            headers["retry-after"] = str(offset)
            retry = NOW_MS + offset * 1000
        elif kind == "date":
            headers["retry-after"] = format_datetime(
                datetime.fromtimestamp(NOW_S + offset, UTC), usegmt=True
            )
            retry = NOW_MS + offset * 1000
        else:
            headers["retry-after"] = draw(GARBAGE)
    if draw(st.booleans()):
        offset = draw(OFFSETS_S)
        headers["x-ratelimit-reset"] = str(NOW_S + offset)
        x_reset = NOW_MS + offset * 1000
    if draw(st.booleans()):
        offset = draw(OFFSETS_S)
        iso = (datetime.fromtimestamp(NOW_S, UTC) + timedelta(seconds=offset)).isoformat()
        headers["anthropic-ratelimit-tokens-reset"] = iso.replace("+00:00", "Z")
        standard = NOW_MS + offset * 1000
    if draw(st.booleans()):
        headers[U + "remaining"] = draw(st.integers(0, 10**6).map(str) | GARBAGE)
    if draw(st.booleans()):
        headers[U + "representative-claim"] = draw(
            st.sampled_from(["five_hour", "seven_day", "seven_day_opus", " Five_Hour "])
        )
    if draw(st.booleans()):
        headers[U + "overage-disabled-reason"] = draw(
            st.sampled_from(["out_of_credits", "OUT_OF_CREDITS", "org_level_disabled"])
        )
    if draw(st.booleans()):
        headers["x-should-retry"] = draw(st.sampled_from(["true", "false"]))
    if draw(st.booleans()):
        headers["request-id"] = "req_011CUxyz"
    return status, headers, [unified, retry, x_reset, standard]


@given(responses())
def test_classification_matches_the_documented_table(
    response: tuple[int, dict[str, str], list[int | None]],
) -> None:
    status, headers, candidates = response
    assert classify(status, headers) == oracle(status, headers, candidates)


HEADER_NAMES = st.sampled_from(
    [
        U + "status",
        U + "reset",
        U + "remaining",
        U + "representative-claim",
        U + "overage-disabled-reason",
        "retry-after",
        "x-ratelimit-reset",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-reset",
        "x-should-retry",
    ]
)


@given(
    st.integers(min_value=100, max_value=599),
    st.dictionaries(HEADER_NAMES, st.text()),
    st.none() | st.binary(max_size=300),
)
def test_no_header_or_body_value_raises(
    status: int, headers: dict[str, str], body: bytes | None
) -> None:
    info = classify_zai_rate_limit(status=status, headers=headers, body=body, now_ms=NOW_MS)
    if info.reset_at_ms is not None:
        assert NOW_MS < info.reset_at_ms <= NOW_MS + 8 * DAY_MS
