"""The limit flags of ``api-key generate`` and ``api-key limits``, and how they are read.

``--expires`` takes a date or time (``2026-03-31``, ``2026-03-31T18:00``, UTC unless it says
otherwise) or a duration from now (``90m``, ``12h``, ``30d``, ``2w``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import msgspec

from better_ccflare.core import KeyLimits

from ._errors import UserError

__all__ = ["LimitFlags", "limit_options", "parse_expiry"]

_F = TypeVar("_F", bound=Callable[..., Any])
_DURATION = re.compile(r"(\d+)\s*([mhdw])")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


class LimitFlags(msgspec.Struct, frozen=True, kw_only=True):
    """The limit flags as given; ``None`` for each flag left out."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    budget_daily: float | None = None
    budget_weekly: float | None = None
    budget_monthly: float | None = None
    models: str | None = None
    expires: str | None = None

    def over(self, base: KeyLimits, now_ms: int) -> KeyLimits:
        """``base`` with every given flag applied."""
        changes: dict[str, object] = {
            name: value
            for name, value in (
                ("rpm", self.rpm),
                ("tpm", self.tpm),
                ("max_concurrent", self.max_concurrent),
                ("budget_daily_usd", self.budget_daily),
                ("budget_weekly_usd", self.budget_weekly),
                ("budget_monthly_usd", self.budget_monthly),
            )
            if value is not None
        }
        if self.models is not None:
            changes["models"] = tuple(p.strip() for p in self.models.split(",") if p.strip())
        if self.expires is not None:
            changes["expires_at_ms"] = parse_expiry(self.expires, now_ms)
        return msgspec.structs.replace(base, **changes)

    @property
    def given(self) -> bool:
        return any(value is not None for value in msgspec.structs.astuple(self))


def parse_expiry(text: str, now_ms: int) -> int:
    """``--expires`` as epoch milliseconds.

    Raises:
        UserError: neither a duration nor a date, or a moment already past.
    """
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        at = now_ms + int(duration[1]) * _UNIT_MS[duration[2]]
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise UserError(
                f"--expires: {text!r} is neither a duration (90m, 12h, 30d, 2w) nor a date "
                "(2026-03-31 or 2026-03-31T18:00, UTC unless an offset is given)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        at = int(moment.timestamp() * 1000)
    if at <= now_ms:
        raise UserError(f"--expires: {text!r} is already past")
    return at


def limit_options(command: _F) -> _F:
    """Add the limit flags to ``command`` (as its ``limit_flags`` argument)."""
    flags = [
        click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute."),
        click.option(
            "--tpm",
            type=click.IntRange(min=1),
            help="Tokens per minute (input, cache writes and output).",
        ),
        click.option(
            "--max-concurrent", type=click.IntRange(min=1), help="Requests in flight at once."
        ),
        click.option("--budget-daily", type=click.FloatRange(min=0), help="USD per UTC day."),
        click.option(
            "--budget-weekly", type=click.FloatRange(min=0), help="USD per week (from Monday)."
        ),
        click.option("--budget-monthly", type=click.FloatRange(min=0), help="USD per month."),
        click.option(
            "--models",
            metavar="PATTERN[,PATTERN...]",
            help="Models the key may use, e.g. 'claude-sonnet-*,claude-haiku-*' ('' for any).",
        ),
        click.option(
            "--expires", metavar="DATE|DURATION", help="e.g. 2026-03-31 or 30d (90m, 12h, 2w)."
        ),
    ]
    for flag in reversed(flags):
        command = flag(command)
    return command
