"""What only the PostgreSQL backend has to get right: opening from the configuration, several
instances on one database, its migrations, and what it stores, read back with a plain
connection. Everything the backends share runs on both through the ``store`` fixture."""

from __future__ import annotations

import asyncio
import builtins
import logging
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from better_ccflare.core import Credentials, KeyLimits, PauseReason, load_config
from better_ccflare.database import (
    CredentialKeyError,
    SecretKey,
    Store,
    StoreClosedError,
    StoreOpenError,
)
from better_ccflare.database._crypto import is_encrypted
from better_ccflare.database._postgres._writer import CHUNK

from .builders import account, api_key, request

MIGRATIONS = (
    "0001_schema",
    "0002_account_failure_streak",
    "0003_change_counters",
    "0004_change_notices",
    "0005_session_pins",
    "0006_api_key_limits",
)


async def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(sql)
    finally:
        await connection.close()


async def execute(url: str, sql: str) -> None:
    """Run ``sql`` (several statements allowed) outside any store."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def test_from_config_opens_database_url_with_the_configured_key(
    database_url: str, tmp_path: Path
) -> None:
    key = SecretKey.generate()
    config = load_config(
        environ={
            "XDG_CONFIG_HOME": str(tmp_path),
            "DATABASE_URL": database_url,
            "BETTER_CCFLARE_SECRET_KEY": key.to_text(),
        },
        cwd=tmp_path,
    )

    async with await Store.from_config(config) as store:
        await store.accounts.add(account("a1"))
        assert (await store.schema_status()).backend.startswith("PostgreSQL ")

    assert not config.db_path.exists()
    async with await Store.open(database_url, key=key) as reopened:
        assert await reopened.accounts.get("a1") == account("a1")


async def test_a_database_url_that_is_not_postgresql_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(
        environ={"XDG_CONFIG_HOME": str(tmp_path), "DATABASE_URL": "mysql://u:hunter2@h/db"},
        cwd=tmp_path,
    )

    with caplog.at_level(logging.WARNING, logger="better_ccflare.database"):
        async with await Store.from_config(config) as store:
            await store.accounts.add(account("a1"))

    assert config.db_path.exists()
    assert "not a postgresql:// URL" in caplog.text
    assert "hunter2" not in caplog.text


async def test_an_unreachable_server_is_a_clear_error_without_the_password(
    unused_tcp_port: int,
) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{unused_tcp_port}/nowhere"

    with pytest.raises(StoreOpenError, match="Cannot connect to the PostgreSQL database") as error:
        await Store.open(url, key=SecretKey.generate())

    assert "DATABASE_URL" in str(error.value)
    assert "hunter2" not in str(error.value)


async def test_a_missing_driver_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def without_postgres(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "_postgres" or name.endswith("._postgres"):
            raise ModuleNotFoundError("No module named 'asyncpg'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_postgres)

    with pytest.raises(StoreOpenError, match=r"better-ccflare-database\[postgres\]"):
        await Store.open("postgresql://u:hunter2@127.0.0.1/db", key=SecretKey.generate())


async def test_credentials_and_verifiers_are_stored_encrypted(
    database_url: str, key: SecretKey
) -> None:
    async with await Store.open(database_url, key=key) as store:
        await store.accounts.add(account("a1", credentials=Credentials(api_key="sk-ant-api03-x")))

    rows = await fetch(database_url, "SELECT api_key, access_token, refresh_token FROM accounts")

    assert [is_encrypted(value) for value in rows[0].values() if value is not None] == [True]
    assert key.decrypt(rows[0]["api_key"]) == "sk-ant-api03-x"


async def test_another_key_is_refused_and_changes_nothing(database_url: str) -> None:
    async with await Store.open(database_url, key=SecretKey.generate()) as store:
        await store.accounts.add(account("a1"))
    before = await fetch(database_url, "SELECT * FROM accounts")

    with pytest.raises(CredentialKeyError):
        await Store.open(database_url, key=SecretKey.generate())

    assert await fetch(database_url, "SELECT * FROM accounts") == before


async def test_instances_starting_together_migrate_once(database_url: str, key: SecretKey) -> None:
    stores = await asyncio.gather(*(Store.open(database_url, key=key) for _ in range(4)))
    try:
        statuses = [await store.schema_status() for store in stores]
    finally:
        for store in stores:
            await store.close()

    assert {status.applied for status in statuses} == {MIGRATIONS}
    assert {status.pending for status in statuses} == {()}
    assert len(await fetch(database_url, "SELECT name FROM better_ccflare_migrations")) == len(
        MIGRATIONS
    )


async def test_a_database_from_before_the_failure_streak_gets_its_column_and_keeps_its_accounts(
    database_url: str, key: SecretKey
) -> None:
    async with await Store.open(database_url, key=key) as store:
        await store.accounts.add(account("a1"))
    await execute(
        database_url,
        # As before 0002 (and so before 0003, whose trigger watches the column).
        "ALTER TABLE accounts DROP COLUMN consecutive_failures CASCADE;"
        "DELETE FROM better_ccflare_migrations "
        "WHERE name IN ('0002_account_failure_streak', '0003_change_counters');",
    )

    async with await Store.open(database_url, key=key) as store:
        assert (await store.schema_status()).applied == MIGRATIONS
        stored = await store.accounts.get("a1")

    assert stored is not None
    assert (stored.id, stored.rate_limit.failures) == ("a1", 0)


async def test_of_two_instances_refreshing_one_token_only_the_first_swap_wins(
    database_url: str, key: SecretKey
) -> None:
    first, second = [await Store.open(database_url, key=key) for _ in range(2)]
    try:
        await first.accounts.add(account("a1"))
        swaps = await asyncio.gather(
            *(
                store.accounts.update_credentials_if_refresh_token_matches(
                    "a1", "refresh-a1", Credentials(refresh_token=f"new-{n}", access_token="x")
                )
                for n, store in enumerate([first, second, first, second])
            )
        )
        stored = await second.accounts.get("a1")
    finally:
        await first.close()
        await second.close()

    assert sorted(swaps) == [False, False, False, True]
    assert stored is not None
    assert stored.credentials.refresh_token == f"new-{swaps.index(True)}"


async def test_what_one_instance_writes_the_other_reads(database_url: str, key: SecretKey) -> None:
    async with (
        await Store.open(database_url, key=key) as writer,
        await Store.open(database_url, key=key) as reader,
    ):
        writer.requests.record(request("r1"))
        await writer.flush()

        assert await reader.requests.get("r1") == request("r1")


async def test_a_failing_queued_write_is_logged_and_spares_the_rest_of_its_batch(
    database_url: str, key: SecretKey, caplog: pytest.LogCaptureFixture
) -> None:
    async with await Store.open(database_url, key=key) as store:
        for i in range(3):
            store.requests.record(request(f"before-{i}"))
        store.requests.record_payload("no-such-request", "{}")  # breaks the foreign key
        for i in range(3):
            store.requests.record(request(f"after-{i}"))

        with caplog.at_level(logging.ERROR, logger="better_ccflare.database"):
            await store.flush()

        assert await store.requests.count() == 6
        assert store.stats().ops_failed == 1
        assert "requests.record_payload(no-such-request)" in caplog.text
        assert "foreign key" in caplog.text


async def test_a_long_run_of_records_is_sent_a_few_rows_at_a_time(
    database_url: str, key: SecretKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg encodes one executemany's rows in one go on the event loop: a whole batch at once
    # held up the requests arriving meanwhile.
    sizes: list[int] = []
    real = asyncpg.connection.Connection.executemany

    async def counted(
        self: asyncpg.connection.Connection, command: str, args: Any, **options: Any
    ) -> None:
        rows = list(args)
        if command.startswith("INSERT INTO requests"):
            sizes.append(len(rows))
        await real(self, command, rows, **options)

    monkeypatch.setattr(asyncpg.connection.Connection, "executemany", counted)
    async with await Store.open(database_url, key=key) as store:
        for i in range(2 * CHUNK + 5):
            store.requests.record(request(f"r{i}"))
        await store.flush()
        assert await store.requests.count() == 2 * CHUNK + 5

    assert sizes == [CHUNK, CHUNK, 5]


async def test_a_closed_store_refuses_reads_and_writes(database_url: str, key: SecretKey) -> None:
    store = await Store.open(database_url, key=key)
    await store.close()
    await store.close()  # twice is fine

    with pytest.raises(StoreClosedError):
        await store.requests.count()
    with pytest.raises(StoreClosedError):
        store.requests.record(request("r1"))


async def test_compact_and_the_integrity_check_run_on_a_live_database(
    database_url: str, key: SecretKey
) -> None:
    async with await Store.open(database_url, key=key) as store:
        await store.accounts.add(account("a1"))
        for i in range(50):
            store.requests.record(request(f"r{i}"))
        await store.flush()
        await store.requests.delete_all()

        await store.compact()

        assert await store.check_integrity() == ()
        assert await store.requests.count() == 0


async def test_another_instances_change_is_seen_and_its_own_writes_are_not(
    database_url: str, key: SecretKey
) -> None:
    async with (
        await Store.open(database_url, key=key) as server,
        await Store.open(database_url, key=key) as cli,
    ):
        assert not await server.changed_elsewhere()
        await cli.accounts.add(account("added-by-the-cli"))
        assert await server.changed_elsewhere()
        assert not await server.changed_elsewhere()  # seen once
        await server.accounts.pause("added-by-the-cli", PauseReason.MANUAL)
        server.accounts.record_use_nowait("added-by-the-cli", 1_000, 3_600_000)
        await server.flush()
        assert not await server.changed_elsewhere()
        assert await cli.changed_elsewhere()  # the server's pause, seen by the other side


async def test_a_change_of_a_keys_limits_is_seen_by_the_other_instances(
    database_url: str, key: SecretKey
) -> None:
    async with (
        await Store.open(database_url, key=key) as server,
        await Store.open(database_url, key=key) as cli,
    ):
        await cli.api_keys.add(api_key("k1"))
        assert await server.changed_elsewhere()
        await cli.api_keys.set_limits("k1", KeyLimits(rpm=5))
        assert await server.changed_elsewhere()


async def test_a_keys_minute_slots_are_shared_by_every_instance(
    database_url: str, key: SecretKey
) -> None:
    first, second = [await Store.open(database_url, key=key) for _ in range(2)]
    try:
        counters = [store.key_fleet for store in (first, second)]
        assert None not in counters
        taken = await asyncio.gather(
            *(counter.take_minute("k1", 100, 3) for counter in counters * 3 if counter is not None)
        )
        assert sorted(taken) == [False, False, False, True, True, True]
        assert first.key_fleet is not None
        assert await first.key_fleet.take_minute("k1", 101, 3)  # a new minute starts afresh
    finally:
        await first.close()
        await second.close()


async def test_a_keys_requests_in_flight_are_counted_for_the_fleet_while_instances_beat(
    database_url: str, key: SecretKey
) -> None:
    first, second = [await Store.open(database_url, key=key) for _ in range(2)]
    try:
        one, two = first.key_fleet, second.key_fleet
        assert one is not None
        assert two is not None
        assert await one.enter("k1", 2, 1_000)
        assert await two.enter("k1", 2, 1_000)
        assert not await one.enter("k1", 2, 1_000)  # the fleet has 2 in flight
        two.leave("k1", 1_500)
        await second.flush()
        assert await one.enter("k1", 2, 2_000)
        # The second instance dies with nothing more in flight; the first's counts only stand
        # while it beats: without a beat for 10 s they stop counting.
        await one.heartbeat(5_000)
        assert not await two.enter("k1", 2, 14_000)
        assert await two.enter("k1", 2, 15_001)
    finally:
        await first.close()
        await second.close()
