"""Conversions between column values and core types that several tables share.

Reads are forgiving because a reference database can hold values this version does not know: an
unknown enum string reads as ``None`` and malformed JSON as empty, with a log line instead of a
crash. Writes are exact.
"""

from __future__ import annotations

import hmac
import logging
from enum import StrEnum
from typing import Any, TypeVar

import msgspec

from better_ccflare.core import ModelMappings

from ._crypto import SecretKey

__all__ = [
    "decode_json_object",
    "encode_json",
    "enum_or_none",
    "mappings_from_json",
    "mappings_to_json",
    "open_secret",
    "same_secret",
    "seal_secret",
]

_E = TypeVar("_E", bound=StrEnum)
_log = logging.getLogger("better_ccflare.database")
_json_mappings = msgspec.json.Decoder(dict[str, str | list[str]])
_json_object = msgspec.json.Decoder(dict[str, Any])


def enum_or_none(enum: type[_E], value: object) -> _E | None:
    """``enum(value)``, or ``None`` for NULL and for values this version does not know."""
    if value is None:
        return None
    try:
        return enum(str(value))
    except ValueError:
        _log.debug("Ignoring unknown %s value %r read from the database.", enum.__name__, value)
        return None


def seal_secret(value: str | None, key: SecretKey) -> str | None:
    return None if value is None else key.encrypt(value)


def open_secret(value: object, key: SecretKey) -> str | None:
    return key.decrypt(value) if isinstance(value, str) else None


def same_secret(stored: str | None, expected: str | None) -> bool:
    """Constant-time equality of two optional secrets (``None`` equals only ``None``)."""
    if stored is None or expected is None:
        return stored is expected
    return hmac.compare_digest(stored.encode(), expected.encode())


def mappings_to_json(mappings: ModelMappings) -> str | None:
    """The reference's ``{key: model | [model, ...]}`` JSON; a lone model is written bare."""
    if not mappings:
        return None
    shaped = {
        key: models[0] if len(models) == 1 else list(models) for key, models in mappings.items()
    }
    return msgspec.json.encode(shaped).decode()


def mappings_from_json(text: object) -> ModelMappings:
    if not isinstance(text, str) or not text:
        return {}
    try:
        decoded = _json_mappings.decode(text)
    except msgspec.MsgspecError:
        _log.warning("Ignoring malformed model_mappings JSON read from the database.")
        return {}
    return {
        key: (models,) if isinstance(models, str) else tuple(models)
        for key, models in decoded.items()
    }


def encode_json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def decode_json_object(text: object, column: str) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        return _json_object.decode(text)
    except msgspec.MsgspecError:
        _log.warning("Ignoring malformed %s JSON read from the database.", column)
        return {}
