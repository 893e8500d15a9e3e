"""``better-ccflare stats`` and ``requests``: what the proxy has done, from request history.

Both read ``store.analytics``, the same queries the dashboard uses, so the numbers agree with
it. Accounts are shown by name; requests no account could serve show as ``-``.
"""

from __future__ import annotations

import click
import msgspec

from better_ccflare.core import RequestRecord, SystemClock
from better_ccflare.database import ErrorGroup, GroupStats, Metrics, RequestFilter, Store
from better_ccflare.proxy.admin import KeyUse, key_use

from ._account_lookup import find_account
from ._completion import complete_account_names
from ._context import load, with_store
from ._output import (
    Col,
    format_count,
    format_ms,
    format_relative,
    print_json,
    print_table,
    print_text,
    styled,
)

__all__ = ["requests", "stats"]

_DAY_MS = 86_400_000
_TOP_GROUPS = 10
_RECENT_ERRORS = 5


class _MetricsOut(msgspec.Struct, frozen=True, kw_only=True):
    requests: int
    successful: int
    success_rate: float
    """Percent, 0 to 100."""
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    total_tokens: int
    cost_usd: float
    """Of the requests with a known price."""
    unpriced_requests: int
    """Requests whose model has no known price; their cost is not in ``cost_usd``."""
    avg_response_time_ms: float | None
    avg_output_tokens_per_second: float | None


class _GroupOut(msgspec.Struct, frozen=True, kw_only=True):
    key: str | None
    """The account name (or id, for a removed account) or the model."""
    metrics: _MetricsOut


class _ErrorOut(msgspec.Struct, frozen=True, kw_only=True):
    error_message: str | None
    account: str | None
    status_code: int | None
    count: int
    last_seen_ms: int


