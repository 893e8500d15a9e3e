"""``better-ccflare api-key ...``: keys that clients must present once any key is active.

The key is printed once, at generation; only a salted scrypt hash is stored. The first key is
always an admin key, and the last active admin key cannot be disabled or deleted, so nobody can
lock themselves out of the management API. A key may carry limits (``generate`` and ``limits``
take the same flags, see ``docs/keys.md``); ``list`` and ``show`` read each key's use from the
request history.
"""

from __future__ import annotations

from typing import Any

import click
import msgspec

from better_ccflare.core import ApiKey, ApiKeyRole, KeyLimits, NotFoundError, SystemClock
from better_ccflare.database import Store
from better_ccflare.proxy.admin import (
    KeyUse,
    change_api_key,
    create_api_key,
    key_use,
    set_api_key_limits,
)

from ._completion import complete_api_key_names
from ._context import load, with_store
from ._errors import UserError
from ._key_limit_options import LimitFlags, limit_options
from ._output import Col, format_time, print_json, print_table, styled

__all__ = ["api_key"]


class _KeyRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    role: str
    active: bool
    prefix_last_8: str
    usage_count: int
    limits: KeyLimits | None
    use: KeyUse | None


def _rows(keys: list[ApiKey], uses: dict[str, KeyUse]) -> list[_KeyRow]:
    return [
        _KeyRow(
            id=k.id,
            name=k.name,
            role=k.role.value,
            active=k.is_active,
            prefix_last_8=k.prefix_last_8,
            usage_count=k.usage_count,
            limits=k.limits,
            use=uses.get(k.id),
        )
        for k in sorted(keys, key=lambda k: k.name)
    ]


async def _keys_and_use(store: Store) -> tuple[list[ApiKey], dict[str, KeyUse]]:
    return await store.api_keys.list_all(), await key_use(store, SystemClock().now_ms())


def _money(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:.4g}"


def _limit_lines(limits: KeyLimits | None, use: KeyUse | None) -> list[tuple[str, str, str]]:
    """(limit, used, remaining) for each limit the key has."""
    if limits is None:
        return []
    use = use or KeyUse(day_resets_at_ms=0, week_resets_at_ms=0, month_resets_at_ms=0)
    lines: list[tuple[str, str, str]] = []
    for label, cap, used in (
        ("requests/min", limits.rpm, use.requests_last_minute),
        ("tokens/min", limits.tpm, use.tokens_last_minute),
    ):
        if cap is not None:
            lines.append((f"{label} {cap}", str(used), str(max(0, cap - used))))
    if limits.max_concurrent is not None:
        lines.append((f"concurrent {limits.max_concurrent}", "-", "-"))
    for label, budget, spent, resets in (
        ("daily", limits.budget_daily_usd, use.spent_today_usd, use.day_resets_at_ms),
        ("weekly", limits.budget_weekly_usd, use.spent_this_week_usd, use.week_resets_at_ms),
        ("monthly", limits.budget_monthly_usd, use.spent_this_month_usd, use.month_resets_at_ms),
    ):
        if budget is not None:
            left = _money(max(0.0, budget - spent))
            lines.append(
                (
                    f"{label} budget {_money(budget)}",
                    _money(spent),
                    f"{left} (resets {format_time(resets)})",
                )
            )
    if limits.models:
        lines.append(("models " + ",".join(limits.models), "-", "-"))
    if limits.expires_at_ms is not None:
        lines.append(("expires " + format_time(limits.expires_at_ms), "-", "-"))
    return lines


def _summary(limits: KeyLimits | None, use: KeyUse | None) -> str:
    """One line: each limit, with what was used against it when ``use`` is given."""
    lines = _limit_lines(limits, use)
    if not lines:
        return "none"
    return "; ".join(
        f"{limit}: {used} used" if use is not None and used != "-" else limit
        for limit, used, _ in lines
    )


@click.group("api-key")
def api_key() -> None:
    """Generate and manage proxy API keys."""


class _Generated(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    key: str


@api_key.command("generate")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in ApiKeyRole]),
    help="admin (everything) or api-only (only /v1/*). The first key is always admin.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the key with its id, name and role.")
