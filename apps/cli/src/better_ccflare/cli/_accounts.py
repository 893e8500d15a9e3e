"""``better-ccflare account ...``: manage the pool from the terminal.

Every command opens the store, does one thing, and closes it (flushing the write); a running
server adopts the change within seconds. Adding goes through the account setup the management
API uses too (:func:`better_ccflare.proxy.admin.add_account`), so both accept exactly the same
accounts. Secrets are read from a flag or, when the flag is missing, from a hidden prompt; they
are never echoed, and no output (``--json`` included) ever contains one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import click
import msgspec

from better_ccflare.core import (
    Account,
    AccountState,
    BetterCcflareError,
    ModelMappings,
    OAuthMode,
    PauseReason,
    ProviderKind,
    RateLimitReason,
    SystemClock,
)
from better_ccflare.database import Store
from better_ccflare.proxy.admin import (
    AccountMode,
    NewAccount,
    add_account,
    check_new_account,
    reset_rate_limit,
    validate_account_name,
)

from ._account_lookup import find_account
from ._context import load, with_store
from ._errors import UserError, as_click_error
from ._oauth_login import log_in
from ._output import format_time, print_json, print_table

__all__ = ["account"]

_LOGIN_MODES: dict[str, OAuthMode] = {
    ProviderKind.CLAUDE_OAUTH.value: OAuthMode.CLAUDE_OAUTH,
    ProviderKind.CONSOLE.value: OAuthMode.CONSOLE,
}
"""Providers whose credentials come from a login (console: a key minted by one)."""

_T = TypeVar("_T")
_Apply = Callable[[Store, Account], Awaitable[None]]
"""One change to a found account."""


class _AccountRow(msgspec.Struct, frozen=True, kw_only=True):
    """What ``account list --json`` prints: no credentials, ever."""

    id: str
    name: str
    provider: str
    priority: int
    paused: bool
    requires_reauth: bool
    account_state: AccountState
    custom_endpoint: str | None
    request_count: int
    rate_limited_until_ms: int | None


class _AccountDetail(msgspec.Struct, frozen=True, kw_only=True):
    """What ``account show --json`` prints: everything but the credentials themselves."""

    id: str
    name: str
    provider: str
    priority: int
    state: str
    account_state: AccountState
    """``state`` for scripts: ``ready``, ``cooling_down``, ``paused``, ``requires_reauth``,
    ``credentials_rejected`` or ``out_of_credits``."""
    paused: bool
    pause_reason: str | None
    requires_reauth: bool
    consecutive_failures: int
    custom_endpoint: str | None
    model_mappings: ModelMappings
    credential: str
    """``api-key``, ``oauth`` or ``none``: which kind is stored, not its value."""
    token_expires_at_ms: int | None
    created_at_ms: int
    last_used_ms: int | None
    request_count: int
    total_requests: int
    session_started_at_ms: int | None
    session_request_count: int
    rate_limit_status: str | None
    rate_limit_reason: str | None
    rate_limited_until_ms: int | None
    rate_limit_reset_at_ms: int | None


@click.group()
def account() -> None:
    """Add, inspect and manage upstream accounts.

    Commands that take NAME also accept the account's id (see `account list --json`).
    """


@account.command("add")
@click.argument("name")
@click.option(
    "--mode",
    type=click.Choice([mode.value for mode in AccountMode]),
    help="The account type (prompted for when omitted).",
)
@click.option("--api-key", help="The account's API key (prompted for, hidden, when needed).")
@click.option(
    "--endpoint",
    help="Base URL of the upstream (required for anthropic-compatible; optional for "
    "openai-compatible, nanogpt, console, claude-oauth).",
)
@click.option(
    "--priority",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="Lower numbers are preferred.",
)
@click.option(
    "--model-map",
    "model_maps",
    multiple=True,
    metavar="FROM=TO[,TO2]",
    help="Send model (or family: opus, sonnet, haiku) FROM as TO, falling back to TO2...; "
    "repeatable.",
)
@click.option("--project-id", help="vertex-ai: the Google Cloud project id.")
@click.option("--region", help="vertex-ai: the region, such as us-east5 or global.")
@click.option(
    "--login",
    is_flag=True,
    help="console: log in with the browser and mint an API key instead of pasting one.",
)
def add(
    *,
    name: str,
    mode: str | None,
    api_key: str | None,
    endpoint: str | None,
    priority: int,
    model_maps: tuple[str, ...],
    project_id: str | None,
    region: str | None,
    login: bool,
) -> None:
    """Add an account; prompts (secrets hidden) for whatever the flags leave out.

    \b
    Examples:
      better-ccflare account add me --mode claude-oauth
      better-ccflare account add work --mode console --api-key sk-ant-api03-...
      better-ccflare account add gw --mode anthropic-compatible \\
          --endpoint https://gateway.example --api-key ... --model-map sonnet=glm-4.6
      better-ccflare account add gcp --mode vertex-ai --project-id my-proj --region us-east5
    """
    config = load()
    name = _checked_name(name)
    chosen = AccountMode(
        mode or click.prompt("Account type", type=click.Choice([m.value for m in AccountMode]))
    )
    if login and chosen is not AccountMode.CONSOLE:
        raise click.UsageError("--login applies to --mode console only.")
    if login and api_key:
        raise click.UsageError("Give --api-key or --login, not both.")
    new = NewAccount(
        name=name,
        mode=chosen,
        priority=priority,
        api_key=api_key,
        endpoint=endpoint,
        model_mappings=parse_model_maps(model_maps),
        vertex_project_id=project_id,
        vertex_region=region,
    )
    new, needs_login = _complete_interactively(new, login=login)
    if needs_login:
        _checked(lambda: check_new_account(new, login_pending=True))
        credentials = log_in(config, OAuthMode(chosen.value))
        if chosen is AccountMode.CONSOLE:
            new = msgspec.structs.replace(new, api_key=credentials.api_key)
        else:
            new = msgspec.structs.replace(new, credentials=credentials)
    added = with_store(config, lambda store: add_account(store, new, now_ms=SystemClock().now_ms()))
    click.echo(f"Added {chosen} account {added.name!r} (priority {added.priority}).")


def _complete_interactively(new: NewAccount, *, login: bool) -> tuple[NewAccount, bool]:
    """Prompt for what the mode needs and the flags did not give; also whether to log in."""
    mode = new.mode
    if mode is AccountMode.VERTEX_AI:
        return msgspec.structs.replace(
            new,
            vertex_project_id=new.vertex_project_id or click.prompt("Google Cloud project id"),
            vertex_region=new.vertex_region or click.prompt("Vertex AI region (e.g. us-east5)"),
        ), False
    if mode is AccountMode.ANTHROPIC_COMPATIBLE and not new.endpoint:
        new = msgspec.structs.replace(new, endpoint=click.prompt("Base URL of the endpoint"))
    if login or mode is AccountMode.CLAUDE_OAUTH:
        return new, True
    if new.api_key:
        return new, False
    if mode is AccountMode.CONSOLE:
        key: str = click.prompt(
            f"API key for {new.name} (leave empty to log in with the browser instead)",
            hide_input=True,
            default="",
            show_default=False,
        )
        return msgspec.structs.replace(new, api_key=key or None), not key.strip()
    key = click.prompt(f"API key for {new.name}", hide_input=True)
    return msgspec.structs.replace(new, api_key=key), False


def parse_model_maps(values: tuple[str, ...]) -> ModelMappings | None:
    """``("sonnet=glm-4.6,glm-4.5", ...)`` as mappings; a malformed one is a usage error."""
    if not values:
        return None
    mappings: ModelMappings = {}
    for value in values:
        source, sep, targets = value.partition("=")
        models = tuple(model.strip() for model in targets.split(","))
        if not sep or not source.strip() or not all(models):
            raise UserError(
                f"--model-map: {value!r} is not FROM=TO[,TO2], for example sonnet=glm-4.6."
            )
        if source.strip() in mappings:
            raise UserError(f"--model-map: {source.strip()!r} is mapped twice.")
        mappings[source.strip()] = models
    return mappings


@account.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_accounts(as_json: bool) -> None:
    """List the accounts (never their credentials)."""
    accounts = with_store(load(), lambda store: store.accounts.list_all())
    now_ms = SystemClock().now_ms()
    ordered = sorted(accounts, key=lambda a: (a.priority, a.name))
    if as_json:
        print_json([_row(a, now_ms) for a in ordered])
        return
    if not ordered:
        click.echo("No accounts yet. Add one with `better-ccflare account add NAME --mode MODE`.")
        return
    print_table(
        ["NAME", "PROVIDER", "PRIORITY", "STATE", "REQUESTS", "LAST USED (UTC)"],
        [
            [a.name, a.provider, a.priority, _state(a, now_ms), a.request_count, _when(a)]
            for a in ordered
        ],
    )


@account.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(name: str, as_json: bool) -> None:
    """Show one account in detail (never its credentials)."""
    found = with_store(load(), lambda store: find_account(store, name))
    detail = _detail(found, SystemClock().now_ms())
    if as_json:
        print_json(detail)
        return
    print_table(
        ["FIELD", "VALUE"],
        [
            [field.removesuffix("_ms"), _shown(field, value)]
            for field, value in msgspec.structs.asdict(detail).items()
        ],
    )


@account.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove(name: str, yes: bool) -> None:
    """Remove an account (its request history stays)."""
    config = load()
    found = with_store(config, lambda store: find_account(store, name))
    if not yes:
        click.confirm(f"Remove account {found.name!r} ({found.provider})?", abort=True)
    with_store(config, lambda store: store.accounts.delete(found.id))
    click.echo(f"Removed account {found.name!r}.")


@account.command("pause")
@click.argument("name")
def pause(name: str) -> None:
    """Stop routing requests to an account until it is resumed."""
    found = _change(name, lambda store, a: store.accounts.pause(a.id, PauseReason.MANUAL))
    click.echo(f"Paused {found.name!r}.")


@account.command("resume")
@click.argument("name")
def resume(name: str) -> None:
    """Route requests to a paused account again."""
    found = _change(name, lambda store, a: store.accounts.resume(a.id))
    click.echo(f"Resumed {found.name!r}.")


@account.command("rename")
@click.argument("old")
@click.argument("new")
def rename(old: str, new: str) -> None:
    """Rename an account (its id, history and credentials stay)."""
    new = _checked_name(new)
    found = _change(old, lambda store, a: store.accounts.rename(a.id, new))
    click.echo(f"Renamed {found.name!r} to {new!r}.")


@account.command("set-priority")
@click.argument("name")
@click.argument("priority", type=click.IntRange(0, 100))
def set_priority(name: str, priority: int) -> None:
    """Set an account's priority, 0 to 100 (lower numbers are preferred)."""
    found = _change(name, lambda store, a: store.accounts.set_priority(a.id, priority))
    click.echo(f"Set the priority of {found.name!r} to {priority}.")


