"""Start-up checks that run before the service accepts traffic.

Until the proxy lands this is what ``better-ccflare serve`` does: prove that configuration,
logging and the store are usable (migrating the database if needed), report, and exit. The same
checks stay the first step of the real start-up, and a later ``doctor`` command reuses them.
"""

from __future__ import annotations

import logging

import msgspec

from better_ccflare.core import Config
from better_ccflare.database import Store
from better_ccflare.logger import configure_logging

__all__ = ["PreflightReport", "preflight"]

_log = logging.getLogger("better_ccflare.server")


class PreflightReport(msgspec.Struct, frozen=True, kw_only=True):
    """What start-up found."""

    db_path: str
    schema_version: int
    pending_migrations: tuple[str, ...]
    backend: str
    accounts: int
    log_dir: str


async def preflight(config: Config) -> PreflightReport:
    """Configure logging, open (and migrate) the store, count accounts, close the store.

    Raises:
        BetterCcflareError: A setting, the key or the database is unusable; the message says
            which and what to do.
    """
    configure_logging(level=config.log_level, fmt=config.log_format, log_dir=config.log_dir)
    async with await Store.from_config(config) as store:
        status = await store.schema_status()
        accounts = await store.accounts.list_all()
    report = PreflightReport(
        db_path=str(config.db_path),
        schema_version=status.version,
        pending_migrations=status.pending,
        backend=status.backend,
        accounts=len(accounts),
        log_dir=str(config.log_dir),
    )
    _log.info("store ready", extra={"data": msgspec.structs.asdict(report)})
    return report
