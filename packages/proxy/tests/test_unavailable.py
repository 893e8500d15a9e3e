"""The reply when no account can serve: status, reasons, and the headers clients act on."""

from __future__ import annotations

import msgspec
import pytest

from better_ccflare.core import Account, PauseReason, RateLimitReason, RateLimitState
from better_ccflare.load_balancer import AccountUsage
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
    reply = unavailable_reply(accounts, usage, NOW, detailed=True)
    headers = dict(reply.headers)
    assert reply.status == 429
    assert headers["retry-after"] == "1801"
    assert headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert headers["anthropic-ratelimit-unified-reset"] == str((NOW + 1_800_500 + 999) // 1000)
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
    reply = unavailable_reply(accounts, {}, NOW, detailed=True)
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
    reply = unavailable_reply(accounts, {}, NOW, detailed=True)
    assert reply.status == 503
    assert dict(reply.headers)["retry-after"] == "10"


def test_retry_after_is_capped_at_an_hour() -> None:
    accounts = [account("a", rate_limit=RateLimitState(limited_until_ms=NOW + 6 * 86_400_000))]
    reply = unavailable_reply(accounts, {}, NOW, detailed=True)
    assert dict(reply.headers)["retry-after"] == "3600"


def test_an_empty_pool_says_how_to_add_an_account() -> None:
    reply = unavailable_reply([], {}, NOW, detailed=True)
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

    reply = unavailable_reply([broken], {}, NOW, detailed=True)

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
    reply = unavailable_reply(accounts, {}, NOW, detailed=False)
    assert reply.status == 503
    assert dict(reply.headers)["retry-after"] == "600"
    assert b"secret" not in reply.body
    body = msgspec.json.decode(reply.body, type=PlainBody)
    assert body.error.message == (
        "No account can serve this request now (paused, rate limited); "
        "the first is available again at 2027-01-15T08:10:00Z."
    )