@limit_options
def generate(name: str, role: str | None, as_json: bool, **limit_flags: Any) -> None:
    """Create a key and print it once; the limit flags give it limits from the start.

    Only the key goes to stdout (`KEY=$(better-ccflare api-key generate ci)` captures it); the
    note that it is shown once goes to stderr.
    """
    now_ms = SystemClock().now_ms()
    flags = LimitFlags(**limit_flags)
    limits = flags.over(KeyLimits(), now_ms) if flags.given else None

    async def create(store: Store) -> tuple[ApiKey, str]:
        chosen = ApiKeyRole(role) if role else None
        return await create_api_key(store, name, chosen, now_ms=now_ms, limits=limits)

    created, key = with_store(load(), create)
    click.echo(
        f"Created {created.role.value} key {created.name!r}. It is shown only this once:", err=True
    )
    if as_json:
        print_json(_Generated(created.id, created.name, created.role.value, key))
        return
    click.echo(key)


@api_key.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_keys(as_json: bool) -> None:
    """List keys (never the keys themselves), with their limits and what they used."""
    keys, uses = with_store(load(), _keys_and_use)
    rows = _rows(keys, uses)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("No API keys: the proxy accepts every client. Add one with `api-key generate`.")
        return
    print_table(
        [
            Col("NAME", flex=True),
            "ROLE",
            "STATE",
            "ENDS WITH",
            Col("USES", justify="right"),
            Col("LIMITS", flex=True),
        ],
        [
            [
                r.name,
                r.role,
                styled("active", "green") if r.active else styled("disabled", "yellow"),
                f"…{r.prefix_last_8}",
                r.usage_count,
                _summary(r.limits, r.use),
            ]
            for r in rows
        ],
    )


@api_key.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(name: str, as_json: bool) -> None:
    """One key: its limits, what it used against each, and what remains."""
    keys, uses = with_store(load(), _keys_and_use)
    found = next((k for k in keys if name in (k.name, k.id)), None)
    if found is None:
        raise UserError(f"No API key named {name!r}; see `better-ccflare api-key list`.")
    row = _rows([found], uses)[0]
    if as_json:
        print_json(row)
        return
    state = "active" if row.active else "disabled"
    click.echo(f"{row.name} ({row.role}, {state}, ends with …{row.prefix_last_8})")
    lines = _limit_lines(row.limits, row.use)
    if not lines:
        click.echo("No limits.")
        return
    print_table(["LIMIT", "USED", "REMAINING"], [list(line) for line in lines])


@api_key.command("limits")
@click.argument("name")
@click.option("--clear", is_flag=True, help="Remove every limit first (then apply any flags).")
@limit_options
def limits_command(name: str, clear: bool, **limit_flags: Any) -> None:
    """Set a key's limits: the flags given change those limits, the others stay."""
    flags = LimitFlags(**limit_flags)
    if not clear and not flags.given:
        raise UserError("give at least one limit flag, or --clear (see --help)")
    now_ms = SystemClock().now_ms()

    async def apply(store: Store) -> ApiKey:
        found = await store.api_keys.get(name)
        if found is None:
            raise UserError(f"No API key named {name!r}; see `better-ccflare api-key list`.")
        base = KeyLimits() if clear or found.limits is None else found.limits
        return await set_api_key_limits(store, found.id, flags.over(base, now_ms))

    changed = with_store(load(), apply)
    click.echo(f"Limits of {changed.name!r}: {_summary(changed.limits, None)}.")


def _change(name: str, *, active: bool | None, delete: bool) -> None:
    """Apply one change through the rules the management API shares (last admin protected)."""

    async def apply(store: Store) -> None:
        try:
            await change_api_key(store, name, active=active, delete=delete)
        except NotFoundError:
            raise UserError(
                f"No API key named {name!r}; see `better-ccflare api-key list`."
            ) from None

    with_store(load(), apply)


@api_key.command("enable")
@click.argument("name", shell_complete=complete_api_key_names)
def enable(name: str) -> None:
    """Enable a disabled key."""
    _change(name, active=True, delete=False)
    click.echo(f"Enabled {name!r}.")


@api_key.command("disable")
@click.argument("name", shell_complete=complete_api_key_names)
def disable(name: str) -> None:
    """Disable a key (clients using it are refused within seconds)."""
    _change(name, active=False, delete=False)
    click.echo(f"Disabled {name!r}.")


@api_key.command("delete")
@click.argument("name", shell_complete=complete_api_key_names)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, yes: bool) -> None:
    """Delete a key."""
    if not yes:
        click.confirm(f"Delete API key {name!r}?", abort=True)
    _change(name, active=None, delete=True)
    click.echo(f"Deleted {name!r}.")
