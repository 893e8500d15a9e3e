"""The conventions every provider's usage windows follow, whichever endpoint they come from.

A window is reported as percent used, 0 to 100, with its reset time in epoch milliseconds
(:class:`~better_ccflare.core.UsageWindow`). Its key names it: ``five_hour`` and ``seven_day``
are the account-wide windows of Claude and Minimax plans, other keys are a provider's own
(``tokens_limit``, ``daily``, per-model ``seven_day_<model>``).
"""

from __future__ import annotations

from better_ccflare.core import UsageWindow

__all__ = ["HARD_WINDOWS", "epoch_ms", "usage_window"]

HARD_WINDOWS = frozenset({"five_hour", "seven_day", "seven_day_oauth_apps"})
"""Windows that gate the whole account. Per-model weekly caps only gate that model."""


def usage_window(key: str, utilization: float, reset: int | None) -> UsageWindow:
    """A window whose reset an endpoint gave as epoch seconds or milliseconds (or not at all)."""
    return UsageWindow(
        key=key, utilization=utilization, resets_at_ms=epoch_ms(reset) if reset else None
    )


def epoch_ms(value: int) -> int:
    """Epoch milliseconds; values too small to be milliseconds are taken as seconds."""
    return value * 1000 if value < 100_000_000_000 else value
