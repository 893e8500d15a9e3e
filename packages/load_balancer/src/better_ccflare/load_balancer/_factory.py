"""Building a strategy from its configured name."""

from __future__ import annotations

from better_ccflare.core import StrategyName

from ._drain_soonest import SessionDrainSoonestStrategy
from ._least_used import LeastUsedStrategy
from ._session import SessionStrategy
from ._session_affinity import SessionAffinityStrategy
from ._session_pins import SessionPins
from ._strategy import Strategy

__all__ = ["create_strategy"]

_STRATEGIES: dict[StrategyName, type[Strategy]] = {
    StrategyName.SESSION: SessionStrategy,
    StrategyName.LEAST_USED: LeastUsedStrategy,
    StrategyName.SESSION_AFFINITY: SessionAffinityStrategy,
    StrategyName.SESSION_DRAIN_SOONEST: SessionDrainSoonestStrategy,
}


def create_strategy(name: StrategyName, *, pins: SessionPins | None = None) -> Strategy:
    """A fresh strategy for ``LB_STRATEGY`` / ``lb_strategy``.

    Construction is cheap and starts with empty memory (but for the pins given), so hot-swapping
    on a config change is just replacing the instance the proxy holds.

    Args:
        name: The configured strategy.
        pins: The session pins ``session-affinity`` keeps to (the service's, shared with the
            other instances); others ignore them.

    Returns:
        A new instance of that strategy.
    """
    if name is StrategyName.SESSION_AFFINITY and pins is not None:
        return SessionAffinityStrategy(pins=pins)
    return _STRATEGIES[name]()
