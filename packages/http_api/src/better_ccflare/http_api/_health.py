"""``GET /health`` and ``GET /health/ready``: liveness and readiness, kept apart.

A container platform restarts a process whose liveness probe fails, and stops sending it
traffic while its readiness probe fails. Before the split, ``/health`` answered 503 whenever no
account could serve, so a fresh server with no accounts yet, or one waiting out a rate limit,
was restarted for nothing. Now:

* ``/health`` answers 200 while the process serves, with the pool in counts and ``ready``;
* ``/health/ready`` answers the same body, 200 when an account can serve right now and 503
  otherwise, with ``retry-after`` (seconds) when the soonest account will serve by itself.

"Can serve" is what the strategies decide, usage included: an account whose cached usage
window is exhausted cannot serve until the window resets. An account the circuit breaker
flagged (rejected credentials, no credit) cannot serve either, even between its benches when
the proxy lets a probe through: it waits for someone to act, so it gives no time to retry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated

import msgspec
from litestar import HttpMethod, Response, route
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from better_ccflare.core import Account, AccountState, Clock
from better_ccflare.load_balancer import AccountUsage, eligible_at_ms, is_usage_exhausted

from ._api_errors import errors
from ._times import iso_ms

__all__ = ["Health", "PoolStatus", "health_handlers"]


class PoolStatus(msgspec.Struct, frozen=True, kw_only=True):
    configured: Annotated[int, msgspec.Meta(description="Accounts")]
    routable: Annotated[
        int,
        msgspec.Meta(
            description="Accounts able to serve now: not benched, nothing awaiting an operator"
        ),
    ]
    paused: Annotated[int, msgspec.Meta(description="Accounts paused")]
    rate_limited: Annotated[
        int,
        msgspec.Meta(
            description="Accounts in a cooldown of any kind, the breaker's included (paused too)"
        ),
    ]
    usage_exhausted: Annotated[
        int,
        msgspec.Meta(
            description="Accounts free to serve but for a usage window the cache shows used up"
        ),
    ]
    requires_reauth: Annotated[
        int, msgspec.Meta(description="Accounts whose login must be renewed")
    ]
    credentials_rejected: Annotated[
        int,
        msgspec.Meta(
            description="Accounts whose credentials the upstream refused; they need new ones"
        ),
    ]
    out_of_credits: Annotated[
        int,
        msgspec.Meta(description="Accounts the upstream said have no credit; they need topping up"),
    ]
    next_available_at: Annotated[
        str | None,
        msgspec.Meta(
            description="When no account can serve: the soonest time one will by itself "
            "(ISO-8601 UTC); null when one can serve now, or when none will without someone "
            "acting"
        ),
    ]


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: Annotated[
        str, msgspec.Meta(description="ok when at least one account can serve, else degraded")
    ]
    ready: Annotated[
        bool,
        msgspec.Meta(description="Whether an account can serve right now (/health/ready)"),
    ]
    strategy: Annotated[str, msgspec.Meta(description="The load-balancing strategy in force")]
    pool: Annotated[PoolStatus, msgspec.Meta(description="The accounts' states, in counts")]


_AWAITING_AN_OPERATOR = frozenset({AccountState.CREDENTIALS_REJECTED, AccountState.OUT_OF_CREDITS})
"""Breaker states that only new credentials, new credit or a probe that is served end."""


def _health(
    accounts: tuple[Account, ...], usage: Mapping[str, AccountUsage], strategy: str, now_ms: int
) -> tuple[Health, int | None]:
    """The body, and how many seconds until the soonest account serves when none can now."""
    states = [a.state(now_ms) for a in accounts]
    ready_at = [
        None if state in _AWAITING_AN_OPERATOR else eligible_at_ms(a, usage.get(a.id), now_ms)
        for a, state in zip(accounts, states, strict=True)
    ]
    known = [at for at in ready_at if at is not None]
    routable = sum(at == now_ms for at in known)
    soonest_ms = min(known) if known and not routable else None
    pool = PoolStatus(
        configured=len(accounts),
        routable=routable,
        paused=sum(a.paused for a in accounts),
        rate_limited=sum(a.rate_limit.cooling_down(now_ms) for a in accounts),
        usage_exhausted=sum(
            state is AccountState.READY and is_usage_exhausted(usage.get(a.id), now_ms)
            for a, state in zip(accounts, states, strict=True)
        ),
        requires_reauth=sum(a.requires_reauth for a in accounts),
        credentials_rejected=states.count(AccountState.CREDENTIALS_REJECTED),
        out_of_credits=states.count(AccountState.OUT_OF_CREDITS),
        next_available_at=iso_ms(soonest_ms),
    )
    ready = routable > 0
    body = Health(status="ok" if ready else "degraded", ready=ready, strategy=strategy, pool=pool)
    wait_s = None if soonest_ms is None else max(1, -(-(soonest_ms - now_ms) // 1000))
    return body, wait_s


def health_handlers(
    accounts: Callable[[], tuple[Account, ...]],
    usage: Callable[[], Mapping[str, AccountUsage]],
    strategy: Callable[[], str],
    clock: Clock,
) -> tuple[HTTPRouteHandler, HTTPRouteHandler]:
    """The liveness and readiness route handlers.

    Args:
        accounts: The pool as it is now.
        usage: The cached usage of the accounts, by id.
        strategy: The name of the strategy in force.
        clock: Source of "now".
    """

    def current() -> tuple[Health, int | None]:
        return _health(accounts(), usage(), strategy(), clock.now_ms())

    # HEAD too: uptime monitors and load balancers often probe with it.
    @route(
        "/health",
        http_method=[HttpMethod.GET, HttpMethod.HEAD],
        sync_to_thread=False,
        tags=["health"],
        responses=errors(keys=False),
        summary="Liveness: 200 while the process serves, with the pool's state",
    )
    def health() -> Response[Health]:
        """Always 200 while the server runs, even with no account able to serve: a liveness
        probe that failed then would restart the server for nothing. ``ready`` and ``pool``
        say how the accounts are."""
        return Response(current()[0], status_code=200)

    @route(
        "/health/ready",
        http_method=[HttpMethod.GET, HttpMethod.HEAD],
        sync_to_thread=False,
        tags=["health"],
        responses={
            **errors(keys=False),
            503: ResponseSpec(
                data_container=Health,
                description="No account can serve now; retry-after (seconds) says when one "
                "will by itself, when one will",
                generate_examples=False,
            ),
        },
        summary="Readiness: 200 when an account can serve now, else 503 and when one will",
    )
    def ready() -> Response[Health]:
        """200 when an account can serve right now, 503 otherwise (the body is the same as
        ``/health``'s), so a load balancer sends traffic only to a server that can serve it."""
        body, wait_s = current()
        if body.ready:
            return Response(body, status_code=200)
        headers = {} if wait_s is None else {"retry-after": str(wait_s)}
        return Response(body, status_code=503, headers=headers)

    return health, ready
