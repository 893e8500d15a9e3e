"""Names of the load-balancing strategies and their stored settings."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

__all__ = ["AgentPreference", "SessionPin", "StrategyName", "StrategySettings"]


class StrategyName(StrEnum):
    SESSION = "session"
    """Stay on one account for its usage window; the default."""
    LEAST_USED = "least-used"
    SESSION_AFFINITY = "session-affinity"
    """Pin each client session to an account (prompt caches are per account)."""
    SESSION_DRAIN_SOONEST = "session-drain-soonest"


class StrategySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Per-strategy options kept in the ``strategies`` table."""

    name: str
    config: dict[str, Any] = msgspec.field(default_factory=dict[str, Any])
    updated_at_ms: int = 0


class AgentPreference(msgspec.Struct, frozen=True, kw_only=True):
    """The model a Claude Code subagent should use, overriding what the client asked for."""

    agent_id: str
    model: str
    updated_at_ms: int


class SessionPin(msgspec.Struct, frozen=True, kw_only=True):
    """A client session kept to one account by ``session-affinity``, until ``expires_at_ms``;
    stored so that every instance over one database keeps the session on that account."""

    session_id: str
    account_id: str
    expires_at_ms: int
