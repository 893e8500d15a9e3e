"""Schemathesis against the served OpenAPI schema: no server error, no response off-schema.

The real service runs under uvicorn on 127.0.0.1 in a thread of its own (schemathesis calls it
synchronously), with one account and an admin API key so that every call is authorised and
the generated inputs reach the handlers. Every operation in the schema is exercised except the
two Server-Sent-Events routes, which never end by design; ``test_management_api`` covers them.

Every default check runs except ``positive_data_acceptance``: the schema states types and
bounds, but some rules live only in the server (a name already taken, a model mapping to an
empty model name inside a nested list, which Litestar's schema does not carry), and those
inputs rightly get a 400 or 409 that the check would count as a failure.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from better_ccflare.core import Account, ApiKeyRole, Credentials, ProviderKind, load_config
from better_ccflare.proxy.admin import create_api_key
from better_ccflare.server import Service

from .support.service import serving

STREAMS = ("/api/requests/stream", "/api/logs/stream")


class _LiveService:
    """The service on its own event loop in a daemon thread."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ready = threading.Event()
        self.url = ""
        self.admin_key = ""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        config = load_config({"XDG_CONFIG_HOME": str(self.data_dir / "xdg")}, cwd=self.data_dir)
        async with Service.running(config, jobs=False) as service:
            await service.store.accounts.add(
                Account(
                    id="alpha",
                    name="alpha",
                    provider=ProviderKind.CONSOLE.value,
                    created_at_ms=0,
                    credentials=Credentials(api_key="sk-ant-api03-alpha"),
                )
            )
            _, self.admin_key = await create_api_key(
                service.store, "schema", ApiKeyRole.ADMIN, now_ms=0
            )
            await service.pool.reload()
            async with serving(service.app) as self.url:
                self.ready.set()
                await asyncio.to_thread(self._stop.wait)

    def __enter__(self) -> _LiveService:
        self.thread.start()
        assert self.ready.wait(30), "the service did not start within 30 s"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Generator[_LiveService]:
    with _LiveService(tmp_path_factory.mktemp("schema")) as service:
        yield service


def test_management_api_honours_its_schema(live: _LiveService) -> None:
    # schemathesis is only partly typed; its objects are handled as Any here.
    schema: Any = schemathesis.openapi.from_url(f"{live.url}/schema/openapi.json")
    headers = {"x-api-key": live.admin_key}
    tested: list[str] = []
    for result in schema.get_all_operations():
        operation: Any = result.ok()
        if operation.path in STREAMS:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case: Any) -> None:
            case.call_and_validate(
                headers=headers, excluded_checks=[checks.positive_data_acceptance]
            )

        check()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) >= 40, tested
