"""An installed provider plugin is usable end to end: CLI, management API, proxy and start-up log.

The plugin is discovered from its metadata on ``sys.path`` (``support.plugin``), as a
pip-installed one is; nothing registers it by hand. ``examples/provider-plugin`` has the same
journey from real wheels in a fresh venv and a ``better-ccflare serve`` process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner, Result

from better_ccflare.cli import main
from better_ccflare.core import Account, load_config
from better_ccflare.database import Store
from better_ccflare.server import Service

from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
from .support.plugin import BROKEN_ENTRY_POINT, PLUGIN_DISTRIBUTION, PLUGIN_TYPE, install_plugin
from .support.service import running_proxy

KEY = "gw-secret-key-123"


@pytest.fixture(autouse=True)
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, monkeypatch)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncGenerator[tuple[Service, httpx2.AsyncClient]]:
    async with (
        running_proxy(tmp_path) as (service, url),
        httpx2.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield service, client


def cli(tmp_path: Path, *args: str, input: str | None = None) -> Result:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    return CliRunner().invoke(main, list(args), env=env, input=input)


def stored(tmp_path: Path) -> list[Account]:
    async def read() -> list[Account]:
        config = load_config({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, cwd=tmp_path)
        async with await Store.from_config(config) as store:
            return await store.accounts.list_all()

    return asyncio.run(read())


# --------------------------------------------------------------------------- CLI


def test_cli_adds_a_plugin_account_from_flags(tmp_path: Path) -> None:
    result = cli(
        tmp_path,
        *("account", "add", "gw", "--mode", PLUGIN_TYPE, "--api-key", KEY),
        *("--endpoint", "https://gw.example/", "--field", "tenant=acme"),
    )
    assert result.exit_code == 0, result.output
    [account] = stored(tmp_path)
    assert account.provider == PLUGIN_TYPE
    assert account.credentials.api_key == KEY
    assert json.loads(account.custom_endpoint or "") == {
        "custom_endpoint": "https://gw.example",
        "tenant": "acme",
    }


def test_cli_prompts_for_a_plugins_required_fields_in_order(tmp_path: Path) -> None:
    result = cli(
        tmp_path,
        *("account", "add", "gw", "--mode", PLUGIN_TYPE),
        input=f"{KEY}\nhttps://gw.example\nacme\n",
    )
    assert result.exit_code == 0, result.output
    assert result.output.index("API key for gw") < result.output.index("Gateway URL")
    assert result.output.index("Gateway URL") < result.output.index("Tenant")
    assert KEY not in result.output
    [account] = stored(tmp_path)
    assert json.loads(account.custom_endpoint or "")["tenant"] == "acme"


def test_cli_offers_the_plugin_type_and_lists_its_fields(tmp_path: Path) -> None:
    help_text = cli(tmp_path, "account", "add", "--help").output
    assert PLUGIN_TYPE in help_text
    assert "anthropic" in help_text
    listed = json.loads(cli(tmp_path, "account", "types", "--json").output)
    [gateway] = [t for t in listed if t["type"] == PLUGIN_TYPE]
    assert (gateway["distribution"], gateway["version"]) == (PLUGIN_DISTRIBUTION, "0.3.0")
    assert [f["name"] for f in gateway["fields"]] == ["api_key", "custom_endpoint", "tenant"]
    typo = cli(tmp_path, "account", "add", "gw", "--mode", "test-gatewy")
    assert typo.exit_code == 2
    assert PLUGIN_TYPE in typo.output


def test_cli_names_a_missing_plugin_field(tmp_path: Path) -> None:
    result = cli(
        tmp_path,
        *("account", "add", "gw", "--mode", PLUGIN_TYPE, "--api-key", KEY),
        *("--endpoint", "https://gw.example", "--field", "tenant="),
        input="",
    )
    assert result.exit_code != 0
    refused = cli(
        tmp_path,
        *("account", "add", "gw", "--mode", "zai", "--api-key", KEY, "--field", "tenant=x"),
    )
    assert refused.exit_code == 2
    assert "tenant: is not accepted for zai accounts" in refused.output
    assert stored(tmp_path) == []


# --------------------------------------------------------------------------- API


async def test_api_lists_every_type_with_its_fields_and_the_skipped_plugins(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    _, client = api
    response = await client.get("/api/providers")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    types = {p["type"]: p for p in body["providers"]}
    assert list(types)[:2] == ["anthropic", "claude-console-api"]
    assert (types["anthropic"]["aliases"], types["anthropic"]["displayName"]) == (
        ["claude-oauth", "max"],
        "Claude subscription",
    )
    assert types["claude-console-api"]["aliases"] == ["console"]
    assert all(p["type"] == p["provider"] for p in body["providers"])
    gateway = types[PLUGIN_TYPE]
    assert (gateway["builtin"], gateway["distribution"], gateway["version"]) == (
        False,
        PLUGIN_DISTRIBUTION,
        "0.3.0",
    )
    assert [(f["name"], f["kind"], f["required"]) for f in gateway["fields"]] == [
        ("api_key", "secret", True),
        ("custom_endpoint", "url", True),
        ("tenant", "text", True),
    ]
    assert types["anthropic"]["loginOnly"] is True
    console = types["claude-console-api"]
    assert (console["login"], console["loginOnly"]) == ("console", False)
    assert [f["name"] for f in types["vertex-ai"]["fields"]] == ["project_id", "region", "api_key"]
    [skipped] = body["skipped"]
    assert skipped["entryPoint"].startswith(f"{BROKEN_ENTRY_POINT} = ")
    assert "ModuleNotFoundError" in skipped["reason"]


async def test_api_adds_a_plugin_account_and_the_proxy_routes_through_it(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    _, client = api
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        added = await client.post(
            f"/api/accounts/{PLUGIN_TYPE}",
            json={
                "name": "gw",
                "apiKey": KEY,
                "fields": {"custom_endpoint": upstream.url, "tenant": "acme"},
            },
        )
        assert added.status_code == 201, added.text
        assert added.json()["provider"] == PLUGIN_TYPE
        reply = await client.post(
            "/v1/messages",
            json={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
            headers={"x-api-key": "client"},
        )
    assert reply.status_code == 200, reply.text
    [seen] = upstream.requests
    assert seen.headers["x-gateway-key"] == KEY
    assert seen.headers["x-gateway-tenant"] == "acme"
    assert "x-api-key" not in seen.headers


async def test_api_names_the_missing_or_unexpected_field(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    _, client = api
    cases = [
        ({"apiKey": KEY, "fields": {"custom_endpoint": "https://gw.example"}}, "tenant"),
        ({"fields": {"custom_endpoint": "https://gw.example", "tenant": "t"}}, "apiKey"),
        ({"apiKey": KEY, "fields": {"tenant": "t", "custom_endpoint": "gw"}}, "customEndpoint"),
        ({"apiKey": KEY, "fields": {"api_key": KEY, "tenant": "t"}}, "apiKey"),
    ]
    for body, field in cases:
        response = await client.post(f"/api/accounts/{PLUGIN_TYPE}", json={"name": "gw", **body})
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field, (body, response.text)
        assert response.json()["error"].startswith(f"{field}: ")
    extra = await client.post(
        "/api/accounts/zai", json={"name": "z", "apiKey": KEY, "fields": {"tenant": "t"}}
    )
    assert extra.json() == {"error": "tenant: is not accepted for zai accounts", "field": "tenant"}


async def test_an_unknown_type_is_a_404_that_lists_the_known_ones(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    _, client = api
    response = await client.post("/api/accounts/bedrock", json={"name": "x", "apiKey": KEY})
    assert response.status_code == 404
    message = response.json()["error"]
    assert message.startswith(
        "No account type 'bedrock'. Known types: anthropic, claude-console-api,"
    )
    assert PLUGIN_TYPE in message
    for login_type in ("anthropic", "claude-oauth"):
        login_only = await client.post(f"/api/accounts/{login_type}", json={"name": "x"})
        assert login_only.status_code == 400
        assert "anthropic accounts are added by logging in" in login_only.json()["error"]
        assert "POST /api/oauth/init" in login_only.json()["error"]


# --------------------------------------------------------------------------- start-up


async def test_start_up_logs_each_loaded_and_skipped_plugin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="better_ccflare.providers"):
        async with running_proxy(tmp_path):
            pass
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if "plugin" in r.getMessage()]
    loaded = [m for level, m in lines if level == logging.INFO]
    skipped = [m for level, m in lines if level == logging.WARNING]
    assert len(loaded) == 1
    assert loaded[0].startswith(f"Loaded provider plugin {PLUGIN_TYPE} = ")
    assert f"({PLUGIN_DISTRIBUTION} 0.3.0)" in loaded[0]
    assert len(skipped) == 1
    assert skipped[0].startswith(f"Skipping provider plugin {BROKEN_ENTRY_POINT} = ")
    assert "ModuleNotFoundError" in skipped[0]
