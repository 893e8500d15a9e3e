"""``better-ccflare api-key generate|limits|show|list`` and a key's limits, on a real database."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from better_ccflare.core import KeyLimits, RequestRecord, SystemClock, TokenUsage
from better_ccflare.database import Store

from .cli_support import Cli

DAY_MS = 86_400_000


def test_generate_takes_every_limit_flag(cli: Cli) -> None:
    cli.ok("api-key", "generate", "me")
    before = SystemClock().now_ms()
    cli.ok(
        "api-key", "generate", "dev", "--rpm", "10", "--tpm", "20000", "--max-concurrent", "2",
        "--budget-daily", "1.5", "--budget-weekly", "5", "--budget-monthly", "20",
        "--models", "claude-sonnet-*, claude-haiku-*", "--expires", "30d",
    )  # fmt: skip

    row = next(r for r in cli.json("api-key", "list") if r["name"] == "dev")
    limits = row["limits"]
    expires = limits.pop("expires_at_ms")
    assert limits == {
        "rpm": 10,
        "tpm": 20000,
        "max_concurrent": 2,
        "budget_daily_usd": 1.5,
        "budget_weekly_usd": 5.0,
        "budget_monthly_usd": 20.0,
        "models": ["claude-sonnet-*", "claude-haiku-*"],
    }
    assert before + 30 * DAY_MS <= expires <= SystemClock().now_ms() + 30 * DAY_MS


def test_limits_change_only_the_flags_given_and_clear_removes_them(cli: Cli) -> None:
    cli.ok("api-key", "generate", "me", "--rpm", "5", "--budget-daily", "2")
    cli.ok("api-key", "limits", "me", "--rpm", "7", "--expires", "2099-01-31")

    assert _limits(cli, "me") == KeyLimits(
        rpm=7,
        budget_daily_usd=2.0,
        expires_at_ms=int(datetime(2099, 1, 31, tzinfo=UTC).timestamp() * 1000),
    )

    out = cli.ok("api-key", "limits", "me", "--clear").output
    assert "none" in out
    assert _limits(cli, "me") is None
    cli.ok("api-key", "limits", "me", "--clear", "--tpm", "9")
    assert _limits(cli, "me") == KeyLimits(tpm=9)


def test_bad_limit_flags_are_usage_errors(cli: Cli) -> None:
    cli.ok("api-key", "generate", "me")
    for args in (
        ("--expires", "next tuesday"),
        ("--expires", "2001-01-01"),
        ("--rpm", "0"),
        ("--budget-daily", "-1"),
        (),
    ):
        result = cli("api-key", "limits", "me", *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    assert cli("api-key", "limits", "nobody", "--rpm", "1").exit_code == 2


def test_show_and_list_say_what_a_key_used_against_each_limit_and_what_remains(
    cli: Cli,
) -> None:
    cli.ok("api-key", "generate", "me")
    cli.ok("api-key", "generate", "dev", "--budget-daily", "2", "--rpm", "10")
    key_id = cli.json("api-key", "show", "dev")["id"]
    now = int(time.time() * 1000)

    async def spend(store: Store) -> None:
        for n, cost in enumerate((0.25, 0.5)):
            store.requests.record(
                RequestRecord(
                    id=f"r{n}",
                    timestamp_ms=now - n * 1000,
                    method="POST",
                    path="/v1/messages",
                    api_key_id=key_id,
                    cost_usd=cost,
                    usage=TokenUsage(input_tokens=10, output_tokens=5),
                )
            )

    cli.with_store(spend)

    shown = cli.ok("api-key", "show", "dev").output
    assert "daily budget $2.00" in shown
    assert "$0.75" in shown  # spent
    assert "$1.25" in shown  # remaining
    assert "requests/min 10" in shown
    use = cli.json("api-key", "show", "dev")["use"]
    assert (use["requests_last_minute"], use["tokens_last_minute"]) == (2, 30)
    assert use["spent_today_usd"] == 0.75
    assert "daily budget $2.00: $0.75 used" in cli.ok("api-key", "list").output


def _limits(cli: Cli, name: str) -> KeyLimits | None:
    async def get(store: Store) -> KeyLimits | None:
        key = await store.api_keys.get(name)
        assert key is not None
        return key.limits

    return cli.with_store(get)


def test_stats_by_key_gives_each_keys_requests_tokens_and_spend_per_period(cli: Cli) -> None:
    cli.ok("api-key", "generate", "me")
    cli.ok("api-key", "generate", "dev")
    ids = {r["name"]: r["id"] for r in cli.json("api-key", "list")}
    now = int(time.time() * 1000)

    async def history(store: Store) -> None:
        for n, (key, cost, age_ms) in enumerate(
            (("dev", 0.5, 0), ("dev", 0.25, 40 * DAY_MS), ("me", 1.0, 0))
        ):
            store.requests.record(
                RequestRecord(
                    id=f"r{n}",
                    timestamp_ms=now - age_ms,
                    method="POST",
                    path="/v1/messages",
                    api_key_id=ids[key],
                    cost_usd=cost,
                    usage=TokenUsage(input_tokens=100, output_tokens=20),
                )
            )

    cli.with_store(history)

    out = cli.json("stats", "--by", "key")
    by_key = {row["name"]: row["use"] for row in out["by_key"]}
    assert [row["name"] for row in out["by_key"]] == ["me", "dev"]  # most spent first
    assert out["by_account"] == []  # only the breakdowns asked for
    dev = by_key["dev"]
    assert (dev["requests_today"], dev["tokens_today"], dev["spent_today_usd"]) == (1, 120, 0.5)
    assert dev["spent_this_month_usd"] == 0.5  # the older request is from another month
    table = cli.ok("stats", "--by", "key").output
    assert "By key" in table
    assert "1 req, 120 tok, $0.5000" in table
