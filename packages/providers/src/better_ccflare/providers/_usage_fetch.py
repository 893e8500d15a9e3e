"""Reading a provider's usage endpoint: one GET, its failures, and its body decoded defensively.

Each provider with a usage endpoint has a fetcher and a pure parser of the response bytes in
its own module, so the parsers can be tested on recorded payloads; what they share is here.
None of these endpoints is documented as a public API, so bodies are decoded into structs whose
fields are all optional: unknown fields are ignored, and a missing one leaves a window out
rather than inventing a number.

Failures raise :class:`UsageFetchError`; on a 429 it carries the server's ``retry-after`` so the
poller can wait exactly that long.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import httpx2
import msgspec

from better_ccflare.core import BetterCcflareError

from ._httpx2_only import require_httpx2
from ._oauth import parse_retry_after_ms
from ._redaction import redacted_url

__all__ = ["UsageFetchError", "decode_usage", "get_usage"]

_TIMEOUT = httpx2.Timeout(5.0)
"""Polling runs for every account; a stalled endpoint must not pile up requests."""

_S = TypeVar("_S")


class UsageFetchError(BetterCcflareError):
    """A usage endpoint could not be read or did not say anything usable."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_ms: int | None = None
    ) -> None:
        self.status = status
        self.retry_after_ms = retry_after_ms
        super().__init__(message)


async def get_usage(
    client: httpx2.AsyncClient, url: str, headers: Mapping[str, str], *, provider: str
) -> bytes:
    """The body of a successful GET of ``url`` (5 s timeout).

    Args:
        provider: The provider's display name, for the error messages.

    Raises:
        UsageFetchError: The endpoint was unreachable, too slow, or answered an error status.
        TypeError: ``client`` is not an ``httpx2.AsyncClient``.
    """
    require_httpx2(client)
    try:
        response = await client.get(url, headers=headers, timeout=_TIMEOUT)
    except httpx2.TimeoutException:
        raise UsageFetchError(
            f"{provider}'s usage endpoint {redacted_url(url)} did not answer within "
            f"{_TIMEOUT.read:g} s."
        ) from None
    except httpx2.TransportError as exc:
        raise UsageFetchError(
            f"Could not reach {provider}'s usage endpoint {redacted_url(url)} "
            f"({type(exc).__name__})."
        ) from None
    status = response.status_code
    if status == 429:
        raise UsageFetchError(
            f"{provider}'s usage endpoint is rate limiting this account (HTTP 429).",
            status=status,
            retry_after_ms=parse_retry_after_ms(response.headers),
        )
    if not response.is_success:
        raise UsageFetchError(
            f"{provider}'s usage endpoint answered HTTP {status} {response.reason_phrase}.",
            status=status,
        )
    return response.content


def decode_usage(payload: bytes, kind: type[_S], *, provider: str) -> _S:
    """``payload`` decoded as JSON into ``kind``.

    Raises:
        UsageFetchError: It is not JSON, or not of that shape.
    """
    try:
        return msgspec.json.decode(payload, type=kind)
    except msgspec.ValidationError as exc:
        raise UsageFetchError(
            f"{provider}'s usage response had an unexpected shape: {exc}."
        ) from None
    except msgspec.DecodeError:
        raise UsageFetchError(f"{provider}'s usage response was not JSON.") from None