@account.command("reset-rate-limit")
@click.argument("name")
def reset_rate_limit_command(name: str) -> None:
    """End an account's cooldown now, making it routable again.

    Clears every bench: a rate limit, and the circuit breaker's (rejected credentials, no
    credit, an unreachable upstream) with its streak.
    """
    found = _change(name, lambda store, a: reset_rate_limit(store, a.id))
    click.echo(f"Cleared the rate-limit state of {found.name!r}.")


@account.command("reauth")
@click.argument("name")
def reauth(name: str) -> None:
    """Log in to an account again, keeping its id, settings and history.

    For claude-oauth accounts whose login expired or was revoked (and console accounts, which
    get a freshly minted key). The new credentials replace the old ones and clear the
    "needs re-login" state; a running server uses them within seconds.
    """
    config = load()
    found = with_store(config, lambda store: find_account(store, name))
    mode = _LOGIN_MODES.get(found.provider)
    if mode is None:
        raise UserError(
            f"{found.name!r} ({found.provider}) uses an API key, not a login; remove it and "
            "add it again with the new key."
        )
    credentials = log_in(config, mode)
    with_store(config, lambda store: store.accounts.set_credentials(found.id, credentials))
    click.echo(f"Logged in again; {found.name!r} has new credentials.")


# --------------------------------------------------------------------------- helpers


