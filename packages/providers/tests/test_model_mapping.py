"""Per-account model mapping: families, lookup order, body rewriting, and config parsing."""

from __future__ import annotations

import json

import pytest

from better_ccflare.providers._model_mapping import (
    apply_model_mapping,
    map_model,
    model_family,
    parse_model_mappings,
)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-opus-4-1-20250805", "opus"),
        ("claude-sonnet-4-5-20250929", "sonnet"),
        ("claude-3-5-haiku-20241022", "haiku"),
        ("Claude-SONNET-4", "sonnet"),
        ("claude-fable-1", "fable"),
        ("sonnet-opus-hybrid", "opus"),
        ("fable-haiku", "fable"),
        ("glm-4.6", None),
    ],
)
def test_family_is_the_first_known_name_the_model_contains(model: str, family: str | None) -> None:
    assert model_family(model) == family


def test_exact_key_wins_over_family() -> None:
    mappings = {"claude-sonnet-4-5": ("exact",), "sonnet": ("family",)}
    assert map_model("claude-sonnet-4-5", mappings) == ("exact",)


def test_family_key_applies_when_no_exact_key() -> None:
    mappings = {"sonnet": ("glm-4.6", "glm-4.5")}
    assert map_model("claude-sonnet-4-5-20250929", mappings) == ("glm-4.6", "glm-4.5")


def test_unmapped_model_is_sent_as_requested() -> None:
    assert map_model("claude-opus-4", {"sonnet": ("glm-4.6",)}) == ("claude-opus-4",)
    assert map_model("gpt-5", {}) == ("gpt-5",)


def test_body_is_untouched_without_mappings() -> None:
    body = b'{"model": "claude-sonnet-4-5",  "max_tokens": 1}'
    assert apply_model_mapping(body, {}).body is body


def test_body_is_untouched_when_the_mapping_keeps_the_model() -> None:
    body = b'{"model": "claude-opus-4",  "max_tokens": 1}'
    mapped = apply_model_mapping(body, {"sonnet": ("glm-4.6",)})
    assert mapped.body is body
    assert (mapped.client_model, mapped.upstream_model) == ("claude-opus-4", "claude-opus-4")


def test_body_model_is_rewritten_to_the_first_mapped_model() -> None:
    body = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hé"}],
        }
    ).encode()
    mapped = apply_model_mapping(body, {"sonnet": ("glm-4.6", "glm-4.5")})
    assert json.loads(mapped.body) == {
        "model": "glm-4.6",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hé"}],
    }
    assert (mapped.client_model, mapped.upstream_model) == ("claude-sonnet-4-5", "glm-4.6")


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"model": 5}', b'{"messages": []}', b""]
)
def test_bodies_without_a_string_model_are_forwarded_as_is(body: bytes) -> None:
    assert apply_model_mapping(body, {"sonnet": ("x",)}).body is body


def test_reference_json_shape_parses_strings_and_lists() -> None:
    assert parse_model_mappings({"sonnet": "glm-4.6", "opus": ["glm-4.6", " glm-4.5 "]}) == {
        "sonnet": ("glm-4.6",),
        "opus": ("glm-4.6", "glm-4.5"),
    }


def test_no_mappings_parse_to_empty() -> None:
    assert parse_model_mappings(None) == {}
    assert parse_model_mappings({}) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["sonnet"], "must be a JSON object"),
        ({"sonnet": 3}, "'sonnet' must be a model id or a list"),
        ({"sonnet": []}, "'sonnet' is an empty list"),
        ({"sonnet": ["ok", ""]}, "'sonnet' contains ''"),
        ({"sonnet": ["ok", None]}, "'sonnet' contains None"),
        ({"": "x"}, "keys must be non-empty strings"),
    ],
)
def test_invalid_mappings_are_refused_with_the_offending_key(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_model_mappings(raw)
