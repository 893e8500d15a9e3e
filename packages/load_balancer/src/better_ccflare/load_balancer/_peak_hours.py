"""z.ai's peak hours: 14:00 to 18:00 Singapore time, when its coding plan counts usage dearer.

An account with ``peak_hours_pause_enabled`` sits those hours out. The reference pauses and
resumes such accounts from a timer; here the hours are a rule of eligibility computed from the
clock, so nothing is written, a restart in the middle changes nothing, and a person's own pause
is never lifted by the end of peak hours.
"""

from __future__ import annotations

from better_ccflare.core import Account, ProviderKind

__all__ = ["peak_hours_end_ms"]

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
_SGT_OFFSET_MS = 8 * _HOUR_MS
"""Singapore is UTC+8 all year (no daylight saving)."""
PEAK_START_MS = 14 * _HOUR_MS
PEAK_END_MS = 18 * _HOUR_MS
"""Peak hours as milliseconds into the Singapore day."""


def peak_hours_end_ms(account: Account, now_ms: int) -> int | None:
    """When the peak hours that keep ``account`` out of routing end; ``None`` when they do not
    hold it now (not z.ai, the toggle off, or outside 14:00-18:00 Singapore time)."""
    if not account.peak_hours_pause_enabled or account.provider != ProviderKind.ZAI.value:
        return None
    into_day_ms = (now_ms + _SGT_OFFSET_MS) % _DAY_MS
    if not PEAK_START_MS <= into_day_ms < PEAK_END_MS:
        return None
    return now_ms - into_day_ms + PEAK_END_MS
