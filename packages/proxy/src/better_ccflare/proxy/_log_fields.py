"""The structured fields of log lines about an account, named the same everywhere.

A JSON log line carries its facts in ``data`` (``docs/observability.md`` lists the names), so
an operator filters on ``data.account`` instead of parsing messages; this keeps the names of
the two that nearly every operator-facing line has in one place.
"""

from __future__ import annotations

from better_ccflare.core import Account

__all__ = ["account_data"]


def account_data(account: Account, **fields: object) -> dict[str, object]:
    """``{"account": <name>, "account_id": <id>}`` and ``fields``, for ``extra={"data": ...}``."""
    return {"account": account.name, "account_id": account.id, **fields}
