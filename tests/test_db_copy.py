"""``better-ccflare db copy``: a SQLite database (ours, or the reference's) moved into a real
PostgreSQL database, checked, and safe to run again."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result

from better_ccflare.cli import main
from better_ccflare.core import (
    Account,
    AgentPreference,
    ApiKey,
    Credentials,
    KeyLimits,
    ProviderKind,
    RequestRecord,
    SessionPin,
    StrategySettings,
    UsageSnapshot,
    UsageWindow,
)
from better_ccflare.database import SecretKey, Store

from .support.postgres import database_url, postgres_server_url
from .test_migrated_reference import build_reference_database

__all__ = ["database_url", "postgres_server_url"]  # fixtures, imported for pytest to find

_T = TypeVar("_T")
T0 = 1_767_225_600_000
TABLES = (
    "accounts",
    "api_keys",
    "oauth_sessions",
    "agent_preferences",
    "strategies",
    "requests",
    "request_payloads",
    "usage_snapshots",
    "session_pins",
)


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.generate()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "old" / "better-ccflare.db"


def run(tmp_path: Path, key: SecretKey, *args: str, **env: str) -> Result:
    environ = {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path),
        "BETTER_CCFLARE_SECRET_KEY": key.to_text(),
        "DATABASE_URL": "",
        **env,
    }
    return CliRunner().invoke(main, ["db", "copy", *args], env=environ)


def on(target: Path | str, key: SecretKey, work: Callable[[Store], Awaitable[_T]]) -> _T:
    async def go() -> _T:
        async with await Store.open(target, key=key) as store:
            return await work(store)

    return asyncio.run(go())


def oauth_account(account_id: str) -> Account:
    return Account(
        id=account_id,
        name=account_id,
        provider=ProviderKind.CLAUDE_OAUTH.value,
        created_at_ms=T0,
        paused=True,
        credentials=Credentials(
            access_token=f"at-{account_id}",
            refresh_token=f"rt-{account_id}",
            expires_at_ms=T0 + 3_600_000,
        ),
    )


def record(request_id: str) -> RequestRecord:
    return RequestRecord(
        id=request_id,
        timestamp_ms=T0,
        method="POST",
        path="/v1/messages",
        account_id="sub",
        status_code=200,
        success=True,
        error_message="nul \x00 inside",
    )


async def fill(store: Store) -> None:
    await store.accounts.add(oauth_account("sub"))
    await store.accounts.add(
        Account(
            id="console",
            name="console",
            provider=ProviderKind.CONSOLE.value,
            created_at_ms=T0,
            credentials=Credentials(api_key="sk-ant-api03-secret"),
        )
    )
    for n in range(3):
        store.requests.record(record(f"req-{n}"))
        store.requests.record_payload(f"req-{n}", '{"request": {"body": "hi"}}')
    await store.usage.record(
        UsageSnapshot(
            account_id="sub",
            timestamp_ms=T0,
            windows=(UsageWindow(key="five_hour", utilization=12.5, resets_at_ms=T0 + 1),),
        )
    )
    await store.strategies.set(StrategySettings(name="session", config={"x": 1}, updated_at_ms=T0))
    await store.agent_preferences.set(
        AgentPreference(agent_id="agent-1", model="claude-haiku-4-5", updated_at_ms=T0)
    )
    await store.api_keys.add(
        ApiKey(
            id="key-1",
            name="ci",
            hashed_key="salt:hash",
            prefix_last_8="abcdefgh",
            created_at_ms=T0,
            limits=KeyLimits(rpm=10, budget_daily_usd=2.5, models=("claude-haiku-*",)),
        )
    )
    store.session_pins.save_nowait(
        SessionPin(session_id="session-1", account_id="sub", expires_at_ms=T0 + 3_600_000), T0
    )


async def contents(store: Store) -> tuple[object, ...]:
    return (
        await store.accounts.list_all(),
        await store.requests.list_recent(10),
        await store.requests.get_payload("req-1"),
        await store.usage.latest("sub"),
        await store.strategies.get("session"),
        await store.agent_preferences.list_all(),
        await store.api_keys.list_all(),
        await store.session_pins.list_live(T0),
    )


def counts(path: Path) -> dict[str, int]:
    """Rows per table in the SQLite file; payloads only while their request exists."""
    live = {"request_payloads": " WHERE id IN (SELECT id FROM requests)"}
    with sqlite3.connect(path) as connection:  # noqa: TID251 (the test reads the file itself)
        return {
            table: connection.execute(
                f"SELECT count(*) FROM {table}{live.get(table, '')}"
            ).fetchone()[0]
            for table in TABLES
        }


def test_a_copy_moves_every_row_and_the_credentials_read_back_equal(
    tmp_path: Path, key: SecretKey, sqlite_path: Path, database_url: str
) -> None:
    on(sqlite_path, key, fill)
    result = run(tmp_path, key, "--from", str(sqlite_path), "--to", database_url)
    assert result.exit_code == 0, result.output
    assert "  accounts: 2 rows, 2 added, 0 already there" in result.output
    assert "  requests: 3 rows, 3 added, 0 already there" in result.output
    assert "  request_payloads: 3 rows, 3 added, 0 already there" in result.output
    assert "  api_keys: 1 rows, 1 added, 0 already there" in result.output
    assert "  session_pins: 1 rows, 1 added, 0 already there" in result.output
    assert "credentials of 2 added account(s) read back equal" in result.output
    assert on(database_url, key, contents) == on(sqlite_path, key, contents)


def test_a_second_copy_adds_what_is_missing_and_keeps_what_the_fleet_changed(
    tmp_path: Path, key: SecretKey, sqlite_path: Path, database_url: str
) -> None:
    on(sqlite_path, key, fill)
    assert run(tmp_path, key, "--from", str(sqlite_path), "--to", database_url).exit_code == 0
    refreshed = Credentials(access_token="at-new", refresh_token="rt-new", expires_at_ms=T0 * 2)

    async def refresh(store: Store) -> None:
        assert await store.accounts.update_credentials_if_refresh_token_matches(
            "sub", "rt-sub", refreshed
        )

    async def one_more(store: Store) -> None:
        store.requests.record(record("req-late"))

    on(database_url, key, refresh)
    on(sqlite_path, key, one_more)

    result = run(tmp_path, key, "--from", str(sqlite_path), "--to", database_url)
    assert result.exit_code == 0, result.output
    assert "  requests: 4 rows, 1 added, 3 already there" in result.output
    assert "  accounts: 2 rows, 0 added, 2 already there" in result.output
    assert "2 already there were kept as they are" in result.output

    async def state(store: Store) -> tuple[Credentials | None, int]:
        sub = await store.accounts.get("sub")
        return (sub.credentials if sub else None), await store.requests.count()

    assert on(database_url, key, state) == (refreshed, 4)


def test_a_migrated_reference_database_copies_from_the_configured_file_to_database_url(
    tmp_path: Path, key: SecretKey, database_url: str
) -> None:
    build_reference_database(tmp_path)
    path = tmp_path / "xdg" / "better-ccflare" / "better-ccflare.db"
    on(path, key, lambda store: store.flush())  # migrate it, as the server did
    result = run(tmp_path, key, DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output
    expected = counts(path)
    for table in TABLES:
        assert f"  {table}: {expected[table]} rows, {expected[table]} added" in result.output
    # The reference's fixture holds a payload whose request is gone: it has nothing to join.
    assert "1 skipped (payloads of deleted requests)" in result.output

    async def accounts(store: Store) -> list[Account]:
        return await store.accounts.list_all()

    assert on(database_url, key, accounts) == on(path, key, accounts)


def test_a_missing_source_file_is_a_usage_error(
    tmp_path: Path, key: SecretKey, database_url: str
) -> None:
    missing = tmp_path / "nowhere.db"
    result = run(tmp_path, key, "--from", str(missing), "--to", database_url)
    assert result.exit_code == 2
    assert f"No SQLite database at {missing}" in result.output
    assert not missing.exists()


def test_an_unreachable_server_is_a_usage_error_that_never_shows_the_password(
    tmp_path: Path, key: SecretKey, sqlite_path: Path
) -> None:
    on(sqlite_path, key, fill)
    url = "postgresql://copier:s3cret-pw@127.0.0.1:1/nothing"
    result = run(tmp_path, key, "--from", str(sqlite_path), "--to", url)
    assert result.exit_code == 2
    assert "Cannot connect to the PostgreSQL database" in result.output
    assert "s3cret-pw" not in result.output
    assert "Traceback" not in result.output


def test_the_wrong_secret_key_is_a_usage_error_and_copies_nothing(
    tmp_path: Path, key: SecretKey, sqlite_path: Path, database_url: str
) -> None:
    on(sqlite_path, key, fill)
    result = run(tmp_path, SecretKey.generate(), "--from", str(sqlite_path), "--to", database_url)
    assert result.exit_code == 2
    assert "key" in result.output.lower()

    async def nothing_copied(store: Store) -> int:
        return len(await store.accounts.list_all())

    assert on(database_url, key, nothing_copied) == 0


def test_rows_that_clash_with_other_rows_in_the_target_fail_the_check(
    tmp_path: Path, key: SecretKey, sqlite_path: Path, database_url: str
) -> None:
    on(sqlite_path, key, fill)

    async def namesake(store: Store) -> None:
        await store.accounts.add(oauth_account("other-id"))
        await store.accounts.rename("other-id", "sub")

    on(database_url, key, namesake)
    result = run(tmp_path, key, "--from", str(sqlite_path), "--to", database_url)
    assert result.exit_code == 1
    assert "1 of 2 rows of table accounts could not be copied" in result.output
