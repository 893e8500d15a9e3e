"""How long the dashboard's API calls take on a million requests, over real HTTP.

``analytics_queries.py`` times the store's queries one by one; this times what a person waits
for: ``GET /api/stats``, ``GET /api/analytics`` for each range (with and without filters and the
per-model breakdown) and ``GET /api/requests``, each a full request through uvicorn, Litestar and
the store, answered by the real service. The history is the same synthetic one (filled through
the store, 1,000,000 rows over 30 days by default), and the service's clock is set to its end so
the ranges cover it.

Run from the repository root:

    uv run python scripts/bench/analytics_endpoints.py --db /tmp/endpoints/analytics.db

``--quick`` (5,000 rows, one run) is the CI smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import httpx2
import uvicorn
from analytics_queries import ACCOUNTS, END_MS, fill

from better_ccflare.core import Account, Credentials, FakeClock, ProviderKind, load_config
from better_ccflare.server import Service

CALLS: list[tuple[str, str]] = [
    ("stats (30 days)", "/api/stats"),
    ("stats (1 day)", "/api/stats?since=1"),
    *[(f"analytics {r}", f"/api/analytics?range={r}") for r in ("1h", "6h", "24h", "7d", "30d")],
    ("analytics 30d by model", "/api/analytics?range=30d&modelBreakdown=true"),
    ("analytics 30d, 1 account", "/api/analytics?range=30d&accounts=account-3"),
    ("analytics 7d, errors, cumulative", "/api/analytics?range=7d&status=error&mode=cumulative"),
    ("requests (50)", "/api/requests?limit=50"),
    ("requests (50, 1 account, errors)", "/api/requests?limit=50&account=account-3&status=error"),
]


async def prepare(service: Service, rows: int, days: int) -> None:
    """Accounts for the synthetic ids (so names resolve), then the history unless present."""
    existing = {a.id for a in await service.store.accounts.list_all()}
    for account_id in ACCOUNTS:
        if account_id not in existing:
            await service.store.accounts.add(
                Account(
                    id=account_id,
                    name=account_id,
                    provider=ProviderKind.CONSOLE.value,
                    created_at_ms=0,
                    credentials=Credentials(api_key=f"sk-ant-api03-{account_id}"),
                )
            )
    await service.pool.reload()
    count = await service.store.requests.count()
    if count not in (0, rows):
        raise SystemExit(f"the database holds {count} requests, not {rows}; use another --db")
    if count == 0:
        seconds = await fill(service.store, rows, days)
        print(f"filled {rows:,} rows in {seconds:.0f} s")
    await service.store.analytics.refresh_rollups(END_MS)


async def run(data_dir: Path, rows: int, days: int, repeat: int) -> None:
    config = load_config(
        {"XDG_CONFIG_HOME": str(data_dir / "xdg"), "BETTER_CCFLARE_DB_PATH": str(data_dir / "db")},
        cwd=data_dir,
    )
    async with Service.running(config, clock=FakeClock(END_MS), jobs=False) as service:
        await prepare(service, rows, days)
        server = uvicorn.Server(
            uvicorn.Config(service.app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn has no "started" event)
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(
            f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {rows:,} requests "
            f"over {days} days; median of {repeat} calls, ms\n"
        )
        print("| call | path | ms |")
        print("|---|---|---:|")
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for name, path in CALLS:
                times: list[float] = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    response = await client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                print(f"| {name} | `{path}` | {statistics.median(times):.1f} |")
        server.should_exit = True
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description="Dashboard API latency on a large history.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="requests in the database")
    parser.add_argument("--days", type=int, default=30, help="days the requests span")
    parser.add_argument("--repeat", type=int, default=5, help="calls per row (median shown)")
    parser.add_argument("--db", type=Path, help="keep the data directory here (reused)")
    parser.add_argument("--quick", action="store_true", help="5,000 rows, one call (CI smoke)")
    arguments = parser.parse_args()
    rows, repeat = (5_000, 1) if arguments.quick else (arguments.rows, arguments.repeat)
    if arguments.db is not None:
        arguments.db.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(arguments.db, rows, arguments.days, repeat))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(Path(tmp), rows, arguments.days, repeat))


if __name__ == "__main__":
    main()
