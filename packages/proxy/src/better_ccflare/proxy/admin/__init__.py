"""Operator services: what the CLI and the management API call to change the proxy's setup.

Adding and editing accounts, resetting their cooldowns, creating and changing proxy API keys, and
reading how close each account's refresh token is to its end. Both front ends go through these
functions so the same rules hold whichever way an operator makes a change. None of it runs on
the request path.
"""

from ._account_edit import AccountEdit, edit_account
from ._account_setup import (
    AccountMode,
    AccountType,
    NewAccount,
    account_types,
    add_account,
    check_new_account,
    logs_in_only,
    reset_rate_limit,
    validate_account_name,
)
from ._api_key_admin import change_api_key, create_api_key
from ._key_limits_admin import KeyUse, key_use, set_api_key_limits
from ._token_health import TokenHealthReport, TokenHealthStatus, token_health

__all__ = [
    "AccountEdit",
    "AccountMode",
    "AccountType",
    "KeyUse",
    "NewAccount",
    "TokenHealthReport",
    "TokenHealthStatus",
    "account_types",
    "add_account",
    "change_api_key",
    "check_new_account",
    "create_api_key",
    "edit_account",
    "key_use",
    "logs_in_only",
    "reset_rate_limit",
    "set_api_key_limits",
    "token_health",
    "validate_account_name",
]
