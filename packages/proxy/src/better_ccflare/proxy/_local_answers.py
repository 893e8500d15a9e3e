"""Paths the proxy answers itself instead of sending them to an account."""

from __future__ import annotations

__all__ = ["LOCAL_ANSWER_PATHS"]

LOCAL_ANSWER_PATHS = frozenset({"/api/event_logging/batch", "/api/system/package-manager"})
"""Claude Code's own side calls to its base URL (telemetry). They get a harmless local answer,
whatever key the client holds, so pointing Claude Code at the proxy never produces errors."""
