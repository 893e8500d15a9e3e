"""Three ``better-ccflare serve`` processes over one PostgreSQL share one truth, and two over one
SQLite file are refused.

Each fleet test creates its own database on the PostgreSQL at 127.0.0.1:5432 (or
``BETTER_CCFLARE_TEST_DATABASE_URL``'s server) and starts three real servers on it, with the
CLI and a fake upstream, as a user would run them. A change must reach every instance within a
second: the servers' safety-net probe runs every 5 s, so only the change notices make it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx2

from better_ccflare.core import PauseReason, load_config
from better_ccflare.database import Store

from .support.fake_upstream import FakeUpstream, RecordedRequest, Reply
from .support.messages import MODEL, message_json, quota_429
from .support.service import console_account

COMMAND = [sys.executable, "-c", "from better_ccflare.cli import main; main()"]
SERVER_URL = os.environ.get(
    "BETTER_CCFLARE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PROPAGATION_S = 1.0
BODY = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Fleet:
    """Servers sharing one home (config file and key) and, for PostgreSQL, one database."""

    home: Path
    database_url: str | None
    ports: list[int]
    processes: list[asyncio.subprocess.Process]
    settings: dict[str, str]
    """Environment variables every instance and the CLI get."""

    def env(self, **extra: str) -> dict[str, str]:
        database = {"DATABASE_URL": self.database_url} if self.database_url else {}
        return {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.home / "xdg"),
            "HOME": str(self.home),
            "LOG_FORMAT": "json",
            **database,
            **self.settings,
            **extra,
        }

    async def start(self, index: int) -> asyncio.subprocess.Process:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            "serve",
            "--port",
            str(port),
            env=self.env(BETTER_CCFLARE_LOG_DIR=str(self.home / f"logs-{index}")),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.ports.append(port)
        self.processes.append(process)
        return process

    async def cli(self, *args: str) -> str:
        """Run a CLI command beside the servers; its standard output."""
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            *args,
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return out.decode()

    async def health(self, client: httpx2.AsyncClient) -> list[dict[str, Any]]:
        """Every server's ``/health`` pool counts, read from its memory."""
        replies = await asyncio.gather(
            *(client.get(f"http://127.0.0.1:{port}/health") for port in self.ports)
        )
        return [reply.json()["pool"] for reply in replies]

    async def all_show(self, client: httpx2.AsyncClient, key: str, value: int) -> float:
        """Seconds until every server's pool shows ``key == value``; fails past a second."""
        started = time.monotonic()
        while True:
            pools = await self.health(client)
            if all(pool[key] == value for pool in pools):
                return time.monotonic() - started
            assert time.monotonic() - started < PROPAGATION_S, (key, value, pools)
            await asyncio.sleep(0.02)


async def wait_for_health(port: int, process: asyncio.subprocess.Process) -> None:
    async with httpx2.AsyncClient() as client:
        for _ in range(600):
            assert process.returncode is None, await process.communicate()
            with contextlib.suppress(httpx2.TransportError):
                await client.get(f"http://127.0.0.1:{port}/health", timeout=1)
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the server did not answer /health within 30 s")


