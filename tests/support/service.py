"""The real service under uvicorn on 127.0.0.1, for end-to-end tests of every kind.

``running_proxy`` starts :class:`~better_ccflare.server.Service` exactly as ``serve`` composes
it (uvicorn's settings and the client limits included), on an ephemeral port, with its data in
a temporary directory; the tests talk to it over real HTTP. ``serving`` is the uvicorn part
alone, for tests that compose the service themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import uvicorn

from better_ccflare.core import Account, Clock, Credentials, ProviderKind, load_config
from better_ccflare.logger import LogBus
from better_ccflare.server import Service, uvicorn_config

from .fake_upstream import FakeUpstream

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["console_account", "running_proxy", "serving"]


def console_account(name: str, upstream: FakeUpstream, priority: int = 0) -> Account:
    return Account(
        id=name,
        name=name,
        provider=ProviderKind.CONSOLE.value,
        created_at_ms=0,
        priority=priority,
        custom_endpoint=upstream.url,
        credentials=Credentials(api_key=f"sk-ant-api03-{name}"),
    )


@asynccontextmanager
async def running_proxy(
    tmp_path: Path,
    *accounts: Account,
    clock: Clock | None = None,
    log_bus: LogBus | None = None,
    tracer_provider: TracerProvider | None = None,
    **env: str,
) -> AsyncGenerator[tuple[Service, str]]:
    config = load_config(
        {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "LB_STRATEGY": "session", **env},
        cwd=tmp_path,
    )
    async with Service.running(
        config, clock=clock, jobs=False, log_bus=log_bus, tracer_provider=tracer_provider
    ) as service:
        for account in accounts:
            await service.store.accounts.add(account)
        await service.pool.reload()
        served = uvicorn_config(msgspec.structs.replace(config, port=0), service.app)
        async with serving(service.app, served) as url:
            yield service, url


@asynccontextmanager
async def serving(
    app: Callable[..., Any], config: uvicorn.Config | None = None
) -> AsyncGenerator[str]:
    """``app`` under uvicorn on a free loopback port, until the block ends; yields its URL.

    ``config`` gives uvicorn's settings (its host must be 127.0.0.1 and its port 0); by
    default, uvicorn's own."""
    server = uvicorn.Server(
        config or uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn offers a flag to watch, not an event to await
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start within 5 s"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
