"""Pointing the store at a database the reference better-ccflare built migrates it in place.

The fixture ``reference_schema.sql`` reproduces the reference's tables (including the ones this
port does not use) with realistic rows and plaintext credentials.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest

from better_ccflare.core import (
    ApiKeyRole,
    BillingType,
    OAuthMode,
    PauseReason,
    UsageWindow,
)
from better_ccflare.database import CredentialKeyError, SchemaError, SecretKey, Store

from . import rawdb

REFERENCE_SQL = (Path(__file__).parent / "reference_schema.sql").read_text()
UNUSED_TABLES = (
    "combos",
    "combo_slots",
    "combo_family_assignments",
    "model_translations",
    "alerts",
    "instance_heartbeats",
)
SECRET_COLUMNS = {
    "accounts": ("api_key", "access_token", "refresh_token"),
    "oauth_sessions": ("verifier",),
}
PLAINTEXT_SECRETS = (
    b"sk-ant-ort01-REFERENCE-REFRESH-TOKEN-claude-max-0001",
    b"sk-ant-oat01-REFERENCE-ACCESS-TOKEN-claude-max-0001",
    b"sk-ant-api03-REFERENCE-CONSOLE-API-KEY-0002",
    b"zai-REFERENCE-PROVIDER-API-KEY-0003",
    b"REFERENCE-PKCE-VERIFIER-0005",
)
DELETED_ACCOUNT_SECRET = b"sk-ant-ort01-REFERENCE-DELETED-ACCOUNT-TOKEN-0004"


@pytest.fixture
def reference_db(db_path: Path) -> Path:
    db_path.parent.mkdir(parents=True)
    rawdb.execute(db_path, REFERENCE_SQL)
    return db_path


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def migrate(path: Path, key: SecretKey) -> None:
    store = await Store.open(path, key=key)
    await store.close()


async def test_every_reference_row_survives_with_its_values(
    reference_db: Path, key: SecretKey
) -> None:
    before = await asyncio.to_thread(rawdb.dump, reference_db)
    await migrate(reference_db, key)
    after = await asyncio.to_thread(rawdb.dump, reference_db)

    assert set(before) <= set(after)
    for table, rows in before.items():
        assert len(after[table]) == len(rows), table
        for old, new in zip(rows, after[table], strict=True):
            for column, value in old.items():
                if column in SECRET_COLUMNS.get(table, ()) and value is not None:
                    assert new[column].startswith("enc:v1:")
                    assert key.decrypt(new[column]) == value
                else:
                    assert new[column] == value, (table, column)


async def test_tables_and_indexes_this_port_does_not_use_are_untouched(
    reference_db: Path, key: SecretKey
) -> None:
    schema_sql = "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ?"
    before = {
        table: await asyncio.to_thread(rawdb.query, reference_db, schema_sql, (table,))
        for table in UNUSED_TABLES
    }
    indexes_before = await asyncio.to_thread(rawdb.index_names, reference_db)
    rows_before = await asyncio.to_thread(rawdb.dump, reference_db)

    await migrate(reference_db, key)

    for table in UNUSED_TABLES:
        assert (
            await asyncio.to_thread(rawdb.query, reference_db, schema_sql, (table,))
            == before[table]
        )
    rows_after = await asyncio.to_thread(rawdb.dump, reference_db)
    assert {table: rows_after[table] for table in UNUSED_TABLES} == {
        table: rows_before[table] for table in UNUSED_TABLES
    }
    assert indexes_before <= await asyncio.to_thread(rawdb.index_names, reference_db)


async def test_reference_rows_read_back_as_core_types(reference_db: Path, key: SecretKey) -> None:
    async with await Store.open(reference_db, key=key) as store:
        max_account = await store.accounts.get("0b6f2c1e-claude-max")
        console = await store.accounts.get("5a1d9e77-console")
        zai = await store.accounts.get_by_name("glm")
        first = await store.requests.get("9f0e1d2c-0001")
        unknown_state = await store.requests.get("9f0e1d2c-0003")
        old_style = await store.requests.get("9f0e1d2c-0004")
        session = await store.oauth_sessions.get("oauth-sess-1", now_ms=1_767_225_000_001)
        admin = await store.api_keys.get("laptop")
        preference = await store.agent_preferences.get("code-reviewer")
        strategy = await store.strategies.get("session")
        usage = await store.usage.latest("0b6f2c1e-claude-max")

    assert max_account is not None
    assert console is not None
    assert zai is not None
    assert max_account.credentials.refresh_token == PLAINTEXT_SECRETS[0].decode()
    assert max_account.credentials.access_token == PLAINTEXT_SECRETS[1].decode()
    assert max_account.session.request_count == 37
    assert max_account.billing_type is BillingType.PLAN
    assert max_account.auto_pause_on_overage_enabled
    assert console.credentials.api_key == PLAINTEXT_SECRETS[2].decode()
    assert console.paused
    assert console.pause_reason is PauseReason.MANUAL
    assert console.rate_limit.reason is None  # "some_future_reason_v9" is unknown here
    assert console.rate_limit.limited_until_ms == 1_767_300_000_000
    assert console.rate_limit.consecutive == 3
    assert zai.model_mappings == {
        "opus": ("glm-4.6",),
        "sonnet": ("glm-4.6", "glm-4.5-air"),
        "haiku": ("glm-4.5-air",),
    }
    assert zai.custom_endpoint == "https://api.z.ai/api/anthropic"
    assert zai.requires_reauth
    assert zai.peak_hours_pause_enabled

    assert first is not None
    assert first.usage.cache_write_5m_input_tokens == 200
    assert first.usage.prompt_tokens == 15_230
    assert first.agent_used == "code-reviewer"
    assert unknown_state is not None
    assert unknown_state.stream_terminal_state is None
    assert old_style is not None
    assert (old_style.usage.input_tokens, old_style.usage.output_tokens) == (120, 40)

    assert session is not None
    assert session.mode is OAuthMode.CLAUDE_OAUTH
    assert session.verifier == PLAINTEXT_SECRETS[4].decode()
    assert admin is not None
    assert admin.role is ApiKeyRole.ADMIN
    assert admin.usage_count == 1200
    assert preference is not None
    assert preference.model == "claude-opus-4-1"
    assert strategy is not None
    assert strategy.config == {"sessionDurationMs": 18_000_000}
    assert usage is not None
    assert usage.timestamp_ms == 1_767_224_090_000
    assert usage.windows == (
        UsageWindow(key="five_hour", utilization=43.0, resets_at_ms=1_767_240_000_000),
        UsageWindow(key="seven_day", utilization=63.5, resets_at_ms=1_767_600_000_000),
    )


async def test_no_plaintext_credential_is_left_in_the_file(
    reference_db: Path, key: SecretKey
) -> None:
    raw_before = await asyncio.to_thread(rawdb.file_bytes, reference_db)
    assert all(secret in raw_before for secret in (*PLAINTEXT_SECRETS, DELETED_ACCOUNT_SECRET))

    await migrate(reference_db, key)

    raw_after = await asyncio.to_thread(rawdb.file_bytes, reference_db)
    for secret in (*PLAINTEXT_SECRETS, DELETED_ACCOUNT_SECRET):
        assert secret not in raw_after


async def test_reopening_a_migrated_database_changes_nothing(
    reference_db: Path, key: SecretKey
) -> None:
    await migrate(reference_db, key)
    once = await asyncio.to_thread(rawdb.dump, reference_db)
    await migrate(reference_db, key)
    assert await asyncio.to_thread(rawdb.dump, reference_db) == once


async def test_an_older_reference_database_gains_the_missing_columns_and_tables(
    reference_db: Path, key: SecretKey
) -> None:
    await asyncio.to_thread(
        rawdb.execute,
        reference_db,
        """
        ALTER TABLE accounts DROP COLUMN billing_type;
        ALTER TABLE accounts DROP COLUMN rate_limited_reason;
        ALTER TABLE accounts DROP COLUMN consecutive_rate_limits;
        ALTER TABLE accounts DROP COLUMN peak_hours_pause_enabled;
        ALTER TABLE requests DROP COLUMN client_session_id;
        ALTER TABLE requests DROP COLUMN stream_terminal_state;
        DROP INDEX idx_api_keys_role;
        ALTER TABLE api_keys DROP COLUMN role;
        DROP TABLE usage_snapshots;
        DROP TABLE agent_preferences;
        """,
    )
    before = await asyncio.to_thread(rawdb.dump, reference_db)

    async with await Store.open(reference_db, key=key) as store:
        console = await store.accounts.get("5a1d9e77-console")
        ci_key = await store.api_keys.get("key-ci")
        assert await store.usage.latest("0b6f2c1e-claude-max") is None

    assert console is not None
    assert console.rate_limit.consecutive == 0
    assert console.billing_type is None
    assert ci_key is not None
    assert ci_key.role is ApiKeyRole.API_ONLY
    after = await asyncio.to_thread(rawdb.dump, reference_db)
    for table, rows in before.items():
        assert len(after[table]) == len(rows)
    columns = await asyncio.to_thread(rawdb.columns, reference_db, "accounts")
    assert {"billing_type", "rate_limited_reason", "consecutive_rate_limits"} <= set(columns)
    assert "agent_preferences" in after
    assert "usage_snapshots" in after


async def test_duplicate_accounts_in_an_old_database_survive_with_a_warning(
    reference_db: Path, key: SecretKey, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(
        rawdb.execute,
        reference_db,
        """
        DROP INDEX idx_accounts_unique_name_provider_endpoint;
        INSERT INTO accounts (id, name, provider, created_at)
        VALUES ('dup-1', 'twin', 'anthropic', 1), ('dup-2', 'twin', 'anthropic', 2);
        """,
    )
    with caplog.at_level(logging.WARNING, logger="better_ccflare.database"):
        await migrate(reference_db, key)

    rows: list[dict[str, Any]] = await asyncio.to_thread(
        rawdb.query, reference_db, "SELECT id FROM accounts WHERE name = 'twin'"
    )
    assert [row["id"] for row in rows] == ["dup-1", "dup-2"]
    assert "'twin'" in caplog.text


async def test_the_wrong_key_is_refused_and_nothing_is_changed(
    reference_db: Path, key: SecretKey
) -> None:
    await migrate(reference_db, key)
    digest = await asyncio.to_thread(file_digest, reference_db)

    with pytest.raises(CredentialKeyError, match="BETTER_CCFLARE_SECRET_KEY"):
        await Store.open(reference_db, key=SecretKey.generate())

    assert await asyncio.to_thread(file_digest, reference_db) == digest
    async with await Store.open(reference_db, key=key) as store:
        account = await store.accounts.get("5a1d9e77-console")
    assert account is not None
    assert account.credentials.api_key == PLAINTEXT_SECRETS[2].decode()


async def test_a_file_that_is_not_a_better_ccflare_database_is_refused(
    db_path: Path, key: SecretKey
) -> None:
    db_path.parent.mkdir(parents=True)
    await asyncio.to_thread(
        rawdb.execute, db_path, "CREATE TABLE accounts (id TEXT PRIMARY KEY, colour TEXT);"
    )

    with pytest.raises(SchemaError, match="accounts table has no name column"):
        await Store.open(db_path, key=key)