def _change(name: str, apply: _Apply) -> Account:
    """Find the account called ``name`` and apply one change to it; returns it as it was."""

    async def work(store: Store) -> Account:
        found = await find_account(store, name)
        await apply(store, found)
        return found

    return with_store(load(), work)


def _checked_name(name: str) -> str:
    return _checked(lambda: validate_account_name(name))


def _checked(check: Callable[[], _T]) -> _T:
    try:
        return check()
    except BetterCcflareError as exc:
        raise as_click_error(exc) from exc


def _shown(field: str, value: object) -> object:
    """One ``account show`` value for people: times in UTC, mappings as FROM=TO, blanks as -."""
    if value is None or value in ("", {}):
        return "-"
    if field.endswith("_ms") and isinstance(value, int):
        return f"{format_time(value)} UTC"
    if isinstance(value, dict):
        mappings = cast("ModelMappings", value)
        return ", ".join(f"{k}={','.join(v)}" for k, v in mappings.items())
    return value


def _state(account: Account, now_ms: int) -> str:
    limit = account.rate_limit
    state = account.state(now_ms)
    if state is AccountState.PAUSED:
        return f"paused ({account.pause_reason})" if account.pause_reason else "paused"
    if state is AccountState.COOLING_DOWN:
        kind = "unreachable" if limit.reason in _UNREACHABLE else "rate-limited"
        return f"{kind} until {format_time(limit.limited_until_ms)} UTC"
    if state in (AccountState.CREDENTIALS_REJECTED, AccountState.OUT_OF_CREDITS):
        return _WORDS[state] + _probe(account, now_ms)
    return _WORDS[state]


