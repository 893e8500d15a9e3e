"""Timestamps as the management API writes them.

Every time the API answers with is integer epoch milliseconds. The few fields the reference's
JSON carried as ISO-8601 UTC strings (``timestamp``, ``lastUsed``, ``created``, ``createdAt``,
``lastSeen``) keep that form for its scripts, converted here, the one way, and each comes with
an epoch-milliseconds twin named ``...Ms`` (docs/api.md, "Times").
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_ms"]


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO-8601 UTC string (the reference's timestamp format)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
