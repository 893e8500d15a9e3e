"""The OAuth sessions repository: pending PKCE logins with a deadline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from better_ccflare.core import ConflictError, OAuthMode
from better_ccflare.database import SecretKey, Store

from . import rawdb
from .builders import T0, oauth_session


async def test_a_created_session_reads_back_equal_until_it_expires(store: Store) -> None:
    created = oauth_session("s1", mode=OAuthMode.CONSOLE, custom_endpoint="https://x", priority=4)

    await store.oauth_sessions.create(created)

    assert await store.oauth_sessions.get("s1", now_ms=T0) == created
    assert await store.oauth_sessions.get("s1", now_ms=created.expires_at_ms) is None


async def test_the_verifier_is_encrypted_in_the_table(store: Store, db_path: Path) -> None:
    await store.oauth_sessions.create(oauth_session("s1", verifier="pkce-verifier-value"))

    rows = await asyncio.to_thread(rawdb.query, db_path, "SELECT verifier FROM oauth_sessions")
    assert rows[0]["verifier"].startswith("enc:v1:")


async def test_a_duplicate_id_is_a_conflict(store: Store) -> None:
    await store.oauth_sessions.create(oauth_session("s1"))

    with pytest.raises(ConflictError):
        await store.oauth_sessions.create(oauth_session("s1"))


async def test_delete_forgets_the_session_and_tolerates_unknown_ids(store: Store) -> None:
    await store.oauth_sessions.create(oauth_session("s1"))

    await store.oauth_sessions.delete("s1")
    await store.oauth_sessions.delete("s1")

    assert await store.oauth_sessions.get("s1", now_ms=T0) is None


async def test_delete_expired(store: Store) -> None:
    await store.oauth_sessions.create(oauth_session("old", expires_at_ms=T0))
    await store.oauth_sessions.create(oauth_session("new", expires_at_ms=T0 + 1))

    assert await store.oauth_sessions.delete_expired(T0) == 1
    assert await store.oauth_sessions.get("new", now_ms=T0) is not None


async def test_a_session_with_an_unknown_mode_reads_as_absent(
    store: Store, db_path: Path, key: SecretKey
) -> None:
    await store.oauth_sessions.create(oauth_session("s1"))
    await store.close()
    await asyncio.to_thread(
        rawdb.execute, db_path, "UPDATE oauth_sessions SET mode = 'bedrock-sso'"
    )

    async with await Store.open(db_path, key=key) as reopened:
        assert await reopened.oauth_sessions.get("s1", now_ms=T0) is None
