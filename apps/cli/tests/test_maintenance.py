"""``token-health``, ``reset-stats``, ``clear-history`` and ``compact`` on a real database."""

from __future__ import annotations

import json

from better_ccflare.core import Account, Credentials, RequestRecord, SystemClock
from better_ccflare.database import Store

from .cli_support import Cli

DAY_MS = 86_400_000


def seed(cli: Cli, *records: RequestRecord, accounts: tuple[Account, ...] = ()) -> None:
    async def write(store: Store) -> None:
        for account in accounts:
            await store.accounts.add(account)
            await store.accounts.record_use(account.id, SystemClock().now_ms(), 3_600_000)
        for record in records:
            store.requests.record(record)
        await store.flush()

    cli.with_store(write)


def request(request_id: str, age_days: float = 0) -> RequestRecord:
    timestamp = SystemClock().now_ms() - int(age_days * DAY_MS)
    return RequestRecord(
        id=request_id, timestamp_ms=timestamp, method="POST", path="/v1/messages", success=True
    )


def request_ids(cli: Cli) -> set[str]:
    rows = cli.json("requests", "--limit", "100")
    return {row["request"]["id"] for row in rows}


def test_token_health_grades_logins_by_age_without_secrets(cli: Cli) -> None:
    now = SystemClock().now_ms()
    old_login = Account(
        id="a1",
        name="max",
        provider="anthropic",
        created_at_ms=now - 88 * DAY_MS,
        credentials=Credentials(access_token="at-secret", refresh_token="rt-secret"),
    )
    key = Account(
        id="a2",
        name="work",
        provider="claude-console-api",
        created_at_ms=now,
        credentials=Credentials(api_key="sk-secret"),
    )
    seed(cli, accounts=(old_login, key))
    reports = {r["account_name"]: r for r in cli.json("token-health")}
    assert reports["max"]["status"] == "critical"
    assert 0 < reports["max"]["remaining_ms"] <= 2 * DAY_MS
    assert reports["work"]["status"] == "no-refresh-token"
    table = cli.ok("token-health").output
    assert "critical" in table
    assert "secret" not in table + json.dumps(reports)


def test_reset_stats_asks_then_deletes_history_and_zeroes_counters(cli: Cli) -> None:
    account = Account(id="a1", name="work", provider="zai", created_at_ms=0)
    seed(cli, request("r1"), request("r2"), accounts=(account,))
    assert cli.account("work").request_count == 1
    declined = cli("reset-stats", input="n\n")
    assert declined.exit_code == 1
    assert request_ids(cli) == {"r1", "r2"}
    result = cli.ok("reset-stats", "--yes")
    assert "2 requests deleted" in result.output
    assert request_ids(cli) == set()
    assert cli.account("work").request_count == 0


def test_clear_history_older_than_keeps_recent_requests(cli: Cli) -> None:
    seed(cli, request("old", age_days=40), request("new"))
    result = cli.ok("clear-history", "--older-than-days", "30", input="y\n")
    assert "Deleted 1 requests" in result.output
    assert request_ids(cli) == {"new"}
    cli.ok("clear-history", "--yes")
    assert request_ids(cli) == set()


def test_clear_history_asks_first(cli: Cli) -> None:
    seed(cli, request("r1"))
    assert cli("clear-history", input="n\n").exit_code == 1
    assert request_ids(cli) == {"r1"}


def test_compact_reports_the_size(cli: Cli) -> None:
    seed(cli, *(request(f"r{i}") for i in range(50)))
    cli.ok("reset-stats", "--yes")
    result = cli.ok("compact")
    assert "Compacted" in result.output
    assert "MB" in result.output
    assert cli.json("account", "list") == []
