"""Keeping credentials out of everything the logger writes.

Two complementary checks run on every record before any handler formats it:

* **by key**: in structured data, a value whose key names a credential (``authorization``,
  ``x-api-key``, ``access_token``, ``client_secret``, ``code_verifier``, ``cookie`` ...) is
  replaced whole, at any depth;
* **by shape**: in free text (the message, string values, tracebacks), anything that looks like a
  credential is replaced: ``Bearer`` tokens, Anthropic ``sk-ant-`` keys, other ``sk-`` keys, our
  ``btr-`` proxy keys, JWTs, Google API keys and access tokens, PEM private keys, and
  ``key: value`` / ``key=value`` pairs whose key names a credential.

Replacements keep what helps debugging and is not secret (the header or key name, the auth
scheme, the kind of Anthropic key) and are stable: redacting twice gives the same text. When in
doubt the rules over-redact; prose such as ``"token: refreshed"`` loses a word rather than risk
leaking a token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import msgspec

from ._event import exception_text

__all__ = ["REDACTED", "RedactionFilter", "redact", "redact_data"]

REDACTED = "[REDACTED]"

_MAX_DEPTH = 32
_MARK = "_better_ccflare_redacted"

# Key endings that name a credential. Matching is on the lower-cased key with ``-`` and ``_``
# removed, so ``x-api-key``, ``apiKey`` and ``API_KEY`` all end in ``apikey``; ``max_tokens`` does
# not end in ``token`` and stays visible.
_SENSITIVE_KEY_ENDINGS = (
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "secretkey",
    "privatekey",
    "accesskey",
    "authorization",
    "verifier",
    "cookie",
)

_AUTH_SCHEME = re.compile(r"(?ai)(?:bearer|basic|token|digest)\s+")


# A word followed by a key/value separator, in JSON, Python reprs, headers, form bodies and
# query strings: ``"access_token": ``, ``'token': ``, ``x-api-key: ``, ``password=``, ``\\"k\\":``.
# Whether the word names a credential is decided by _is_sensitive_key, the same test as for
# structured data; words followed by a separator are rare, so this stays cheap.
_PAIR_KEY = re.compile(r"(?<![A-Za-z0-9_-])(?P<key>[A-Za-z0-9_-]++)\\?[\"']?[ \t]*[:=][ \t]*")
# The value after such a key. Quoted values are taken whole; bare ones up to the next
# delimiter, keeping a leading auth scheme. ``null``/``None``/booleans are not secrets and stay,
# so "no refresh token" is still visible.
_PAIR_VALUE = re.compile(
    r"(?ai)"
    r"\"(?P<dq>(?:[^\"\\\r\n]|\\.)*)\""
    r"|'(?P<sq>[^'\r\n]*)'"
    r"|\\\"(?P<eq>[^\r\n]*?)\\\""
    r"|(?!(?:null|none|true|false)(?![^\s\"'\\&,;})]))"
    r"(?P<scheme>(?:(?:bearer|basic|token|digest)[ \t]+)*)[^\s\"'\\&,;})]+"
)


def _mask_value(value: re.Match[str]) -> str:
    for quote, group in (('"', "dq"), ("'", "sq"), ('\\"', "eq")):
        inner = value.group(group)
        if inner is not None:
            if not inner:
                return value.group(0)  # an empty string hides nothing
            scheme = _AUTH_SCHEME.match(inner)
            return f"{quote}{scheme.group(0) if scheme else ''}{REDACTED}{quote}"
    return value.group("scheme") + REDACTED


def _redact_pairs(text: str) -> str:
    """Mask the value after every credential-named key, keys inside other values included.

    A single left-to-right substitution would let one pair's value swallow the next pair's key
    (``token= access_token = x`` or ``TOKEN= "access_token": "x"``) and leave that key's value
    in clear, so every key is found first, inside earlier values too, and each value masked.
    """
    pieces: list[str] = []
    done = 0
    for key in _PAIR_KEY.finditer(text):
        if not _is_sensitive_key(key.group("key")):
            continue
        value = _PAIR_VALUE.match(text, key.end())
        if value is None or value.end() <= done:
            continue
        if value.start() >= done:
            pieces += (text[done : value.start()], _mask_value(value))
        # Otherwise the value starts inside the previous one, already masked: the mask
        # absorbs the overhang too, so one "[REDACTED]" stands for both and a second pass
        # finds the same text.
        done = value.end()
    pieces.append(text[done:])
    return "".join(pieces)


def _substitute(pattern: str, replace: Callable[[re.Match[str]], str]) -> Callable[[str], str]:
    compiled = re.compile(pattern)
    return lambda text: compiled.sub(replace, text)


def _keep(group: str) -> Callable[[re.Match[str]], str]:
    """A replacement that keeps the named group (the non-secret prefix) and redacts the rest."""

    def replace(match: re.Match[str]) -> str:
        return match.group(group) + REDACTED

    return replace


def _redact_all(_match: re.Match[str]) -> str:
    return REDACTED


def _keep_pem(match: re.Match[str]) -> str:
    return f"{match.group('begin')}{REDACTED}{match.group('end') or ''}"


@dataclass(frozen=True, slots=True)
class _Rule:
    needles: tuple[str, ...]
    """Lower-case substrings one of which any match contains; without them the rule is skipped.
    Most log lines contain none, so this keeps redaction cheap on the logging hot path."""
    apply: Callable[[str], str]


# Order matters for idempotence (redacting twice changes nothing). Rules that need a boundary
# before their match (generic ``sk-``, ``Cookie:``, key/value pairs, ``Bearer``) come after the
# fixed-shape rules, so a boundary those replacements create is seen in the same pass.
_RULES: tuple[_Rule, ...] = (
    # PEM private keys (service-account JSON holds one); an unterminated block is cut to the end.
    _Rule(
        ("private key-----",),
        _substitute(
            r"(?P<begin>-----BEGIN [A-Z ]*PRIVATE KEY-----)(?:(?!-----END )[\s\S])*"
            r"(?P<end>-----END [A-Z ]*PRIVATE KEY-----)?",
            _keep_pem,
        ),
    ),
    # JWTs: three base64url segments; the header always starts with ``eyJ`` (``{"``), which keeps
    # dotted names like ``better_ccflare.load_balancer.strategies`` visible.
    _Rule(
        ("eyj",),
        _substitute(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", _redact_all),
    ),
    # Anthropic keys and OAuth tokens: keep the kind (api03, oat01, ort01, sid01 ...).
    _Rule(
        ("sk-ant-",),
        _substitute(r"(?P<kind>sk-ant-(?:[a-z]{3}\d{2}-)?)[A-Za-z0-9_-]{16,}", _keep("kind")),
    ),
    # Our own proxy keys: ``btr-`` and 32 alphanumerics.
    _Rule(("btr-",), _substitute(r"(?P<kind>btr-)[A-Za-z0-9]{32,}", _keep("kind"))),
    # Google API keys and OAuth access tokens (the Vertex provider uses both).
    _Rule(("aiza",), _substitute(r"(?P<kind>AIza)[0-9A-Za-z_-]{35,}", _keep("kind"))),
    _Rule(("ya29.",), _substitute(r"(?P<kind>ya29\.)[0-9A-Za-z_.-]{20,}", _keep("kind"))),
    # Other ``sk-`` keys (OpenAI-style and the like), not inside words such as ``task-...``.
    _Rule(
        ("sk-",),
        _substitute(r"(?<![A-Za-z0-9])(?P<kind>sk-)(?!ant-)[A-Za-z0-9_-]{20,}", _keep("kind")),
    ),
    # ``Cookie:`` header lines hold several ``name=value`` pairs: redact to the end of the line.
    _Rule(
        ("cookie",),
        _substitute(
            r"(?aim)(?P<kind>(?<![A-Za-z0-9_-])(?:set-)?cookie[ \t]*:[ \t]*+)(?![\"'\\])[^\r\n]+",
            _keep("kind"),
        ),
    ),
    _Rule(
        ("token", "secret", "passw", "key", "authorization", "verifier", "cookie"),
        _redact_pairs,
    ),
    # ``Bearer <token>`` anywhere, whatever the surrounding syntax. A repeated scheme
    # (``Bearer Bearer <token>``) must not pass for the token and leave the real one behind, and
    # ``=`` may appear anywhere, not just as padding, so ``Bearer key=value`` is cut whole. It
    # runs after the pairs: taking ``Bearer access_token: x`` first would hide that key.
    _Rule(
        ("bearer",),
        _substitute(
            r"(?ai)(?P<kind>(?:\bbearer\s+)+)(?!bearer\s)[A-Za-z0-9\-._~+/=]+", _keep("kind")
        ),
    ),
)


def redact(text: str) -> str:
    """Replace every credential-shaped substring of ``text``; text without one is returned as is.

    >>> redact("Authorization: Bearer abc.def")
    'Authorization: Bearer [REDACTED]'
    """
    # A replacement never creates a needle (it only removes text and inserts "[REDACTED]"),
    # so checking the needles against the original text is safe. Case-insensitive rules are
    # ASCII-only (``(?a)``), so ``str.lower`` finds every needle they could match.
    lowered = text.lower()
    for rule in _RULES:
        if any(needle in lowered for needle in rule.needles):
            text = rule.apply(text)
    return text


def redact_data(data: Mapping[Any, object]) -> dict[str, Any]:
    """A redacted, JSON-compatible copy of structured log data; ``data`` itself is not modified.

    Values under credential-named keys become ``"[REDACTED]"`` (``None``, ``""`` and booleans are
    kept: they say whether a credential exists without revealing it). Strings are redacted by
    shape. Anything JSON cannot hold is converted: structs, dataclasses, dates and UUIDs the way
    msgspec would encode them, bytes as UTF-8 text, other objects and non-string keys as
    ``str(obj)``; all of it is then redacted too. Nesting deeper than 32 levels (or a cycle) is
    cut off.
    """
    return _redact_mapping(data, 0)


def _is_sensitive_key(key: str) -> bool:
    """Whether a key names a credential (``Authorization``, ``x-api-key``, ``apiKey`` ...)."""
    normalized = key.lower().replace("-", "").replace("_", "")
    return normalized.endswith(_SENSITIVE_KEY_ENDINGS)


def _redact_mapping(data: Mapping[Any, object], depth: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key if isinstance(raw_key, str) else _to_text(raw_key)
        if _is_sensitive_key(key) and value not in (None, "") and not isinstance(value, bool):
            result[key] = REDACTED
        else:
            result[key] = _redact_value(value, depth + 1)
    return result


def _redact_value(value: object, depth: int) -> Any:  # noqa: PLR0911 - a dispatch on type
    if depth > _MAX_DEPTH:
        return "[nested too deeply]"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return _redact_mapping(cast("Mapping[Any, object]", value), depth)
    if isinstance(value, list | tuple | set | frozenset):
        items = cast("list[object] | tuple[object, ...] | set[object] | frozenset[object]", value)
        return [_redact_value(item, depth + 1) for item in items]
    if isinstance(value, bytes | bytearray):
        return redact(bytes(value).decode("utf-8", "replace"))
    try:
        # Structs, dataclasses, enums, datetimes, UUIDs, Decimals ... become plain values.
        converted: object = msgspec.to_builtins(value, enc_hook=_to_text)
    except Exception:  # any object may be logged; never fail the log call
        return redact(_to_text(value))
    return _redact_value(converted, depth + 1)


def _to_text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not break logging
        return f"<unprintable {type(value).__name__}>"


class RedactionFilter(logging.Filter):
    """Redacts a record in place before its handler formats it; installed on every handler.

    It sits on handlers rather than on the ``better_ccflare`` logger because logger-level filters
    do not see records logged on child loggers such as ``better_ccflare.proxy``. The record's
    message is rendered (``msg % args``) and redacted, ``extra={"data": ...}`` is replaced by a
    redacted copy (:func:`redact_data`), and traceback text is redacted. Records are marked, so
    the work happens once however many handlers a record reaches. It never rejects a record and
    never raises into the logging call.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get(_MARK):
            return True
        try:
            _redact_record(record)
        except Exception as exc:  # logging must not fail, and must not leak
            record.msg = f"log record dropped: redacting it failed ({type(exc).__name__})"
            record.args = None
            record.__dict__["data"] = None
            record.exc_info = record.exc_text = record.stack_info = None
        record.__dict__[_MARK] = True
        return True


def _redact_record(record: logging.LogRecord) -> None:
    record.msg = redact(_render_message(record))
    record.args = None
    data: object = record.__dict__.get("data")
    if data is not None:
        mapping = (
            cast("Mapping[Any, object]", data) if isinstance(data, Mapping) else {"value": data}
        )
        record.__dict__["data"] = _redact_mapping(mapping, 0)
    text = exception_text(record)
    if text:
        record.exc_text = redact(text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _render_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a wrong format string should still log something useful
        args = _to_text(record.args)
        return f"{_to_text(record.msg)} (arguments did not match the format: {args})"
