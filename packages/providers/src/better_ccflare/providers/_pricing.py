"""What a request cost, from a bundled price table (USD per million tokens).

Anthropic prices cache traffic relative to the model's input price: reads cost 0.1x, writes
that live five minutes 1.25x, writes that live an hour 2x. The two write lifetimes are priced
separately here because many tools bill every write at the 5-minute rate and so undercount
1-hour caching (what Claude Code uses for long sessions) by 37.5 %.

The table is data, looked up by exact model id first and then by a normalised id, so the forms
clients and gateways send (dated ids, Vertex ``@date``, Bedrock ``us.anthropic.*-v1:0``,
OpenRouter ``anthropic/claude-sonnet-4.5``, ``-latest`` aliases) all find the same row. A model
that is not in the table costs 0 and is logged once, so unknown traffic is visible without
flooding the log.

Prices are list prices as of :data:`PRICES_AS_OF`; requests above 200k input tokens on models
with long-context surcharges are priced at the base rate.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType

import msgspec

from better_ccflare.core import TokenUsage

__all__ = ["PRICES", "PRICES_AS_OF", "ModelPrice", "cost_usd", "price_for"]

PRICES_AS_OF = "2026-11-24"
"""When the bundled prices were last checked against the vendors' published list prices."""

_log = logging.getLogger("better_ccflare.providers")
_PER_TOKEN = 1 / 1_000_000


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True):
    """USD per million tokens of each kind."""

    input: float
    output: float
    cache_read: float
    cache_write_5m: float
    cache_write_1h: float

    @classmethod
    def anthropic(cls, input: float, output: float) -> ModelPrice:
        """Anthropic's cache pricing: reads 0.1x, 5-minute writes 1.25x, 1-hour writes 2x input."""
        return cls(
            input=input,
            output=output,
            cache_read=input * 0.1,
            cache_write_5m=input * 1.25,
            cache_write_1h=input * 2,
        )

    @classmethod
    def glm(cls, input: float, output: float, cache_read: float) -> ModelPrice:
        """z.ai pricing: cache hits have their own rate; writing the cache costs plain input."""
        return cls(
            input=input,
            output=output,
            cache_read=cache_read,
            cache_write_5m=input,
            cache_write_1h=input,
        )

    def cost(self, usage: TokenUsage) -> float:
        """USD for ``usage`` at these prices."""
        return _PER_TOKEN * (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_input_tokens * self.cache_read
            + usage.cache_write_5m_input_tokens * self.cache_write_5m
            + usage.cache_write_1h_input_tokens * self.cache_write_1h
        )


def _table(rows: Iterable[tuple[tuple[str, ...], ModelPrice]]) -> Mapping[str, ModelPrice]:
    return MappingProxyType({model: price for models, price in rows for model in models})


PRICES: Mapping[str, ModelPrice] = _table(
    [
        # Anthropic: https://docs.anthropic.com/en/docs/about-claude/pricing
        (("claude-3-5-haiku", "claude-3-5-haiku-20241022"), ModelPrice.anthropic(0.8, 4)),
        (("claude-haiku-4-5", "claude-haiku-4-5-20251001"), ModelPrice.anthropic(1, 5)),
        (
            ("claude-3-5-sonnet", "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022"),
            ModelPrice.anthropic(3, 15),
        ),
        (("claude-3-7-sonnet", "claude-3-7-sonnet-20250219"), ModelPrice.anthropic(3, 15)),
        (
            ("claude-sonnet-4", "claude-sonnet-4-0", "claude-sonnet-4-20250514"),
            ModelPrice.anthropic(3, 15),
        ),
        (("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"), ModelPrice.anthropic(3, 15)),
        (("claude-sonnet-4-6", "claude-sonnet-5"), ModelPrice.anthropic(3, 15)),
        (
            ("claude-opus-4", "claude-opus-4-0", "claude-opus-4-20250514"),
            ModelPrice.anthropic(15, 75),
        ),
        (("claude-opus-4-1", "claude-opus-4-1-20250805"), ModelPrice.anthropic(15, 75)),
        (("claude-opus-4-5", "claude-opus-4-5-20251101"), ModelPrice.anthropic(5, 25)),
        (("claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8"), ModelPrice.anthropic(5, 25)),
        (("claude-fable-5",), ModelPrice.anthropic(10, 50)),
        # z.ai pay-as-you-go list prices: https://docs.z.ai/guides/overview/pricing
        (("glm-4.5", "glm-4.6", "glm-4.7"), ModelPrice.glm(0.6, 2.2, 0.11)),
        (("glm-4.5-air",), ModelPrice.glm(0.2, 1.1, 0.03)),
        (("glm-5",), ModelPrice.glm(1.0, 3.2, 0.2)),
        (("glm-5.1", "glm-5.2", "glm-5.3"), ModelPrice.glm(1.4, 4.4, 0.26)),
    ]
)
"""Model id to price. Dated Anthropic ids are listed for reference; any date resolves anyway."""

_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.")
_SUFFIXES = (
    re.compile(r"\[[^\]]*\]$"),  # Claude Code's "[1m]" context marker
    re.compile(r":[a-z]+$"),  # OpenRouter variants such as ":thinking"
    re.compile(r"-v\d+(?::\d+)?$"),  # Bedrock version, "-v1:0"
    re.compile(r"[-@](?:\d{8}|latest)$"),  # dated snapshot, Vertex "@20250929", "-latest"
)
_DOTTED_VERSION = re.compile(r"(\d)\.(\d)")
_warned: set[str] = set()


def _normalize(model: str) -> str:
    name = model.strip().lower().rsplit("/", 1)[-1]
    name = _BEDROCK_PREFIX.sub("", name)
    for suffix in _SUFFIXES:
        name = suffix.sub("", name)
    if name.startswith("claude"):
        name = _DOTTED_VERSION.sub(r"\1-\2", name)
    return name


@lru_cache(maxsize=1024)
def price_for(model: str) -> ModelPrice | None:
    """The price of ``model``, by exact id and then by normalised id; ``None`` if unknown."""
    return PRICES.get(model) or PRICES.get(_normalize(model))


def cost_usd(model: str | None, usage: TokenUsage) -> float:
    """USD for ``usage`` on ``model``; 0.0 (and one warning per model) when the model is unknown."""
    if model is None:
        return 0.0
    price = price_for(model)
    if price is None:
        if model not in _warned:
            _warned.add(model)
            _log.warning("No price known for model %r; its requests are counted as $0.", model)
        return 0.0
    return price.cost(usage)
