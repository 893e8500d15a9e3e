"""The access log: one line per proxied request, for operators who read logs rather than the
dashboard (``BETTER_CCFLARE_ACCESS_LOG``, off by default).

It is a :data:`~better_ccflare.proxy.RequestListener`, so with the setting off nothing is
subscribed and a request pays nothing. Each line is logged on ``better_ccflare.access`` with
its fields in ``data``; the JSON format writes them as keys, the pretty one as ``key=value``.
No credential can be in it: the key is named, never shown, and the query string is left out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from better_ccflare.core import Account, RequestRecord

from ._request_events import RequestTimings

__all__ = ["ACCESS_LOGGER_NAME", "AccessLog"]

ACCESS_LOGGER_NAME = "better_ccflare.access"

_log = logging.getLogger(ACCESS_LOGGER_NAME)


class AccessLog:
    """Writes each recorded request's access line.

    The access logger's own level is INFO, so the lines are written whatever ``LOG_LEVEL``
    says: someone who turned the access log on wants it even with the rest at ``WARN``.

    Args:
        account: The account of an id, for its name (the pool's ``get``).
    """

    __slots__ = ("_account",)

    def __init__(self, account: Callable[[str], Account | None]) -> None:
        self._account = account
        _log.setLevel(logging.INFO)

    def observe_request(self, record: RequestRecord, timings: RequestTimings) -> None:
        """Log one request (a :data:`~better_ccflare.proxy.RequestListener`)."""
        account_id = record.account_id
        known = self._account(account_id) if account_id is not None else None
        account = known.name if known is not None else account_id
        duration_ms = round(timings.total_s * 1000, 1)
        usage = record.usage
        _log.info(
            "%s %s %s %.1f ms",
            record.method,
            record.path,
            record.status_code,
            duration_ms,
            extra={
                "data": {
                    "request_id": record.id,
                    "method": record.method,
                    "path": record.path,
                    "status": record.status_code,
                    "duration_ms": duration_ms,
                    "account": account,
                    "model": record.model,
                    "key_name": record.api_key_name,
                    "failovers": record.failover_attempts,
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "error": record.error_message,
                }
            },
        )
