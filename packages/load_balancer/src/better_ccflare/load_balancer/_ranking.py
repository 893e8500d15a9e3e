"""The one ordering every strategy builds on: priority first, then how used an account is.

Strategies differ only in what they put in front of this key (drain-soonest: the weekly reset)
or add to the utilization (least-used: a recency penalty), so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from better_ccflare.core import Account

from ._selection import AccountUsage

__all__: list[str] = []

PreferenceKey = tuple[int, float, str, str]


def utilization_of(usage: AccountUsage | None) -> float:
    """Representative utilization in percent; unknown counts as unused, like the reference."""
    if usage is None or usage.utilization is None:
        return 0.0
    return usage.utilization


def preference_key(
    account: Account, usage: Mapping[str, AccountUsage], penalty: float = 0.0
) -> PreferenceKey:
    """Sort key: lower priority number, then lower utilization plus ``penalty``, then name and
    id, so equal accounts always come out in the same order whatever order they came in."""
    return (
        account.priority,
        utilization_of(usage.get(account.id)) + penalty,
        account.name,
        account.id,
    )
