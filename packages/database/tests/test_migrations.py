"""A new database gets the full schema as versioned migrations; reopening changes nothing."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from better_ccflare.core import Account, KeyLimits
from better_ccflare.database import RequestFilter, SecretKey, Store
from better_ccflare.database._sqlite._schema import (
    ANALYTICS_INDEXES,
    INDEXES,
    TABLES,
    UNIQUE_ACCOUNT_INDEX,
)

from . import rawdb
from .builders import DAY_MS, T0, api_key, request

MIGRATIONS = (
    "0001_reference_schema",
    "0002_encrypt_credentials",
    "0003_purge_plaintext_remnants",
    "0004_analytics_indexes",
    "0005_request_rollups",
    "0006_unpriced_request_counts",
    "0007_account_failure_streak",
    "0008_session_pins",
    "0009_api_key_limits",
    "0010_writer_progress",
)
SCHEMA_SQL = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
FORGET_MIGRATION_4 = "DELETE FROM _sqlite_migrations WHERE name = '0004_analytics_indexes';"

# SQLite's migrations; PostgreSQL's are in test_postgres.py.
pytestmark = pytest.mark.sqlite_only


async def test_an_empty_file_gets_every_table_column_and_index(
    db_path: Path, key: SecretKey
) -> None:
    await (await Store.open(db_path, key=key)).close()

    for table in TABLES:
        columns = await asyncio.to_thread(rawdb.columns, db_path, table.name)
        assert columns == [name for name, _ in table.columns]
    indexes = await asyncio.to_thread(rawdb.index_names, db_path)
    expected = (*INDEXES, UNIQUE_ACCOUNT_INDEX, *ANALYTICS_INDEXES)
    assert {index.name for index in expected} <= indexes


async def test_migrations_are_recorded_and_none_is_pending(store: Store) -> None:
    status = await store.schema_status()

    assert status.applied == MIGRATIONS
    assert status.pending == ()
    assert status.version == len(MIGRATIONS)
    assert status.backend.startswith("SQLite 3.")


async def test_reopening_applies_nothing_and_keeps_the_schema(
    db_path: Path, key: SecretKey
) -> None:
    await (await Store.open(db_path, key=key)).close()
    schema = await asyncio.to_thread(rawdb.query, db_path, SCHEMA_SQL)
    recorded = await asyncio.to_thread(rawdb.query, db_path, "SELECT * FROM _sqlite_migrations")

    async with await Store.open(db_path, key=key) as store:
        assert sorted((await store.schema_status()).applied) == list(MIGRATIONS)

    assert await asyncio.to_thread(rawdb.query, db_path, SCHEMA_SQL) == schema
    assert await asyncio.to_thread(rawdb.query, db_path, "SELECT * FROM _sqlite_migrations") == (
        recorded
    )


async def test_a_database_from_before_the_analytics_indexes_gets_them(
    db_path: Path, key: SecretKey
) -> None:
    await (await Store.open(db_path, key=key)).close()
    drops = "".join(f"DROP INDEX {index.name};" for index in ANALYTICS_INDEXES)
    await asyncio.to_thread(rawdb.execute, db_path, drops + FORGET_MIGRATION_4)

    async with await Store.open(db_path, key=key) as store:
        assert sorted((await store.schema_status()).applied) == list(MIGRATIONS)

    indexes = await asyncio.to_thread(rawdb.index_names, db_path)
    assert {index.name for index in ANALYTICS_INDEXES} <= indexes


async def test_the_analytics_migration_runs_again_over_existing_indexes_unchanged(
    db_path: Path, key: SecretKey
) -> None:
    # A reference database can already hold an index of the same name; it is kept as it is.
    await (await Store.open(db_path, key=key)).close()
    schema = await asyncio.to_thread(rawdb.query, db_path, SCHEMA_SQL)
    await asyncio.to_thread(rawdb.execute, db_path, FORGET_MIGRATION_4)

    async with await Store.open(db_path, key=key) as store:
        assert sorted((await store.schema_status()).applied) == list(MIGRATIONS)

    assert await asyncio.to_thread(rawdb.query, db_path, SCHEMA_SQL) == schema


async def test_rollups_from_before_unpriced_counts_gain_the_column_and_keep_their_rows(
    db_path: Path, key: SecretKey
) -> None:
    async with await Store.open(db_path, key=key) as store:
        store.requests.record(request("old", cost_usd=1.5))
        await store.flush()
        await store.analytics.refresh_rollups(T0 + 3 * DAY_MS)
    await asyncio.to_thread(
        rawdb.execute,
        db_path,
        "ALTER TABLE request_rollups DROP COLUMN unpriced_requests;"
        "DELETE FROM _sqlite_migrations WHERE name = '0006_unpriced_request_counts';",
    )

    async with await Store.open(db_path, key=key) as store:
        assert sorted((await store.schema_status()).applied) == list(MIGRATIONS)
        totals = (await store.analytics.totals(RequestFilter())).metrics

    assert (totals.requests, totals.cost_usd, totals.unpriced_requests) == (1, 1.5, 0)
    assert "unpriced_requests" in await asyncio.to_thread(rawdb.columns, db_path, "request_rollups")


async def test_a_database_from_before_the_failure_streak_gets_its_column_and_keeps_its_accounts(
    db_path: Path, key: SecretKey
) -> None:
    async with await Store.open(db_path, key=key) as store:
        await store.accounts.add(
            Account(id="a", name="work", provider="anthropic", created_at_ms=1)
        )
    await asyncio.to_thread(
        rawdb.execute,
        db_path,
        "ALTER TABLE accounts DROP COLUMN consecutive_failures;"
        "DELETE FROM _sqlite_migrations WHERE name = '0007_account_failure_streak';",
    )

    async with await Store.open(db_path, key=key) as store:
        assert sorted((await store.schema_status()).applied) == list(MIGRATIONS)
        account = await store.accounts.get("a")

    assert account is not None
    assert (account.name, account.rate_limit.failures) == ("work", 0)
    assert "consecutive_failures" in await asyncio.to_thread(rawdb.columns, db_path, "accounts")


async def test_the_file_uses_wal_and_is_private(db_path: Path, key: SecretKey) -> None:
    await (await Store.open(db_path, key=key)).close()

    journal = await asyncio.to_thread(rawdb.query, db_path, "PRAGMA journal_mode")
    assert journal == [{"journal_mode": "wal"}]
    modes = await asyncio.to_thread(lambda: (db_path.stat(), db_path.parent.stat()))
    assert [stat.S_IMODE(found.st_mode) for found in modes] == [0o600, 0o700]


@pytest.mark.parametrize("stored", ['{"rpm": "ten"}', "not json"])
async def test_limits_this_version_cannot_read_refuse_every_model_rather_than_vanish(
    db_path: Path, key: SecretKey, stored: str
) -> None:
    async with await Store.open(db_path, key=key) as store:
        await store.api_keys.add(api_key("k1", limits=KeyLimits(rpm=10)))
    await asyncio.to_thread(
        rawdb.execute, db_path, f"UPDATE api_keys SET limits = '{stored}' WHERE id = 'k1';"
    )

    async with await Store.open(db_path, key=key) as store:
        found = await store.api_keys.get("k1")

    assert found is not None
    assert found.limits is not None
    assert found.limits.models == ("(limits unreadable: an admin must set them again)",)
