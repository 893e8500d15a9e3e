"""``better-ccflare stats`` and ``requests`` over a seeded request history."""

from __future__ import annotations

import msgspec
import pytest

from better_ccflare.core import Account, RequestRecord, SystemClock, TokenUsage
from better_ccflare.database import Store

from .cli_support import Cli

DAY_MS = 86_400_000
NOW = SystemClock().now_ms()


def record(
    request_id: str,
    *,
    account_id: str | None = "a1",
    model: str = "claude-sonnet-4-5",
    ok: bool = True,
    age_ms: int = 0,
) -> RequestRecord:
    return RequestRecord(
        id=request_id,
        timestamp_ms=NOW - age_ms,
        method="POST",
        path="/v1/messages",
        account_id=account_id,
        status_code=200 if ok else 529,
        success=ok,
        error_message=None if ok else "upstream overloaded",
        response_time_ms=1200,
        model=model,
        usage=TokenUsage(input_tokens=100, output_tokens=50),
        cost_usd=0.25,
    )


@pytest.fixture
def history(cli: Cli) -> Cli:
    async def write(store: Store) -> None:
        await store.accounts.add(Account(id="a1", name="work", provider="zai", created_at_ms=0))
        await store.accounts.add(Account(id="a2", name="home", provider="zai", created_at_ms=0))
        for item in (
            record("r1", age_ms=3000),
            record("r2", age_ms=2000, model="claude-opus-4-1[1m]"),
            record("r3", age_ms=1000, account_id="a2", ok=False),
            record("r4", account_id=None, ok=False),
            record("old", age_ms=10 * DAY_MS),
        ):
            store.requests.record(item)
        await store.flush()

    cli.with_store(write)
    return cli


def test_stats_totals_and_breakdowns(history: Cli) -> None:
    out = history.json("stats")
    totals = out["totals"]
    assert (totals["requests"], totals["successful"], totals["success_rate"]) == (5, 3, 60.0)
    assert totals["total_tokens"] == 5 * 150
    assert totals["cost_usd"] == pytest.approx(1.25)
    assert out["active_accounts"] == 2
    assert {g["key"]: g["metrics"]["requests"] for g in out["by_account"]} == {
        "work": 3,
        "home": 1,
        None: 1,
    }
    assert {g["key"] for g in out["by_model"]} == {"claude-sonnet-4-5", "claude-opus-4-1[1m]"}
    [error] = [e for e in out["recent_errors"] if e["account"] == "home"]
    assert (error["error_message"], error["status_code"], error["count"]) == (
        "upstream overloaded",
        529,
        1,
    )


def test_stats_since_days_leaves_older_requests_out(history: Cli) -> None:
    assert history.json("stats", "--since-days", "1")["totals"]["requests"] == 4


def test_stats_table_names_accounts_and_keeps_model_names_literal(history: Cli) -> None:
    table = history.ok("stats").output
    assert "5 requests in all history: 60.0% successful" in table
    assert "work" in table
    assert "claude-opus-4-1[1m]" in table
    assert "upstream overloaded" in table


def test_stats_on_an_empty_history(cli: Cli) -> None:
    assert "0 requests in all history" in cli.ok("stats").output
    assert cli.json("stats")["totals"]["requests"] == 0


def test_requests_are_newest_first_and_limited(history: Cli) -> None:
    rows = history.json("requests", "--limit", "3")
    assert [r["request"]["id"] for r in rows] == ["r4", "r3", "r2"]
    assert [r["account_name"] for r in rows] == [None, "home", "work"]


def test_requests_filter_by_account_model_and_status(history: Cli) -> None:
    def ids(*args: str) -> list[str]:
        return [r["request"]["id"] for r in history.json("requests", *args)]

    assert ids("--account", "work") == ["r2", "r1", "old"]
    assert ids("--model", "claude-opus-4-1[1m]") == ["r2"]
    assert ids("--status", "error") == ["r4", "r3"]
    assert ids("--status", "success", "--account", "work", "--limit", "1") == ["r2"]


def test_requests_table_and_unknown_account(history: Cli) -> None:
    table = history.ok("requests").output
    assert "claude-opus-4-1[1m]" in table
    assert "upstream overloaded" in table
    unknown = history("requests", "--account", "ghost")
    assert unknown.exit_code == 2
    assert "No account named 'ghost'" in unknown.output
    assert "No requests match" in history.ok("requests", "--model", "none").output


def test_requests_without_a_price_show_unknown_not_zero(cli: Cli) -> None:
    async def write(store: Store) -> None:
        await store.accounts.add(Account(id="a1", name="work", provider="zai", created_at_ms=0))
        store.requests.record(record("priced"))
        store.requests.record(
            msgspec.structs.replace(record("unpriced"), model="house-model", cost_usd=None)
        )
        await store.flush()

    cli.with_store(write)
    totals = cli.json("stats")["totals"]
    assert (totals["cost_usd"], totals["unpriced_requests"]) == (pytest.approx(0.25), 1)
    summary = cli.ok("stats").output
    assert "$0.25 (+ 1 request with unknown price)" in summary
    [model_row] = [line for line in summary.splitlines() if "house-model" in line]
    assert "unknown" in model_row
    listing = cli.ok("requests").output
    [row] = [line for line in listing.splitlines() if "house-model" in line]
    assert "unknown" in row
