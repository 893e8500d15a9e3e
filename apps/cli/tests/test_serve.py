"""``better-ccflare serve`` refusing bad input: one line, exit status 2, nothing touched."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from better_ccflare.cli import main


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path), **extra}


def test_a_file_that_is_not_a_database_is_reported_not_crashed(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    result = CliRunner().invoke(
        main, ["serve"], env=env_for(tmp_path, BETTER_CCFLARE_DB_PATH=str(bogus))
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "not-a.db" in result.output
    assert bogus.read_bytes() == b"this is not sqlite" * 100


def test_tls_flags_must_come_in_pairs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--ssl-key", str(tmp_path / "k.pem")], env=env_for(tmp_path)
    )
    assert result.exit_code == 2
    assert "--ssl-cert" in result.output
