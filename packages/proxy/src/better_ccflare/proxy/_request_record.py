"""The record of one proxied request: its time-ordered id and the fields the history keeps.

The pipeline builds one :class:`~better_ccflare.core.RequestRecord` per client request, whether
it was served, refused or abandoned, and hands it to the store's writer and the live request
events. What goes into each field is decided here; the pipeline only says how the request ended.
"""

from __future__ import annotations

import random
import time
from typing import Protocol

from better_ccflare.core import (
    Account,
    ApiKey,
    BillingType,
    RequestRecord,
    StreamTerminalState,
    TokenUsage,
)
from better_ccflare.providers import PriceTable, UpstreamRequest, UsageResult

from .agents import AgentMatch

__all__ = ["Exchange", "request_record", "time_ordered_id"]


class _Routing(Protocol):
    @property
    def model(self) -> str | None:
        """The model the client asked for."""
        ...


class Exchange(Protocol):
    """What a record is made of that the request itself knows (the pipeline's ``_Exchange``)."""

    @property
    def id(self) -> str: ...
    @property
    def started(self) -> float:
        """``time.perf_counter()`` when the request arrived."""
        ...

    @property
    def started_ms(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def api_key(self) -> ApiKey | None: ...
    @property
    def attempts(self) -> int:
        """Accounts that failed before the one that answered (the failover count)."""
        ...

    @property
    def agent(self) -> AgentMatch | None:
        """The subagent the request came from, if any."""
        ...

    @property
    def project(self) -> str | None:
        """The project the client attributed the request to (``x-better-ccflare-project``)."""
        ...

    @property
    def routing(self) -> _Routing: ...
    @property
    def generation_s(self) -> float | None:
        """Seconds from the first streamed content delta to the stream's end; ``None`` when
        the reply was not a stream with content."""
        ...

    def session_id(self) -> str | None: ...


def request_record(
    exchange: Exchange,
    account: Account | None,
    status: int,
    terminal: StreamTerminalState | None,
    result: UsageResult | None,
    *,
    error: str | None,
    request: UpstreamRequest | None,
    prices: PriceTable,
    billing: BillingType | None = None,
) -> RequestRecord:
    """The record of ``exchange``, ended now with ``status``.

    Args:
        exchange: The request.
        account: The account that answered; ``None`` when none did.
        status: The status the client got.
        terminal: How the response stream ended; ``None`` when no upstream response was sent.
        result: What the usage parser read off the response, if one was forwarded.
        error: Why the request failed, if it did; a failed request is never a success.
        request: The upstream request of the answering account (its model mapping).
        prices: What each model costs; a model it has no price for gets an unknown cost.
        billing: How the answer was paid for (``_billing``); ``None`` when no account answered.
    """
    elapsed_ms = int((time.perf_counter() - exchange.started) * 1000)
    usage = result.usage if result is not None else TokenUsage()
    model = (result.model if result is not None else None) or exchange.routing.model
    api_key = exchange.api_key
    agent = exchange.agent
    original_model = request.client_model if request is not None else None
    applied_model = request.upstream_model if request is not None else None
    if agent is not None and agent.rewritten:
        # The client asked for another model than the one its agent's preference sent.
        original_model = agent.original_model
        applied_model = applied_model or agent.routing.model
    return RequestRecord(
        id=exchange.id,
        timestamp_ms=exchange.started_ms,
        method=exchange.method,
        path=exchange.path,
        account_id=account.id if account is not None else None,
        status_code=status,
        success=200 <= status < 300 and error is None,
        error_message=error,
        response_time_ms=elapsed_ms,
        failover_attempts=exchange.attempts,
        model=model,
        usage=usage,
        cost_usd=prices.cost_usd(model, usage),
        output_tokens_per_second=output_speed(usage.output_tokens, exchange.generation_s),
        client_session_id=exchange.session_id(),
        agent_used=agent.agent_id if agent is not None else None,
        agent_attribution_source=agent.source if agent is not None else None,
        api_key_id=api_key.id if api_key is not None else None,
        api_key_name=api_key.name if api_key is not None else None,
        stream_terminal_state=terminal,
        original_model=original_model,
        applied_model=applied_model,
        billing_type=billing,
        project=exchange.project,
    )


MIN_GENERATION_S = 0.1
"""Shorter generation spans are not timed: a stream that arrived in one or two reads says
nothing about the model's speed, and dividing by microseconds gives thousands of tokens/s."""


def output_speed(output_tokens: int, generation_s: float | None) -> float | None:
    """Output tokens per second of generation, for streamed replies only.

    The span runs from the first content delta to the stream's end, so neither the wait for the
    first token nor a non-streamed reply (whose body arrives at once) distorts the rate.
    """
    if not output_tokens or generation_s is None or generation_s < MIN_GENERATION_S:
        return None
    return output_tokens / generation_s


_random_bits = random.Random().getrandbits  # noqa: S311 (a key, not a secret: see below)


def time_ordered_id(now_ms: int) -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: 48 bits of milliseconds, then 74 random bits.

    Request ids are the ``requests`` table's primary key. Random ids (UUIDv4) land all over its
    index, so every recorded batch dirties a page per row; ids that grow with time are appended
    at the index's end: 15 to 30 % less writer-thread CPU per recorded row (the proxy-overhead
    section of ``docs/performance.md``).

    The random bits come from ``random`` (seeded from the OS at start-up), not ``os.urandom``:
    an id is a key, not a secret, and ``os.urandom`` lets go of the GIL for its system call,
    which on a busy proxy hands the interpreter to the database writer in the middle of a
    request.
    """
    rand = _random_bits(74)
    value = (now_ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
    return f"{value | rand & 0x3FFF_FFFF_FFFF_FFFF:032x}"
