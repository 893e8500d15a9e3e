"""Route module: ``GET /api/capacity``, what the pool can serve now and when that changes.

Per account and for the pool: each usage window's utilization and time to reset, whether it
can serve now, and if not why and when it will. It reads the same in-memory state the proxy
routes by (the pool and the usage cache), so it answers without touching the database.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from litestar import get

from better_ccflare.proxy import AccountCapacity, capacities, pool_capacity

from ._api_context import Ctx
from ._api_errors import ERROR_RESPONSES

__all__ = ["CAPACITY_HANDLERS"]


class WindowView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    key: str
    utilization: float
    """Percent used, 0 to 100 (above with overage)."""
    resets_at: int | None
    """Epoch milliseconds."""
    resets_in_ms: int | None
    exhausted: bool


class AccountView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    name: str
    provider: str
    can_serve: bool
    reason: str | None
    """Why it cannot serve now (``usage_exhausted``, ``rate_limited``, ``paused``, ...)."""
    available_at: int | None
    """When it can serve without anyone acting (epoch ms); ``null`` when unknown."""
    available_in_ms: int | None
    limiting_window: str | None
    windows: list[WindowView]


class PoolWindowView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    key: str
    utilization: float
    """The mean over the accounts in rotation that report the window."""
    resets_at: int | None
    """The soonest reset among them."""
    resets_in_ms: int | None
    accounts: int
    exhausted: int


class PoolView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    can_serve: bool
    available_at: int | None
    available_in_ms: int | None
    windows_exhausted: bool
    """Nothing can serve, only because usage windows are used up (the proxy answers 429)."""
    windows: list[PoolWindowView]


class CapacityResponse(msgspec.Struct, frozen=True):
    pool: PoolView
    accounts: list[AccountView]
    timestamp: int


@get("/api/capacity", responses=ERROR_RESPONSES, summary="What the pool can serve now, and when")
async def get_capacity(ctx: Ctx) -> CapacityResponse:
    now = ctx.clock.now_ms()
    read = capacities(ctx.pool.accounts(), ctx.usage.usage_map(), ctx.usage.windows, now)
    pool = pool_capacity(read)

    def until(ms: int | None) -> int | None:
        return None if ms is None else max(0, ms - now)

    return CapacityResponse(
        pool=PoolView(
            can_serve=pool.can_serve,
            available_at=pool.available_at_ms,
            available_in_ms=until(pool.available_at_ms),
            windows_exhausted=pool.windows_exhausted,
            windows=[
                PoolWindowView(
                    key=w.key,
                    utilization=w.utilization,
                    resets_at=w.resets_at_ms,
                    resets_in_ms=until(w.resets_at_ms),
                    accounts=w.accounts,
                    exhausted=w.exhausted,
                )
                for w in pool.windows
            ],
        ),
        accounts=[_account_view(a, until) for a in read],
        timestamp=now,
    )


def _account_view(
    account: AccountCapacity, until: Callable[[int | None], int | None]
) -> AccountView:
    return AccountView(
        id=account.id,
        name=account.name,
        provider=account.provider,
        can_serve=account.can_serve,
        reason=account.reason.value if account.reason is not None else None,
        available_at=account.available_at_ms,
        available_in_ms=until(account.available_at_ms),
        limiting_window=account.limiting_window,
        windows=[
            WindowView(
                key=w.key,
                utilization=w.utilization,
                resets_at=w.resets_at_ms,
                resets_in_ms=until(w.resets_at_ms),
                exhausted=w.exhausted,
            )
            for w in account.windows
        ],
    )


CAPACITY_HANDLERS = [get_capacity]
