"""Pure account-selection strategies for better-ccflare.

Each strategy orders the account pool for one request from data alone (the accounts, the time
and the cached usage, all passed in), so it does no I/O and can be driven by hypothesis.
"""

from ._drain_soonest import SessionDrainSoonestStrategy
from ._eligibility import (
    PLAN_PROVIDERS,
    eligible_at_ms,
    is_eligible,
    is_usage_exhausted,
    would_auto_unpause,
)
from ._factory import create_strategy
from ._least_used import LeastUsedStrategy
from ._selection import DEFAULT_SESSION_DURATION_MS, AccountUsage, Selection, SelectionRequest
from ._session import SessionStrategy
from ._session_affinity import SessionAffinityStrategy
from ._session_pins import SessionPins, SharePin
from ._strategy import Strategy

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SESSION_DURATION_MS",
    "PLAN_PROVIDERS",
    "AccountUsage",
    "LeastUsedStrategy",
    "Selection",
    "SelectionRequest",
    "SessionAffinityStrategy",
    "SessionDrainSoonestStrategy",
    "SessionPins",
    "SessionStrategy",
    "SharePin",
    "Strategy",
    "create_strategy",
    "eligible_at_ms",
    "is_eligible",
    "is_usage_exhausted",
    "would_auto_unpause",
]
