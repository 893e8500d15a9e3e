"""``better-ccflare config show``: values and where each came from."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from better_ccflare.cli import main


def test_show_reports_values_and_sources_and_hides_the_secret_key(tmp_path: Path) -> None:
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path),
        "PORT": "9090",
        "BETTER_CCFLARE_SECRET_KEY": "do-not-print",
    }
    result = CliRunner().invoke(main, ["config", "show", "--json"], env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["port"] == {"value": "9090", "source": "environment (PORT)"}
    assert shown["lb_strategy"] == {"value": "session", "source": "default"}
    assert "do-not-print" not in result.output
    table = CliRunner().invoke(main, ["config", "show"], env=env)
    assert "environment (PORT)" in table.output
    assert "do-not-print" not in table.output


def test_show_prints_the_database_url_without_its_password(tmp_path: Path) -> None:
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path),
        "DATABASE_URL": "postgresql://ccflare:do-not-print@db:5432/ccflare",
    }
    result = CliRunner().invoke(main, ["config", "show", "--json"], env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["database_url"]["value"] == "postgresql://ccflare:<redacted>@db:5432/ccflare"
    table = CliRunner().invoke(main, ["config", "show"], env=env)
    assert "do-not-print" not in table.output
