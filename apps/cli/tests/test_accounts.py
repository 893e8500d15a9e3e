"""``better-ccflare account add|list|remove`` against a real database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from better_ccflare.cli import main
from better_ccflare.core import Account, load_config
from better_ccflare.database import Store

KEY = "sk-ant-api03-secret-value-123"


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}


def stored_accounts(tmp_path: Path) -> list[Account]:
    async def read() -> list[Account]:
        config = load_config(env_for(tmp_path), cwd=tmp_path)
        async with await Store.from_config(config) as store:
            return await store.accounts.list_all()

    return asyncio.run(read())


def test_add_stores_the_account_with_its_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["account", "add", "work", "--mode", "console", "--api-key", KEY, "--priority", "2"],
        env=env_for(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    [account] = stored_accounts(tmp_path)
    assert (account.name, account.provider, account.priority) == ("work", "claude-console-api", 2)
    assert account.credentials.api_key == KEY


def test_add_prompts_for_a_hidden_key_when_the_flag_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["account", "add", "glm", "--mode", "zai"], env=env_for(tmp_path), input=f"{KEY}\n"
    )
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    [account] = stored_accounts(tmp_path)
    assert account.credentials.api_key == KEY


def test_anthropic_compatible_needs_an_endpoint(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["account", "add", "gw", "--mode", "anthropic-compatible", "--api-key", KEY],
        env=env_for(tmp_path),
    )
    assert result.exit_code == 2
    assert "--endpoint" in result.output
    assert stored_accounts(tmp_path) == []


def test_a_duplicate_name_is_refused_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["account", "add", "work", "--mode", "console", "--api-key", KEY]
    assert runner.invoke(main, args, env=env_for(tmp_path)).exit_code == 0
    again = runner.invoke(main, args, env=env_for(tmp_path))
    assert again.exit_code == 2
    assert "Traceback" not in again.output
    assert "work" in again.output


def test_list_prints_json_without_credentials(tmp_path: Path) -> None:
    runner = CliRunner()
    for name, priority in (("b", "1"), ("a", "0")):
        runner.invoke(
            main,
            ["account", "add", name, "--mode", "minimax", "--api-key", KEY, "--priority", priority],
            env=env_for(tmp_path),
        )
    result = runner.invoke(main, ["account", "list", "--json"], env=env_for(tmp_path))
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    rows = json.loads(result.output)
    assert [(r["name"], r["priority"], r["provider"]) for r in rows] == [
        ("a", 0, "minimax"),
        ("b", 1, "minimax"),
    ]
    table = runner.invoke(main, ["account", "list"], env=env_for(tmp_path))
    assert "active" in table.output
    assert KEY not in table.output


def test_remove_asks_first_and_refuses_unknown_names(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(
        main,
        ["account", "add", "work", "--mode", "console", "--api-key", KEY],
        env=env_for(tmp_path),
    )
    declined = runner.invoke(
        main, ["account", "remove", "work"], env=env_for(tmp_path), input="n\n"
    )
    assert declined.exit_code == 1
    assert len(stored_accounts(tmp_path)) == 1
    removed = runner.invoke(main, ["account", "remove", "work", "--yes"], env=env_for(tmp_path))
    assert removed.exit_code == 0, removed.output
    assert stored_accounts(tmp_path) == []
    unknown = runner.invoke(main, ["account", "remove", "ghost", "--yes"], env=env_for(tmp_path))
    assert unknown.exit_code == 2
    assert "account list" in unknown.output