_WORDS = {
    AccountState.READY: "active",
    AccountState.REQUIRES_REAUTH: "needs re-login",
    AccountState.CREDENTIALS_REJECTED: "credentials rejected",
    AccountState.OUT_OF_CREDITS: "out of credits",
}
_UNREACHABLE = (RateLimitReason.CONNECT_FAILED, RateLimitReason.UPSTREAM_TIMEOUT)


def _probe(account: Account, now_ms: int) -> str:
    """When the next request may try the account again, or that it may now."""
    if account.rate_limit.cooling_down(now_ms):
        return f" (probed after {format_time(account.rate_limit.limited_until_ms)} UTC)"
    return " (the next request probes it)"


def _when(account: Account) -> str:
    return format_time(account.last_used_ms)


def _row(a: Account, now_ms: int) -> _AccountRow:
    return _AccountRow(
        id=a.id,
        name=a.name,
        provider=a.provider,
        priority=a.priority,
        paused=a.paused,
        requires_reauth=a.requires_reauth,
        account_state=a.state(now_ms),
        custom_endpoint=a.custom_endpoint,
        request_count=a.request_count,
        rate_limited_until_ms=a.rate_limit.limited_until_ms,
    )


def _detail(a: Account, now_ms: int) -> _AccountDetail:
    held = a.credentials
    credential = "oauth" if held.refresh_token or held.access_token else "none"
    if held.api_key:
        credential = "api-key"
    return _AccountDetail(
        id=a.id,
        name=a.name,
        provider=a.provider,
        priority=a.priority,
        state=_state(a, now_ms),
        account_state=a.state(now_ms),
        paused=a.paused,
        pause_reason=a.pause_reason,
        requires_reauth=a.requires_reauth,
        consecutive_failures=a.rate_limit.failures,
        custom_endpoint=a.custom_endpoint,
        model_mappings=a.model_mappings,
        credential=credential,
        token_expires_at_ms=held.expires_at_ms,
        created_at_ms=a.created_at_ms,
        last_used_ms=a.last_used_ms,
        request_count=a.request_count,
        total_requests=a.total_requests,
        session_started_at_ms=a.session.started_at_ms,
        session_request_count=a.session.request_count,
        rate_limit_status=a.rate_limit.status,
        rate_limit_reason=a.rate_limit.reason,
        rate_limited_until_ms=a.rate_limit.limited_until_ms,
        rate_limit_reset_at_ms=a.rate_limit.reset_at_ms,
    )
