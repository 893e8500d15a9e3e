"""Shell completion of account and API-key names, from the database a user has."""

from __future__ import annotations

from click.testing import CliRunner

from better_ccflare.cli import main

from .cli_support import Cli

KEY = "sk-ant-api03-secret-value-123"


def complete(cli: Cli, line: str) -> list[str]:
    """What bash would be offered for ``line`` (the last word being completed)."""
    words = line.split(" ")
    result = CliRunner().invoke(
        main,
        [],
        prog_name="better-ccflare",
        env={
            **cli.env,
            "_BETTER_CCFLARE_COMPLETE": "bash_complete",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        },
    )
    assert result.exit_code == 0, result.output
    return [item.split(",", 1)[1] for item in result.stdout.splitlines() if item]


def test_account_names_complete_from_the_database(cli: Cli) -> None:
    for name in ("work", "home", "wonder"):
        cli.ok("account", "add", name, "--mode", "zai", "--api-key", KEY)
    assert complete(cli, "better-ccflare account show wo") == ["wonder", "work"]
    assert complete(cli, "better-ccflare account edit ") == ["home", "wonder", "work"]
    assert complete(cli, "better-ccflare requests --account h") == ["home"]


def test_api_key_names_complete_from_the_database(cli: Cli) -> None:
    for name in ("laptop", "ci"):
        cli.ok("api-key", "generate", name)
    assert complete(cli, "better-ccflare api-key disable l") == ["laptop"]
    assert complete(cli, "better-ccflare api-key delete ") == ["ci", "laptop"]


def test_completing_before_any_database_exists_offers_nothing_and_creates_none(
    cli: Cli,
) -> None:
    assert complete(cli, "better-ccflare account show ") == []
    assert not cli.data_dir.exists()


def test_a_new_accounts_name_is_not_completed(cli: Cli) -> None:
    cli.ok("account", "add", "work", "--mode", "zai", "--api-key", KEY)
    assert "work" not in complete(cli, "better-ccflare account add w")
