"""The reference's control headers a client may send to steer one request.

* ``x-better-ccflare-project`` (or the legacy ``x-project``) attributes the request to a project:
  the value is recorded as the request's ``project`` and can be filtered on in analytics.
* ``x-better-ccflare-account-id`` forces the request onto one account, named by id or by name.
  Choosing the account that spends quota is an operator's decision, so only admin keys may
  (and anyone in open mode, where no proxy key exists and every client is trusted alike). A
  forced request is never failed over to another account: the client asked for that one.

Both are read from the header dict the proxy builds once per request, and neither is ever sent
upstream (``forwardable_request_headers`` drops them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from better_ccflare.core import Account, ApiKey, ApiKeyRole

__all__ = ["FORCE_ACCOUNT_HEADER", "ForcedAccountError", "forced_account", "project_of"]

FORCE_ACCOUNT_HEADER = "x-better-ccflare-account-id"
_PROJECT_HEADER = "x-better-ccflare-project"
_LEGACY_PROJECT_HEADER = "x-project"


def project_of(headers: Mapping[str, str]) -> str | None:
    """The project the client attributes the request to; the first header wins.

    Args:
        headers: The request's headers, with lower-case names.

    Returns:
        The value without surrounding spaces; ``None`` when neither header has one.
    """
    value = headers.get(_PROJECT_HEADER) or headers.get(_LEGACY_PROJECT_HEADER)
    return (value.strip() or None) if value else None


class ForcedAccountError(Exception):
    """The forced account cannot be used; the message is safe to show the client."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def forced_account(
    wanted: str, accounts: Iterable[Account], api_key: ApiKey | None, *, auth_enabled: bool
) -> Account:
    """The account ``x-better-ccflare-account-id: wanted`` forces the request onto.

    Args:
        wanted: The header's value: an account id, else an account name.
        accounts: The pool.
        api_key: The key the client authenticated with; ``None`` in open mode.
        auth_enabled: Whether proxy keys are required (any active key exists).

    Raises:
        ForcedAccountError: 403 for a key that is not an admin key, 400 for an unknown account.
    """
    if auth_enabled and (api_key is None or api_key.role is not ApiKeyRole.ADMIN):
        raise ForcedAccountError(
            403,
            "permission_error",
            f"Only admin API keys may force an account with {FORCE_ACCOUNT_HEADER}; "
            "send the request without it, or with an admin key.",
        )
    wanted = wanted.strip()
    pool = tuple(accounts)
    for account in pool:
        if account.id == wanted:
            return account
    for account in pool:
        if account.name == wanted:
            return account
    raise ForcedAccountError(
        400,
        "invalid_request_error",
        f"{FORCE_ACCOUNT_HEADER} names no account: {wanted!r} is neither an account id "
        "nor an account name (see GET /api/accounts).",
    )
