"""The small interface every load-balancing strategy implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from better_ccflare.core import Account, StrategyName

from ._selection import Selection, SelectionRequest

__all__ = ["Strategy"]


class Strategy(ABC):
    """Orders the account pool for one request.

    A strategy is split into planning (pure: the answer for these inputs and the current
    in-memory state) and committing (remembering the answer, for strategies that keep state).
    :meth:`select` does both; :meth:`peek` only plans, so it always mirrors :meth:`select` and
    never disturbs it.
    """

    __slots__ = ()

    name: ClassVar[StrategyName]
    """The ``LB_STRATEGY`` value that selects this strategy."""
    summary: ClassVar[str]
    """One sentence for people choosing a strategy (the dashboard's settings, ``/api/strategies``);
    it states the ordering the code implements, so it lives beside that code."""

    def select(self, accounts: Sequence[Account], request: SelectionRequest) -> Selection:
        """Order the eligible accounts for a request and update the strategy's memory.

        This is the only method that changes a strategy's in-memory state.

        Args:
            accounts: The pool, in any order.
            request: The time, client session and usage the decision may depend on.

        Returns:
            The order to try and the state changes the caller must persist.
        """
        selection = self._plan(accounts, request)
        self._commit(selection, request)
        return selection

    def peek(self, accounts: Sequence[Account], request: SelectionRequest) -> str | None:
        """The id :meth:`select` would try first for the same inputs, without changing anything.

        The dashboard's "Primary" badge uses this, so it must not count as a pick.

        Args:
            accounts: The pool, in any order.
            request: As for :meth:`select`.

        Returns:
            The first account's id, or ``None`` when no account is eligible.
        """
        primary = self._plan(accounts, request).primary
        return None if primary is None else primary.id

    @abstractmethod
    def _plan(self, accounts: Sequence[Account], request: SelectionRequest) -> Selection:
        """Decide without side effects."""

    def _commit(self, selection: Selection, request: SelectionRequest) -> None:
        """Remember a decision; stateless strategies have nothing to remember."""
        return
