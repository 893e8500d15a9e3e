"""``--help`` everywhere, and no traceback ever."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

import better_ccflare.cli._strategy as strategy_module
from better_ccflare.cli import main

from .cli_support import Cli


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


ALL_COMMANDS = list(command_paths(main))


def test_the_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in main.commands:
        assert name in result.output
    assert "--json" in result.output
    assert CliRunner().invoke(main, ["-h"]).output == result.output


def test_the_commands_asked_for_exist() -> None:
    expected = {
        ("serve",),
        *(("account", c) for c in ("add", "list", "show", "remove", "pause", "resume")),
        *(("account", c) for c in ("rename", "set-priority", "reauth", "reset-rate-limit")),
        *(("api-key", c) for c in ("generate", "list", "enable", "disable", "delete")),
        ("strategy", "get"),
        ("strategy", "set"),
        ("config", "show"),
        *((c,) for c in ("stats", "token-health", "requests", "doctor", "reset-stats")),
        ("clear-history",),
        ("compact",),
    }
    assert expected <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"{' '.join(path)} [OPTIONS]" in result.output
    summary = result.output.split("\n\n")[1].strip()
    assert len(summary) > 10, result.output


def test_read_commands_offer_json() -> None:
    readers = [("account", "list"), ("account", "show"), ("api-key", "list"), ("config", "show")]
    readers += [("strategy", "get"), ("stats",), ("requests",), ("token-health",), ("doctor",)]
    for path in readers:
        assert "--json" in CliRunner().invoke(main, [*path, "--help"]).output, path


def test_an_unexpected_error_is_one_line_exit_1(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise ValueError("disk on fire")

    monkeypatch.setattr(strategy_module, "update_config_file", broken)
    result = cli("strategy", "set", "least-used")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "Error: unexpected ValueError: disk on fire. This is a bug in better-ccflare; "
        "please report it with the command you ran."
    ]


def test_shell_completion_as_documented() -> None:
    def complete(**env: str) -> str:
        result = CliRunner().invoke(main, [], prog_name="better-ccflare", env=env)
        assert result.exit_code == 0, result.output
        return result.output

    script = complete(_BETTER_CCFLARE_COMPLETE="bash_source")
    assert "_BETTER_CCFLARE_COMPLETE=bash_complete" in script
    modes = complete(
        _BETTER_CCFLARE_COMPLETE="bash_complete",
        COMP_WORDS="better-ccflare account add me --mode ",
        COMP_CWORD="5",
    )
    assert "plain,anthropic" in modes
    assert "plain,claude-console-api" in modes
    assert "plain,vertex-ai" in modes
    assert "plain,claude-oauth" not in modes  # an older name works, but is not offered


def test_the_help_ends_with_the_documentation_address_on_one_line_at_80_columns() -> None:
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    last = result.output.strip().splitlines()[-1].strip()
    docs = "https://github.com/better-ccflare/better-ccflare-python/tree/main/docs"
    assert last == f"Documentation: {docs}"


def test_bare_command_shows_the_help_and_exits_2_instead_of_starting_a_server() -> None:
    result = CliRunner().invoke(main, [], terminal_width=80)
    assert result.exit_code == 2
    assert "better-ccflare serve" in result.stderr
    assert "Commands:" in result.stderr
    assert result.stdout == ""
