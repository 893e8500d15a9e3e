"""State of an OAuth login that has started but not yet finished."""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["OAuthMode", "OAuthSession"]


class OAuthMode(StrEnum):
    CLAUDE_OAUTH = "claude-oauth"
    """Log in to a Claude subscription (claude.ai)."""
    CONSOLE = "console"
    """Log in to the Anthropic console and mint an API key."""


class OAuthSession(msgspec.Struct, frozen=True, kw_only=True):
    """A pending PKCE login: the verifier waits here until the user pastes the code back."""

    id: str
    account_name: str
    verifier: str
    mode: OAuthMode
    created_at_ms: int
    expires_at_ms: int
    custom_endpoint: str | None = None
    priority: int = 0

    def __repr__(self) -> str:
        return (
            f"OAuthSession(id={self.id!r}, account_name={self.account_name!r}, mode={self.mode!r}, "
            f"expires_at_ms={self.expires_at_ms}, verifier=<redacted>)"
        )
