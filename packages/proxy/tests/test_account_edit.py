"""Changing accounts through the one edit operation the CLI and the management API share."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import ClassVar

import msgspec
import pytest

from better_ccflare.core import Account, BillingType, InvalidInputError, NotFoundError
from better_ccflare.database import SecretKey, Store
from better_ccflare.providers import (
    API_KEY_FIELD,
    CUSTOM_ENDPOINT_FIELD,
    AccountField,
    Provider,
    ProviderRegistry,
    builtin_providers,
)
from better_ccflare.proxy.admin import (
    AccountEdit,
    AccountMode,
    NewAccount,
    add_account,
    edit_account,
)

NOW = 1_700_000_000_000
KEY = "sk-test-key-123456"


class TenantProvider(Provider):
    """A plugin's provider whose endpoint is stored with another setting, as one JSON object."""

    id: ClassVar[str] = "tenant-gw"
    display_name: ClassVar[str] = "Tenant gateway"
    account_fields: ClassVar[tuple[AccountField, ...]] = (
        API_KEY_FIELD,
        CUSTOM_ENDPOINT_FIELD,
        AccountField(name="tenant", label="Tenant"),
    )

    def base_url(self, account: Account) -> str:
        return "http://127.0.0.1:9"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncGenerator[Store]:
    async with await Store.open(tmp_path / "db.sqlite", key=SecretKey.generate()) as opened:
        yield opened


@pytest.fixture
def registry() -> ProviderRegistry:
    return ProviderRegistry(builtins=[*builtin_providers(), TenantProvider()], plugins=[])


async def added(store: Store, registry: ProviderRegistry, new: NewAccount) -> Account:
    return await add_account(store, new, now_ms=NOW, registry=registry)


async def test_only_the_settings_given_change(store: Store, registry: ProviderRegistry) -> None:
    account = await added(store, registry, NewAccount(name="a", mode=AccountMode.ZAI, api_key=KEY))
    edit = AccountEdit(priority=4, peak_hours_pause=True, billing_type=BillingType.PLAN)
    changed = await edit_account(store, account.id, edit, registry=registry)
    expected = msgspec.structs.replace(
        account, priority=4, peak_hours_pause_enabled=True, billing_type=BillingType.PLAN
    )
    assert changed == expected


async def test_an_endpoint_stored_with_other_settings_is_replaced_inside_them(
    store: Store, registry: ProviderRegistry
) -> None:
    new = NewAccount(
        name="t",
        mode="tenant-gw",
        api_key=KEY,
        endpoint="https://a.example",
        fields={"tenant": "t1"},
    )
    account = await added(store, registry, new)
    edit = AccountEdit(endpoint="https://b.example/")
    changed = await edit_account(store, account.id, edit, registry=registry)
    stored = json.loads(changed.custom_endpoint or "")
    assert stored == {"custom_endpoint": "https://b.example", "tenant": "t1"}
    cleared = await edit_account(store, account.id, AccountEdit(endpoint=None), registry=registry)
    assert json.loads(cleared.custom_endpoint or "") == {"tenant": "t1"}


@pytest.mark.parametrize(
    ("mode", "edit", "field", "problem"),
    [
        (AccountMode.ZAI, AccountEdit(endpoint="https://x.example"), "endpoint", "not accepted"),
        (
            AccountMode.VERTEX_AI,
            AccountEdit(endpoint="https://x.example"),
            "endpoint",
            "not accepted",
        ),
        (AccountMode.ANTHROPIC_COMPATIBLE, AccountEdit(endpoint=""), "endpoint", "is required"),
        (AccountMode.NANOGPT, AccountEdit(endpoint="ftp://x"), "endpoint", "http(s) URL"),
        (AccountMode.NANOGPT, AccountEdit(priority=101), "priority", "from 0 to 100"),
        (AccountMode.NANOGPT, AccountEdit(name=" "), "name", "is empty"),
        (AccountMode.NANOGPT, AccountEdit(model_mappings={"sonnet": ()}), "model_mappings", ""),
    ],
)
async def test_a_refused_edit_names_the_field_and_changes_nothing(
    store: Store,
    registry: ProviderRegistry,
    mode: AccountMode,
    edit: AccountEdit,
    field: str,
    problem: str,
) -> None:
    fields = {"project_id": "p", "region": "us-east5"} if mode is AccountMode.VERTEX_AI else {}
    endpoint = "https://gw.example" if mode is AccountMode.ANTHROPIC_COMPATIBLE else None
    new = NewAccount(name="a", mode=mode, api_key=KEY, endpoint=endpoint, fields=fields)
    account = await added(store, registry, new)
    with pytest.raises(InvalidInputError) as caught:
        await edit_account(
            store,
            account.id,
            msgspec.structs.replace(edit, priority=edit.priority or 7),
            registry=registry,
        )
    assert caught.value.field == field
    assert problem in caught.value.message
    assert await store.accounts.get(account.id) == account


async def test_an_unknown_account_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await edit_account(store, "nope", AccountEdit(priority=1))


def test_an_edit_with_nothing_set_is_empty() -> None:
    assert AccountEdit().is_empty()
    assert not AccountEdit(endpoint=None).is_empty()
    assert not AccountEdit(auto_refresh=False).is_empty()
