"""The API keys repository."""

from __future__ import annotations

import pytest

from better_ccflare.core import ApiKeyRole, ConflictError, NotFoundError
from better_ccflare.database import Store

from .builders import T0, api_key


async def test_an_added_key_reads_back_equal_by_id_or_name(store: Store) -> None:
    added = api_key("k1", role=ApiKeyRole.ADMIN, usage_count=3, last_used_ms=T0)

    await store.api_keys.add(added)

    assert await store.api_keys.get("k1") == added
    assert await store.api_keys.get(added.name) == added
    assert await store.api_keys.get("unknown") is None


async def test_get_prefers_an_id_match_over_a_name_match(store: Store) -> None:
    await store.api_keys.add(api_key("k1", name="k2"))
    await store.api_keys.add(api_key("k2", name="second"))

    found = await store.api_keys.get("k2")

    assert found is not None
    assert found.id == "k2"


@pytest.mark.parametrize("clash", ["id", "name", "hashed_key"])
async def test_a_duplicate_id_name_or_hash_is_a_conflict(store: Store, clash: str) -> None:
    await store.api_keys.add(api_key("k1"))
    other = {"id": "k2", "name": "other", "hashed_key": "salt:other"}
    other[clash] = {"id": "k1", "name": "name-k1", "hashed_key": "salt:hash-k1"}[clash]

    with pytest.raises(ConflictError):
        await store.api_keys.add(api_key(other.pop("id"), **other))


async def test_list_all_and_list_active(store: Store) -> None:
    await store.api_keys.add(api_key("k1", created_at_ms=T0))
    await store.api_keys.add(api_key("k2", created_at_ms=T0 + 1, is_active=False))

    assert [k.id for k in await store.api_keys.list_all()] == ["k1", "k2"]
    assert [k.id for k in await store.api_keys.list_active()] == ["k1"]


async def test_set_active(store: Store) -> None:
    await store.api_keys.add(api_key("k1"))

    await store.api_keys.set_active("k1", False)

    changed = await store.api_keys.get("k1")
    assert changed is not None
    assert not changed.is_active


async def test_set_role(store: Store) -> None:
    await store.api_keys.add(api_key("k1"))

    await store.api_keys.set_role("k1", ApiKeyRole.ADMIN)

    changed = await store.api_keys.get("k1")
    assert changed is not None
    assert changed.role is ApiKeyRole.ADMIN


async def test_delete(store: Store) -> None:
    await store.api_keys.add(api_key("k1"))

    await store.api_keys.delete("k1")

    assert await store.api_keys.get("k1") is None


async def test_changing_an_unknown_key_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.api_keys.delete("ghost")
    with pytest.raises(NotFoundError):
        await store.api_keys.set_active("ghost", True)
    with pytest.raises(NotFoundError):
        await store.api_keys.set_role("ghost", ApiKeyRole.ADMIN)


async def test_touch_counts_a_use(store: Store) -> None:
    await store.api_keys.add(api_key("k1"))

    store.api_keys.touch("k1", T0 + 5)
    store.api_keys.touch("k1", T0 + 9)
    await store.flush()

    touched = await store.api_keys.get("k1")
    assert touched is not None
    assert (touched.usage_count, touched.last_used_ms) == (2, T0 + 9)


async def test_count_active_overall_and_by_role(store: Store) -> None:
    await store.api_keys.add(api_key("k1", role=ApiKeyRole.ADMIN))
    await store.api_keys.add(api_key("k2"))
    await store.api_keys.add(api_key("k3", is_active=False, role=ApiKeyRole.ADMIN))

    assert await store.api_keys.count_active() == 2
    assert await store.api_keys.count_active(ApiKeyRole.ADMIN) == 1
    assert await store.api_keys.count_active(ApiKeyRole.API_ONLY) == 1
