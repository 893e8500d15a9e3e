"""Where the request path and the auto-refresh probes get an account's credentials.

Both depend on this protocol rather than on :class:`~better_ccflare.proxy.TokenManager`, its one
implementation, so their tests can hand them scripted credentials without an OAuth server.
"""

from __future__ import annotations

from typing import Protocol

from better_ccflare.core import Account, Credentials

__all__ = ["CredentialSource"]


class CredentialSource(Protocol):
    """Fresh credentials for an account (the token manager)."""

    async def credentials_for(self, account: Account) -> Credentials:
        """Credentials to send upstream now, refreshed first when they are about to expire."""
        ...

    async def force_refresh(self, account: Account, rejected: Credentials) -> Credentials:
        """Credentials to retry with after the upstream answered 401 to ``rejected``."""
        ...
