"""The store as a whole: opening from the configuration, context management, compaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from better_ccflare.core import load_config
from better_ccflare.database import KEY_FILE_NAME, SecretKey, Store, StoreOpenError

from .builders import account, request


async def test_from_config_opens_the_configured_file_with_the_key_file(tmp_path: Path) -> None:
    config = load_config(environ={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)

    async with await Store.from_config(config) as store:
        await store.accounts.add(account("a1"))

    assert config.db_path == tmp_path / "better-ccflare" / "better-ccflare.db"
    assert config.db_path.exists()
    assert (tmp_path / "better-ccflare" / KEY_FILE_NAME).exists()
    async with await Store.from_config(config) as reopened:
        assert await reopened.accounts.get("a1") == account("a1")


async def test_from_config_uses_the_configured_secret_key(tmp_path: Path) -> None:
    key = SecretKey.generate()
    config = load_config(
        environ={
            "XDG_CONFIG_HOME": str(tmp_path),
            "BETTER_CCFLARE_DB_PATH": str(tmp_path / "elsewhere.db"),
            "BETTER_CCFLARE_SECRET_KEY": key.to_text(),
        },
        cwd=tmp_path,
    )

    async with await Store.from_config(config) as store:
        await store.accounts.add(account("a1"))

    assert not (tmp_path / "better-ccflare" / KEY_FILE_NAME).exists()
    async with await Store.open(tmp_path / "elsewhere.db", key=key) as reopened:
        assert await reopened.accounts.get("a1") == account("a1")


async def test_the_context_manager_closes_and_flushes(db_path: Path, key: SecretKey) -> None:
    async with await Store.open(db_path, key=key) as store:
        store.requests.record(request("r1"))

    async with await Store.open(db_path, key=key) as reopened:
        assert await reopened.requests.get("r1") == request("r1")


async def test_compact_returns_freed_space_to_the_file_system(store: Store, db_path: Path) -> None:
    for i in range(500):
        store.requests.record(request(f"r{i}"))
        store.requests.record_payload(f"r{i}", "x" * 4000)
    await store.flush()
    await store.requests.delete_all()

    await store.compact()

    wal = db_path.with_name(db_path.name + "-wal")
    size = await asyncio.to_thread(lambda: db_path.stat().st_size + wal.stat().st_size)
    assert size < 500 * 4000 / 4
    assert await store.requests.count() == 0


async def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(
    tmp_path: Path, key: SecretKey
) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_bytes(b"these are my notes, not a database\n" * 200)

    with pytest.raises(StoreOpenError, match=r"notes\.db"):
        await Store.open(bogus, key=key)

    assert bogus.read_bytes() == b"these are my notes, not a database\n" * 200


async def test_changed_elsewhere_sees_other_connections_commits_not_its_own(
    db_path: Path, key: SecretKey
) -> None:
    async with await Store.open(db_path, key=key) as store:
        await store.accounts.add(account("mine"))
        store.requests.record(request("r1"))
        await store.flush()
        assert not await store.changed_elsewhere()

        async with await Store.open(db_path, key=key) as other:  # as the CLI would
            await other.accounts.add(account("theirs"))

        assert await store.changed_elsewhere()
        assert not await store.changed_elsewhere()
