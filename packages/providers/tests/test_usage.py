"""Usage endpoints: parsers on recorded-shape payloads, fetchers against a mock transport."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx2
import pytest

from better_ccflare.core import UsageWindow
from better_ccflare.providers import UsageFetchError
from better_ccflare.providers._claude_oauth import (
    ClaudeUsage,
    fetch_claude_usage,
    parse_claude_usage,
)
from better_ccflare.providers._minimax import fetch_minimax_usage, parse_minimax_usage
from better_ccflare.providers._nanogpt import fetch_nanogpt_usage, parse_nanogpt_usage
from better_ccflare.providers._zai import fetch_zai_usage, parse_zai_usage

NOW_MS = 1_767_225_600_000
RESET_5H = "2026-08-10T14:00:00.172479+00:00"
RESET_7D = "2026-08-14T09:00:00+00:00"


def ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def encode(body: object) -> bytes:
    return json.dumps(body).encode()


def by_key(windows: tuple[UsageWindow, ...]) -> dict[str, tuple[float, int | None]]:
    return {w.key: (w.utilization, w.resets_at_ms) for w in windows}


def mock_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


class Recorder:
    """A mock upstream that answers with one canned response and keeps the requests."""

    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx2.Request] = []
        self._response = (status, body, headers)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        status, body, headers = self._response
        return httpx2.Response(status, json=body, headers=headers)

    def client(self) -> httpx2.AsyncClient:
        return mock_client(self)


# --------------------------------------------------------------------------- Claude

LEGACY_ONLY = {
    "five_hour": {"utilization": 27.0, "resets_at": RESET_5H},
    "seven_day": {"utilization": 60.0, "resets_at": RESET_7D},
    "seven_day_oauth_apps": None,
    "seven_day_opus": {"utilization": 95.0, "resets_at": None},
    "seven_day_sonnet": None,
    "iguana_necktie": None,
    "extra_usage": {
        "is_enabled": False,
        "monthly_limit": None,
        "used_credits": None,
        "utilization": None,
    },
}

LIMITS_ONLY = {
    "five_hour": None,
    "seven_day": None,
    "limits": [
        {"kind": "session", "group": "session", "percent": 52, "severity": "normal",
         "resets_at": RESET_5H, "scope": None, "is_active": True},
        {"kind": "weekly_all", "group": "weekly", "percent": 20, "severity": "normal",
         "resets_at": RESET_7D, "scope": None, "is_active": False},
        {"kind": "weekly_scoped", "group": "weekly", "percent": 99, "severity": "warning",
         "resets_at": RESET_7D, "scope": {"model": {"id": None, "display_name": "Fable"},
                                          "surface": None}, "is_active": False},
        {"kind": "weekly_scoped", "group": "weekly", "percent": None, "severity": "normal",
         "resets_at": None, "scope": {"model": {"id": None, "display_name": "Ghost"}}},
        {"kind": "inactive_pool", "percent": 100, "is_active": False},
    ],
}  # fmt: skip

MIXED = {
    "five_hour": {"utilization": 10.0, "resets_at": "2026-08-10T13:59:59.9+00:00"},
    "seven_day": {"utilization": 71.0, "resets_at": RESET_7D},
    "seven_day_oauth_apps": {"utilization": 5.0, "resets_at": RESET_7D},
    "seven_day_opus": {"utilization": 33.0, "resets_at": RESET_7D},
    "seven_day_fable": {"utilization": 50.0, "resets_at": RESET_7D},
    "seven_day_sonnet": None,
    "seven_day_cowork": None,
    "extra_usage": {"is_enabled": True, "monthly_limit": 5000, "used_credits": 1000,
                    "utilization": 20},
    "limits": [
        {"kind": "session", "percent": 42.5, "resets_at": RESET_5H, "scope": None},
        {"kind": "weekly_scoped", "percent": 57, "resets_at": RESET_7D,
         "scope": {"model": {"id": None, "display_name": "Fable"}}},
        {"kind": "weekly_scoped", "percent": 12, "resets_at": RESET_7D,
         "scope": {"model": {"id": None, "display_name": "Sonnet 5 (1M)"}}},
    ],
    "spend": {"used": {"amount_minor": 0}},
}  # fmt: skip


def test_legacy_windows_are_read_with_their_resets() -> None:
    usage = parse_claude_usage(encode(LEGACY_ONLY))

    assert by_key(usage.windows) == {
        "five_hour": (27.0, ms(RESET_5H)),
        "seven_day": (60.0, ms(RESET_7D)),
        "seven_day_opus": (95.0, None),
    }


def test_representative_utilization_ignores_per_model_windows() -> None:
    usage = parse_claude_usage(encode(LEGACY_ONLY))

    assert usage.representative_utilization == 60.0
    assert usage.representative_reset_ms == ms(RESET_7D)


def test_limits_map_to_the_legacy_window_names() -> None:
    usage = parse_claude_usage(encode(LIMITS_ONLY))

    assert by_key(usage.windows) == {
        "five_hour": (52, ms(RESET_5H)),
        "seven_day": (20, ms(RESET_7D)),
        "seven_day_fable": (99, ms(RESET_7D)),
    }


def test_limits_only_representative_comes_from_session_and_weekly_all() -> None:
    usage = parse_claude_usage(encode(LIMITS_ONLY))

    assert usage.representative_utilization == 52
    assert usage.representative_reset_ms == ms(RESET_5H)


def test_limits_win_over_legacy_for_the_same_window() -> None:
    windows = by_key(parse_claude_usage(encode(MIXED)).windows)

    assert windows["five_hour"] == (42.5, ms(RESET_5H))
    assert windows["seven_day_fable"] == (57, ms(RESET_7D))


def test_legacy_windows_without_a_limits_counterpart_are_kept() -> None:
    windows = by_key(parse_claude_usage(encode(MIXED)).windows)

    assert windows["seven_day"] == (71.0, ms(RESET_7D))
    assert windows["seven_day_oauth_apps"] == (5.0, ms(RESET_7D))
    assert windows["seven_day_opus"] == (33.0, ms(RESET_7D))


def test_scoped_limit_names_are_slugged() -> None:
    windows = by_key(parse_claude_usage(encode(MIXED)).windows)

    assert windows["seven_day_sonnet_5_1m"] == (12, ms(RESET_7D))


def test_mixed_representative_is_the_highest_hard_window() -> None:
    usage = parse_claude_usage(encode(MIXED))

    assert usage.representative_utilization == 71.0


def test_extra_usage_is_parsed_but_never_representative() -> None:
    extra = {"is_enabled": True, "monthly_limit": 5000, "used_credits": 1000, "utilization": 99.5}
    body = {**MIXED, "extra_usage": extra}

    usage = parse_claude_usage(encode(body))

    assert usage.extra_usage is not None
    assert usage.extra_usage.is_enabled is True
    assert (usage.extra_usage.monthly_limit, usage.extra_usage.used_credits) == (5000, 1000)
    assert usage.extra_usage.utilization == 99.5
    assert usage.representative_utilization == 71.0


def test_disabled_extra_usage_keeps_its_reason() -> None:
    body = {"extra_usage": {"utilization": 97.1, "is_enabled": False,
                            "disabled_reason": "out_of_credits"}}  # fmt: skip

    usage = parse_claude_usage(encode(body))

    assert usage.extra_usage is not None
    assert usage.extra_usage.is_enabled is False
    assert usage.extra_usage.disabled_reason == "out_of_credits"


def test_spend_amounts_are_read_in_major_units() -> None:
    body = {
        "spend": {
            "used": {"amount_minor": 53411, "currency": "EUR", "exponent": 2},
            "limit": {"amount_minor": 55000, "currency": "EUR", "exponent": 2},
            "percent": 97,
            "severity": "critical",
            "enabled": False,
            "disabled_reason": "out_of_credits",
        }
    }

    spend = parse_claude_usage(encode(body)).spend

    assert spend is not None
    assert spend.used is not None
    assert spend.limit is not None
    assert (spend.used.amount, spend.used.currency) == (534.11, "EUR")
    assert spend.limit.amount == 550.0
    assert (spend.percent, spend.enabled, spend.disabled_reason) == (97, False, "out_of_credits")


def test_all_null_payload_has_no_windows_and_no_representative() -> None:
    body = dict.fromkeys(["five_hour", "seven_day", "seven_day_opus", "extra_usage", "limits"])

    usage = parse_claude_usage(encode(body))

    assert usage == ClaudeUsage()
    assert usage.representative_utilization is None
    assert usage.representative_reset_ms is None


def test_representative_reset_on_a_tie_is_the_later_one() -> None:
    body = {
        "five_hour": {"utilization": 100, "resets_at": RESET_5H},
        "seven_day": {"utilization": 100, "resets_at": RESET_7D},
    }

    assert parse_claude_usage(encode(body)).representative_reset_ms == ms(RESET_7D)


def test_oauth_apps_window_counts_as_hard() -> None:
    body = {"five_hour": {"utilization": 1}, "seven_day_oauth_apps": {"utilization": 88}}

    assert parse_claude_usage(encode(body)).representative_utilization == 88


def test_reset_without_timezone_is_taken_as_utc() -> None:
    body = {"five_hour": {"utilization": 1, "resets_at": "2026-08-10T14:00:00"}}

    [window] = parse_claude_usage(encode(body)).windows

    assert window.resets_at_ms == round(datetime(2026, 8, 10, 14, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [(b"<html>", "not JSON"), (b'{"five_hour": {"utilization": "high"}}', "unexpected shape")],
)
def test_unreadable_claude_payload_is_a_fetch_error(payload: bytes, complaint: str) -> None:
    with pytest.raises(UsageFetchError, match=complaint):
        parse_claude_usage(payload)


async def test_claude_fetch_looks_like_claude_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETTER_CCFLARE_ANTHROPIC_API_URL", "http://127.0.0.1:1")
    upstream = Recorder(200, LEGACY_ONLY)

    async with upstream.client() as http:
        usage = await fetch_claude_usage(http, access_token="at-1")

    assert usage.representative_utilization == 60.0
    [request] = upstream.requests
    assert (request.method, str(request.url)) == ("GET", "http://127.0.0.1:1/api/oauth/usage")
    assert request.headers["authorization"] == "Bearer at-1"
    assert request.headers["anthropic-beta"] == "oauth-2025-04-20"
    assert request.headers["user-agent"] == "claude-code/2.1.238"
    assert request.extensions["timeout"] == dict.fromkeys(["connect", "read", "write", "pool"], 5.0)


async def test_429_carries_the_retry_after() -> None:
    upstream = Recorder(429, {"error": "rate_limited"}, {"retry-after": "120"})

    async with upstream.client() as http:
        with pytest.raises(UsageFetchError) as caught:
            await fetch_claude_usage(http, access_token="at")

    assert (caught.value.status, caught.value.retry_after_ms) == (429, 120_000)


async def test_other_http_errors_have_no_retry_after() -> None:
    async with Recorder(401, {"error": "unauthorized"}).client() as http:
        with pytest.raises(UsageFetchError, match="HTTP 401") as caught:
            await fetch_claude_usage(http, access_token="secret-access-token")

    assert caught.value.retry_after_ms is None
    assert "secret-access-token" not in str(caught.value)


async def test_timeout_is_a_fetch_error() -> None:
    def hang(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    async with mock_client(hang) as http:
        with pytest.raises(UsageFetchError, match="did not answer within 5 s"):
            await fetch_claude_usage(http, access_token="at")


async def test_connection_failure_is_a_fetch_error() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    async with mock_client(refuse) as http:
        with pytest.raises(UsageFetchError, match="Could not reach"):
            await fetch_zai_usage(http, api_key="k")


# --------------------------------------------------------------------------- z.ai

ZAI_PRO = {
    "code": 200,
    "msg": "Operation successful",
    "success": True,
    "data": {
        "level": "pro",
        "limits": [
            {"type": "TOKENS_LIMIT", "unit": 6, "number": 1, "percentage": 2,
             "nextResetTime": 1789005906998},
            {"type": "TOKENS_LIMIT", "unit": 3, "number": 5, "percentage": 1,
             "nextResetTime": 1788455420775},
            {"type": "TIME_LIMIT", "unit": 5, "number": 1, "usage": 1000, "currentValue": 0,
             "remaining": 1000, "percentage": 0, "nextResetTime": 1790733906999,
             "usageDetails": [{"modelCode": "search-prime", "usage": 0}]},
        ],
    },
}  # fmt: skip


def test_zai_keeps_the_five_hour_weekly_and_time_windows() -> None:
    assert by_key(parse_zai_usage(encode(ZAI_PRO))) == {
        "tokens_limit": (1, 1788455420775),
        "tokens_limit_weekly": (2, 1789005906998),
        "time_limit": (0, 1790733906999),
    }


def test_zai_single_token_window_plan() -> None:
    body = {
        "code": 200,
        "success": True,
        "data": {
            "limits": [
                {"type": "TIME_LIMIT", "percentage": 28, "nextResetTime": 1772615765983},
                {"type": "TOKENS_LIMIT", "unit": 3, "number": 5, "percentage": 41,
                 "nextResetTime": 1771073738808},
            ],
            "level": "lite",
        },
    }  # fmt: skip

    assert by_key(parse_zai_usage(encode(body))) == {
        "time_limit": (28, 1772615765983),
        "tokens_limit": (41, 1771073738808),
    }


def test_zai_reference_normalised_shape_is_accepted() -> None:
    body = {
        "tokens_limit": {"percentage": 12.5, "resetAt": 1788455420775},
        "time_limit": {"percentage": 3, "resetAt": None},
    }

    assert by_key(parse_zai_usage(encode(body))) == {
        "tokens_limit": (12.5, 1788455420775),
        "time_limit": (3, None),
    }


def test_zai_auth_failure_inside_http_200_is_a_fetch_error() -> None:
    body = {"code": 401, "msg": "token expired or incorrect", "success": False}

    with pytest.raises(UsageFetchError, match="token expired or incorrect") as caught:
        parse_zai_usage(encode(body))

    assert caught.value.status == 401


def test_zai_response_without_limits_is_a_fetch_error() -> None:
    with pytest.raises(UsageFetchError, match="no quota limits"):
        parse_zai_usage(encode({"code": 200, "success": True, "data": {"limits": []}}))


async def test_zai_fetch_sends_the_key_and_uses_the_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BETTER_CCFLARE_ZAI_USAGE_URL", "http://127.0.0.1:1/quota")
    upstream = Recorder(200, ZAI_PRO)

    async with upstream.client() as http:
        windows = await fetch_zai_usage(http, api_key="zai-key")

    assert len(windows) == 3
    [request] = upstream.requests
    assert str(request.url) == "http://127.0.0.1:1/quota"
    assert request.headers["authorization"] == "zai-key"
    assert request.headers["x-api-key"] == "zai-key"


# --------------------------------------------------------------------------- Minimax

MINIMAX_TOKEN_PLAN = {
    "model_remains": [
        {"model_name": "video", "current_interval_remaining_percent": 1,
         "end_time": 1785751200000},
        {"model_name": "general", "current_interval_remaining_percent": 35,
         "current_interval_status": 1, "current_interval_total_count": 4500,
         "current_interval_usage_count": 1575, "start_time": 1785733200000,
         "end_time": 1785751200000, "remains_time": 9000000,
         "current_weekly_remaining_percent": 80, "current_weekly_status": 1,
         "current_weekly_total_count": 45000, "current_weekly_usage_count": 36000,
         "weekly_start_time": 1785400000000, "weekly_end_time": 1786000000000,
         "weekly_remains_time": 250000000},
    ],
    "base_resp": {"status_code": 0, "status_msg": "success"},
}  # fmt: skip


def test_minimax_inverts_remaining_percent_of_the_general_row() -> None:
    assert by_key(parse_minimax_usage(encode(MINIMAX_TOKEN_PLAN), now_ms=NOW_MS)) == {
        "five_hour": (65, 1785751200000),
        "seven_day": (20, 1786000000000),
    }


def test_minimax_coding_plan_counts_treat_usage_count_as_remaining() -> None:
    body = {
        "model_remains": [
            {"model_name": "speech-hd", "current_interval_total_count": 9000,
             "current_interval_usage_count": 9000},
            {"model_name": "MiniMax-M2", "current_interval_total_count": 1500,
             "current_interval_usage_count": 1200, "remains_time": 3_600_000},
        ],
        "base_resp": {"status_code": 0},
    }  # fmt: skip

    assert by_key(parse_minimax_usage(encode(body), now_ms=NOW_MS)) == {
        "five_hour": (20, NOW_MS + 3_600_000)
    }


def test_minimax_end_time_in_seconds_is_read_as_seconds() -> None:
    body = {"model_remains": [{"model_name": "general", "current_interval_remaining_percent": 25,
                               "end_time": 1781438400}]}  # fmt: skip

    [window] = parse_minimax_usage(encode(body), now_ms=NOW_MS)

    assert window.resets_at_ms == 1_781_438_400_000


def test_minimax_never_substitutes_a_media_pool_for_text() -> None:
    body = {"model_remains": [{"model_name": "video", "current_interval_remaining_percent": 60}]}

    with pytest.raises(UsageFetchError, match="no text-inference quota row"):
        parse_minimax_usage(encode(body), now_ms=NOW_MS)


def test_minimax_weekly_window_needs_a_quota() -> None:
    body = {"model_remains": [{"model_name": "general", "current_interval_remaining_percent": 90,
                               "current_weekly_total_count": 0,
                               "current_weekly_usage_count": 0}]}  # fmt: skip

    assert [w.key for w in parse_minimax_usage(encode(body), now_ms=NOW_MS)] == ["five_hour"]


def test_minimax_error_status_is_a_fetch_error() -> None:
    body = {"base_resp": {"status_code": 1004, "status_msg": "login fail"}}

    with pytest.raises(UsageFetchError, match="login fail") as caught:
        parse_minimax_usage(encode(body), now_ms=NOW_MS)

    assert caught.value.status == 1004


async def test_minimax_fetch_sends_a_bearer_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETTER_CCFLARE_MINIMAX_USAGE_URL", "http://127.0.0.1:1/remains")
    upstream = Recorder(200, MINIMAX_TOKEN_PLAN)

    async with upstream.client() as http:
        windows = await fetch_minimax_usage(http, api_key="mm-key", now_ms=NOW_MS)

    assert [w.key for w in windows] == ["five_hour", "seven_day"]
    [request] = upstream.requests
    assert str(request.url) == "http://127.0.0.1:1/remains"
    assert request.headers["authorization"] == "Bearer mm-key"


# --------------------------------------------------------------------------- NanoGPT

NANOGPT = {
    "active": True,
    "limits": {"daily": 5000, "monthly": 60000},
    "enforceDailyLimit": True,
    "daily": {"used": 5, "remaining": 4995, "percentUsed": 0.001, "resetAt": 1738540800000},
    "monthly": {"used": 45, "remaining": 59955, "percentUsed": 0.00075, "resetAt": 1739404800000},
    "period": {"currentPeriodEnd": "2025-02-13T23:59:59.000Z"},
    "state": "active",
    "graceUntil": None,
}


def test_nanogpt_fractions_become_percentages() -> None:
    windows = by_key(parse_nanogpt_usage(encode(NANOGPT)))

    assert windows.keys() == {"daily", "monthly"}
    assert windows["daily"][0] == pytest.approx(0.1)
    assert windows["monthly"][0] == pytest.approx(0.075)
    assert (windows["daily"][1], windows["monthly"][1]) == (1738540800000, 1739404800000)


def test_nanogpt_without_fractions_uses_used_over_limit() -> None:
    body = {
        "active": True,
        "limits": {"daily": 200, "monthly": None},
        "daily": {"used": 50, "remaining": 150, "resetAt": 1738540800000},
        "monthly": {"used": 30, "remaining": 70, "resetAt": None},
    }

    assert by_key(parse_nanogpt_usage(encode(body))) == {
        "daily": (25.0, 1738540800000),
        "monthly": (30.0, None),
    }


def test_nanogpt_pay_as_you_go_has_no_windows() -> None:
    assert parse_nanogpt_usage(encode({**NANOGPT, "active": False, "state": "inactive"})) == ()


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "http://127.0.0.1:1/api/subscription/v1/usage"),
        ("http://127.0.0.1:2/custom/api/", "http://127.0.0.1:2/custom/api/subscription/v1/usage"),
    ],
)
async def test_nanogpt_fetch_keeps_the_base_path(
    monkeypatch: pytest.MonkeyPatch, base_url: str | None, expected: str
) -> None:
    monkeypatch.setenv("BETTER_CCFLARE_NANOGPT_BASE_URL", "http://127.0.0.1:1/api")
    upstream = Recorder(200, NANOGPT)

    async with upstream.client() as http:
        await fetch_nanogpt_usage(http, api_key="nano-key", base_url=base_url)

    [request] = upstream.requests
    assert str(request.url) == expected
    assert request.headers["x-api-key"] == "nano-key"
