"""``better-ccflare serve`` refusing bad input: one line, exit status 2, nothing touched."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from better_ccflare.cli import main

COMMAND = [sys.executable, "-c", "from better_ccflare.cli import main; main()"]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path),
        "LOG_FORMAT": "json",
        **extra,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_invalid_setting_is_one_line_with_exit_status_2(tmp_path: Path) -> None:
    completed = subprocess.run(
        [*COMMAND, "serve"],
        env=env_for(tmp_path, LB_STRATEGY="round-robin"),
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
    assert "not-a.db" in result.output
    assert bogus.read_bytes() == b"this is not sqlite" * 100


def test_tls_flags_must_come_in_pairs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--ssl-key", str(tmp_path / "k.pem")], env=env_for(tmp_path)
    )
    assert result.exit_code == 2
    assert "--ssl-cert" in result.output
