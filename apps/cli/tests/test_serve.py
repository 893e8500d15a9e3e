"""``better-ccflare serve`` as a user runs it, against a real config directory and database."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from better_ccflare.cli import main
from better_ccflare.core import load_config
from better_ccflare.database import SchemaStatus, Store


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path), **extra}


async def schema_status(env: dict[str, str]) -> SchemaStatus:
    async with await Store.from_config(load_config(env, cwd=Path(env["HOME"]))) as store:
        return await store.schema_status()


def test_serve_creates_and_migrates_the_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve"], env=env_for(tmp_path))
    assert result.exit_code == 0, result.output
    db = tmp_path / "xdg" / "better-ccflare" / "better-ccflare.db"
    assert db.is_file()
    assert "schema version" in result.output
    status = asyncio.run(schema_status(env_for(tmp_path)))
    assert status.version >= 1
    assert status.pending == ()
    key_file = tmp_path / "xdg" / "better-ccflare" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (tmp_path / "xdg" / "better-ccflare" / "logs" / "app.log").is_file()


def test_no_command_means_serve(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [], env=env_for(tmp_path))
    assert result.exit_code == 0, result.output
    assert "schema version" in result.output


def test_invalid_setting_is_one_line_with_exit_status_2(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "from better_ccflare.cli import main; main()", "serve"],
        env={**os.environ, **env_for(tmp_path, LB_STRATEGY="round-robin")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "LB_STRATEGY='round-robin'" in lines[0]
    assert "session-drain-soonest" in lines[0]


def test_a_file_that_is_not_a_database_is_reported_not_crashed(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    result = CliRunner().invoke(
        main, ["serve"], env=env_for(tmp_path, BETTER_CCFLARE_DB_PATH=str(bogus))
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert bogus.read_bytes() == b"this is not sqlite" * 100
