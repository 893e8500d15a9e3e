"""How a served request is paid for: a subscription plan, the API, or overage on a plan.

Anthropic says so in its unified rate-limit headers (the reference's usage collector reads the
same ones): ``anthropic-ratelimit-unified-overage-in-use: true`` means the request was billed
as pay-as-you-go overage on a subscription, an overage status of ``rejected`` or
``org_level_disabled`` means the plan carried it. Otherwise the account's own setting decides,
then its provider: subscriptions (Claude OAuth, z.ai) are plans, everything else the API.
"""

from __future__ import annotations

from collections.abc import Mapping

from better_ccflare.core import Account, BillingType, ProviderKind

__all__ = ["OVERAGE_IN_USE_HEADER", "billing_type"]

OVERAGE_IN_USE_HEADER = "anthropic-ratelimit-unified-overage-in-use"
_OVERAGE_STATUS_HEADER = "anthropic-ratelimit-unified-overage-status"
_PLAN_ONLY_STATUSES = frozenset({"rejected", "org_level_disabled"})
_PLAN_PROVIDERS = frozenset({ProviderKind.CLAUDE_OAUTH.value, ProviderKind.ZAI.value})
"""The reference also counts its API-key ``anthropic`` accounts as plans; a console key is
billed per token, so here it is ``api``."""


def billing_type(account: Account, headers: Mapping[str, str]) -> BillingType:
    """The billing type of a response ``account`` served with ``headers`` (names lower case)."""
    if headers.get(OVERAGE_IN_USE_HEADER, "").strip().lower() == "true":
        return BillingType.OVERAGE
    if headers.get(_OVERAGE_STATUS_HEADER, "").strip().lower() in _PLAN_ONLY_STATUSES:
        return BillingType.PLAN
    if account.billing_type is not None:
        return account.billing_type
    return BillingType.PLAN if account.provider in _PLAN_PROVIDERS else BillingType.API
