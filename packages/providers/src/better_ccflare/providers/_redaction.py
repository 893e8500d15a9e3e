"""What the provider library shows of values that may carry a credential.

Every ``repr`` and error message of the library goes through these, so printing a request or
logging an exception never leaks an account's key or token:

* **Headers** keep their names; a value is shown only for the few headers known to carry none
  (content type, API version, betas). Any other may be a credential: providers and plugins
  choose their own auth header names (a custom endpoint's ``authHeader`` can be anything).
* **URLs** keep scheme, host and path; user-info and the query string (``?key=...`` is a
  common way to pass an API key) are replaced.
* **Free text** (an upstream's error message) has the secrets the caller knows replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "redacted_headers", "redacted_url", "without_secrets"]

REDACTED = "<redacted>"

_SHOWN_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "anthropic-beta",
        "anthropic-version",
        "content-encoding",
        "content-type",
        "user-agent",
    }
)
_MIN_SECRET_CHARS = 8
"""Real keys, tokens, codes and verifiers are long; replacing a very short value would only
mangle a message."""
_MAX_MESSAGE_CHARS = 300


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with every value not known to be harmless replaced by ``<redacted>``."""
    return {
        name: value if name.lower() in _SHOWN_HEADERS else REDACTED
        for name, value in headers.items()
    }


def redacted_url(url: str) -> str:
    """``url`` without its user-info, query or fragment contents."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{REDACTED}@{host}" if "@" in parts.netloc else host
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            REDACTED if parts.query else "",
            REDACTED if parts.fragment else "",
        )
    )


def without_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each of ``secrets`` replaced, shortened to a few hundred characters."""
    for secret in secrets:
        if secret is not None and len(secret) >= _MIN_SECRET_CHARS:
            text = text.replace(secret, REDACTED)
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[:_MAX_MESSAGE_CHARS] + "..."
    return text
