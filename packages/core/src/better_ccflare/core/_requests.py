"""The record kept for every proxied request."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from ._accounts import BillingType

__all__ = ["RequestRecord", "StreamTerminalState", "TokenUsage"]


class StreamTerminalState(StrEnum):
    """How a response body ended, as far as the proxy could see."""

    COMPLETED = "completed"
    CLIENT_DISCONNECTED = "client_disconnected"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_CLOSED = "upstream_closed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    """The server shut down before the response ended (the grace period ran out)."""


class TokenUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Tokens by kind. Cache writes are split by lifetime because they are priced differently."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_5m_input_tokens: int = 0
    cache_write_1h_input_tokens: int = 0

    @property
    def cache_creation_input_tokens(self) -> int:
        """All cache writes, as Anthropic's ``cache_creation_input_tokens`` counts them."""
        return self.cache_write_5m_input_tokens + self.cache_write_1h_input_tokens

    @property
    def prompt_tokens(self) -> int:
        """Every input-side token: plain input plus cache reads and writes."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One row of request history: who served it, how it went, what it cost."""

    id: str
    timestamp_ms: int
    method: str
    path: str
    account_id: str | None = None
    """The account that produced the response; ``None`` when none could serve it."""
    status_code: int | None = None
    success: bool = False
    error_message: str | None = None
    response_time_ms: int | None = None
    failover_attempts: int = 0
    model: str | None = None
    usage: TokenUsage = msgspec.field(default_factory=TokenUsage)
    cost_usd: float | None = 0.0
    """USD at the model's list price (or the config's ``model_prices``); ``None`` when the
    request used tokens of a model no price is known for: unknown, not free."""
    output_tokens_per_second: float | None = None
    agent_used: str | None = None
    api_key_id: str | None = None
    api_key_name: str | None = None
    project: str | None = None
    billing_type: BillingType | None = None
    original_model: str | None = None
    applied_model: str | None = None
    stream_terminal_state: StreamTerminalState | None = None
    client_session_id: str | None = None
