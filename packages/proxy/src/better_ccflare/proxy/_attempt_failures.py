"""Why each account tried for one request could not serve it, and the answer when none could.

When every attempt failed and the pool still has accounts that could serve (a request-scoped
429 benches nobody), the client gets the most informative reply an upstream gave: a 429 over a
529 over another 5xx, with that reply's status, its body (wrapped in Anthropic's error shape
when it is not already in it) and its retry hints (``retry-after``, ``x-should-retry``, the
``anthropic-ratelimit-*`` headers), so the client backs off the way the upstream asked. When no
upstream answered in a way worth relaying, the answer is a 502, or a 504 when a timeout was the
best failure.

What each failure says is kept twice: in full (the account's name and the error), for the log,
the request history and admin clients; and as its kind alone (``connection failed``), for
every other client, who learns what went wrong but nothing about the pool's accounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

import msgspec

from ._anthropic_errors import ErrorReply, error_body
from ._transport import UpstreamConnectError, UpstreamTimeoutError

__all__ = ["AttemptFailures", "anthropic_error_body"]

_RETRY_HINTS = ("retry-after", "x-should-retry")
_RATE_LIMIT_HINTS = "anthropic-ratelimit-"
_SNIPPET_CHARS = 500
_ERROR_TYPES = {429: "rate_limit_error", 529: "overloaded_error"}


class _Rank(IntEnum):
    """How informative an upstream reply is to the client, least first. Below every reply
    worth relaying come the attempts the upstream never answered whole, then the accounts
    never asked."""

    REFUSED = 0
    """Not worth relaying: a 401 is about the account's credentials, not the client's."""
    SERVER_ERROR = 1
    OVERLOADED = 2
    RATE_LIMITED = 3


def _rank_of(status: int) -> _Rank:
    if status == 429:
        return _Rank.RATE_LIMITED
    if status == 529:
        return _Rank.OVERLOADED
    if status >= 500:
        return _Rank.SERVER_ERROR
    return _Rank.REFUSED


class _AnthropicErrorDetail(msgspec.Struct):
    type: str
    message: str


class _AnthropicError(msgspec.Struct):
    """Enough of an upstream body to tell it is an error in Anthropic's shape."""

    type: str
    error: _AnthropicErrorDetail


_anthropic_error = msgspec.json.Decoder(_AnthropicError)


class AttemptFailures:
    """The failed attempts of one request, in order, and the best answer among them."""

    __slots__ = ("_best", "_best_rank", "_details", "_gateway_status", "_kinds")

    def __init__(self) -> None:
        self._details: list[str] = []
        self._kinds: list[str] = []
        self._best: ErrorReply | None = None
        """The most informative upstream reply worth relaying, the first of its rank."""
        self._best_rank = _Rank.REFUSED
        self._gateway_status: int | None = None
        """502 or 504, after the first attempt the upstream never answered whole."""

    def skipped(self, kind: str, detail: str) -> None:
        """The account was not asked: ``kind`` is what went wrong, ``detail`` names it."""
        self._kinds.append(kind)
        self._details.append(detail)

    def unreachable(self, detail: str, exc: UpstreamConnectError | UpstreamTimeoutError) -> None:
        """The upstream did not answer whole (refused, reset, timed out)."""
        timed_out = isinstance(exc, UpstreamTimeoutError)
        self._kinds.append("upstream timeout" if timed_out else "connection failed")
        self._details.append(detail)
        if self._gateway_status is None:
            self._gateway_status = 504 if timed_out else 502

    def answered(
        self, detail: str, status: int, headers: Mapping[str, str], body: bytes | None
    ) -> None:
        """The upstream answered ``status`` with ``headers`` and ``body`` (maybe a prefix)."""
        self._kinds.append(f"upstream answered {status}")
        self._details.append(detail)
        rank = _rank_of(status)
        if rank <= self._best_rank:
            return
        hints = tuple(
            (name, value)
            for name, value in headers.items()
            if name in _RETRY_HINTS or name.startswith(_RATE_LIMIT_HINTS)
        )
        self._best_rank = rank
        self._best = ErrorReply(
            status=status,
            headers=(("content-type", "application/json"), *hints),
            body=anthropic_error_body(status, body or b""),
        )

    def summary(self) -> str:
        """Every failure in full, account names included: for the log and the history."""
        return "Every account failed: " + "; ".join(self._details)

    def reply(self, *, detailed: bool) -> ErrorReply:
        """The answer to the client: the best upstream reply if one is worth relaying, else a
        502 (504 after a timeout) saying what failed, naming accounts only when ``detailed``."""
        if self._best is not None:
            return self._best
        if detailed:
            message = self.summary()
        else:
            message = "Every account failed: " + "; ".join(dict.fromkeys(self._kinds)) + "."
        status = self._gateway_status or 502
        return ErrorReply(
            status=status,
            headers=(("content-type", "application/json"),),
            body=error_body("timeout_error" if status == 504 else "api_error", message),
        )


def anthropic_error_body(status: int, body: bytes) -> bytes:
    """An upstream's ``status`` answer as an Anthropic error body: ``body`` when it is one
    already, else a message quoting its start."""
    try:
        decoded = _anthropic_error.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        decoded = None
    if decoded is not None and decoded.type == "error":
        return body
    text = body[:_SNIPPET_CHARS].decode(errors="replace").strip()
    message = f"The upstream answered {status}" + (f": {text}" if text else ".")
    return error_body(_ERROR_TYPES.get(status, "api_error"), message)
