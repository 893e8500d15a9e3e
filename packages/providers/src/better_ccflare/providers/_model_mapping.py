"""Per-account model mapping: which upstream model serves a requested model.

An account's mappings are keyed by an exact model id or by a family name (``opus``, ``sonnet``,
``haiku``, ``fable``). The exact id wins over the family, and a model that matches neither is
sent as requested. Each key maps to an ordered list: the first entry is used, the rest are
in-account fallbacks for the proxy to try.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import msgspec

from better_ccflare.core import ModelMappings

__all__ = [
    "MODEL_FAMILIES",
    "MappedBody",
    "apply_model_mapping",
    "decode_json_object",
    "map_model",
    "model_family",
    "parse_model_mappings",
]

MODEL_FAMILIES: tuple[str, ...] = ("fable", "opus", "haiku", "sonnet")
"""Family names in match order: the first one found in a model id is its family."""


def model_family(model: str) -> str | None:
    """The family of ``model``: the first of :data:`MODEL_FAMILIES` it contains, ignoring case."""
    lowered = model.lower()
    for family in MODEL_FAMILIES:
        if family in lowered:
            return family
    return None


def map_model(model: str, mappings: ModelMappings) -> tuple[str, ...]:
    """The models to try for ``model``, best first.

    Args:
        model: The model the client asked for.
        mappings: The account's mappings.

    Returns:
        The exact key's list if there is one, else the family key's list, else ``(model,)``.
        An empty list in the mappings counts as no mapping.
    """
    exact = mappings.get(model)
    if exact:
        return exact
    family = model_family(model)
    if family is not None:
        by_family = mappings.get(family)
        if by_family:
            return by_family
    return (model,)


def parse_model_mappings(raw: object) -> ModelMappings:
    """Validate mappings in the reference's JSON shape, ``{key: model | [model, ...]}``.

    Args:
        raw: Decoded JSON (a ``dict``), or ``None`` for no mappings.

    Returns:
        The mappings with every value as a tuple of model ids.

    Raises:
        ValueError: ``raw`` is not an object, or a key or value is not a non-empty string
            (or a non-empty list of them). The message names the offending key.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(
            f'model mappings must be a JSON object like {{"sonnet": "model-id"}}, '
            f"got {type(raw).__name__}"
        )
    mappings: ModelMappings = {}
    for key, value in cast("Mapping[object, object]", raw).items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"model mapping keys must be non-empty strings, got {key!r}")
        mappings[key] = _parse_targets(key, value)
    return mappings


def _parse_targets(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        models: list[object] = [value]
    elif isinstance(value, list):
        models = list(cast("list[object]", value))
    else:
        raise ValueError(
            f"model mapping {key!r} must be a model id or a list of model ids, "
            f"got {type(value).__name__}"
        )
    if not models:
        raise ValueError(f"model mapping {key!r} is an empty list; give at least one model id")
    targets: list[str] = []
    for model in models:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(
                f"model mapping {key!r} contains {model!r}; every entry must be a non-empty "
                "model id string"
            )
        targets.append(model.strip())
    return tuple(targets)


class MappedBody(msgspec.Struct, frozen=True, kw_only=True):
    """A request body after model mapping."""

    body: bytes
    """The body to send: the client's own bytes unless the model changed."""
    client_model: str | None = None
    upstream_model: str | None = None


class _ModelField(msgspec.Struct):
    model: object = None


_MODEL_FIELD = msgspec.json.Decoder(_ModelField)


def apply_model_mapping(body: bytes, mappings: ModelMappings) -> MappedBody:
    """Rewrite the body's ``model`` to its mapped model (the first of :func:`map_model`).

    The body is only decoded when the account has mappings, and only re-encoded when the model
    actually changes; otherwise the client's bytes go upstream untouched. A body that is not a
    JSON object with a string ``model`` is forwarded as is, for the upstream to judge.
    """
    if not mappings:
        return MappedBody(body=body)
    try:
        model = _MODEL_FIELD.decode(body).model
    except (msgspec.DecodeError, msgspec.ValidationError):
        return MappedBody(body=body)
    if not isinstance(model, str):
        return MappedBody(body=body)
    mapped = map_model(model, mappings)[0]
    if mapped == model:
        return MappedBody(body=body, client_model=model, upstream_model=model)
    fields = decode_json_object(body)
    if fields is None:
        return MappedBody(body=body)
    fields["model"] = mapped
    return MappedBody(body=msgspec.json.encode(fields), client_model=model, upstream_model=mapped)


def decode_json_object(body: bytes) -> dict[str, object] | None:
    """``body`` as a JSON object, or ``None`` when it is not one."""
    try:
        decoded: object = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(decoded, dict):
        return None
    return cast("dict[str, object]", decoded)
