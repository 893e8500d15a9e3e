"""Timestamps as the management API writes them.

The store keeps times as integer epoch milliseconds; the reference's JSON carries ISO-8601 UTC
strings, so every route that shows a time converts it here, the one way.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_ms"]


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO-8601 UTC string (the reference's timestamp format)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
