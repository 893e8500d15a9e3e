"""Route module: ``GET /api/capacity``, what the pool can serve now and when that changes.

Per account and for the pool: each usage window's utilization and time to reset, whether it
can serve now, and if not why and when it will. It reads the same in-memory state the proxy
routes by (the pool and the usage cache), so it answers without touching the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import msgspec
from litestar import get

from better_ccflare.proxy import AccountCapacity, capacities, pool_capacity

from ._api_context import Ctx
from ._api_errors import errors

__all__ = ["CAPACITY_HANDLERS"]


def _doc(description: str) -> msgspec.Meta:
    return msgspec.Meta(description=description)


_Key = Annotated[str, _doc("The window, e.g. five_hour or seven_day")]
_ResetsIn = Annotated[int | None, _doc("Milliseconds until then; null when unknown")]
_AvailableAt = Annotated[
    int | None, _doc("When it can serve without anyone acting (epoch ms); null when unknown")
]
_AvailableIn = Annotated[int | None, _doc("Milliseconds until then; null when unknown")]


class WindowView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    key: _Key
    utilization: Annotated[float, _doc("Percent used, 0 to 100 (above with overage)")]
    resets_at: Annotated[int | None, _doc("When the window resets (epoch ms)")]
    resets_in_ms: _ResetsIn
    exhausted: Annotated[bool, _doc("Whether the window is used up")]


class AccountView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: Annotated[str, _doc("The account's id")]
    name: Annotated[str, _doc("The account's name")]
    provider: Annotated[str, _doc("The provider id (see GET /api/providers)")]
    can_serve: Annotated[bool, _doc("Whether the proxy may route to it now")]
    reason: Annotated[
        str | None,
        _doc(
            "Why it cannot serve now (usage_exhausted, rate_limited, paused, ...); null if it can"
        ),
    ]
    available_at: _AvailableAt
    available_in_ms: _AvailableIn
    limiting_window: Annotated[
        str | None, _doc("The used-up window that keeps it out, if that is why")
    ]
    windows: Annotated[list[WindowView], _doc("Its usage windows as last polled")]


class PoolWindowView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    key: _Key
    utilization: Annotated[
        float, _doc("The mean over the accounts in rotation that report the window")
    ]
    resets_at: Annotated[int | None, _doc("The soonest reset among them (epoch ms)")]
    resets_in_ms: _ResetsIn
    accounts: Annotated[int, _doc("How many accounts in rotation report the window")]
    exhausted: Annotated[int, _doc("How many of them have it used up")]


class PoolView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    can_serve: Annotated[bool, _doc("Whether any account can serve now")]
    available_at: _AvailableAt
    available_in_ms: _AvailableIn
    windows_exhausted: Annotated[
        bool,
        _doc("Nothing can serve, only because usage windows are used up (the proxy answers 429)"),
    ]
    windows: Annotated[list[PoolWindowView], _doc("Each usage window over the pool")]


class CapacityResponse(msgspec.Struct, frozen=True):
    pool: Annotated[PoolView, _doc("The pool as a whole")]
    accounts: Annotated[list[AccountView], _doc("Each account")]
    timestamp: Annotated[int, _doc("When this was read (epoch ms)")]


@get(
    "/api/capacity",
    tags=["accounts"],
    responses=errors(),
    summary="What the pool can serve now, and when",
)
async def get_capacity(ctx: Ctx) -> CapacityResponse:
    """Each account's and the pool's usage windows (utilization, time to reset), whether each
    can serve now, and if not, why and when it will; read from what the proxy routes by."""
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
