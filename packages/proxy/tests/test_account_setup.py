"""Adding accounts through the one module the CLI and the management API share."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from better_ccflare.core import (
    Account,
    ConflictError,
    Credentials,
    InvalidInputError,
    NotFoundError,
    RateLimitReason,
    RateLimitState,
)
from better_ccflare.database import SecretKey, Store
from better_ccflare.providers import (
    API_KEY_FIELD,
    CUSTOM_ENDPOINT_FIELD,
    AccountField,
    FieldKind,
    Provider,
    ProviderRegistry,
    VertexAIProvider,
    builtin_providers,
)
from better_ccflare.proxy.admin import (
    AccountMode,
    NewAccount,
    add_account,
    check_new_account,
    reset_rate_limit,
    validate_account_name,
)

NOW = 1_700_000_000_000
KEY = "sk-test-key-123456"
NAME_ALPHABET = st.one_of(
    st.characters(categories=["Lu", "Ll", "Nd"]), st.sampled_from([" ", "-", "_", "."])
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncGenerator[Store]:
    async with await Store.open(tmp_path / "db.sqlite", key=SecretKey.generate()) as opened:
        yield opened


async def refused(store: Store, new: NewAccount) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        await add_account(store, new, now_ms=NOW)
    assert await store.accounts.list_all() == []
    return caught.value


# --------------------------------------------------------------------------- names


@given(st.text(NAME_ALPHABET, min_size=1, max_size=100))
def test_names_of_letters_digits_spaces_and_dashes_are_accepted(name: str) -> None:
    assume(name.strip())
    assert validate_account_name(name) == name.strip()


@given(st.text(max_size=120))
def test_a_name_is_accepted_exactly_when_the_rule_allows_it(name: str) -> None:
    stripped = name.strip()
    allowed = 0 < len(stripped) <= 100 and all(c.isalnum() or c in " -_." for c in stripped)
    if not allowed:
        with pytest.raises(InvalidInputError) as caught:
            validate_account_name(name)
        assert caught.value.field == "name"
        return
    accepted = validate_account_name(name)
    assert accepted == stripped
    assert validate_account_name(accepted) == accepted


@given(
    st.text(NAME_ALPHABET, max_size=20),
    st.sampled_from(["/", "'", '"', "<", ";", "\n", "\t", "$", "`", "\\", "\x00", "é\u0301"]),
    st.text(NAME_ALPHABET, max_size=20),
)
def test_names_with_other_characters_are_refused(before: str, bad: str, after: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_account_name(f"x{before}{bad}{after}x")
    assert caught.value.field == "name"


def test_names_longer_than_100_characters_or_blank_are_refused() -> None:
    assert validate_account_name("a" * 100) == "a" * 100
    for name in ("a" * 101, "", "   "):
        with pytest.raises(InvalidInputError, match="name"):
            validate_account_name(name)


# --------------------------------------------------------------------------- adding


async def test_a_key_account_is_stored_with_its_key_mappings_and_endpoint(store: Store) -> None:
    added = await add_account(
        store,
        NewAccount(
            name=" gw ",
            mode=AccountMode.ANTHROPIC_COMPATIBLE,
            priority=5,
            api_key=f" {KEY} ",
            endpoint="https://gateway.example/",
            model_mappings={"sonnet": ("glm-4.6", "glm-4.5")},
        ),
        now_ms=NOW,
    )
    stored = await store.accounts.get(added.id)
    assert stored == added
    assert (added.name, added.provider, added.priority) == ("gw", "anthropic-compatible", 5)
    assert added.credentials.api_key == KEY
    assert added.custom_endpoint == "https://gateway.example"
    assert added.model_mappings == {"sonnet": ("glm-4.6", "glm-4.5")}
    assert added.created_at_ms == NOW


@pytest.mark.parametrize(
    "mode",
    [
        AccountMode.CONSOLE,
        AccountMode.ZAI,
        AccountMode.MINIMAX,
        AccountMode.NANOGPT,
        AccountMode.OPENAI_COMPATIBLE,
        AccountMode.ANTHROPIC_COMPATIBLE,
    ],
)
async def test_key_modes_need_a_key(store: Store, mode: AccountMode) -> None:
    error = await refused(store, NewAccount(name="a", mode=mode, api_key="  "))
    assert error.field == "api_key"


@pytest.mark.parametrize("mode", [AccountMode.ZAI, AccountMode.MINIMAX, AccountMode.VERTEX_AI])
async def test_fixed_address_modes_refuse_an_endpoint(store: Store, mode: AccountMode) -> None:
    new = NewAccount(
        name="a",
        mode=mode,
        api_key=KEY,
        endpoint="https://elsewhere.example",
        vertex_project_id="p",
        vertex_region="global",
    )
    assert (await refused(store, new)).field == "endpoint"


async def test_anthropic_compatible_needs_an_endpoint(store: Store) -> None:
    new = NewAccount(name="a", mode=AccountMode.ANTHROPIC_COMPATIBLE, api_key=KEY)
    error = await refused(store, new)
    assert error.field == "endpoint"
    assert "required" in error.message


@pytest.mark.parametrize("endpoint", ["ftp://host", "gateway.example", "https://", "{}"])
async def test_an_endpoint_must_be_an_http_url(store: Store, endpoint: str) -> None:
    new = NewAccount(name="a", mode=AccountMode.OPENAI_COMPATIBLE, api_key=KEY, endpoint=endpoint)
    assert (await refused(store, new)).field == "endpoint"


@pytest.mark.parametrize("priority", [-1, 101])
async def test_priority_is_0_to_100(store: Store, priority: int) -> None:
    new = NewAccount(name="a", mode=AccountMode.ZAI, api_key=KEY, priority=priority)
    assert (await refused(store, new)).field == "priority"


async def test_empty_model_mapping_targets_are_refused(store: Store) -> None:
    new = NewAccount(name="a", mode=AccountMode.ZAI, api_key=KEY, model_mappings={"opus": ()})
    error = await refused(store, new)
    assert error.field == "model_mappings"
    assert "opus" in error.message


async def test_claude_oauth_takes_a_login_not_a_key(store: Store) -> None:
    tokens = Credentials(access_token="at", refresh_token="rt", expires_at_ms=NOW + 1)
    without_login = NewAccount(name="a", mode=AccountMode.CLAUDE_OAUTH)
    assert (await refused(store, without_login)).field == "credentials"
    with_key = NewAccount(name="a", mode=AccountMode.CLAUDE_OAUTH, api_key=KEY, credentials=tokens)
    assert (await refused(store, with_key)).field == "api_key"
    key_mode_with_tokens = NewAccount(
        name="a", mode=AccountMode.ZAI, api_key=KEY, credentials=tokens
    )
    assert (await refused(store, key_mode_with_tokens)).field == "credentials"
    added = await add_account(
        store, NewAccount(name="a", mode=AccountMode.CLAUDE_OAUTH, credentials=tokens), now_ms=NOW
    )
    assert added.provider == "anthropic"
    assert added.credentials == tokens


async def test_a_login_is_checked_before_it_starts(store: Store) -> None:
    oauth = NewAccount(name="a", mode=AccountMode.CLAUDE_OAUTH, endpoint="https://proxy.example")
    check_new_account(oauth, login_pending=True)
    check_new_account(NewAccount(name="a", mode=AccountMode.CONSOLE), login_pending=True)
    with pytest.raises(InvalidInputError) as caught:
        check_new_account(NewAccount(name="a/b", mode=AccountMode.CLAUDE_OAUTH), login_pending=True)
    assert caught.value.field == "name"
    with pytest.raises(InvalidInputError) as caught:
        check_new_account(NewAccount(name="a", mode=AccountMode.CLAUDE_OAUTH))
    assert caught.value.field == "credentials"
    assert await store.accounts.list_all() == []


async def test_vertex_stores_project_and_region_as_the_provider_reads_them(store: Store) -> None:
    added = await add_account(
        store,
        NewAccount(
            name="gcp",
            mode=AccountMode.VERTEX_AI,
            vertex_project_id="my-project-123",
            vertex_region="us-east5",
        ),
        now_ms=NOW,
    )
    assert json.loads(added.custom_endpoint or "") == {
        "projectId": "my-project-123",
        "region": "us-east5",
    }
    assert VertexAIProvider().base_url(added) == "https://us-east5-aiplatform.googleapis.com"
    assert added.credentials.api_key is None


@pytest.mark.parametrize(
    ("project", "region", "field"),
    [
        (None, "us-east5", "vertex_project_id"),
        ("p", None, "vertex_region"),
        ("my project", "us-east5", "vertex_project_id"),
        ("p", "US East", "vertex_region"),
    ],
)
async def test_vertex_needs_a_valid_project_and_region(
    store: Store, project: str | None, region: str | None, field: str
) -> None:
    new = NewAccount(
        name="gcp", mode=AccountMode.VERTEX_AI, vertex_project_id=project, vertex_region=region
    )
    assert (await refused(store, new)).field == field


async def test_vertex_settings_on_another_mode_are_refused(store: Store) -> None:
    new = NewAccount(name="a", mode=AccountMode.ZAI, api_key=KEY, vertex_region="us-east5")
    assert (await refused(store, new)).field == "vertex_region"


async def test_a_duplicate_name_provider_and_endpoint_is_a_conflict(store: Store) -> None:
    new = NewAccount(name="work", mode=AccountMode.CONSOLE, api_key=KEY)
    await add_account(store, new, now_ms=NOW)
    with pytest.raises(ConflictError, match="Account name 'work' is already taken"):
        await add_account(store, new, now_ms=NOW)
    other_provider = NewAccount(name="work", mode=AccountMode.ZAI, api_key=KEY)
    await add_account(store, other_provider, now_ms=NOW)
    assert len(await store.accounts.list_all()) == 2


# --------------------------------------------------------------------------- plugin types


class GatewayProvider(Provider):
    """A plugin's provider: a key, an optional URL and a required tier to choose."""

    id: ClassVar[str] = "gateway"
    display_name: ClassVar[str] = "Gateway"
    account_fields: ClassVar[tuple[AccountField, ...]] = (
        API_KEY_FIELD,
        CUSTOM_ENDPOINT_FIELD,
        AccountField(name="tier", label="Tier", kind=FieldKind.CHOICE, choices=("std", "pro")),
    )

    def base_url(self, account: Account) -> str:
        return "http://127.0.0.1:9"


