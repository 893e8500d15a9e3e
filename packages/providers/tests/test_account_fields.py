"""What each provider's accounts need, as declared for the CLI, the API and the dashboard."""

from __future__ import annotations

import json

import msgspec
import pytest

from better_ccflare.core import Account, InvalidInputError, OAuthMode
from better_ccflare.providers import (
    API_KEY_FIELD,
    CUSTOM_ENDPOINT_FIELD,
    AccountField,
    FieldKind,
    Provider,
    VertexAIProvider,
    builtin_providers,
)
from better_ccflare.providers._account_fields import (
    check_account_fields,
    settings_as_custom_endpoint,
)


def declared() -> dict[str, Provider]:
    return {provider.account_type: provider for provider in builtin_providers()}


def names(provider: Provider) -> list[tuple[str, bool]]:
    return [(field.name, field.required) for field in provider.account_fields]


def test_builtins_declare_what_their_accounts_need() -> None:
    by_type = declared()
    assert list(by_type) == [
        "anthropic",
        "claude-console-api",
        "zai",
        "minimax",
        "nanogpt",
        "vertex-ai",
        "openai-compatible",
        "anthropic-compatible",
    ]
    assert names(by_type["anthropic"]) == [("custom_endpoint", False)]
    for fixed in ("zai", "minimax"):
        assert names(by_type[fixed]) == [("api_key", True)]
    for movable in ("claude-console-api", "nanogpt", "openai-compatible"):
        assert names(by_type[movable]) == [("api_key", True), ("custom_endpoint", False)]
    assert names(by_type["anthropic-compatible"]) == [
        ("api_key", True),
        ("custom_endpoint", True),
    ]
    assert names(by_type["vertex-ai"]) == [
        ("project_id", True),
        ("region", True),
        ("api_key", False),
    ]
    for provider in by_type.values():
        check_account_fields(provider.account_fields)


def test_only_the_claude_and_console_types_log_in() -> None:
    logins = {t: p.oauth_login for t, p in declared().items() if p.oauth_login is not None}
    assert logins == {
        "anthropic": OAuthMode.CLAUDE_OAUTH,
        "claude-console-api": OAuthMode.CONSOLE,
    }


def test_a_plain_provider_needs_one_api_key_and_is_typed_by_its_id() -> None:
    class Plain(Provider):
        id = "plain"
        display_name = "Plain"

        def base_url(self, account: Account) -> str:
            return "http://127.0.0.1:9"

    assert Plain().account_fields == (API_KEY_FIELD,)
    assert Plain().account_type == "plain"
    assert Plain().custom_endpoint_for({}) is None
    assert Plain().custom_endpoint_for({"custom_endpoint": "https://x"}) == "https://x"


def test_other_settings_are_stored_as_one_json_object() -> None:
    stored = settings_as_custom_endpoint({"tenant": "t1", "custom_endpoint": "https://gw"})
    assert json.loads(stored or "") == {"custom_endpoint": "https://gw", "tenant": "t1"}


def test_vertex_stores_project_and_region_as_it_reads_them() -> None:
    vertex = VertexAIProvider()
    stored = vertex.custom_endpoint_for({"project_id": "my-proj-1", "region": "global"})
    assert json.loads(stored or "") == {"projectId": "my-proj-1", "region": "global"}
    account = Account(id="a", name="a", provider="vertex-ai", created_at_ms=0)
    assert vertex.base_url(msgspec.structs.replace(account, custom_endpoint=stored)) == (
        "https://aiplatform.googleapis.com"
    )
    with pytest.raises(InvalidInputError) as caught:
        vertex.custom_endpoint_for({"project_id": "my proj", "region": "global"})
    assert caught.value.field == "project_id"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ((AccountField(name="token", label="Token", kind=FieldKind.SECRET),), "only 'api_key'"),
        ((API_KEY_FIELD, API_KEY_FIELD), "declared twice"),
        ((AccountField(name="Tenant", label="Tenant"),), "snake_case"),
        ((AccountField(name="tier", label="Tier", kind=FieldKind.CHOICE),), "choices"),
        ((AccountField(name="tier", label="Tier", choices=("a", "b")),), "choices"),
        (
            (
                AccountField(
                    name="tier", label="Tier", kind=FieldKind.CHOICE, choices=("a",), default="b"
                ),
            ),
            "default",
        ),
        ((CUSTOM_ENDPOINT_FIELD, "region"), "not an AccountField"),
    ],
)
def test_malformed_declarations_are_refused_with_the_reason(
    fields: tuple[object, ...], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        check_account_fields(fields)  # pyright: ignore[reportArgumentType]
