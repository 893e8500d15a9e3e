"""What a provider reads off an upstream response: its rate-limit signals and its usage.

These types sit apart from :mod:`._contract` because the default readers
(:mod:`._anthropic_api`, :mod:`._sse_usage`) produce them and the contract calls those readers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum

import msgspec

from better_ccflare.core import TokenUsage

__all__ = ["RateLimitInfo", "RateLimitKind", "UsageParser", "UsageResult"]


class RateLimitKind(StrEnum):
    """What a response says about the account's capacity, which decides what the proxy does."""

    NONE = "none"
    """Not limited: serve the response."""
    ACCOUNT_QUOTA = "account_quota"
    """The account's window is used up: cool it down until ``reset_at_ms``, try another account."""
    REQUEST_SCOPED = "request_scoped"
    """A 429 about this request, not the account (no window, no reset): try another, no bench."""
    OUT_OF_CREDITS = "out_of_credits"
    """Overage credits are gone: try another account; do not bench for hours."""
    OVERLOADED = "overloaded"
    """529: the upstream is busy. A short cooldown, then try another account."""


class RateLimitInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's reading of one response's rate-limit signals."""

    kind: RateLimitKind = RateLimitKind.NONE
    status: str | None = None
    """The upstream's own status word (``anthropic-ratelimit-unified-status``), if any."""
    reset_at_ms: int | None = None
    """When the limiting window resets, if the upstream said."""
    remaining: int | None = None
    window: str | None = None
    """The representative window (``five_hour``, ``seven_day``, ...), if the upstream said."""

    @property
    def limited(self) -> bool:
        return self.kind is not RateLimitKind.NONE


class UsageResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a response body said about itself: model, tokens, and any in-band error."""

    model: str | None = None
    usage: TokenUsage = msgspec.field(default_factory=TokenUsage)
    error_type: str | None = None
    """``error.type`` of an in-band error (``overloaded_error``, ``rate_limit_error``, ...)."""
    stop_reason: str | None = None
    message_stopped: bool = False
    """A stream's closing ``message_stop`` arrived (never set for a JSON body)."""


class UsageParser(ABC):
    """Reads usage off response bytes incrementally, without holding the body.

    ``feed`` is called with every chunk exactly as it was sent to the client, split anywhere;
    ``result`` may be called at any time and reflects everything fed so far.
    """

    __slots__ = ()

    @abstractmethod
    def feed(self, chunk: bytes) -> None: ...

    @abstractmethod
    def result(self) -> UsageResult: ...
