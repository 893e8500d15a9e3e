"""The ``session-affinity`` strategy: each client session keeps to one account.

Prompt caches are per account, so a conversation that hops between accounts pays for its
context again on every hop. Pinning each client session spreads sessions across the pool while
keeping each conversation's cache warm.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

from msgspec.structs import replace

from better_ccflare.core import Account, StrategyName

from ._least_used import LeastUsedStrategy
from ._selection import Selection, SelectionRequest

__all__ = ["SessionAffinityStrategy"]

MAX_PINNED_SESSIONS = 10_000


class _Pin(NamedTuple):
    account_id: str
    expires_at_ms: int


class SessionAffinityStrategy(LeastUsedStrategy):
    """Least-used, except that a client session's first account stays first for that session.

    A new session is pinned to the least-used account. Each request of the session extends the
    pin by the session duration. While the pinned account is ineligible the session temporarily
    gets the least-used order, and the pin is kept, so the session snaps back once the account
    is eligible again. Requests without a session id get plain least-used.

    In memory it keeps the pins (an LRU map of at most ``max_sessions`` entries) and the
    least-used recency; only :meth:`select` changes either.
    """

    __slots__ = ("_max_sessions", "_pins")

    name = StrategyName.SESSION_AFFINITY
    summary = (
        "Pin each client session to the account least-used picks for its first request, so its "
        "prompt cache stays warm; requests without a session id get plain least-used."
    )

    def __init__(self, max_sessions: int = MAX_PINNED_SESSIONS) -> None:
        """Create an empty strategy.

        Args:
            max_sessions: How many pins to keep; the least recently used goes first.
        """
        super().__init__()
        self._max_sessions = max_sessions
        self._pins: OrderedDict[str, _Pin] = OrderedDict()

    def _plan(self, accounts: Sequence[Account], request: SelectionRequest) -> Selection:
        spread = super()._plan(accounts, request)
        primary = spread.primary
        if request.session_id is None or primary is None:
            return spread
        pinned_id = self._live_pin(request)
        if pinned_id is None:
            return replace(spread, reason=f"new session pinned to {primary.name}")
        pinned = next((account for account in spread.order if account.id == pinned_id), None)
        if pinned is None:
            return replace(spread, reason=f"pinned {pinned_id} ineligible; {primary.name} for now")
        return Selection(
            order=(pinned, *(account for account in spread.order if account is not pinned)),
            unpause=spread.unpause,
            reason=f"session pinned to {pinned.name}",
        )

    def _commit(self, selection: Selection, request: SelectionRequest) -> None:
        super()._commit(selection, request)
        session_id = request.session_id
        if session_id is None:
            return
        pinned_id = self._live_pin(request)
        if pinned_id is None:
            if selection.primary is None:
                return
            pinned_id = selection.primary.id
        self._pins[session_id] = _Pin(pinned_id, request.now_ms + request.session_duration_ms)
        self._pins.move_to_end(session_id)
        while len(self._pins) > self._max_sessions:
            self._pins.popitem(last=False)

    def _live_pin(self, request: SelectionRequest) -> str | None:
        """The account the request's session is pinned to, if the pin has not expired."""
        if request.session_id is None:
            return None
        pin = self._pins.get(request.session_id)
        if pin is None or request.now_ms >= pin.expires_at_ms:
            return None
        return pin.account_id