async def stop(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), timeout=40)
    return err.decode()


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(SERVER_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def fleet_of_three(
    tmp_path: Path, upstream: FakeUpstream, *accounts: str, **settings: str
) -> AsyncGenerator[Fleet]:
    """Three servers over a new PostgreSQL database holding console ``accounts`` (in
    preference order) on ``upstream``, configured with ``settings``; each stops cleanly at the
    end."""
    name = f"bccf_test_{secrets.token_hex(6)}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = urlsplit(SERVER_URL)._replace(path=f"/{name}").geturl()
    fleet = Fleet(home=tmp_path, database_url=url, ports=[], processes=[], settings=settings)
    try:
        # Creates the schema and the one key every instance must share, before they start.
        config = load_config(fleet.env(), cwd=tmp_path)
        async with await Store.from_config(config) as store:
            for priority, account in enumerate(accounts):
                await store.accounts.add(console_account(account, upstream, priority=priority))
        started = [await fleet.start(index) for index in range(3)]
        try:
            await asyncio.gather(
                *(wait_for_health(port, p) for port, p in zip(fleet.ports, started, strict=True))
            )
            yield fleet
            errors = await asyncio.gather(*(stop(process) for process in started))
        finally:
            for process in started:
                if process.returncode is None:
                    process.kill()
        for process, stderr in zip(started, errors, strict=True):
            assert process.returncode == 0, stderr
            assert "Traceback" not in stderr
            assert f"database {url} (schema" in stderr  # where it says it keeps its data
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def served(_request: RecordedRequest) -> Reply:
    return Reply.json(message_json())


async def test_an_account_added_by_the_cli_is_served_by_all_three_and_every_request_recorded(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream, fleet_of_three(tmp_path, upstream) as fleet:
        upstream.set_default(served)
        await fleet.cli("account", "add", "shared", "--mode", "console", "--api-key",
                        "sk-ant-api03-shared", "--endpoint", upstream.url)  # fmt: skip
        async with httpx2.AsyncClient(timeout=30) as client:
            await fleet.all_show(client, "routable", 1)
            replies = await asyncio.gather(
                *(
                    client.post(f"http://127.0.0.1:{port}/v1/messages", json=BODY)
                    for port in fleet.ports
                    for _ in range(4)
                )
            )
        assert [reply.status_code for reply in replies] == [200] * 12
        assert [r.headers["x-api-key"] for r in upstream.requests] == ["sk-ant-api03-shared"] * 12
        config = load_config(fleet.env(), cwd=tmp_path)
        async with await Store.from_config(config) as store:
            for _ in range(100):  # each instance writes its records behind, within moments
                if await store.requests.count() == 12:
                    break
                await asyncio.sleep(0.1)
            assert await store.requests.count() == 12


async def test_a_pause_by_the_cli_reaches_all_three_within_a_second(tmp_path: Path) -> None:
    async with (
        FakeUpstream() as upstream,
        fleet_of_three(tmp_path, upstream, "a") as fleet,
        httpx2.AsyncClient(timeout=30) as client,
    ):
        assert [pool["paused"] for pool in await fleet.health(client)] == [0, 0, 0]

        await fleet.cli("account", "pause", "a")
        await fleet.all_show(client, "paused", 1)

        await fleet.cli("account", "resume", "a")
        await fleet.all_show(client, "paused", 0)


async def test_an_api_key_generated_by_the_cli_is_required_by_all_three_within_a_second(
    tmp_path: Path,
) -> None:
    async with (
        FakeUpstream() as upstream,
        fleet_of_three(tmp_path, upstream, "a") as fleet,
        httpx2.AsyncClient(timeout=30) as client,
    ):
        upstream.set_default(served)

        async def statuses(**headers: str) -> list[int]:
            replies = await asyncio.gather(
                *(
                    client.post(f"http://127.0.0.1:{port}/v1/messages", json=BODY, headers=headers)
                    for port in fleet.ports
                )
            )
            return [reply.status_code for reply in replies]

        assert await statuses() == [200] * 3  # no keys yet: every client is let in
        key = (await fleet.cli("api-key", "generate", "ci")).strip()
        started = time.monotonic()
        while await statuses() != [401] * 3:
            assert time.monotonic() - started < PROPAGATION_S, "the key took too long to arrive"
            await asyncio.sleep(0.02)
        assert await statuses(**{"x-api-key": key}) == [200] * 3


async def test_a_cooldown_learned_by_one_instance_is_honoured_by_the_others(
    tmp_path: Path,
) -> None:
    limited: list[RecordedRequest] = []

    def one_429(request: RecordedRequest) -> Reply:
        if request.headers["x-api-key"] == "sk-ant-api03-first" and not limited:
            limited.append(request)
            return quota_429(int(time.time()) + 3600)
        return Reply.json(message_json())

    async with (
        FakeUpstream() as upstream,
        fleet_of_three(tmp_path, upstream, "first", "second") as fleet,
    ):
        upstream.set_default(one_429)
        first, *others = fleet.ports
        async with httpx2.AsyncClient(timeout=30) as client:
            reply = await client.post(f"http://127.0.0.1:{first}/v1/messages", json=BODY)
            assert reply.status_code == 200, reply.text  # the 429 failed over to "second"
            await fleet.all_show(client, "rate_limited", 1)
            replies = await asyncio.gather(
                *(
                    client.post(f"http://127.0.0.1:{port}/v1/messages", json=BODY)
                    for port in [*others, *others, first]
                )
            )
        assert [reply.status_code for reply in replies] == [200] * 5
        keys = [request.headers["x-api-key"] for request in upstream.requests]
        assert keys == ["sk-ant-api03-first"] + ["sk-ant-api03-second"] * 6
        assert len(limited) == 1


async def test_a_session_pinned_by_one_instance_keeps_its_account_through_the_others(
    tmp_path: Path,
) -> None:
    async with (
        FakeUpstream() as upstream,
        fleet_of_three(tmp_path, upstream, "a", "b", LB_STRATEGY="session-affinity") as fleet,
        httpx2.AsyncClient(timeout=30) as client,
    ):
        upstream.set_default(served)
        config = load_config(fleet.env(), cwd=tmp_path)
        first, *others = fleet.ports

        async def send(port: int, session: str) -> str:
            headers = {"x-claude-code-session-id": session}
            url = f"http://127.0.0.1:{port}/v1/messages"
            reply = await client.post(url, json=BODY, headers=headers)
            assert reply.status_code == 200, reply.text
            return upstream.requests[-1].headers["x-api-key"]

        async with await Store.from_config(config) as store:
            # While the preferred "a" is paused, the first instance pins the session to "b".
            await store.accounts.pause("a", PauseReason.MANUAL)
            await fleet.all_show(client, "paused", 1)
            assert await send(first, "conversation") == "sk-ant-api03-b"
            await store.accounts.resume("a")
            await fleet.all_show(client, "paused", 0)

        # A new session goes to "a" everywhere; the pinned one stays on "b" through the others.
        assert [await send(port, "new") for port in others] == ["sk-ant-api03-a"] * 2
        assert [await send(port, "conversation") for port in others] == ["sk-ant-api03-b"] * 2


async def test_a_second_server_on_one_sqlite_file_is_refused_while_the_first_serves(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(served)
        fleet = Fleet(home=tmp_path, database_url=None, ports=[], processes=[], settings={})
        config = load_config(fleet.env(), cwd=tmp_path)
        async with await Store.from_config(config) as store:
            await store.accounts.add(console_account("a", upstream))
        first = await fleet.start(0)
        try:
            await wait_for_health(fleet.ports[0], first)
            second = await fleet.start(1)
            _, err = await asyncio.wait_for(second.communicate(), timeout=30)
            # The CLI still works beside the running server.
            await fleet.cli("account", "pause", "a")
            await fleet.cli("account", "resume", "a")
            async with httpx2.AsyncClient(timeout=30) as client:
                reply = await client.post(
                    f"http://127.0.0.1:{fleet.ports[0]}/v1/messages", json=BODY
                )
            stderr = await stop(first)
        finally:
            if first.returncode is None:
                first.kill()
    refusal = err.decode().strip().splitlines()
    assert second.returncode == 2
    assert len(refusal) == 1, refusal
    assert refusal[0].startswith(f"Error: another better-ccflare server (pid {first.pid})")
    assert f"serving the database {config.db_path}; " in refusal[0]
    assert refusal[0].endswith("or run several over one PostgreSQL (DATABASE_URL).")
    assert reply.status_code == 200
    assert first.returncode == 0, stderr
