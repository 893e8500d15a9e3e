"""Request cost from the bundled price table and the user's prices."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.core import ModelPriceConfig, TokenUsage
from better_ccflare.providers._pricing import PRICES, ModelPrice, PriceTable, cost_usd, price_for

MILLION = 1_000_000


def only(kind: str, tokens: int = MILLION) -> TokenUsage:
    return TokenUsage(**{kind: tokens})


@pytest.mark.parametrize("model", sorted(m for m in PRICES if m.startswith("claude")))
def test_anthropic_cache_rates_are_multiples_of_input(model: str) -> None:
    price = PRICES[model]

    assert price.cache_read == pytest.approx(price.input * 0.1)
    assert price.cache_write_5m == pytest.approx(price.input * 1.25)
    assert price.cache_write_1h == pytest.approx(price.input * 2)


def test_one_hour_cache_writes_cost_twice_the_input_price() -> None:
    assert cost_usd("claude-sonnet-4-5", only("cache_write_1h_input_tokens")) == pytest.approx(6)


def test_five_minute_cache_writes_cost_a_quarter_more_than_input() -> None:
    assert cost_usd("claude-sonnet-4-5", only("cache_write_5m_input_tokens")) == pytest.approx(3.75)


def test_cache_reads_cost_a_tenth_of_input() -> None:
    assert cost_usd("claude-opus-4-1", only("cache_read_input_tokens")) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("model", "input_price", "output_price"),
    [
        ("claude-3-5-haiku-20241022", 0.8, 4),
        ("claude-haiku-4-5", 1, 5),
        ("claude-3-7-sonnet-20250219", 3, 15),
        ("claude-sonnet-4-20250514", 3, 15),
        ("claude-sonnet-4-6", 3, 15),
        ("claude-sonnet-5", 3, 15),
        ("claude-opus-4-20250514", 15, 75),
        ("claude-opus-4-1-20250805", 15, 75),
        ("claude-opus-4-5-20251101", 5, 25),
        ("claude-opus-4-8", 5, 25),
        ("claude-fable-5", 10, 50),
        ("glm-4.6", 0.6, 2.2),
        ("MiniMax-M2", 0.3, 1.2),
        ("MiniMax-M2.7", 0.3, 1.2),
        ("gpt-4o", 2.5, 10),
        ("gpt-5-mini", 0.25, 2),
        ("openai/gpt-4.1", 2, 8),
        ("deepseek-chat", 0.28, 0.42),
    ],
)
def test_list_prices(model: str, input_price: float, output_price: float) -> None:
    price = price_for(model)

    assert price is not None
    assert (price.input, price.output) == (input_price, output_price)


@pytest.mark.parametrize(
    ("sent", "listed"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-6-20260301", "claude-opus-4-6"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("anthropic/claude-3.7-sonnet:thinking", "claude-3-7-sonnet"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"),
        ("Claude-Opus-4-5", "claude-opus-4-5"),
        ("z-ai/glm-4.6", "glm-4.6"),
        ("publishers/anthropic/models/claude-fable-5@20260101", "claude-fable-5"),
    ],
)
def test_dated_vertex_bedrock_and_prefixed_ids_resolve(sent: str, listed: str) -> None:
    assert price_for(sent) == PRICES[listed]


def test_glm_cache_writes_cost_plain_input() -> None:
    price = PRICES["glm-4.7"]

    assert price == ModelPrice.glm(0.6, 2.2, 0.11)
    assert price.cache_write_5m == price.cache_write_1h == price.input


def test_unknown_model_has_an_unknown_cost_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=1000)

    with caplog.at_level(logging.WARNING, logger="better_ccflare.providers"):
        first = cost_usd("mystery-model-for-warning-test", usage)
        second = cost_usd("mystery-model-for-warning-test", usage)

    assert first is None  # issue 15: unknown, not $0
    assert second is None
    warnings = [r for r in caplog.records if "mystery-model-for-warning-test" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].name == "better_ccflare.providers"


def test_missing_model_has_an_unknown_cost_silently(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert cost_usd(None, TokenUsage(input_tokens=5)) is None  # issue 15: unknown, not $0

    assert caplog.records == []


def test_cost_adds_every_token_kind() -> None:
    usage = TokenUsage(
        input_tokens=1000,
        output_tokens=2000,
        cache_read_input_tokens=10_000,
        cache_write_5m_input_tokens=4000,
        cache_write_1h_input_tokens=3000,
    )

    # opus 4.5: 5 in, 25 out, 0.5 read, 6.25 5m write, 10 1h write (USD per million).
    expected = (1000 * 5 + 2000 * 25 + 10_000 * 0.5 + 4000 * 6.25 + 3000 * 10) / MILLION
    assert cost_usd("claude-opus-4-5", usage) == pytest.approx(expected)


token_counts = st.integers(min_value=0, max_value=10**9)
usages = st.builds(
    TokenUsage,
    input_tokens=token_counts,
    output_tokens=token_counts,
    cache_read_input_tokens=token_counts,
    cache_write_5m_input_tokens=token_counts,
    cache_write_1h_input_tokens=token_counts,
)


def add(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_input_tokens=a.cache_read_input_tokens + b.cache_read_input_tokens,
        cache_write_5m_input_tokens=a.cache_write_5m_input_tokens + b.cache_write_5m_input_tokens,
        cache_write_1h_input_tokens=a.cache_write_1h_input_tokens + b.cache_write_1h_input_tokens,
    )


@given(model=st.sampled_from(sorted(PRICES)), a=usages, b=usages, k=st.integers(0, 1000))
def test_cost_is_linear_and_non_negative(model: str, a: TokenUsage, b: TokenUsage, k: int) -> None:
    cost_a, cost_b = cost_usd(model, a), cost_usd(model, b)
    scaled = TokenUsage(
        input_tokens=k * a.input_tokens,
        output_tokens=k * a.output_tokens,
        cache_read_input_tokens=k * a.cache_read_input_tokens,
        cache_write_5m_input_tokens=k * a.cache_write_5m_input_tokens,
        cache_write_1h_input_tokens=k * a.cache_write_1h_input_tokens,
    )

    assert cost_a is not None
    assert cost_b is not None
    assert cost_a >= 0
    assert cost_usd(model, add(a, b)) == pytest.approx(cost_a + cost_b, rel=1e-9, abs=1e-9)
    assert cost_usd(model, scaled) == pytest.approx(k * cost_a, rel=1e-9, abs=1e-9)


def test_a_request_without_tokens_costs_nothing_whatever_the_model() -> None:
    assert cost_usd("mystery-model-without-tokens", TokenUsage()) == 0.0
    assert cost_usd(None, TokenUsage()) == 0.0


def test_openai_style_cached_input_has_its_own_rate_and_writes_cost_plain_input() -> None:
    price = price_for("gpt-4.1")

    assert price == ModelPrice(
        input=2, output=8, cache_read=0.5, cache_write_5m=2, cache_write_1h=2
    )


# --------------------------------------------------------------------------- the user's prices


def test_the_users_price_adds_a_model_the_bundle_lacks() -> None:
    table = PriceTable.from_config(
        {"house-model": ModelPriceConfig(input=2, output=4, cache_read=0.5, cache_write=3)}
    )
    usage = TokenUsage(
        input_tokens=MILLION,
        output_tokens=MILLION,
        cache_read_input_tokens=MILLION,
        cache_write_5m_input_tokens=MILLION,
        cache_write_1h_input_tokens=MILLION,
    )

    assert table.cost_usd("house-model", usage) == pytest.approx(2 + 4 + 0.5 + 3 + 3)
    assert cost_usd("house-model", usage) is None  # the bundled table is unchanged


def test_the_users_price_overrides_the_bundled_one_in_every_form_of_the_id() -> None:
    table = PriceTable.from_config({"claude-sonnet-4-5": ModelPriceConfig(input=1, output=2)})
    mine = ModelPrice(input=1, output=2, cache_read=1, cache_write_5m=1, cache_write_1h=1)

    assert table.price_for("claude-sonnet-4-5") == mine
    assert table.price_for("claude-sonnet-4-5-20250929") == mine
    assert table.price_for("anthropic/claude-sonnet-4.5") == mine
    assert table.price_for("claude-opus-4-1") == PRICES["claude-opus-4-1"]


def test_cache_prices_default_to_plain_input() -> None:
    price = ModelPrice.from_config(ModelPriceConfig(input=0.7, output=2))

    assert (price.cache_read, price.cache_write_5m, price.cache_write_1h) == (0.7, 0.7, 0.7)
