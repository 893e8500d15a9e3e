"""Terminal logins (``account add`` for anthropic and claude-console-api, by those names and
their older ones; ``account reauth``) against a fake Anthropic token server on loopback."""

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
MINTED_KEY = "sk-ant-api03-minted-by-console-login"


def env_for(tmp_path: Path, token_url: str) -> dict[str, str]:
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path),
        "BETTER_CCFLARE_OAUTH_TOKEN_URL": token_url,
        "BETTER_CCFLARE_ANTHROPIC_API_URL": token_url.removesuffix("/v1/oauth/token"),
    }


async def stored(tmp_path: Path) -> list[Account]:
    config = load_config({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, cwd=tmp_path)
    async with await Store.from_config(config) as store:
        return await store.accounts.list_all()


def tokens(request: RecordedRequest) -> Reply:
    """The token endpoint (code ``the-code`` only) and the console's key-minting endpoint."""
    if request.path == "/api/oauth/claude_cli/create_api_key":
        if request.headers.get("authorization") != "Bearer at-1":
            return Reply.json({"error": {"type": "permission_error"}}, status=403)
        return Reply.json({"raw_key": MINTED_KEY})
    body = request.json()
    if body["code"] != "the-code":
        return Reply.json({"error": "invalid_grant", "error_description": "bad code"}, status=400)
    return Reply.json({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 28800})


async def run(tmp_path: Path, url: str, *args: str, stdin: str) -> Result:
    return await asyncio.to_thread(
        CliRunner().invoke,
        main,
        list(args),
        env=env_for(tmp_path, f"{url}/v1/oauth/token"),
        input=stdin,
    )


async def login(tmp_path: Path, url: str, pasted: str) -> Result:
    args = ("account", "add", "max", "--mode", "anthropic", "--priority", "1")
    return await run(tmp_path, url, *args, stdin=f"{pasted}\n")


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


async def test_a_transient_failure_exits_1_and_stores_nothing(tmp_path: Path) -> None:
    async with FakeUpstream() as server:
        server.set_default(Reply.json({"error": "overloaded"}, status=503))
        result = await login(tmp_path, server.url, f"the-code#{STATE}")
    assert result.exit_code == 1
    assert "try again later" in result.output
    assert await stored(tmp_path) == []


async def test_bad_flags_are_refused_before_the_login_starts(tmp_path: Path) -> None:
    async with FakeUpstream() as server:
        result = await run(
            tmp_path,
            server.url,
            *("account", "add", "max", "--mode", "claude-oauth", "--endpoint", "ftp://x"),
            stdin="",
        )
    assert result.exit_code == 2
    assert "--endpoint" in result.output
    assert "Open this URL" not in result.output
    assert server.requests == []


async def test_console_login_mints_and_stores_an_api_key(tmp_path: Path) -> None:
    async with FakeUpstream() as server:
        server.set_default(tokens)
        result = await run(
            tmp_path,
            server.url,
            *("account", "add", "org", "--mode", "claude-console-api", "--login"),
            stdin=f"the-code#{STATE}\n",
        )
    assert result.exit_code == 0, result.output
    url = next(line for line in result.output.splitlines() if line.startswith("https://"))
    assert urlsplit(url).netloc == "console.anthropic.com"
    assert [r.path for r in server.requests] == [
        "/v1/oauth/token",
        "/api/oauth/claude_cli/create_api_key",
    ]
    [account] = await stored(tmp_path)
    assert account.provider == "claude-console-api"
    assert account.credentials.api_key == MINTED_KEY
    assert account.credentials.refresh_token is None
    assert MINTED_KEY not in result.output


async def test_an_empty_console_key_prompt_starts_the_login(tmp_path: Path) -> None:
    async with FakeUpstream() as server:
        server.set_default(tokens)
        result = await run(
            tmp_path,
            server.url,
            *("account", "add", "org", "--mode", "console"),
            stdin=f"\nthe-code#{STATE}\n",
        )
    assert result.exit_code == 0, result.output
    [account] = await stored(tmp_path)
    assert account.credentials.api_key == MINTED_KEY


async def test_reauth_replaces_the_tokens_and_keeps_the_account(tmp_path: Path) -> None:
    async with FakeUpstream() as server:
        server.set_default(tokens)
        assert (await login(tmp_path, server.url, f"the-code#{STATE}")).exit_code == 0
        [before] = await stored(tmp_path)
        config = load_config({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, cwd=tmp_path)
        async with await Store.from_config(config) as store:
            marked = await store.accounts.mark_requires_reauth_if_refresh_token_matches(
                before.id, "rt-1"
            )
            assert marked
        server.set_default(
            Reply.json({"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 28800})
        )
        result = await run(
            tmp_path, server.url, "account", "reauth", "max", stdin=f"the-code#{STATE}\n"
        )
    assert result.exit_code == 0, result.output
    assert "Logged in again" in result.output
    [after] = await stored(tmp_path)
    assert (after.id, after.name, after.priority) == (before.id, "max", 1)
    assert after.credentials.refresh_token == "rt-2"
    assert not after.requires_reauth
    assert "at-2" not in result.output
