"""``better-ccflare account add NAME --mode claude-oauth`` against a fake token server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result

import better_ccflare.cli._oauth_login as login_module
from better_ccflare.cli import main
from better_ccflare.core import Account, load_config
from better_ccflare.database import Store

from .support.fake_upstream import FakeUpstream, RecordedRequest, Reply

STATE = "ab" * 32


def env_for(tmp_path: Path, token_url: str) -> dict[str, str]:
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path),
        "BETTER_CCFLARE_OAUTH_TOKEN_URL": token_url,
    }


async def stored(tmp_path: Path) -> list[Account]:
    config = load_config({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, cwd=tmp_path)
    async with await Store.from_config(config) as store:
        return await store.accounts.list_all()


def tokens(request: RecordedRequest) -> Reply:
    body = request.json()
    if body["code"] != "the-code":
        return Reply.json({"error": "invalid_grant", "error_description": "bad code"}, status=400)
    return Reply.json({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 28800})


async def login(tmp_path: Path, url: str, pasted: str) -> Result:
    return await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["account", "add", "max", "--mode", "claude-oauth", "--priority", "1"],
        env=env_for(tmp_path, f"{url}/v1/oauth/token"),
        input=f"{pasted}\n",
    )


@pytest.fixture(autouse=True)
def fixed_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_module, "generate_state", lambda: STATE)


async def test_login_stores_the_subscription_with_its_tokens(tmp_path: Path) -> None:
    async with FakeUpstream() as server:
        server.set_default(tokens)
        result = await login(tmp_path, server.url, f"the-code#{STATE}")
    assert result.exit_code == 0, result.output
    url = next(line for line in result.output.splitlines() if line.startswith("https://"))
    query = parse_qs(urlsplit(url).query)
    assert query["state"] == [STATE]
    assert query["code_challenge_method"] == ["S256"]
    sent = server.requests[0].json()
    assert sent["grant_type"] == "authorization_code"
    assert sent["code_verifier"]
    [account] = await stored(tmp_path)
    assert (account.name, account.provider, account.priority) == ("max", "anthropic", 1)
    assert account.credentials.refresh_token == "rt-1"
    assert "at-1" not in result.output


async def test_a_code_from_another_login_is_refused_before_any_exchange(tmp_path: Path) -> None:
    async with FakeUpstream() as server:
        server.set_default(tokens)
        result = await login(tmp_path, server.url, "the-code#" + "cd" * 32)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert server.requests == []
    assert await stored(tmp_path) == []


async def test_a_refused_code_is_one_line_and_stores_nothing(tmp_path: Path) -> None:
    async with FakeUpstream() as server:
        server.set_default(tokens)
        result = await login(tmp_path, server.url, f"wrong-code#{STATE}")
    assert result.exit_code == 2
    assert "login could not be completed" in result.output
    assert await stored(tmp_path) == []
