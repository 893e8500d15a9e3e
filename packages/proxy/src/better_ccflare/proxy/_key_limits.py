"""The per-key limits as pure bookkeeping: what a key has used, and whether it may send more.

No I/O and no clock of its own: every call is given ``now_ms``, so hypothesis can drive it
through any timeline. :class:`KeyLimiter` keeps, per key that has limits:

* the admission times of its requests in the last minute (requests per *sliding* minute; the
  oldest one says exactly when a slot frees);
* the tokens of its requests that finished in the last minute, with their sum (tokens per
  sliding minute; counted when a request finishes, since only then are they known);
* its requests in flight (the concurrency cap; waiting for a slot is :mod:`._key_gate`'s);
* its spend in the current UTC day, week (from Monday) and month, reset when the period turns.

What a finished request adds comes from its record (:meth:`KeyLimiter.finished`), what was
spent before this process started or on other instances from the store
(:meth:`KeyLimiter.seed`). Checks run in a fixed order, cheapest verdicts first: model
allow-list, budgets, tokens per minute, requests per minute, concurrency. (Expiry is the
authenticator's: an expired key is refused on every path, not only the proxy's.)

A key's spend and tokens are compared *before* a request (its own cost is unknown until it
ends), so a budget can be passed by what the requests in flight at the moment it is reached
cost; the next request is then refused. ``docs/keys.md`` states this bound.
"""

from __future__ import annotations

import calendar
import fnmatch
import re
import time
from collections import deque
from enum import StrEnum

import msgspec

from better_ccflare.core import KeyLimits, KeyUsageTotals

__all__ = ["KeyLimiter", "Limit", "Periods", "Refusal", "iso_utc", "periods_at", "usd"]

_MINUTE_MS = 60_000
_DAY_MS = 86_400_000


class Limit(StrEnum):
    """Which limit refused a request; the value is how it is named to the client."""

    MODEL = "model allow-list"
    BUDGET_DAILY = "daily budget"
    BUDGET_WEEKLY = "weekly budget"
    BUDGET_MONTHLY = "monthly budget"
    TPM = "tokens per minute"
    RPM = "requests per minute"
    CONCURRENCY = "concurrent requests"


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why a request may not proceed, and when that changes."""

    limit: Limit
    message: str
    """Safe to show the client: names the key, the limit and when it frees."""
    frees_at_ms: int | None = None
    """When a retry can succeed; ``None`` when waiting does not help (the model allow-list)."""


class Periods(msgspec.Struct, frozen=True):
    """The UTC calendar periods budgets are counted over, as ``[start, end)`` epoch ms."""

    day_start_ms: int
    day_end_ms: int
    week_start_ms: int
    week_end_ms: int
    month_start_ms: int
    month_end_ms: int

    @property
    def ends_ms(self) -> int:
        """When the first of them ends (and these periods must be recomputed)."""
        return self.day_end_ms  # a week or a month never ends inside a day


def periods_at(now_ms: int) -> Periods:
    """The day, the week (from Monday) and the month that ``now_ms`` falls in, in UTC."""
    day = now_ms // _DAY_MS
    day_start = day * _DAY_MS
    week_start = (day - (day + 3) % 7) * _DAY_MS  # 1970-01-01 was a Thursday
    year, month = time.gmtime(now_ms // 1000)[:2]
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return Periods(
        day_start_ms=day_start,
        day_end_ms=day_start + _DAY_MS,
        week_start_ms=week_start,
        week_end_ms=week_start + 7 * _DAY_MS,
        month_start_ms=calendar.timegm((year, month, 1, 0, 0, 0)) * 1000,
        month_end_ms=calendar.timegm((next_year, next_month, 1, 0, 0, 0)) * 1000,
    )


class _KeyState:
    """One key's usage; its fields are read and written by :class:`KeyLimiter` only."""

    __slots__ = (
        "admitted",
        "day_spend",
        "inflight",
        "limits",
        "model_pattern",
        "month_spend",
        "since_mark",
        "token_sum",
        "tokens",
        "week_spend",
    )

    def __init__(self, limits: KeyLimits) -> None:
        self.limits = limits
        self.model_pattern = _models_regex(limits.models)
        self.admitted: deque[int] = deque()
        self.tokens: deque[tuple[int, int]] = deque()
        self.token_sum = 0
        self.inflight = 0
        self.day_spend = 0.0
        self.week_spend = 0.0
        self.month_spend = 0.0
        self.since_mark = 0.0
        """Spend counted since :meth:`KeyLimiter.mark`: added back on top of a seed."""


