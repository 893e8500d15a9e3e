"""``better-ccflare serve`` as a real process: listening, TLS, and a clean, draining stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from better_ccflare.core import Account, Credentials, ProviderKind, load_config
from better_ccflare.database import Store
from better_ccflare.server import freeze_startup_heap

from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, stream_events
from .support.tls import self_signed

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


def console_account(url: str) -> Account:
    return Account(
        id="a",
        name="a",
        provider=ProviderKind.CONSOLE.value,
        created_at_ms=0,
        custom_endpoint=url,
        credentials=Credentials(api_key="sk-ant-api03-x"),
    )


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
        # Alive without accounts (200), but not ready: /health no longer answers 503 for that.
        assert health.status_code == 200
        assert health.json()["ready"] is False
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


async def start_serving(tmp_path: Path, *args: str, **extra_env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *COMMAND,
        "serve",
        *args,
        env=env_for(tmp_path, **extra_env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), timeout=40)
    return err.decode()


async def test_serve_speaks_tls_when_given_a_key_and_certificate(tmp_path: Path) -> None:
    key_path, cert_path = self_signed(tmp_path)
    port = free_port()
    process = await start_serving(
        tmp_path, "--port", str(port), "--ssl-key", str(key_path), "--ssl-cert", str(cert_path)
    )
    try:
        trusted = ssl.create_default_context(cafile=str(cert_path))
        async with httpx2.AsyncClient(verify=trusted) as client:
            for _ in range(300):
                assert process.returncode is None, await process.communicate()
                try:
                    health = await client.get(f"https://127.0.0.1:{port}/health", timeout=1)
                    break
                except httpx2.TransportError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("no TLS answer within 30 s")
        assert health.json()["status"] == "degraded"
        stderr = await stop(process)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert f"listening on https://127.0.0.1:{port}" in stderr


async def test_shutdown_lets_an_in_flight_stream_finish(tmp_path: Path) -> None:
    events = [f'event: ping\ndata: {{"n": {i}}}\n\n'.encode() for i in range(15)]
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.stream(events, spacing_s=0.1))
        config = load_config(env_for(tmp_path), cwd=tmp_path)
        async with await Store.from_config(config) as store:
            await store.accounts.add(
                Account(
                    id="a",
                    name="a",
                    provider=ProviderKind.CONSOLE.value,
                    created_at_ms=0,
                    custom_endpoint=upstream.url,
                    credentials=Credentials(api_key="sk-ant-api03-x"),
                )
            )
        port = free_port()
        process = await start_serving(tmp_path, "--port", str(port))
        try:
            await wait_for_health(port, process)
            received = b""
            async with httpx2.AsyncClient() as client:
                payload = {"model": "claude-sonnet-5", "max_tokens": 8, "stream": True}
                async with client.stream(
                    "POST", f"http://127.0.0.1:{port}/v1/messages", json=payload, timeout=30
                ) as response:
                    async for chunk in response.aiter_raw():
                        if not received:
                            process.send_signal(signal.SIGTERM)
                        received += chunk
            _, err = await asyncio.wait_for(process.communicate(), timeout=40)
        finally:
            if process.returncode is None:
                process.kill()
    assert received == b"".join(events)
    assert process.returncode == 0, err.decode()


async def test_a_stream_longer_than_the_grace_period_is_cut_recorded_and_logged_cleanly(
    tmp_path: Path,
) -> None:
    events = stream_events(["word"] * 40)  # 8 s of stream against a grace period of 1 s
    environ = env_for(tmp_path, BETTER_CCFLARE_SHUTDOWN_GRACE_MS="1000")
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.stream(events, spacing_s=0.2))
        config = load_config(environ, cwd=tmp_path)
        async with await Store.from_config(config) as store:
            await store.accounts.add(console_account(upstream.url))
        port = free_port()
        process = await start_serving(
            tmp_path, "--port", str(port), BETTER_CCFLARE_SHUTDOWN_GRACE_MS="1000"
        )
        try:
            await wait_for_health(port, process)
            received = b""
            stopped_at = 0.0
            async with httpx2.AsyncClient() as client:
                payload: dict[str, object] = {
                    "model": MODEL,
                    "max_tokens": 8,
                    "stream": True,
                    "messages": [],
                }
                with contextlib.suppress(httpx2.TransportError):
                    async with client.stream(
                        "POST", f"http://127.0.0.1:{port}/v1/messages", json=payload, timeout=30
                    ) as response:
                        async for chunk in response.aiter_raw():
                            if not received:
                                process.send_signal(signal.SIGTERM)
                                stopped_at = time.monotonic()
                            received += chunk
            cut_after_s = time.monotonic() - stopped_at
            _, err = await asyncio.wait_for(process.communicate(), timeout=40)
        finally:
            if process.returncode is None:
                process.kill()
    stderr = err.decode()
    assert process.returncode == 0, stderr
    assert 0 < len(received) < len(b"".join(events))
    assert cut_after_s < 5, "the stream outlived the grace period"
    assert "CancelledError" not in stderr
    assert "Traceback" not in stderr
    async with await Store.from_config(config) as store:
        [record] = await store.requests.list_recent(10)
    assert (record.status_code, record.stream_terminal_state) == (200, "interrupted")
    assert (record.account_id, record.model, record.usage.input_tokens) == ("a", MODEL, 20)
    assert not record.success


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


async def test_an_account_added_by_the_cli_reaches_the_running_server(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json({"type": "message", "content": []}))
        port = free_port()
        process = await start_serving(tmp_path, "--port", str(port))
        try:
            assert (await wait_for_health(port, process)).json()["ready"] is False
            added = await asyncio.create_subprocess_exec(
                *COMMAND,
                "account",
                "add",
                "live",
                "--mode",
                "console",
                "--api-key",
                "sk-ant-api03-live",
                "--endpoint",
                upstream.url,
                env=env_for(tmp_path),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await added.communicate()
            assert added.returncode == 0, err.decode()
            async with httpx2.AsyncClient() as client:
                health = await client.get(f"http://127.0.0.1:{port}/health/ready")
                for _ in range(100):
                    if health.status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                    health = await client.get(f"http://127.0.0.1:{port}/health/ready")
                assert health.json()["pool"]["configured"] == 1
                reply = await client.post(
                    f"http://127.0.0.1:{port}/v1/messages",
                    json={"model": "claude-sonnet-5", "max_tokens": 8, "messages": []},
                )
            assert reply.status_code == 200
            assert upstream.requests[0].headers["x-api-key"] == "sk-ant-api03-live"
            stderr = await stop(process)
        finally:
            if process.returncode is None:
                process.kill()
    assert process.returncode == 0, stderr


async def test_a_strategy_set_by_the_cli_applies_to_the_running_server(tmp_path: Path) -> None:
    port = free_port()
    process = await start_serving(tmp_path, "--port", str(port))
    try:
        assert (await wait_for_health(port, process)).json()["strategy"] == "session"
        changed = await asyncio.create_subprocess_exec(
            *COMMAND,
            "strategy",
            "set",
            "least-used",
            env=env_for(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await changed.communicate()
        assert changed.returncode == 0, err.decode()
        async with httpx2.AsyncClient() as client:
            strategy = ""
            for _ in range(100):  # the server re-reads the config file every 2 s
                health = await client.get(f"http://127.0.0.1:{port}/health")
                strategy = health.json()["strategy"]
                if strategy == "least-used":
                    break
                await asyncio.sleep(0.1)
            assert strategy == "least-used"
            config = await client.get(f"http://127.0.0.1:{port}/api/config/strategy")
            assert config.json()["strategySource"].startswith("file")
        stderr = await stop(process)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, stderr


def test_what_lives_at_start_up_is_frozen_out_of_full_collections() -> None:
    before = gc.get_freeze_count()
    freeze_startup_heap()
    try:
        assert gc.get_freeze_count() > before
        # A full collection no longer walks what was frozen: only what is made afterwards.
        assert gc.get_freeze_count() > len(gc.get_objects())
    finally:
        gc.unfreeze()


async def first_start_log(tmp_path: Path, port: int) -> str:
    """What a first ``serve`` on a fresh data directory logs, the first retention run included."""
    process = await start_serving(tmp_path, "--port", str(port))
    try:
        await wait_for_health(port, process)
        await asyncio.sleep(0.5)  # the retention job runs just after start-up
        return await stop(process)
    finally:
        if process.returncode is None:
            process.kill()


async def test_start_up_says_where_the_dashboard_is_and_how_to_add_a_first_account(
    tmp_path: Path,
) -> None:
    port = free_port()
    stderr = await first_start_log(tmp_path, port)
    assert f"Dashboard: http://127.0.0.1:{port}/" in stderr
    assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{port}" in stderr
    assert "No accounts yet: better-ccflare account add NAME" in stderr


async def test_a_first_start_announces_no_vacuum_and_prints_no_python_reprs(
    tmp_path: Path,
) -> None:
    stderr = await first_start_log(tmp_path, free_port())
    assert "VACUUM" not in stderr
    assert "Result(" not in stderr


def run_command(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        env=env_for(tmp_path, **env),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_a_port_in_use_is_one_line_with_exit_status_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = run_command(tmp_path, "serve", "--port", str(port))
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: the address is already in use. Stop the "
        "other server, or choose another port with --port or PORT."
    ]


def test_a_database_path_whose_directory_cannot_exist_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    db_path = tmp_path / "a-file" / "better-ccflare.db"
    completed = run_command(
        tmp_path, "serve", "--port", str(free_port()), BETTER_CCFLARE_DB_PATH=str(db_path)
    )
    assert completed.returncode == 2, completed.stderr
    [line] = completed.stderr.strip().splitlines()
    assert line.startswith(f"Error: BETTER_CCFLARE_DB_PATH='{db_path}' (from environment)")
    assert "is a file, not a directory" in line
    assert "bug" not in line


def test_a_missing_directory_of_the_database_path_is_created(tmp_path: Path) -> None:
    db_path = tmp_path / "new" / "dir" / "better-ccflare.db"
    completed = run_command(
        tmp_path, "account", "list", "--json", BETTER_CCFLARE_DB_PATH=str(db_path)
    )
    assert completed.returncode == 0, completed.stderr
    assert db_path.is_file()
