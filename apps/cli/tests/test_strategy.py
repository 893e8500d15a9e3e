"""``better-ccflare strategy get|set``: the lb_strategy setting, written to the config file."""

from __future__ import annotations

import json

from click.testing import CliRunner

from better_ccflare.cli import main

from .cli_support import Cli


def test_get_reports_the_default_and_every_choice(cli: Cli) -> None:
    shown = cli.json("strategy", "get")
    assert shown["strategy"] == "session"
    assert shown["source"] == "default"
    assert "least-used" in shown["available"]
    table = cli.ok("strategy", "get").output
    assert "session (from default)" in table
    assert "session-drain-soonest" in table


def test_set_writes_the_config_file_and_keeps_other_keys(cli: Cli) -> None:
    config_file = cli.data_dir / "better-ccflare.json"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(json.dumps({"port": 9999, "someReferenceKey": True}))
    result = cli.ok("strategy", "set", "least-used")
    assert str(config_file) in result.output
    assert json.loads(config_file.read_text()) == {
        "port": 9999,
        "someReferenceKey": True,
        "lb_strategy": "least-used",
    }
    shown = cli.json("strategy", "get")
    assert shown["strategy"] == "least-used"
    assert shown["source"] == f"file ({config_file})"


def test_an_unknown_strategy_is_a_usage_error(cli: Cli) -> None:
    result = cli("strategy", "set", "round-robin")
    assert result.exit_code == 2
    assert "session-affinity" in result.output


def test_set_refuses_when_the_environment_overrides_the_file(cli: Cli) -> None:
    result = cli("strategy", "set", "least-used", LB_STRATEGY="session-affinity")
    assert result.exit_code == 1
    assert "LB_STRATEGY=session-affinity" in result.stderr
    assert "nothing was written" in result.stderr
    assert not (cli.data_dir / "better-ccflare.json").exists()


def test_set_shows_a_readable_metavar_and_lists_the_strategies_at_80_columns() -> None:
    result = CliRunner().invoke(
        main, ["strategy", "set", "--help"], prog_name="better-ccflare", terminal_width=80
    )
    assert result.exit_code == 0
    assert "Usage: better-ccflare strategy set [OPTIONS] STRATEGY\n" in result.output
    assert "session-drain-soonest spend first" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