def _models_regex(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for every pattern (``fnmatch`` rules, case-sensitive); ``None`` for any model."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class KeyLimiter:
    """Per-key counters and the verdict on each request of a key that has limits."""

    __slots__ = ("_periods", "_states")

    def __init__(self, now_ms: int) -> None:
        self._states: dict[str, _KeyState] = {}
        self._periods = periods_at(now_ms)

    @property
    def periods(self) -> Periods:
        return self._periods

    def admit(
        self, key_id: str, name: str, limits: KeyLimits, model: str | None, now_ms: int
    ) -> Refusal | None:
        """Decide on one request; when admitted, it counts against the requests per minute and
        is in flight until :meth:`release` (concurrency is checked here too: a refusal for it
        is the caller's cue to wait, see :meth:`try_enter`)."""
        state = self._state(key_id, limits, now_ms)
        refusal = self._check(state, name, limits, model, now_ms)
        if refusal is not None:
            return refusal
        if limits.rpm is not None:
            state.admitted.append(now_ms)
        return None

    def try_enter(self, key_id: str, name: str, now_ms: int) -> Refusal | None:
        """Take an in-flight slot; a refusal names the concurrency limit (wait and try again)."""
        state = self._states[key_id]
        cap = state.limits.max_concurrent
        if cap is not None and state.inflight >= cap:
            return Refusal(
                limit=Limit.CONCURRENCY,
                message=(
                    f"API key '{name}' has {state.inflight} requests in flight, its limit of "
                    f"{cap} concurrent requests; one frees when a request in flight finishes."
                ),
                frees_at_ms=now_ms + 1_000,
            )
        state.inflight += 1
        return None

    def release(self, key_id: str) -> None:
        """A request that entered (:meth:`try_enter`) has ended."""
        state = self._states.get(key_id)
        if state is not None and state.inflight > 0:
            state.inflight -= 1

    def unadmit(self, key_id: str, admitted_ms: int) -> None:
        """Give back the requests-per-minute slot of an admitted request that was then refused
        (it waited for a concurrency slot in vain)."""
        state = self._states.get(key_id)
        if state is not None and state.admitted and state.admitted[-1] == admitted_ms:
            state.admitted.pop()
        elif state is not None and admitted_ms in state.admitted:
            state.admitted.remove(admitted_ms)

    def finished(self, key_id: str, tokens: int, cost_usd: float | None, now_ms: int) -> None:
        """Count a finished request's tokens and cost (from its record)."""
        state = self._states.get(key_id)
        if state is None:
            return
        self._roll(now_ms)
        if tokens and state.limits.tpm is not None:
            state.tokens.append((now_ms, tokens))
            state.token_sum += tokens
        if cost_usd:
            state.day_spend += cost_usd
            state.week_spend += cost_usd
            state.month_spend += cost_usd
            state.since_mark += cost_usd

    def mark(self) -> None:
        """Start counting what a seed read from now on may miss (call before flushing the
        store and reading the totals that :meth:`seed` is then given)."""
        for state in self._states.values():
            state.since_mark = 0.0

    def seed(
        self,
        key_id: str,
        limits: KeyLimits,
        *,
        day: KeyUsageTotals,
        week: KeyUsageTotals,
        month: KeyUsageTotals,
        minute_tokens: int,
        now_ms: int,
    ) -> None:
        """Set a key's spend (and its tokens in the last minute, counted as of ``now_ms``) from
        the store's totals, replacing what was counted locally. The totals must be read after
        :meth:`mark` and after everything this process recorded till then reached the store;
        what finished since the mark is added on top (it may be in the totals already: then it
        counts twice until the next seed, an error on the side of refusing)."""
        state = self._state(key_id, limits, now_ms)
        recent = state.since_mark
        state.day_spend = day.cost_usd + recent
        state.week_spend = week.cost_usd + recent
        state.month_spend = month.cost_usd + recent
        own = state.token_sum
        if limits.tpm is not None and minute_tokens > own:
            # Other instances' tokens: counted as if all were spent now (a conservative
            # reading: they age out a minute from now instead of sooner).
            state.tokens.append((now_ms, minute_tokens - own))
            state.token_sum = minute_tokens

    def usage(self, key_id: str, now_ms: int) -> tuple[int, int, int, float, float, float] | None:
        """``(requests last minute, tokens last minute, in flight, spend today, this week, this
        month)`` as counted here; ``None`` for a key not seen since start."""
        state = self._states.get(key_id)
        if state is None:
            return None
        self._roll(now_ms)
        _expire(state, now_ms)
        return (
            len(state.admitted),
            state.token_sum,
            state.inflight,
            state.day_spend,
            state.week_spend,
            state.month_spend,
        )

    def knows(self, key_id: str) -> bool:
        """Whether the key is counted here (it was seeded or tracked)."""
        return key_id in self._states

    def track(self, key_id: str, limits: KeyLimits, now_ms: int) -> None:
        """Count the key from now on, from nothing (when its history cannot be read)."""
        self._state(key_id, limits, now_ms)

    def tracked(self) -> dict[str, KeyLimits]:
        """The keys counted here, with the limits they were last seen with."""
        return {key_id: state.limits for key_id, state in self._states.items()}

    # -- internals ----------------------------------------------------------------------------

    def _state(self, key_id: str, limits: KeyLimits, now_ms: int) -> _KeyState:
        state = self._states.get(key_id)
        if state is None:
            state = self._states[key_id] = _KeyState(limits)
        elif state.limits is not limits:
            state.limits = limits
            state.model_pattern = _models_regex(limits.models)
        if now_ms >= self._periods.ends_ms:
            self._roll(now_ms)
        return state

    def _roll(self, now_ms: int) -> None:
        """Start new periods once the current day is over, zeroing the spend of those that did."""
        old = self._periods
        if now_ms < old.ends_ms:
            return
        new = self._periods = periods_at(now_ms)
        week_over = new.week_start_ms != old.week_start_ms
        month_over = new.month_start_ms != old.month_start_ms
        for state in self._states.values():
            state.day_spend = 0.0
            if week_over:
                state.week_spend = 0.0
            if month_over:
                state.month_spend = 0.0

    def _check(
        self, state: _KeyState, name: str, limits: KeyLimits, model: str | None, now_ms: int
    ) -> Refusal | None:
        pattern = state.model_pattern
        # A request naming no model (``GET /v1/models``) has nothing to refuse; a Messages
        # request without one is refused by the upstream itself.
        if pattern is not None and model is not None and pattern.fullmatch(model) is None:
            allowed = ", ".join(limits.models)
            return Refusal(
                limit=Limit.MODEL,
                message=(
                    f"API key '{name}' may not use model {model!r}; it may use "
                    f"only models matching {allowed}."
                ),
            )
        periods = self._periods
        for budget, spent, limit, ends in (
            (limits.budget_daily_usd, state.day_spend, Limit.BUDGET_DAILY, periods.day_end_ms),
            (limits.budget_weekly_usd, state.week_spend, Limit.BUDGET_WEEKLY, periods.week_end_ms),
            (
                limits.budget_monthly_usd,
                state.month_spend,
                Limit.BUDGET_MONTHLY,
                periods.month_end_ms,
            ),
        ):
            if budget is not None and spent >= budget:
                return Refusal(
                    limit=limit,
                    message=(
                        f"API key '{name}' has used its {limit.value} of {usd(budget)} "
                        f"({usd(spent)} spent); it resets at {iso_utc(ends)}. Retrying sooner "
                        "will not help; ask an admin to raise the budget."
                    ),
                    frees_at_ms=ends,
                )
        if limits.tpm is not None or limits.rpm is not None:
            _expire(state, now_ms)
        tpm = limits.tpm
        if tpm is not None and state.token_sum >= tpm:
            return Refusal(
                limit=Limit.TPM,
                message=(
                    f"API key '{name}' used {state.token_sum} tokens in the last minute, its "
                    f"limit of {tpm} tokens per minute."
                ),
                frees_at_ms=_tokens_free_at(state, tpm),
            )
        rpm = limits.rpm
        if rpm is not None and len(state.admitted) >= rpm:
            return Refusal(
                limit=Limit.RPM,
                message=(
                    f"API key '{name}' sent {len(state.admitted)} requests in the last minute, "
                    f"its limit of {rpm} requests per minute."
                ),
                frees_at_ms=state.admitted[-rpm] + _MINUTE_MS,
            )
        return None


def _expire(state: _KeyState, now_ms: int) -> None:
    """Forget admissions and tokens older than a minute."""
    cutoff = now_ms - _MINUTE_MS
    admitted = state.admitted
    while admitted and admitted[0] <= cutoff:
        admitted.popleft()
    tokens = state.tokens
    while tokens and tokens[0][0] <= cutoff:
        state.token_sum -= tokens.popleft()[1]


def _tokens_free_at(state: _KeyState, tpm: int) -> int:
    """When enough of the last minute's tokens age out for the sum to drop below ``tpm``."""
    remaining = state.token_sum
    for at_ms, tokens in state.tokens:
        remaining -= tokens
        if remaining < tpm:
            return at_ms + _MINUTE_MS
    return state.tokens[-1][0] + _MINUTE_MS


def usd(amount: float) -> str:
    """``$12.50``, or four significant digits below a dollar (``$0.0001``)."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4g}"


def iso_utc(ms: int) -> str:
    """``ms`` as ``2026-01-01T00:00:00Z``, for messages."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))
