"""What a request cost, from a bundled price table and the user's own prices (USD per million
tokens).

Anthropic prices cache traffic relative to the model's input price: reads cost 0.1x, writes
that live five minutes 1.25x, writes that live an hour 2x. The two write lifetimes are priced
separately here because many tools bill every write at the 5-minute rate and so undercount
1-hour caching (what Claude Code uses for long sessions) by 37.5 %.

The table is data, looked up by exact model id first and then by a normalised id, so the forms
clients and gateways send (dated ids, Vertex ``@date``, Bedrock ``us.anthropic.*-v1:0``,
OpenRouter ``anthropic/claude-sonnet-4.5``, NanoGPT ``zai-org/GLM-4.6``, ``-latest`` aliases) all
find the same row. It covers the models of every built-in provider's own upstream: Anthropic
(Claude OAuth, console, Vertex AI), z.ai's GLM, MiniMax, and for OpenAI-compatible endpoints
the OpenAI and DeepSeek models. Gateways (NanoGPT, OpenRouter, an Anthropic-compatible
endpoint) are priced at the underlying model's list price, not the gateway's own rates.

A :class:`PriceTable` puts the user's prices (the config file's ``model_prices``) over the
bundled ones. A request that used tokens of a model neither knows has an *unknown* cost
(``None``), never $0, and the model is logged once, so unpriced traffic is visible without
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

from better_ccflare.core import ModelPriceConfig, TokenUsage

__all__ = ["PRICES", "PRICES_AS_OF", "ModelPrice", "PriceTable", "cost_usd", "price_for"]

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

    @classmethod
    def openai(cls, input: float, output: float, cache_read: float) -> ModelPrice:
        """OpenAI-style pricing (OpenAI, DeepSeek): cached input has its own rate, and
        caching is automatic, so nothing is billed for writing the cache beyond plain input."""
        return cls.glm(input, output, cache_read)

    @classmethod
    def from_config(cls, price: ModelPriceConfig) -> ModelPrice:
        """A price from the config file; missing cache prices are plain input."""
        write = price.input if price.cache_write is None else price.cache_write
        return cls(
            input=price.input,
            output=price.output,
            cache_read=price.input if price.cache_read is None else price.cache_read,
            cache_write_5m=write,
            cache_write_1h=write,
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
        # MiniMax pay-as-you-go, https://platform.minimax.io/docs/guides/pricing-paygo (checked
        # 2026-04-21; M2 and M2.1 as the reference bundled them). Lower case: ids are looked up
        # case-insensitively after an exact miss.
        (
            ("minimax-m2", "minimax-m2.1"),
            ModelPrice(
                input=0.3, output=1.2, cache_read=0.03, cache_write_5m=0.375, cache_write_1h=0.375
            ),
        ),
        (
            ("minimax-m2.7",),
            ModelPrice(
                input=0.3, output=1.2, cache_read=0.06, cache_write_5m=0.375, cache_write_1h=0.375
            ),
        ),
        (
            ("minimax-m2.7-highspeed",),
            ModelPrice(
                input=0.6, output=2.4, cache_read=0.06, cache_write_5m=0.375, cache_write_1h=0.375
            ),
        ),
        # OpenAI, https://openai.com/api/pricing (checked 2025-08-07).
        (("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20"), ModelPrice.openai(2.5, 10, 1.25)),
        (("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ModelPrice.openai(0.15, 0.6, 0.075)),
        (("gpt-4.1", "gpt-4.1-2025-04-14"), ModelPrice.openai(2, 8, 0.5)),
        (("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14"), ModelPrice.openai(0.4, 1.6, 0.1)),
        (("gpt-4.1-nano", "gpt-4.1-nano-2025-04-14"), ModelPrice.openai(0.1, 0.4, 0.025)),
        (("o3", "o3-2025-04-16"), ModelPrice.openai(2, 8, 0.5)),
        (("o4-mini", "o4-mini-2025-04-16"), ModelPrice.openai(1.1, 4.4, 0.275)),
        (("gpt-5", "gpt-5-2025-08-07"), ModelPrice.openai(1.25, 10, 0.125)),
        (("gpt-5-mini", "gpt-5-mini-2025-08-07"), ModelPrice.openai(0.25, 2, 0.025)),
        (("gpt-5-nano", "gpt-5-nano-2025-08-07"), ModelPrice.openai(0.05, 0.4, 0.005)),
        # DeepSeek V3.2, https://api-docs.deepseek.com/quick_start/pricing (checked 2025-09-29).
        (("deepseek-chat", "deepseek-reasoner"), ModelPrice.openai(0.28, 0.42, 0.028)),
    ]
)
"""Model id to price. Dated ids are listed for reference; any date resolves anyway."""

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


class PriceTable:
    """The bundled prices with the user's own on top: theirs win, for the exact id and for
    every form of it that normalises the same way.

    Args:
        overrides: Prices by model id, usually the config file's ``model_prices``.
    """

    __slots__ = ("_found", "_overrides")

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        given = dict(overrides or {})
        self._overrides = {**{_normalize(m): p for m, p in given.items()}, **given}
        self._found: dict[str, ModelPrice | None] = {}

    @classmethod
    def from_config(cls, prices: Mapping[str, ModelPriceConfig]) -> PriceTable:
        """The table for the config file's ``model_prices``."""
        return cls({model: ModelPrice.from_config(price) for model, price in prices.items()})

    def price_for(self, model: str) -> ModelPrice | None:
        """The price of ``model``: the user's, else the bundled one; ``None`` if neither."""
        if model in self._found:
            return self._found[model]
        if not self._overrides:
            return price_for(model)
        normalized = _normalize(model)
        price = (
            self._overrides.get(model)
            or self._overrides.get(normalized)
            or PRICES.get(model)
            or PRICES.get(normalized)
        )
        if len(self._found) < _FOUND_LIMIT:
            self._found[model] = price
        return price

    def cost_usd(self, model: str | None, usage: TokenUsage) -> float | None:
        """USD for ``usage`` on ``model``.

        Returns:
            The cost; 0.0 when no token was used; ``None`` when tokens were used but no price
            is known for the model (logged once per model).
        """
        if usage.total_tokens == 0:
            return 0.0
        price = self.price_for(model) if model is not None else None
        if price is None:
            if model is not None and model not in _warned:
                _warned.add(model)
                _log.warning(
                    "No price known for model %r; its requests' cost is recorded as unknown. "
                    "Add it under model_prices in the config file.",
                    model,
                )
            return None
        return price.cost(usage)


_FOUND_LIMIT = 1024
"""Model ids a table remembers; clients send a handful, so this only bounds a misbehaving one."""


@lru_cache(maxsize=1024)
def price_for(model: str) -> ModelPrice | None:
    """The bundled price of ``model``, by exact id and then by normalised id; ``None`` if
    unknown."""
    return PRICES.get(model) or PRICES.get(_normalize(model))


def cost_usd(model: str | None, usage: TokenUsage) -> float | None:
    """USD for ``usage`` on ``model`` at the bundled prices (see :meth:`PriceTable.cost_usd`)."""
    return _BUNDLED.cost_usd(model, usage)


_BUNDLED = PriceTable()
