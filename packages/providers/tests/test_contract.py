"""The provider contract's promises, checked on every built-in provider."""

from __future__ import annotations

import pytest

from better_ccflare.core import Credentials
from better_ccflare.providers import Provider, builtin_providers

# Expired, missing and far-from-expiry tokens: a provider whose needs_refresh can be true says
# so for at least one of these.
_SAMPLES = (
    Credentials(),
    Credentials(api_key="sk-test"),
    Credentials(access_token="token", expires_at_ms=0),
    Credentials(access_token="token", expires_at_ms=10**15),
)


_BUILTINS = builtin_providers()


@pytest.mark.parametrize("provider", _BUILTINS, ids=[provider.id for provider in _BUILTINS])
def test_refreshes_tokens_says_whether_needs_refresh_can_be_true(provider: Provider) -> None:
    can_need_refresh = any(provider.needs_refresh(sample, 1_000) for sample in _SAMPLES)
    assert provider.refreshes_tokens is can_need_refresh
    if not provider.refreshes_tokens:
        # Never true for any credentials: the contract's default, which always says no.
        assert type(provider).needs_refresh is Provider.needs_refresh
