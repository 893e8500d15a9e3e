"""The two small settings tables: agent preferences and strategy settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from better_ccflare.core import AgentPreference, NotFoundError, StrategySettings
from better_ccflare.database import SecretKey, Store

from . import rawdb
from .builders import T0


async def test_an_agent_preference_is_set_replaced_and_listed(store: Store) -> None:
    await store.agent_preferences.set(AgentPreference(agent_id="b", model="m1", updated_at_ms=T0))
    await store.agent_preferences.set(AgentPreference(agent_id="a", model="m2", updated_at_ms=T0))
    replaced = AgentPreference(agent_id="b", model="m3", updated_at_ms=T0 + 1)

    await store.agent_preferences.set(replaced)

    assert await store.agent_preferences.get("b") == replaced
    assert [p.agent_id for p in await store.agent_preferences.list_all()] == ["a", "b"]
    assert await store.agent_preferences.get("c") is None


async def test_an_agent_preference_is_deleted(store: Store) -> None:
    await store.agent_preferences.set(AgentPreference(agent_id="a", model="m", updated_at_ms=T0))

    await store.agent_preferences.delete("a")

    assert await store.agent_preferences.get("a") is None
    with pytest.raises(NotFoundError):
        await store.agent_preferences.delete("a")


async def test_strategy_settings_are_set_and_replaced(store: Store) -> None:
    first = StrategySettings(name="session", config={"sessionDurationMs": 5}, updated_at_ms=T0)
    second = StrategySettings(name="session", config={"nested": {"a": [1, 2]}}, updated_at_ms=T0)

    await store.strategies.set(first)
    await store.strategies.set(second)

    assert await store.strategies.get("session") == second
    assert await store.strategies.get("least-used") is None


async def test_malformed_strategy_json_reads_as_empty_settings(
    store: Store, db_path: Path, key: SecretKey
) -> None:
    await store.strategies.set(StrategySettings(name="session", updated_at_ms=T0))
    await store.close()
    await asyncio.to_thread(rawdb.execute, db_path, "UPDATE strategies SET config = '{oops'")

    async with await Store.open(db_path, key=key) as reopened:
        assert await reopened.strategies.get("session") == StrategySettings(
            name="session", updated_at_ms=T0
        )