@pytest.fixture
def plugins() -> ProviderRegistry:
    return ProviderRegistry(builtins=[*builtin_providers(), GatewayProvider()], plugins=[])


async def test_a_plugin_type_is_added_with_its_declared_fields(
    store: Store, plugins: ProviderRegistry
) -> None:
    new = NewAccount(
        name="gw",
        mode="gateway",
        api_key=KEY,
        fields={"custom_endpoint": "https://gw/", "tier": "pro"},
    )
    added = await add_account(store, new, now_ms=NOW, registry=plugins)
    assert (added.provider, added.credentials.api_key) == ("gateway", KEY)
    assert json.loads(added.custom_endpoint or "") == {
        "custom_endpoint": "https://gw",
        "tier": "pro",
    }


@pytest.mark.parametrize(
    ("given", "field", "problem"),
    [
        ({}, "tier", "is required for gateway accounts"),
        ({"tier": "gold"}, "tier", "'gold' is not one of std, pro"),
        ({"tier": "std", "colour": "red"}, "colour", "is not accepted for gateway accounts"),
        ({"tier": "std", "api_key": KEY}, "api_key", "is given twice"),
        ({"tier": "std", "custom_endpoint": "gw"}, "endpoint", "is not an http(s) URL"),
    ],
)
async def test_a_plugin_types_fields_are_checked_by_their_declaration(
    store: Store, plugins: ProviderRegistry, given: dict[str, str], field: str, problem: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await add_account(
            store,
            NewAccount(name="gw", mode="gateway", api_key=KEY, fields=given),
            now_ms=NOW,
            registry=plugins,
        )
    assert caught.value.field == field
    assert problem in caught.value.message
    assert await store.accounts.list_all() == []


async def test_an_unknown_type_is_refused_naming_the_known_ones(store: Store) -> None:
    error = await refused(store, NewAccount(name="a", mode="bedrock", api_key=KEY))
    assert error.field == "mode"
    assert "Known types: anthropic, claude-console-api" in error.message


# --------------------------------------------------------------------------- rate limits


async def test_reset_rate_limit_ends_the_cooldown(store: Store) -> None:
    account = Account(id="a", name="a", provider="anthropic", created_at_ms=0)
    await store.accounts.add(account)
    benched = RateLimitState(
        status="rate_limited",
        limited_until_ms=NOW + 3_600_000,
        reason=RateLimitReason.UPSTREAM_429_WITH_RESET,
        limited_at_ms=NOW,
        consecutive=3,
    )
    await store.accounts.update_rate_limit("a", benched)
    await reset_rate_limit(store, "a")
    stored = await store.accounts.get("a")
    assert stored is not None
    assert stored.rate_limit == RateLimitState()
    assert stored.is_available(NOW)


async def test_reset_rate_limit_of_an_unknown_account_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await reset_rate_limit(store, "ghost")
