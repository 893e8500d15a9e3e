"""The ``least-used`` strategy: the preferred account with the most quota left."""

from __future__ import annotations

from collections.abc import Sequence

from better_ccflare.core import Account, StrategyName

from ._eligibility import eligible_pool
from ._ranking import preference_key
from ._selection import Selection, SelectionRequest
from ._strategy import Strategy

__all__ = ["LeastUsedStrategy"]

RECENT_PICK_WINDOW_MS = 500
RECENT_PICK_PENALTY = 100.0
"""Added to the utilization of an account picked in the last :data:`RECENT_PICK_WINDOW_MS`.

Utilization comes from a usage cache refreshed every minute or so; without the penalty a burst
of requests would all land on the account that looked least used at the last refresh.
"""


class LeastUsedStrategy(Strategy):
    """Lowest priority number first, then lowest utilization (plus the recency penalty).

    In memory it keeps when each account was last put first; only :meth:`select` updates that.
    """

    __slots__ = ("_picked_at_ms",)

    name = StrategyName.LEAST_USED
    summary = (
        "Every request takes the lowest priority number, then the account with the most quota "
        "left (its usage window least used); an account picked in the last half second counts "
        "as fully used, so bursts spread."
    )

    def __init__(self) -> None:
        self._picked_at_ms: dict[str, int] = {}

    def _plan(self, accounts: Sequence[Account], request: SelectionRequest) -> Selection:
        pool, unpause = eligible_pool(accounts, request)
        order = tuple(
            sorted(
                pool,
                key=lambda account: preference_key(
                    account, request.usage, self._penalty(account.id, request.now_ms)
                ),
            )
        )
        reason = f"least used: {order[0].name}" if order else "no eligible account"
        return Selection(order=order, unpause=unpause, reason=reason)

    def _commit(self, selection: Selection, request: SelectionRequest) -> None:
        if selection.primary is None:
            return
        # Forget picks too old to matter, so the map never outgrows the pool.
        horizon_ms = request.now_ms - RECENT_PICK_WINDOW_MS
        for account_id in [i for i, at in self._picked_at_ms.items() if at <= horizon_ms]:
            del self._picked_at_ms[account_id]
        self._picked_at_ms[selection.primary.id] = request.now_ms

    def _penalty(self, account_id: str, now_ms: int) -> float:
        picked_at_ms = self._picked_at_ms.get(account_id)
        if picked_at_ms is None or now_ms - picked_at_ms >= RECENT_PICK_WINDOW_MS:
            return 0.0
        return RECENT_PICK_PENALTY
