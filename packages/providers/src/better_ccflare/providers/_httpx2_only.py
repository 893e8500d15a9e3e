"""What the library says when it is handed a plain ``httpx`` client instead of an ``httpx2`` one.

The two look alike, and a plain ``httpx.AsyncClient`` would even send most requests, but its
exceptions are not ``httpx2``'s: a refused connection would escape as a raw ``httpx`` error
instead of the library's own (``OAuthTransientError``, ``UsageFetchError``). So a wrong client
is refused at once, with the fix, before anything is sent.
"""

from __future__ import annotations

import httpx2

__all__ = ["PLAIN_HTTPX", "require_httpx2"]

PLAIN_HTTPX = (
    "better_ccflare.providers works with httpx2 (pip install httpx2), and this is a plain "
    "httpx client. Use httpx2.AsyncClient(...) in its place; for a library that imports httpx "
    "itself (the anthropic SDK), call httpx2.alias_httpx() before importing it."
)


def require_httpx2(client: object) -> None:
    """Raise ``TypeError`` naming the fix unless ``client`` is an ``httpx2.AsyncClient``."""
    if not isinstance(client, httpx2.AsyncClient):
        raise TypeError(f"{PLAIN_HTTPX} (got {type(client).__module__}.{type(client).__name__})")
