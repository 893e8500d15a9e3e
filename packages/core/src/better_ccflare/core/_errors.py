"""Exceptions shared by every better-ccflare package.

Each carries a message written for the person who has to fix the problem: what was wrong,
which input, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "BetterCcflareError",
    "ConfigError",
    "ConflictError",
    "InvalidInputError",
    "NotFoundError",
]


class BetterCcflareError(Exception):
    """Base class for every error better-ccflare raises on purpose."""


class ConfigError(BetterCcflareError):
    """A configuration value is missing or invalid.

    Args:
        setting: The name the user wrote: an environment variable or a config-file key.
        value: The offending value as given.
        expected: What would have been accepted, in words.
        source: Where the value came from (``environment``, ``.env``, or a file path).
    """

    def __init__(self, setting: str, value: object, expected: str, source: str) -> None:
        self.setting = setting
        self.value = value
        self.expected = expected
        self.source = source
        super().__init__(f"{setting}={value!r} (from {source}) is invalid: expected {expected}.")


class NotFoundError(BetterCcflareError):
    """A named thing (account, API key, request) does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"No {kind} named or identified by {key!r}.")


class ConflictError(BetterCcflareError):
    """A write would break a uniqueness rule (for example a duplicate account name)."""


class InvalidInputError(BetterCcflareError):
    """A value a person typed (a CLI argument, an API body field) is not acceptable.

    The HTTP API turns it into a 400 naming ``field``; the CLI into a one-line error.

    Args:
        field: The input's name as the person wrote it (``name``, ``apiKey``, ``--endpoint``).
        message: What is wrong and what would be accepted.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
