"""Three real ``better-ccflare serve`` processes over one PostgreSQL database and a fake
upstream: one OAuth refresh for the fleet, one usage poll per interval for the fleet, and an
instance killed with SIGKILL under load, after which the others keep serving and one of them
takes the scheduled jobs over."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx2
import pytest

from better_ccflare.core import Account
from better_ccflare.database import SecretKey, Store

from .support.fake_upstream import FakeUpstream, RecordedRequest, Reply
from .support.messages import MODEL, message_json
from .support.postgres import database_url, postgres_server_url
from .test_proxy_e2e import oauth_account
from .test_serve_process import COMMAND, console_account, env_for, free_port, wait_for_health

__all__ = ["database_url", "postgres_server_url"]  # fixtures, imported for pytest to find

_T = TypeVar("_T")
INSTANCES = 3
POLL_INTERVAL_MS = 10_000  # the shortest USAGE_POLL_INTERVAL_MS allowed
LEADS = "now runs the scheduled jobs"
USAGE = {"five_hour": {"utilization": 10.0, "resets_at": "2030-01-01T00:00:00Z"}}


@dataclasses.dataclass
class Instance:
    port: int
    process: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def leads(self) -> bool:
        return LEADS in self.log.read_text()


class Upstream:
    """The fake Anthropic: its API, its usage endpoint and its token endpoint in one server.
    Each refresh token works once (a used one gets ``invalid_grant``)."""

    def __init__(self, server: FakeUpstream) -> None:
        self.server = server
        self.live_refresh_token = "rt-old"
        self.refreshes = 0
        self.usage_polls: list[float] = []

    def __call__(self, request: RecordedRequest) -> Reply:
        if request.path == "/v1/oauth/token":
            return self._refresh(request)
        if request.path == "/api/oauth/usage":
            self.usage_polls.append(time.monotonic())
            return Reply.json(USAGE)
        live = f"at-{self.refreshes}" if self.refreshes else "at-old"
        if request.headers.get("authorization") not in {f"Bearer {live}", None}:
            error = {"type": "authentication_error", "message": "stale token"}
            return Reply.json({"type": "error", "error": error}, status=401)
        return Reply.json(message_json("served"))

    def _refresh(self, request: RecordedRequest) -> Reply:
        if request.json()["refresh_token"] != self.live_refresh_token:
            return Reply.json({"error": "invalid_grant", "error_description": "used"}, 400)
        self.refreshes += 1
        self.live_refresh_token = f"rt-{self.refreshes}"
        tokens = {
            "access_token": f"at-{self.refreshes}",
            "refresh_token": self.live_refresh_token,
            "expires_in": 28_800,
        }
        return dataclasses.replace(Reply.json(tokens), headers_delay_s=0.5)


@dataclasses.dataclass
class Fleet:
    tmp_path: Path
    url: str
    key: SecretKey
    upstream: Upstream
    instances: list[Instance] = dataclasses.field(default_factory=list[Instance])

    def env(self, n: int) -> dict[str, str]:
        return env_for(
            self.tmp_path / f"instance-{n}",
            DATABASE_URL=self.url,
            BETTER_CCFLARE_SECRET_KEY=self.key.to_text(),
            BETTER_CCFLARE_OAUTH_TOKEN_URL=f"{self.upstream.server.url}/v1/oauth/token",
            BETTER_CCFLARE_ANTHROPIC_API_URL=self.upstream.server.url,
            USAGE_POLL_INTERVAL_MS=str(POLL_INTERVAL_MS),
            LOG_FORMAT="pretty",
        )

    async def on_store(self, work: Callable[[Store], Awaitable[_T]]) -> _T:
        async with await Store.open(self.url, key=self.key) as store:
            return await work(store)

    async def start(self) -> None:
        for n in range(INSTANCES):
            (self.tmp_path / f"instance-{n}").mkdir()
            log = self.tmp_path / f"instance-{n}.log"
            port = free_port()
            with log.open("wb") as sink:
                process = await asyncio.create_subprocess_exec(
                    *COMMAND, "serve", "--port", str(port), env=self.env(n), stderr=sink
                )
            self.instances.append(Instance(port, process, log))
        for instance in self.instances:
            await wait_for_health(instance.port, instance.process)

    async def stop(self) -> None:
        for instance in self.instances:
            if instance.process.returncode is None:
                instance.process.send_signal(signal.SIGTERM)
        for instance in self.instances:
            try:
                await asyncio.wait_for(instance.process.wait(), timeout=40)
            except TimeoutError:
                instance.process.kill()
                await instance.process.wait()

    def leaders(self) -> list[Instance]:
        return [i for i in self.instances if i.process.returncode is None and i.leads()]


@pytest.fixture
async def fleet(tmp_path: Path, database_url: str) -> AsyncIterator[Fleet]:
    async with FakeUpstream() as server:
        upstream = Upstream(server)
        server.set_default(upstream)
        running = Fleet(tmp_path, database_url, SecretKey.generate(), upstream)
        try:
            yield running
        finally:
            await running.stop()


async def ask(client: httpx2.AsyncClient, instance: Instance) -> httpx2.Response:
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
    return await client.post(f"{instance.url}/v1/messages", json=body, timeout=30)


async def pool_holds_one_account(
    client: httpx2.AsyncClient, instance: Instance, timeout_s: float
) -> None:
    async with asyncio.timeout(timeout_s):
        # Polled: the state belongs to another process, no event can be awaited.
        while (await client.get(f"{instance.url}/health")).json()["pool"]["configured"] != 1:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def until(condition: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (the state belongs to the processes under test)
            await asyncio.sleep(0.1)


async def test_thirty_requests_across_three_instances_on_an_expiring_token_refresh_once(
    fleet: Fleet,
) -> None:
    await fleet.start()
    # Added once every instance runs: each learns of it (and its expiring token) from the
    # database, and the requests reach all three while the token is still the old one.
    account = oauth_account(fleet.upstream.server, expires_in_ms=60_000)
    await fleet.on_store(lambda store: store.accounts.add(account))
    async with httpx2.AsyncClient() as client:
        # Each instance's pool (what /health counts, not the database /api/accounts reads) must
        # hold the account before the burst; a loaded machine can take seconds to get there.
        for instance in fleet.instances:
            await pool_holds_one_account(client, instance, timeout_s=30)
        replies = await asyncio.gather(
            *(ask(client, fleet.instances[n % INSTANCES]) for n in range(30))
        )
    assert [reply.status_code for reply in replies] == [200] * 30
    assert {reply.json()["content"][0]["text"] for reply in replies} == {"served"}
    refreshes = [r for r in fleet.upstream.server.requests if r.path == "/v1/oauth/token"]
    assert len(refreshes) == 1
    assert fleet.upstream.refreshes == 1

    async def stored(store: Store) -> Account | None:
        return await store.accounts.get("sub")

    after = await fleet.on_store(stored)
    assert after is not None
    assert after.credentials.refresh_token == "rt-1"
    assert not after.requires_reauth


async def test_usage_is_polled_once_per_interval_for_the_whole_fleet(fleet: Fleet) -> None:
    account = oauth_account(fleet.upstream.server, expires_in_ms=8 * 3_600_000)
    await fleet.on_store(lambda store: store.accounts.add(account))
    await fleet.start()
    await asyncio.sleep(POLL_INTERVAL_MS / 1000 * 2)
    polls = fleet.upstream.usage_polls
    # Every instance polling would make three polls at start and three per interval: polls
    # seconds apart. One poller keeps its interval (less its 20 % jitter) between polls.
    assert len(polls) >= 2, polls
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    assert all(gap >= POLL_INTERVAL_MS / 1000 * 0.8 - 0.5 for gap in gaps), gaps
    assert len(fleet.leaders()) == 1
    # The followers read the leader's snapshots: every instance knows the usage.
    async with httpx2.AsyncClient() as client:
        for instance in fleet.instances:
            [listed] = (await client.get(f"{instance.url}/api/accounts")).json()
            assert listed["usageUtilization"] == 10.0, listed


async def test_killing_the_leader_under_load_leaves_the_others_serving_and_moves_the_jobs(
    fleet: Fleet,
) -> None:
    console = console_account(fleet.upstream.server.url)
    await fleet.on_store(lambda store: store.accounts.add(console))
    await fleet.start()
    await until(lambda: len(fleet.leaders()) == 1, timeout_s=10)
    [leader] = fleet.leaders()
    survivors = [instance for instance in fleet.instances if instance is not leader]
    answered: dict[int, list[tuple[float, httpx2.Response]]] = {i.port: [] for i in fleet.instances}
    killed_at: float | None = None
    stop = asyncio.Event()

    async def load(client: httpx2.AsyncClient, instance: Instance) -> None:
        while not stop.is_set():
            if instance is leader and killed_at is not None:
                return
            with contextlib.suppress(httpx2.TransportError):  # only the killed one's
                answered[instance.port].append((time.monotonic(), await ask(client, instance)))

    async with httpx2.AsyncClient() as client:
        workers = [
            asyncio.create_task(load(client, instance))
            for instance in fleet.instances
            for _ in range(3)
        ]
        await asyncio.sleep(2)
        leader.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await leader.process.wait()
        await until(lambda: len(fleet.leaders()) == 1, timeout_s=10)
        moved_after_s = time.monotonic() - killed_at
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*workers)

    assert moved_after_s < 5
    for instance in survivors:
        replies = answered[instance.port]
        assert len([t for t, _ in replies if t > killed_at]) >= 10
        assert {reply.status_code for _, reply in replies} == {200}
    # What the killed instance answered well before it died (beyond the writer's 50 ms
    # linger) was recorded; and so is everything the survivors answered.
    await fleet.stop()
    settled = {
        reply.headers["x-better-ccflare-request-id"]
        for t, reply in answered[leader.port]
        if t < killed_at - 1 and reply.status_code == 200
    }
    served = {
        reply.headers["x-better-ccflare-request-id"]
        for instance in survivors
        for _, reply in answered[instance.port]
    }
    assert settled

    async def missing(store: Store) -> set[str]:
        return {i for i in settled | served if await store.requests.get(i) is None}

    assert await fleet.on_store(missing) == set()
