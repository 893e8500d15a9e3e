"""``better-ccflare serve`` as a user runs it: a real process, a real port, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx2
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


async def wait_for_health(port: int, process: asyncio.subprocess.Process) -> httpx2.Response:
    async with httpx2.AsyncClient() as client:
        for _ in range(300):
            assert process.returncode is None, await process.communicate()
            try:
                return await client.get(f"http://127.0.0.1:{port}/health", timeout=1)
            except httpx2.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError("the server did not answer /health within 30 s")


async def test_serve_listens_answers_health_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "serve",
        "--port",
        str(port),
        env=env_for(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        health = await wait_for_health(port, process)
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        assert health.json()["pool"]["configured"] == 0
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
    stderr = err.decode()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"listening on http://127.0.0.1:{port}" in stderr
    assert "every queued write is flushed" in stderr
    config_dir = tmp_path / "xdg" / "better-ccflare"
    assert (config_dir / "better-ccflare.db").is_file()
    assert stat.S_IMODE((config_dir / "secret.key").stat().st_mode) == 0o600
    assert (config_dir / "logs" / "app.log").is_file()


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
