"""Request analytics: totals, time series, breakdowns and error groups over request history.

The management API's stats and analytics pages and the CLI's ``stats`` and ``requests`` commands
are built on :class:`AnalyticsRepository` (``store.analytics``). Every method takes the same
:class:`RequestFilter`, so a page's range and filters mean the same rows in each of its panels.
Results are plain value types; rates and averages are derived from sums so that callers can add
them up across buckets or groups themselves.

Long ranges are answered from hourly and daily rollups of the history; a background job keeps
them current with :meth:`AnalyticsRepository.refresh_rollups`. Answers do not depend on it:
hours not rolled up yet are read from the requests themselves, only more slowly.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from better_ccflare.core import RequestRecord

__all__ = [
    "TEXT_COLUMNS",
    "AnalyticsRepository",
    "Dimension",
    "ErrorGroup",
    "GroupStats",
    "Metrics",
    "RequestFilter",
    "SeriesPoint",
    "Totals",
    "like_pattern",
]

Dimension = Literal["model", "account", "api_key", "account_model"]
"""What :meth:`AnalyticsRepository.group_by` groups on; ``account_model`` is account, then model."""


class RequestFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which requests a query covers. The default covers every request.

    The tuples are "any of"; an empty tuple does not filter. Conditions on different fields must
    all hold.
    """

    since_ms: int | None = None
    """Only requests at or after this time (epoch ms, inclusive)."""
    until_ms: int | None = None
    """Only requests before this time (epoch ms, exclusive)."""
    account_ids: tuple[str | None, ...] = ()
    """Served by one of these accounts; a ``None`` entry matches requests no account served."""
    models: tuple[str, ...] = ()
    api_key_ids: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    """Attributed to one of these projects (the ``x-better-ccflare-project`` header). The SQLite
    rollups do not carry the project, so a query with this filter reads the requests themselves."""
    status: Literal["all", "success", "error"] = "all"
    text: str | None = None
    """A search: requests whose id, model, path, error message, API key name, agent or project
    contains this (ASCII letters in either case), whose status code is exactly this, or that one
    of :attr:`text_account_ids` served. It reads the requests themselves, never the rollups."""
    text_account_ids: tuple[str, ...] = ()
    """The accounts the search names: their names live with the accounts, so the caller finds
    the ones whose name contains :attr:`text`. Ignored without :attr:`text`."""


TEXT_COLUMNS = ("id", "model", "path", "error_message", "api_key_name", "agent_used", "project")
"""The columns a :attr:`RequestFilter.text` search looks in, on every backend."""


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE ... ESCAPE '\\'``, with the text's own wildcards escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    """Sums and averages over a set of requests."""

    requests: int
    successful: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    """5-minute and 1-hour cache writes together."""
    cost_usd: float
    """What the requests with a known price cost; see ``unpriced_requests`` for the rest."""
    plan_cost_usd: float
    """The part of ``cost_usd`` billed to a subscription plan (``billing_type`` ``plan``)."""
    api_cost_usd: float
    """The rest of ``cost_usd``: API, overage, and requests whose billing type is unknown."""
    avg_response_time_ms: float | None
    """Over the requests that have a response time; ``None`` when none has."""
    avg_output_tokens_per_second: float | None
    """Over the requests that have a rate; ``None`` when none has."""
    unpriced_requests: int = 0
    """Requests that used tokens of a model no price is known for: their cost is unknown and
    not part of ``cost_usd``."""

    @property
    def total_tokens(self) -> int:
        """Every token: input, output, cache reads and cache writes."""
        reads_and_writes = self.cache_read_tokens + self.cache_write_tokens
        return self.input_tokens + self.output_tokens + reads_and_writes

    @property
    def success_rate(self) -> float:
        """Successful requests in percent (0 to 100); 0 when there are none."""
        return self.successful * 100 / self.requests if self.requests else 0.0

    @property
    def cache_hit_rate(self) -> float:
        """Cache reads in percent of all input-side tokens (0 to 100); 0 when there are none."""
        prompt = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens * 100 / prompt if prompt else 0.0


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    metrics: Metrics
    active_accounts: int
    """How many distinct accounts served the matched requests (unattributed ones not counted)."""


class SeriesPoint(msgspec.Struct, frozen=True, kw_only=True):
    """One time bucket (and, with ``by_model``, one model within it)."""

    bucket_start_ms: int
    """``floor(timestamp / bucket_ms) * bucket_ms``: buckets are aligned to the epoch (UTC)."""
    model: str | None
    """The model, when the series was asked ``by_model``; otherwise always ``None``."""
    metrics: Metrics


class GroupStats(msgspec.Struct, frozen=True, kw_only=True):
    """The requests sharing one value of a :data:`Dimension`."""

    key: str | None
    """The model, account id or API key id; ``None`` for requests without one."""
    second_key: str | None = None
    """The model, for the ``account_model`` dimension; otherwise ``None``."""
    metrics: Metrics


class ErrorGroup(msgspec.Struct, frozen=True, kw_only=True):
    """Failed requests with the same message, account and status code."""

    error_message: str | None
    account_id: str | None
    status_code: int | None
    count: int
    last_seen_ms: int
    """When the newest of them was made."""


class AnalyticsRepository(Protocol):
    """Queries over request history, and the upkeep of their rollups; each runs off the event
    loop.

    A negative ``limit`` raises :class:`ValueError` rather than meaning "no limit".
    """

    async def totals(self, where: RequestFilter) -> Totals: ...

    async def time_series(
        self, where: RequestFilter, bucket_ms: int, *, by_model: bool = False
    ) -> list[SeriesPoint]:
        """Metrics per time bucket of ``bucket_ms``, oldest first; buckets without requests are
        left out. With ``by_model`` there is one point per bucket and model, ordered by model
        within a bucket (``None`` first).

        Raises:
            ValueError: ``bucket_ms`` is not positive.
        """
        ...

    async def group_by(
        self, where: RequestFilter, dimension: Dimension, *, limit: int | None = None
    ) -> list[GroupStats]:
        """Metrics per model, account, API key, or account and model; the busiest group first
        (ties by key, ``None`` first), at most ``limit`` groups."""
        ...

    async def recent_errors(self, where: RequestFilter, limit: int) -> list[ErrorGroup]:
        """Failed requests grouped by message, account and status code; the group seen most
        recently first, at most ``limit`` groups."""
        ...

    async def requests(
        self, where: RequestFilter, limit: int, *, before_ms: int | None = None, offset: int = 0
    ) -> list[RequestRecord]:
        """The matching requests, newest first (ties by id); ``before_ms`` pages backwards
        (only requests strictly older than it); ``offset`` skips that many of the newest."""
        ...

    async def latest_account_for_session(
        self, client_session_id: str, *, api_key_id: str | None = None
    ) -> str | None:
        """The account that most recently served a request of this client session.

        Requests of the session that no account served are skipped; ``None`` when no request of
        the session was served by an account. With ``api_key_id``, only the requests made with
        that proxy key count: a client may look up its own sessions, not anyone else's.
        """
        ...

    async def refresh_rollups(self, now_ms: int) -> int:
        """Bring the rollups up to the start of the hour holding ``now_ms``: roll up the hours
        completed since the last refresh, and recompute those whose requests changed since they
        were rolled up (late completions, retention, records with old timestamps).

        Meant for a background job, every minute or so; until it runs, totals, series and
        breakdowns read the hours it would roll up from the requests (same answers, slower).
        A long catch-up is split into transactions of a day each.

        Returns:
            How many hours were rolled up or recomputed.
        """
        ...
