"""``better-ccflare doctor`` on a sound installation, a broken database, and with a server."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from click.testing import CliRunner

from better_ccflare.cli import main
from better_ccflare.core import RequestRecord
from better_ccflare.database import Store

from .cli_support import Cli


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_sound_installation_without_a_server_passes(cli: Cli) -> None:
    port = str(free_port())
    result = cli("doctor", "--json", PORT=port)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert {c["name"]: c["ok"] for c in report["checks"]} == {
        "data directory writable": True,
        "database opens": True,
        "database integrity": True,
        "schema up to date": True,
    }
    assert report["schema_version"] >= 1
    assert report["pending_migrations"] == []
    assert report["data_dir"] == str(cli.data_dir)
    assert report["server"] == {
        "url": f"http://127.0.0.1:{port}/health",
        "reachable": False,
        "status_code": None,
        "detail": report["server"]["detail"],
    }
    table = cli("doctor", PORT=port).output
    assert "database integrity" in table
    assert "better-ccflare serve" in table


def test_a_file_that_is_not_a_database_fails_with_exit_1(cli: Cli, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    result = cli("doctor", BETTER_CCFLARE_DB_PATH=str(bogus), PORT=str(free_port()))
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert "not-a.db" in result.stdout
    assert "Traceback" not in result.output
    assert bogus.read_bytes() == b"this is not sqlite" * 100


def test_a_damaged_database_fails_the_integrity_check(cli: Cli) -> None:
    async def seed(store: Store) -> None:
        for i in range(3000):
            store.requests.record(
                RequestRecord(
                    id=f"r{i:05}", timestamp_ms=i, method="POST", path="/", error_message="x" * 50
                )
            )
        await store.flush()
        await store.compact()

    cli.with_store(seed)
    db = cli.data_dir / "better-ccflare.db"
    data = bytearray(db.read_bytes())
    page = 4096
    damaged = (len(data) // page - 3) * page  # a page of the requests table's b-trees
    data[damaged + 8 : damaged + 200] = b"\xff" * 192
    db.write_bytes(bytes(data))
    result = cli("doctor", "--json", PORT=str(free_port()))
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["database opens"]["ok"] is True
    assert checks["database integrity"]["ok"] is False
    assert "restore from a backup" in checks["database integrity"]["detail"]
    assert "doctor found problems" in result.stderr


async def doctor_against(tmp_path: Path, body: bytes) -> tuple[dict[str, object], list[str]]:
    """``doctor --json`` with a server on the configured port answering 200 with ``body``;
    the server part of the report, and the paths the server was asked for."""
    paths: list[str] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        paths.append(request.split(b" ")[1].decode())
        head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        port = str(server.sockets[0].getsockname()[1])
        env = {**Cli(tmp_path).env, "PORT": port, "BETTER_CCFLARE_HOST": "0.0.0.0"}
        result = await asyncio.to_thread(CliRunner().invoke, main, ["doctor", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return {**json.loads(result.stdout)["server"], "port": port}, paths


async def test_a_running_server_is_found_on_the_configured_port(tmp_path: Path) -> None:
    server_report, paths = await doctor_against(tmp_path, b'{"status":"ok"}')
    port = server_report["port"]
    assert (server_report["reachable"], server_report["status_code"]) == (True, 200)
    assert server_report["url"] == f"http://127.0.0.1:{port}/health"
    assert paths == ["/health"]


async def test_a_live_server_that_is_not_ready_is_reported_as_unable_to_serve(
    tmp_path: Path,
) -> None:
    server_report, _ = await doctor_against(tmp_path, b'{"status":"degraded","ready":false}')
    assert server_report["detail"] == "is running but no account can serve"