class _KeyOut(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    use: KeyUse
    """Requests, tokens (input, cache writes, output) and spend this UTC day, week, month."""


class _StatsOut(msgspec.Struct, frozen=True, kw_only=True):
    since_ms: int | None
    totals: _MetricsOut
    active_accounts: int
    by_account: tuple[_GroupOut, ...]
    by_model: tuple[_GroupOut, ...]
    by_key: tuple[_KeyOut, ...] = ()
    """With ``--by key`` only; not limited by ``--since-days``."""
    recent_errors: tuple[_ErrorOut, ...]


class _RequestOut(msgspec.Struct, frozen=True, kw_only=True):
    account_name: str | None
    request: RequestRecord


@click.command()
@click.option(
    "--since-days",
    type=click.IntRange(1, 3650),
    help="Only requests of the last N days (default: all history).",
)
@click.option(
    "--by",
    "by",
    type=click.Choice(["account", "model", "key"]),
    multiple=True,
    help="Which breakdowns to show (repeatable; default: account and model). 'key' shows each "
    "proxy key's requests, tokens and spend this UTC day, week and month.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def stats(since_days: int | None, by: tuple[str, ...], as_json: bool) -> None:
    """Totals, busiest accounts and models (or keys), recent errors."""
    shown = set(by or ("account", "model"))
    since_ms = SystemClock().now_ms() - since_days * _DAY_MS if since_days else None
    where = RequestFilter(since_ms=since_ms)

    async def gather(store: Store) -> _StatsOut:
        names = {a.id: a.name for a in await store.accounts.list_all()}
        totals = await store.analytics.totals(where)
        analytics = store.analytics
        by_account = (
            await analytics.group_by(where, "account", limit=_TOP_GROUPS)
            if "account" in shown
            else []
        )
        by_model = (
            await analytics.group_by(where, "model", limit=_TOP_GROUPS) if "model" in shown else []
        )
        errors = await analytics.recent_errors(where, _RECENT_ERRORS)
        return _StatsOut(
            since_ms=since_ms,
            totals=_metrics(totals.metrics),
            active_accounts=totals.active_accounts,
            by_account=tuple(_group(g, names) for g in by_account),
            by_model=tuple(_group(g, {}) for g in by_model),
            by_key=await _by_key(store) if "key" in shown else (),
            recent_errors=tuple(_error(e, names) for e in errors),
        )

    out = with_store(load(), gather, activity="Reading request history")
    if as_json:
        print_json(out)
        return
    _print_stats(out, since_days)


@click.command()
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="How many."
)
@click.option(
    "--account",
    "account_name",
    metavar="NAME",
    shell_complete=complete_account_names,
    help="Only this account's requests.",
)
@click.option("--model", help="Only requests for this model.")
@click.option(
    "--status",
    type=click.Choice(["all", "success", "error"]),
    default="all",
    show_default=True,
    help="Only successful or only failed requests.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def requests(
    *, limit: int, account_name: str | None, model: str | None, status: str, as_json: bool
) -> None:
    """The most recent requests, newest first."""

    async def gather(store: Store) -> list[_RequestOut]:
        names = {a.id: a.name for a in await store.accounts.list_all()}
        account_ids: tuple[str | None, ...] = ()
        if account_name is not None:
            account_ids = ((await find_account(store, account_name)).id,)
        where = RequestFilter(
            account_ids=account_ids,
            models=(model,) if model else (),
            status="success" if status == "success" else "error" if status == "error" else "all",
        )
        records = await store.analytics.requests(where, limit)
        return [_RequestOut(account_name=_name(r.account_id, names), request=r) for r in records]

    rows = with_store(load(), gather, activity="Reading request history")
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("No requests match.")
        return
    now_ms = SystemClock().now_ms()
    print_table(
        [
            Col("WHEN"),
            Col("ACCOUNT", flex=True),
            Col("MODEL", flex=True),
            Col("STATUS", justify="right"),
            Col("IN/OUT", justify="right"),
            Col("COST $", justify="right"),
            Col("TIME", justify="right"),
            Col("ERROR", spare=True),
        ],
        [_request_row(row, now_ms) for row in rows],
    )


# --------------------------------------------------------------------------- shaping


def _metrics(m: Metrics) -> _MetricsOut:
    return _MetricsOut(
        requests=m.requests,
        successful=m.successful,
        success_rate=round(m.success_rate, 2),
        input_tokens=m.input_tokens,
        output_tokens=m.output_tokens,
        cache_read_tokens=m.cache_read_tokens,
        cache_write_tokens=m.cache_write_tokens,
        total_tokens=m.total_tokens,
        cost_usd=m.cost_usd,
        unpriced_requests=m.unpriced_requests,
        avg_response_time_ms=m.avg_response_time_ms,
        avg_output_tokens_per_second=m.avg_output_tokens_per_second,
    )


def _total_cost(m: _MetricsOut) -> str:
    """The cost in dollars, saying how many requests it leaves out for want of a price."""
    if m.unpriced_requests and m.unpriced_requests == m.requests:
        return "cost unknown (no price for their models)"
    known = f"${m.cost_usd:.2f}"
    n = m.unpriced_requests
    return f"{known} (+ {n} request{'s' * (n != 1)} with unknown price)" if n else known


def _cost_cell(m: _MetricsOut) -> str:
    if m.unpriced_requests and m.unpriced_requests == m.requests:
        return "unknown"
    known = f"{m.cost_usd:.4f}"
    return f"{known} +{m.unpriced_requests} unknown" if m.unpriced_requests else known


def _name(account_id: str | None, names: dict[str, str]) -> str | None:
    return None if account_id is None else names.get(account_id, account_id)


def _group(group: GroupStats, names: dict[str, str]) -> _GroupOut:
    key = _name(group.key, names) if names else group.key
    return _GroupOut(key=key, metrics=_metrics(group.metrics))


def _error(group: ErrorGroup, names: dict[str, str]) -> _ErrorOut:
    return _ErrorOut(
        error_message=group.error_message,
        account=_name(group.account_id, names),
        status_code=group.status_code,
        count=group.count,
        last_seen_ms=group.last_seen_ms,
    )


async def _by_key(store: Store) -> tuple[_KeyOut, ...]:
    names = {k.id: k.name for k in await store.api_keys.list_all()}
    uses = await key_use(store, SystemClock().now_ms())
    rows = [_KeyOut(name=names[key_id], use=use) for key_id, use in uses.items()]
    rows.sort(key=lambda row: (-row.use.spent_this_month_usd, row.name))
    return tuple(rows)


def _print_by_key(rows: tuple[_KeyOut, ...]) -> None:
    print_table(
        ["KEY", "TODAY", "THIS WEEK", "THIS MONTH"],
        [
            [
                r.name,
                *(
                    f"{requests} req, {tokens:,} tok, ${cost:,.4f}"
                    for requests, tokens, cost in (
                        (r.use.requests_today, r.use.tokens_today, r.use.spent_today_usd),
                        (
                            r.use.requests_this_week,
                            r.use.tokens_this_week,
                            r.use.spent_this_week_usd,
                        ),
                        (
                            r.use.requests_this_month,
                            r.use.tokens_this_month,
                            r.use.spent_this_month_usd,
                        ),
                    )
                ),
            ]
            for r in rows
        ],
        title="By key (UTC day, week from Monday, month; tokens: input, cache writes, output)",
    )


def _print_stats(out: _StatsOut, since_days: int | None) -> None:
    t = out.totals
    period = f"the last {since_days} days" if since_days else "all history"
    print_text(
        f"{t.requests} requests in {period}: {t.success_rate:.1f}% successful, "
        f"{t.total_tokens:,} tokens, {_total_cost(t)}, {out.active_accounts} accounts used, "
        f"average response {format_ms(t.avg_response_time_ms)}."
    )
    if out.by_key:
        _print_by_key(out.by_key)
    if not t.requests:
        return
    columns = [
        Col(header, justify="right")
        for header in ("REQUESTS", "SUCCESS %", "TOKENS", "COST $", "AVG TIME")
    ]
    for title, groups, label in (
        ("By account", out.by_account, "ACCOUNT"),
        ("By model", out.by_model, "MODEL"),
    ):
        if not groups:
            continue
        print_table(
            [Col(label, flex=True), *columns],
            [
                [
                    g.key or "-",
                    g.metrics.requests,
                    f"{g.metrics.success_rate:.1f}",
                    f"{g.metrics.total_tokens:,}",
                    _cost_cell(g.metrics),
                    format_ms(g.metrics.avg_response_time_ms),
                ]
                for g in groups
            ],
            title=title,
        )
    if out.recent_errors:
        now_ms = SystemClock().now_ms()
        print_table(
            [
                Col("LAST SEEN"),
                Col("COUNT", justify="right"),
                Col("ACCOUNT", flex=True),
                Col("STATUS", justify="right"),
                Col("ERROR", flex=True),
            ],
            [
                [
                    format_relative(e.last_seen_ms, now_ms),
                    e.count,
                    e.account or "-",
                    _status(e.status_code),
                    e.error_message or "-",
                ]
                for e in out.recent_errors
            ],
            title="Recent errors",
        )


def _request_row(row: _RequestOut, now_ms: int) -> list[object]:
    r = row.request
    return [
        format_relative(r.timestamp_ms, now_ms),
        row.account_name or "-",
        r.model or "-",
        _status(r.status_code),
        f"{format_count(r.usage.prompt_tokens)}/{format_count(r.usage.output_tokens)}",
        "unknown" if r.cost_usd is None else f"{r.cost_usd:.4f}",
        format_ms(r.response_time_ms),
        r.error_message or "",
    ]


def _status(code: int | None) -> object:
    """An HTTP status in colour: green served, yellow refused (4xx), red failed (5xx)."""
    if code is None:
        return "-"
    return styled(str(code), "green" if code < 400 else "yellow" if code < 500 else "red")
