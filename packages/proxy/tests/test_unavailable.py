"""The reply when no account can serve: status, reasons, and the headers clients act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import pytest

from better_ccflare.core import (
    Account,
    PauseReason,
    RateLimitReason,
    RateLimitState,
    UsageWindow,
)
from better_ccflare.load_balancer import AccountUsage
from better_ccflare.proxy._anthropic_errors import ErrorReply
from better_ccflare.proxy._capacity import capacities
from better_ccflare.proxy._unavailable import unavailable_reply

NOW = 1_800_000_000_000  # 2027-01-15T08:00:00Z


class Entry(msgspec.Struct):
    name: str
    reason: str
    available_at: str | None


class Detail(msgspec.Struct):
    type: str
    message: str
    next_available_at: str | None
    accounts: list[Entry]


class Body(msgspec.Struct):
    type: str
    error: Detail


def account(name: str, **fields: object) -> Account:
    base = Account(id=name, name=name, provider="anthropic", created_at_ms=0)
    return msgspec.structs.replace(base, **fields)


def reply_for(
    accounts: Sequence[Account],
    usage: Mapping[str, AccountUsage],
    *,
    detailed: bool,
    windows: Mapping[str, tuple[UsageWindow, ...]] | None = None,
) -> ErrorReply:
    polled = windows or {}
    read = capacities(accounts, usage, lambda i: polled.get(i, ()), NOW)
    return unavailable_reply(read, NOW, detailed=detailed)


def assert_a_limit_until(reply: ErrorReply, reset_ms: int) -> None:
    """A 429 that Claude Code reads as a subscription limit resetting at ``reset_ms``."""
    headers = dict(reply.headers)
    assert reply.status == 429
    assert headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert headers["anthropic-ratelimit-unified-reset"] == str(-(-reset_ms // 1000))


def body_of(reply_body: bytes) -> Body:
    return msgspec.json.decode(reply_body, type=Body)


def test_all_accounts_out_on_quota_is_a_429_with_the_earliest_reset() -> None:
    accounts = [
        account(
            "a",
            rate_limit=RateLimitState(
                limited_until_ms=NOW + 3_600_000, reason=RateLimitReason.UPSTREAM_429_WITH_RESET
            ),
        ),
        account("b"),
    ]
    usage = {"b": AccountUsage(utilization=100.0, resets_at_ms=NOW + 1_800_500)}
    reply = reply_for(accounts, usage, detailed=True)
    assert_a_limit_until(reply, NOW + 1_800_500)
    assert dict(reply.headers)["retry-after"] == "1801"
    body = body_of(reply.body)
    assert body.type == "error"
    assert body.error.type == "rate_limit_error"
    assert body.error.next_available_at == "2027-01-15T08:30:00Z"
    assert [(a.name, a.reason) for a in body.error.accounts] == [
        ("a", "rate_limited"),
        ("b", "usage_exhausted"),
    ]


def test_paused_or_reauth_accounts_make_it_a_503() -> None:
    accounts = [
        account("a", paused=True, pause_reason=PauseReason.MANUAL),
        account("b", requires_reauth=True, paused=True),
    ]
    reply = reply_for(accounts, {}, detailed=True)
    assert reply.status == 503
    headers = dict(reply.headers)
    assert headers["retry-after"] == "60"
    assert "anthropic-ratelimit-unified-reset" not in headers
    message = body_of(reply.body).error.message
    assert "a (paused)" in message
    assert "b (requires_reauth)" in message


def test_overload_cooldown_is_not_reported_as_a_quota() -> None:
    accounts = [
        account(
            "a",
            rate_limit=RateLimitState(
                limited_until_ms=NOW + 10_000,
                reason=RateLimitReason.UPSTREAM_529_OVERLOADED_NO_RESET,
            ),
        )
    ]
    reply = reply_for(accounts, {}, detailed=True)
    assert reply.status == 503
    assert dict(reply.headers)["retry-after"] == "10"


def test_retry_after_is_capped_at_an_hour() -> None:
    accounts = [account("a", rate_limit=RateLimitState(limited_until_ms=NOW + 6 * 86_400_000))]
    reply = reply_for(accounts, {}, detailed=True)
    assert dict(reply.headers)["retry-after"] == "3600"


def test_an_empty_pool_says_how_to_add_an_account() -> None:
    reply = reply_for([], {}, detailed=True)
    assert reply.status == 503
    assert "account add" in body_of(reply.body).error.message


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        (RateLimitReason.CREDENTIALS_REJECTED, "credentials_rejected"),
        (RateLimitReason.OUT_OF_CREDITS, "out_of_credits"),
        (RateLimitReason.CONNECT_FAILED, "unreachable"),
        (RateLimitReason.UPSTREAM_TIMEOUT, "unreachable"),
    ],
)
def test_a_circuit_breaker_bench_says_what_failed(reason: RateLimitReason, said: str) -> None:
    broken = account(
        "a", rate_limit=RateLimitState(limited_until_ms=NOW + 5_000, reason=reason, failures=1)
    )

    reply = reply_for([broken], {}, detailed=True)

    assert reply.status == 503
    assert [entry.reason for entry in body_of(reply.body).error.accounts] == [said]


class PlainDetail(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    message: str
    next_available_at: str | None


class PlainBody(msgspec.Struct):
    type: str
    error: PlainDetail


def test_a_plain_client_learns_the_kinds_and_the_first_reset_but_no_account() -> None:
    accounts = [
        account("secret-a", paused=True, pause_reason=PauseReason.MANUAL),
        account("secret-b", rate_limit=RateLimitState(limited_until_ms=NOW + 600_000)),
    ]
    reply = reply_for(accounts, {}, detailed=False)
    assert dict(reply.headers)["retry-after"] == "600"
    assert b"secret" not in reply.body
    body = msgspec.json.decode(reply.body, type=PlainBody)
    assert body.error.message == (
        "No account can serve this request now (paused, rate limited); "
        "the first is available again at 2027-01-15T08:10:00Z."
    )


def test_paused_accounts_do_not_hide_that_the_others_windows_are_used_up() -> None:
    accounts = [
        account("a", paused=True, pause_reason=PauseReason.MANUAL),
        account("b", requires_reauth=True),
        account("c"),
    ]
    usage = {"c": AccountUsage(utilization=100.0, resets_at_ms=NOW + 120_000)}

    reply = reply_for(accounts, usage, detailed=False)

    assert_a_limit_until(reply, NOW + 120_000)
    assert body_of_plain(reply).error.type == "rate_limit_error"


def test_a_window_that_resets_in_a_second_is_still_a_limit() -> None:
    usage = {"a": AccountUsage(utilization=100.0, resets_at_ms=NOW + 1_000)}
    reply = reply_for([account("a")], usage, detailed=True)
    assert reply.status == 429
    assert dict(reply.headers)["retry-after"] == "1"


def test_the_reply_names_the_used_up_window_and_the_accounts_5h_and_7d_readings() -> None:
    five_hour_reset = NOW + 3_600_000
    windows = (
        UsageWindow(key="five_hour", utilization=100.0, resets_at_ms=five_hour_reset),
        UsageWindow(key="seven_day", utilization=42.5, resets_at_ms=NOW + 86_400_000),
        UsageWindow(key="seven_day_opus", utilization=100.0, resets_at_ms=NOW + 90_000_000),
    )
    usage = {"a": AccountUsage(utilization=100.0, resets_at_ms=five_hour_reset)}

    reply = reply_for([account("a")], usage, detailed=False, windows={"a": windows})

    headers = dict(reply.headers)
    assert reply.status == 429
    assert headers["anthropic-ratelimit-unified-representative-claim"] == "five_hour"
    assert headers["anthropic-ratelimit-unified-reset"] == str(five_hour_reset // 1000)
    assert headers["anthropic-ratelimit-unified-5h-status"] == "rejected"
    assert headers["anthropic-ratelimit-unified-5h-reset"] == str(five_hour_reset // 1000)
    assert headers["anthropic-ratelimit-unified-5h-utilization"] == "1"
    assert headers["anthropic-ratelimit-unified-7d-status"] == "allowed"
    assert headers["anthropic-ratelimit-unified-7d-utilization"] == "0.425"


def test_a_subscription_rejected_without_extra_usage_is_a_limit_not_a_lack_of_credit() -> None:
    limit = RateLimitState(
        status="rejected",
        limited_until_ms=NOW + 7_200_000,
        reason=RateLimitReason.OUT_OF_CREDITS,
        failures=1,
    )
    reply = reply_for([account("a", rate_limit=limit)], {}, detailed=True)
    assert reply.status == 429
    assert [a.reason for a in body_of(reply.body).error.accounts] == ["rate_limited"]


def test_a_window_and_a_transient_failure_together_are_a_503_without_limit_headers() -> None:
    accounts = [
        account("a", rate_limit=RateLimitState(limited_until_ms=NOW + 3_600_000)),
        account(
            "b",
            rate_limit=RateLimitState(
                limited_until_ms=NOW + 10_000, reason=RateLimitReason.CONNECT_FAILED, failures=1
            ),
        ),
    ]
    reply = reply_for(accounts, {}, detailed=True)
    headers = dict(reply.headers)
    assert reply.status == 503
    assert headers["retry-after"] == "10"
    assert not any(name.startswith("anthropic-ratelimit-") for name in headers)


def body_of_plain(reply: ErrorReply) -> PlainBody:
    return msgspec.json.decode(reply.body, type=PlainBody)
