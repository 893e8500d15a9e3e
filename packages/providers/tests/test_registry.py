"""The provider registry: built-ins, entry-point plugins, the allow-list, and broken plugins."""

from __future__ import annotations

import logging
import re
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import ClassVar

import pytest

from better_ccflare.core import Account, ProviderKind
from better_ccflare.providers import API_VERSION, AccountField, FieldKind, Provider
from better_ccflare.providers._registry import (
    ENTRY_POINT_GROUP,
    ProviderOrigin,
    ProviderRegistry,
    UnknownAccountTypeError,
    UnknownProviderError,
    builtin_providers,
    default_registry,
)

PLUGIN_MODULE = "ccflare_registry_test_plugins"


class EchoProvider(Provider):
    id: ClassVar[str] = "test-echo"
    display_name: ClassVar[str] = "Echo"

    def base_url(self, account: Account) -> str:
        return "http://127.0.0.1:9"


class FutureProvider(EchoProvider):
    id: ClassVar[str] = "test-future"
    api_version: ClassVar[int] = 99


class ImpostorProvider(EchoProvider):
    id: ClassVar[str] = "anthropic"


class TypeSquatterProvider(EchoProvider):
    id: ClassVar[str] = "console"


class SecretTokenProvider(EchoProvider):
    id: ClassVar[str] = "test-secret-token"
    account_fields: ClassVar[tuple[AccountField, ...]] = (
        AccountField(name="token", label="Token", kind=FieldKind.SECRET),
    )


class NoIdProvider(Provider):
    display_name: ClassVar[str] = "No id"

    def base_url(self, account: Account) -> str:
        return "http://127.0.0.1:9"


class NamelessProvider(Provider):
    id: ClassVar[str] = "test-nameless"

    def base_url(self, account: Account) -> str:
        return "http://127.0.0.1:9"


def make_echo() -> Provider:
    return EchoProvider()


def explode() -> Provider:
    raise RuntimeError("plugin config missing")


def not_a_provider() -> object:
    return object()


