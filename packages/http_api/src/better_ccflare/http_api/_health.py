"""``GET /health``: is the service up, and can the pool serve right now."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from litestar import HttpMethod, Response, route
from litestar.handlers import HTTPRouteHandler

from better_ccflare.core import Account, AccountState, Clock

__all__ = ["Health", "PoolStatus", "health_handler"]


class PoolStatus(msgspec.Struct, frozen=True, kw_only=True):
    configured: int
    routable: int
    """Accounts able to serve now: ready, not benched, and nothing awaiting an operator."""
    paused: int
    rate_limited: int
    """Accounts in a cooldown (of any kind)."""
    requires_reauth: int
    credentials_rejected: int
    """Accounts whose credentials the upstream refused; they need new ones."""
    out_of_credits: int


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    """``ok`` when at least one account can serve, ``degraded`` otherwise."""
    strategy: str
    pool: PoolStatus


def health_handler(
    accounts: Callable[[], tuple[Account, ...]], strategy: Callable[[], str], clock: Clock
) -> HTTPRouteHandler:
    """A route handler reporting the pool; 200 when it can serve, 503 when it cannot."""

    # HEAD too: uptime monitors and load balancers often probe with it.
    @route(
        "/health",
        http_method=[HttpMethod.GET, HttpMethod.HEAD],
        sync_to_thread=False,
        summary="Service and pool status",
    )
    def health() -> Response[Health]:
        now = clock.now_ms()
        pool = accounts()
        states = [a.state(now) for a in pool]
        status = PoolStatus(
            configured=len(pool),
            routable=states.count(AccountState.READY),
            paused=sum(a.paused for a in pool),
            rate_limited=sum(a.rate_limit.cooling_down(now) for a in pool),
            requires_reauth=sum(a.requires_reauth for a in pool),
            credentials_rejected=states.count(AccountState.CREDENTIALS_REJECTED),
            out_of_credits=states.count(AccountState.OUT_OF_CREDITS),
        )
        ok = status.routable > 0
        body = Health(status="ok" if ok else "degraded", strategy=strategy(), pool=status)
        return Response(body, status_code=200 if ok else 503)

    return health
