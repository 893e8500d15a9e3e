"""The proxy under test: the real ``Service`` under uvicorn, as ``better-ccflare serve`` runs it.

One console account whose ``custom_endpoint`` is the fake upstream; payload storage off (the
default), logging at ERROR, background jobs off so that nothing but requests uses the CPU.
Every request is recorded to SQLite in ``DATA_DIR`` unless ``--no-recording`` is given, which
swaps the request repository for one that drops records: the baseline for what recording costs.
``--no-metrics`` leaves the Prometheus counters unfed (``Service.running(metrics=False)``): the
baseline for what metrics cost (issue 17's 3 % bar). ``--postgres`` records to the PostgreSQL
database named by ``DATABASE_URL`` in the environment instead (as ``serve`` would; without the
option that variable is ignored, so a developer's own setting never moves the SQLite target).
Several instances may share one database and one ``DATA_DIR`` (the key file): the first adds the
account, the others find it. ``--store-watch`` starts the one background job that a fleet's
instances need, the store watch (every 100 ms: did another instance change accounts or keys?).

Usage: python scripts/bench/proxy_server.py PORT UPSTREAM_URL DATA_DIR [--no-recording]
       [--no-metrics] [--postgres] [--store-watch]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path

import uvicorn
import uvloop

from better_ccflare.core import Account, Credentials, ProviderKind, RequestRecord, load_config
from better_ccflare.database import RequestRepository
from better_ccflare.server import Service, freeze_startup_heap, uvicorn_config


def upstream_key(*, recording: bool, metrics: bool = True, postgres: bool = False) -> str:
    """The account's key. The fake upstream counts requests per key, so each proxy gets its own
    and the runner can tell how many requests this one sent upstream."""
    suffix = ("" if recording else "-norec") + ("" if metrics else "-nomet")
    return "sk-ant-api03-bench-proxy" + suffix + ("-pg" if postgres else "")


class _Dropping:
    """A request repository that records nothing and reads through to the real one."""

    def __init__(self, real: RequestRepository) -> None:
        self._real = real
        self.get = real.get
        self.list_recent = real.list_recent
        self.get_payload = real.get_payload
        self.count = real.count
        self.delete_all = real.delete_all

    def record(self, record: RequestRecord) -> None:
        pass

    def record_payload(self, request_id: str, payload_json: bytes | str) -> bool:
        return False


def bench_config(data_dir: Path, port: int, database_url: str | None = None) -> dict[str, str]:
    """The environment the proxy is configured from (also used to open its database)."""
    config = {
        "XDG_CONFIG_HOME": str(data_dir / "xdg"),
        "PORT": str(port),
        "STORE_PAYLOADS": "false",
        "LOG_LEVEL": "ERROR",
    }
    if database_url is not None:
        config["DATABASE_URL"] = database_url
    return config


async def _serve(
    port: int,
    upstream_url: str,
    data_dir: Path,
    *,
    recording: bool,
    metrics: bool,
    database_url: str | None,
    store_watch: bool,
) -> None:
    config = load_config(bench_config(data_dir, port, database_url), cwd=data_dir)
    async with Service.running(config, jobs=False, metrics=metrics) as service:
        if await service.store.accounts.get("bench") is None:
            key = upstream_key(recording=recording, metrics=metrics, postgres=bool(database_url))
            await service.store.accounts.add(
                Account(
                    id="bench",
                    name="bench",
                    provider=ProviderKind.CONSOLE.value,
                    created_at_ms=0,
                    custom_endpoint=upstream_url,
                    credentials=Credentials(api_key=key),
                )
            )
        await service.pool.reload()
        if store_watch:
            service.jobs.jobs["store-watch"].start()
        if not recording:
            service.store.requests = _Dropping(service.store.requests)
        freeze_startup_heap()
        await uvicorn.Server(uvicorn_config(config, service.app)).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("port", type=int)
    parser.add_argument("upstream_url")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--no-recording", action="store_true")
    parser.add_argument("--no-metrics", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="record to $DATABASE_URL")
    parser.add_argument("--store-watch", action="store_true", help="run the store-watch job")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL") if args.postgres else None
    if args.postgres and not database_url:
        parser.error("--postgres needs DATABASE_URL in the environment")
    # The event loop `better-ccflare serve` runs on (see the CLI's _run).
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(
            _serve(
                args.port,
                args.upstream_url,
                args.data_dir,
                recording=not args.no_recording,
                metrics=not args.no_metrics,
                database_url=database_url,
                store_watch=args.store_watch,
            )
        )


if __name__ == "__main__":
    main()
