"""The ``session-affinity`` strategy: each client session keeps to one account.

Prompt caches are per account, so a conversation that hops between accounts pays for its
context again on every hop. Pinning each client session spreads sessions across the pool while
keeping each conversation's cache warm.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec.structs import replace

from better_ccflare.core import Account, StrategyName

from ._least_used import LeastUsedStrategy
from ._selection import Selection, SelectionRequest
from ._session_pins import MAX_PINNED_SESSIONS, SessionPins

__all__ = ["SessionAffinityStrategy"]


class SessionAffinityStrategy(LeastUsedStrategy):
    """Least-used, except that a client session's first account stays first for that session.

    A new session is pinned to the least-used account. Each request of the session extends the
    pin by the session duration. While the pinned account is ineligible the session temporarily
    gets the least-used order, and the pin is kept, so the session snaps back once the account
    is eligible again. Requests without a session id get plain least-used.

    In memory it keeps the least-used recency and, in :class:`SessionPins`, the pins; of what
    happens here, only :meth:`select` changes either.
    """

    __slots__ = ("_pins",)

    name = StrategyName.SESSION_AFFINITY
    summary = (
        "Pin each client session to the account least-used picks for its first request, so its "
        "prompt cache stays warm; requests without a session id get plain least-used."
    )

    def __init__(
        self, max_sessions: int = MAX_PINNED_SESSIONS, *, pins: SessionPins | None = None
    ) -> None:
        """Create a strategy.

        Args:
            max_sessions: How many pins to keep, when ``pins`` is not given.
            pins: The pins to keep to and add to (shared with other instances, and kept across
                strategy switches, by the service); new and empty by default.
        """
        super().__init__()
        self._pins = pins if pins is not None else SessionPins(max_sessions)

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
        self._pins.pin(session_id, pinned_id, request.now_ms + request.session_duration_ms)

    def _live_pin(self, request: SelectionRequest) -> str | None:
        """The account the request's session is pinned to, if the pin has not expired."""
        if request.session_id is None:
            return None
        return self._pins.live(request.session_id, request.now_ms)
