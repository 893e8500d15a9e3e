"""Anthropic console API keys (``claude-console-api``).

The key goes in ``x-api-key``, as the Anthropic API expects for keys. The reference sent it as
``Authorization: Bearer`` with the OAuth beta, as if it were an OAuth token; that works only by
accident of the API's leniency, so this provider does not. An enterprise gateway can be set as
the account's ``custom_endpoint``. Rate limits are Anthropic's headers, read by the contract's
default (:mod:`._anthropic_api`); console keys have no usage endpoint.
"""

from __future__ import annotations

from typing import ClassVar

from better_ccflare.core import OAuthMode, ProviderKind

from ._anthropic_api import ANTHROPIC_API
from ._anthropic_compatible import EndpointProvider
from ._endpoint import Endpoint

__all__ = ["ConsoleProvider"]


class ConsoleProvider(EndpointProvider):
    """An Anthropic console API key: every default of :class:`~._contract.Provider` applies."""

    id: ClassVar[str] = ProviderKind.CONSOLE.value
    display_name: ClassVar[str] = "Anthropic Console API key"
    default_endpoint: ClassVar[Endpoint] = ANTHROPIC_API
    oauth_login: ClassVar[OAuthMode | None] = OAuthMode.CONSOLE

    type_aliases: ClassVar[tuple[str, ...]] = ("console",)
    """The name ``--mode`` used before."""
