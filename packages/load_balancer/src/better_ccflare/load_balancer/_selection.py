"""What a strategy is asked and what it answers, as plain data.

A strategy never reads the clock, the database or the usage cache itself: the proxy gathers
everything into a :class:`SelectionRequest`, and gets back a :class:`Selection` whose state
changes (sessions to start, accounts to unpause) it must persist. That keeps every strategy a
pure function of its inputs plus a little in-memory state, which is what lets hypothesis drive it.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from better_ccflare.core import Account

__all__ = ["DEFAULT_SESSION_DURATION_MS", "AccountUsage", "Selection", "SelectionRequest"]

DEFAULT_SESSION_DURATION_MS = 5 * 60 * 60 * 1000
"""Five hours: the length of an Anthropic usage window, and the config default."""


class AccountUsage(msgspec.Struct, frozen=True, kw_only=True):
    """The usage cache's view of one account, reduced to what ranking needs."""

    utilization: float | None = None
    """Representative percent used (0-100, above 100 with overage); unknown ranks as 0."""
    resets_at_ms: int | None = None
    """When the representative window resets; decides whether 100 % means exhausted."""
    weekly_resets_at_ms: int | None = None
    """When the weekly (``seven_day``) window resets; ``session-drain-soonest`` drains it first."""


class SelectionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a strategy may know about one incoming request."""

    now_ms: int
    """The only notion of "now" a strategy has."""
    session_id: str | None = None
    """The client's session key (``metadata.user_id`` or ``x-claude-code-session-id``)."""
    usage: Mapping[str, AccountUsage] = msgspec.field(default_factory=dict[str, AccountUsage])
    """Usage by account id; an account without an entry has unknown usage."""
    session_duration_ms: int = DEFAULT_SESSION_DURATION_MS
    """How long a session (and a session-affinity pin) lasts; ``Config.session_duration_ms``."""


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """A strategy's answer: whom to try, in order, and what the caller must persist."""

    order: tuple[Account, ...]
    """Every eligible account exactly once, best first; failover walks it. Empty when none is
    eligible. Accounts are returned as given, so one listed in :attr:`unpause` still says
    ``paused=True`` here."""
    start_session: frozenset[str] = frozenset()
    """Ids whose session restarts now (``session.started_at_ms = now``, request count 0)."""
    unpause: frozenset[str] = frozenset()
    """Ids of paused accounts that auto-fallback lifts; clear ``paused`` and ``pause_reason``."""
    reason: str = ""
    """Why the first account was chosen, for logs and debugging."""

    @property
    def primary(self) -> Account | None:
        """The account to try first, or ``None`` when no account is eligible."""
        return self.order[0] if self.order else None