@pytest.fixture(autouse=True)
def plugin_module(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType(PLUGIN_MODULE)
    for name, value in {
        "EchoProvider": EchoProvider,
        "FutureProvider": FutureProvider,
        "ImpostorProvider": ImpostorProvider,
        "TypeSquatterProvider": TypeSquatterProvider,
        "AliasSquatterProvider": AliasSquatterProvider,
        "AliasedProvider": AliasedProvider,
        "SecretTokenProvider": SecretTokenProvider,
        "NoIdProvider": NoIdProvider,
        "NamelessProvider": NamelessProvider,
        "make_echo": make_echo,
        "explode": explode,
        "not_a_provider": not_a_provider,
        "CONSTANT": 42,
        "Account": Account,
    }.items():
        setattr(module, name, value)
    monkeypatch.setitem(sys.modules, PLUGIN_MODULE, module)


def ep(name: str, attr: str, module: str = PLUGIN_MODULE) -> EntryPoint:
    return EntryPoint(name=name, value=f"{module}:{attr}", group=ENTRY_POINT_GROUP)


def registry(*plugins: EntryPoint, allow: str | None = None) -> ProviderRegistry:
    environ = {} if allow is None else {"BETTER_CCFLARE_PROVIDERS": allow}
    return ProviderRegistry(plugins=plugins, environ=environ)


def test_every_builtin_provider_is_registered() -> None:
    reg = registry()
    assert set(reg.ids()) == {kind.value for kind in ProviderKind}
    assert all(reg.origin(provider_id) == ProviderOrigin(builtin=True) for provider_id in reg.ids())
    assert reg.failures == ()


def test_builtins_share_the_configured_client_id() -> None:
    claude = next(p for p in builtin_providers(client_id="custom-client") if p.id == "anthropic")
    assert getattr(claude, "client_id", None) == "custom-client"


def test_get_returns_the_provider_by_id() -> None:
    assert registry().get("zai").id == "zai"


def test_unknown_id_lists_the_known_ones() -> None:
    with pytest.raises(
        UnknownProviderError, match=r"'bedrock'.*anthropic, claude-console-api"
    ) as caught:
        registry().get("bedrock")
    assert isinstance(caught.value, LookupError)


def test_plugin_class_entry_point_is_registered() -> None:
    reg = registry(ep("test-echo", "EchoProvider"))
    assert isinstance(reg.get("test-echo"), EchoProvider)
    assert reg.ids()[-1] == "test-echo"
    origin = reg.origin("test-echo")
    assert not origin.builtin
    assert origin.entry_point == f"test-echo = {PLUGIN_MODULE}:EchoProvider"


def test_plugin_factory_entry_point_is_registered() -> None:
    assert isinstance(registry(ep("test-echo", "make_echo")).get("test-echo"), EchoProvider)


@pytest.mark.parametrize(
    ("entry_point", "reason"),
    [
        (ep("missing", "Provider", module="ccflare_no_such_plugin"), "ModuleNotFoundError"),
        (ep("explodes", "explode"), "RuntimeError: plugin config missing"),
        (ep("wrong-type", "not_a_provider"), "returned object, not a Provider"),
        (ep("constant", "CONSTANT"), "neither a Provider subclass nor a factory"),
        (ep("other-class", "Account"), "not a Provider subclass"),
        (
            ep("future", "FutureProvider"),
            f"provider API version 99.*implements version {API_VERSION}",
        ),
        (ep("anthropic", "ImpostorProvider"), "'anthropic' is already taken by a built-in"),
        (ep("no-id", "NoIdProvider"), "has no id"),
        (ep("nameless", "NamelessProvider"), "has no display name"),
    ],
)
def test_broken_plugin_is_skipped_and_reported(
    entry_point: EntryPoint, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="better_ccflare.providers"):
        reg = registry(entry_point, ep("test-echo", "EchoProvider"))
    assert "test-echo" in reg.ids()
    assert isinstance(reg.get("anthropic"), Provider)
    assert not isinstance(reg.get("anthropic"), ImpostorProvider)
    [failure] = reg.failures
    assert failure.entry_point == f"{entry_point.name} = {entry_point.value}"
    assert re.search(reason, failure.reason)
    assert any(entry_point.name in record.getMessage() for record in caplog.records)


def test_second_plugin_with_the_same_id_is_refused() -> None:
    reg = registry(ep("test-echo", "EchoProvider"), ep("echo-again", "make_echo"))
    assert [f.reason for f in reg.failures] == [
        "provider id 'test-echo' is already taken by another plugin"
    ]


def test_allow_list_unset_loads_every_plugin() -> None:
    assert "test-echo" in registry(ep("test-echo", "EchoProvider")).ids()


def test_empty_allow_list_loads_no_plugin_but_keeps_builtins() -> None:
    reg = registry(ep("test-echo", "EchoProvider"), allow="")
    assert "test-echo" not in reg.ids()
    assert "anthropic" in reg.ids()


def test_allow_list_selects_by_entry_point_name() -> None:
    reg = registry(
        ep("test-echo", "EchoProvider"), ep("explodes", "explode"), allow=" test-echo , other"
    )
    assert "test-echo" in reg.ids()
    assert reg.failures == ()  # the broken one was never imported


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution on sys.path whose metadata declares the echo plugin."""
    dist_info = tmp_path / "better_ccflare_provider_demo-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: better-ccflare-provider-demo\nVersion: 1.2.3\n"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntest-echo = {PLUGIN_MODULE}:EchoProvider\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])


@pytest.mark.usefixtures("installed_plugin")
def test_installed_plugin_is_discovered_with_its_distribution() -> None:
    reg = ProviderRegistry(environ={})
    assert reg.origin("test-echo") == ProviderOrigin(
        builtin=False,
        distribution="better-ccflare-provider-demo",
        version="1.2.3",
        entry_point=f"test-echo = {PLUGIN_MODULE}:EchoProvider",
    )
    assert str(reg.origin("test-echo")) == "better-ccflare-provider-demo 1.2.3"


@pytest.mark.usefixtures("installed_plugin")
def test_allow_list_selects_by_distribution_name_in_any_spelling() -> None:
    allowed = ProviderRegistry(environ={"BETTER_CCFLARE_PROVIDERS": "Better_CCFlare.Provider-Demo"})
    assert "test-echo" in allowed.ids()
    refused = ProviderRegistry(environ={"BETTER_CCFLARE_PROVIDERS": "some-other-plugin"})
    assert "test-echo" not in refused.ids()


def test_default_registry_is_built_once() -> None:
    assert default_registry() is default_registry()
    assert "anthropic" in default_registry().ids()


def test_every_account_type_is_its_provider_id() -> None:
    reg = registry(ep("test-echo", "EchoProvider"))
    assert reg.account_types() == reg.ids()
    assert reg.account_types()[:2] == ("anthropic", "claude-console-api")
    assert reg.account_types()[-1] == "test-echo"
    assert isinstance(reg.for_account_type("test-echo"), EchoProvider)


@pytest.mark.parametrize(
    ("alias", "account_type"),
    [("claude-oauth", "anthropic"), ("max", "anthropic"), ("console", "claude-console-api")],
)
def test_the_builtins_older_type_names_are_accepted_as_aliases(
    alias: str, account_type: str
) -> None:
    reg = registry()
    assert reg.for_account_type(alias).account_type == account_type
    assert reg.aliases()[alias] == account_type
    assert alias not in reg.account_types()


class AliasSquatterProvider(EchoProvider):
    id: ClassVar[str] = "test-alias-squatter"
    type_aliases: ClassVar[tuple[str, ...]] = ("claude-oauth",)


class AliasedProvider(EchoProvider):
    id: ClassVar[str] = "test-aliased"
    type_aliases: ClassVar[tuple[str, ...]] = ("test-old-name",)


def test_an_unknown_account_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownAccountTypeError) as caught:
        registry(ep("test-echo", "EchoProvider")).for_account_type("bedrock")
    message = str(caught.value)
    assert message.startswith(
        "No account type 'bedrock'. Known types: anthropic, claude-console-api,"
    )
    assert "test-echo" in message


@pytest.mark.parametrize(
    ("entry_point", "reason"),
    [
        (ep("console", "TypeSquatterProvider"), "'console' is already taken by a built-in"),
        (
            ep("squatter", "AliasSquatterProvider"),
            "account type alias 'claude-oauth' is already taken by a built-in",
        ),
        (ep("secret-token", "SecretTokenProvider"), "account_fields are malformed: .*'token'"),
    ],
)
def test_a_plugin_cannot_take_a_type_name_or_declare_a_bad_field(
    entry_point: EntryPoint, reason: str
) -> None:
    reg = registry(entry_point)
    [failure] = reg.failures
    assert re.search(reason, failure.reason)
    assert isinstance(reg.for_account_type("console"), Provider)
    assert not isinstance(reg.for_account_type("console"), EchoProvider)


def test_a_plugin_may_declare_aliases_of_its_own() -> None:
    reg = registry(ep("test-aliased", "AliasedProvider"))
    assert reg.for_account_type("test-old-name").id == "test-aliased"
    assert "test-old-name" not in reg.account_types()


def test_each_loaded_plugin_is_logged_once_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="better_ccflare.providers"):
        registry(ep("test-echo", "EchoProvider"))
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        f"Loaded provider plugin test-echo = {PLUGIN_MODULE}:EchoProvider "
        "(unknown distribution): account type test-echo"
    ]
