"""How a request refused by its key's limits is answered, so that clients do the right thing.

Every refusal is in Anthropic's error shape and names the limit (also in the
``x-better-ccflare-key-limit`` header, for scripts). The statuses follow what the official SDKs
and Claude Code do with them (``docs/keys.md`` has the evidence):

* requests or tokens per minute, concurrency: **429** ``rate_limit_error`` with ``retry-after``
  (seconds until the limit frees): the SDKs retry after exactly that wait, and so does Claude
  Code for waits up to a minute.
* an exhausted budget: **429** ``rate_limit_error`` with ``x-should-retry: false`` and a
  ``retry-after`` of the time until the period resets. The SDKs obey ``x-should-retry`` before
  looking at the status, so they give up at once instead of retrying for hours; Claude Code
  gives up on a ``retry-after`` over a minute and shows the message. A 401 or 403 would send
  Claude Code to its login screen, which cannot help.
* a model outside the allow-list: **400** ``invalid_request_error``, never retried. Not 403, for
  the same reason as above.
* (an expired key is a 401 from the authenticator, which says it expired.)
"""

from __future__ import annotations

from ._anthropic_errors import ErrorReply, error_body
from ._key_limits import Limit, Refusal

__all__ = ["refusal_reply"]

LIMIT_HEADER = "x-better-ccflare-key-limit"

_BUDGETS = frozenset({Limit.BUDGET_DAILY, Limit.BUDGET_WEEKLY, Limit.BUDGET_MONTHLY})


def refusal_reply(refusal: Refusal, now_ms: int) -> ErrorReply:
    """The whole answer to a request its key's limits refuse."""
    headers = [("content-type", "application/json"), (LIMIT_HEADER, refusal.limit.value)]
    if refusal.limit is Limit.MODEL:
        return ErrorReply(
            status=400,
            headers=tuple(headers),
            body=error_body("invalid_request_error", refusal.message),
        )
    if refusal.frees_at_ms is not None:
        # Rounded up: a client retrying on the dot must find the limit freed.
        seconds = max(1, -(-(refusal.frees_at_ms - now_ms) // 1000))
        headers.append(("retry-after", str(seconds)))
    if refusal.limit in _BUDGETS:
        headers.append(("x-should-retry", "false"))
    return ErrorReply(
        status=429, headers=tuple(headers), body=error_body("rate_limit_error", refusal.message)
    )
