"""The ``session`` strategy: stay on one account for its usage window.

Anthropic plans count usage in 5-hour windows that start with the first request. Spreading
requests opens windows on every account at once and burns them together; staying on one
account until it is spent (or a preferred one is back) keeps the others fresh for later.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from better_ccflare.core import Account, StrategyName

from ._eligibility import PLAN_PROVIDERS, eligible_pool
from ._ranking import preference_key
from ._selection import Selection, SelectionRequest
from ._strategy import Strategy

__all__ = ["SessionStrategy"]


class SessionWindowStrategy(Strategy):
    """What ``session`` and ``session-drain-soonest`` share.

    Subclasses rank the pool for a fresh pick and decide who leads; this class filters the
    pool, puts the leader first and starts its session when the old one is stale.
    """

    __slots__ = ()

    def _plan(self, accounts: Sequence[Account], request: SelectionRequest) -> Selection:
        pool, unpause = eligible_pool(accounts, request)
        if not pool:
            return Selection(order=(), unpause=unpause, reason="no eligible account")
        ranked = self._rank(pool, request)
        lead, reason = self._lead(pool, ranked, request)
        order = (lead, *(account for account in ranked if account is not lead))
        start = frozenset({lead.id}) if session_is_stale(lead, request) else frozenset[str]()
        return Selection(order=order, start_session=start, unpause=unpause, reason=reason)

    @abstractmethod
    def _rank(self, pool: list[Account], request: SelectionRequest) -> list[Account]:
        """The whole pool, best fresh pick first."""

    @abstractmethod
    def _lead(
        self, pool: list[Account], ranked: list[Account], request: SelectionRequest
    ) -> tuple[Account, str]:
        """The account to try first, and why."""


class SessionStrategy(SessionWindowStrategy):
    """Stay on the account with the open session; a strictly preferred account takes over.

    Stateless: the session lives in the accounts (``session.started_at_ms``), which the caller
    updates from :attr:`Selection.start_session`.
    """

    __slots__ = ()

    name = StrategyName.SESSION
    summary = (
        "Stay on one account for its usage window (the default, kindest to prompt caches): "
        "a fresh pick takes the lowest priority number, then the most quota left; a strictly "
        "preferred account takes over."
    )

    def _rank(self, pool: list[Account], request: SelectionRequest) -> list[Account]:
        return sorted(pool, key=lambda account: preference_key(account, request.usage))

    def _lead(
        self, pool: list[Account], ranked: list[Account], request: SelectionRequest
    ) -> tuple[Account, str]:
        best = ranked[0]
        active = active_session(pool, request)
        if active is None:
            return best, f"new session on {best.name}"
        if best.priority < active.priority:
            return best, f"{best.name} (priority {best.priority}) preempts {active.name}"
        return active, f"continuing session on {active.name}"


def active_session(pool: list[Account], request: SelectionRequest) -> Account | None:
    """The eligible plan account whose session began most recently and is still running.

    Ties go to the preferred account, so the answer does not depend on input order.
    """
    running = [
        account
        for account in pool
        if account.provider in PLAN_PROVIDERS
        and account.session.started_at_ms is not None
        and request.now_ms - account.session.started_at_ms < request.session_duration_ms
    ]
    if not running:
        return None
    return min(
        running,
        key=lambda account: (
            -(account.session.started_at_ms or 0),
            preference_key(account, request.usage),
        ),
    )


def session_is_stale(account: Account, request: SelectionRequest) -> bool:
    """True when the account about to lead needs a new session.

    That is when it has none, when it is older than the session duration, or when the
    upstream window reset after the session began (so the proxy's window no longer matches the
    upstream's). Only plan providers have sessions.
    """
    if account.provider not in PLAN_PROVIDERS:
        return False
    started_at_ms = account.session.started_at_ms
    if started_at_ms is None or request.now_ms - started_at_ms >= request.session_duration_ms:
        return True
    reset_at_ms = account.rate_limit.reset_at_ms
    return reset_at_ms is not None and started_at_ms < reset_at_ms <= request.now_ms
