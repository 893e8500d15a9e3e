"""``better-ccflare account ...``: manage the pool from the terminal.

Every command opens the store, does one thing, and closes it (flushing the write); a running
server adopts the change within seconds. Adding goes through the account setup the management
API uses too (:func:`better_ccflare.proxy.admin.add_account`), so both accept exactly the same
accounts. Secrets are read from a flag or, when the flag is missing, from a hidden prompt; they
are never echoed, and no output (``--json`` included) ever contains one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
import msgspec

from better_ccflare.core import (
    Account,
    BetterCcflareError,
    BillingType,
    InvalidInputError,
    ModelMappings,
    OAuthMode,
    PauseReason,
    ProviderKind,
    SystemClock,
    UsageSnapshot,
)
from better_ccflare.database import Store
from better_ccflare.providers import Provider
from better_ccflare.proxy.admin import (
    AccountEdit,
    AccountType,
    NewAccount,
    account_types,
    add_account,
    check_new_account,
    edit_account,
    logs_in_only,
    reset_rate_limit,
    validate_account_name,
)

from ._account_lookup import find_account
from ._account_types import AccountTypeParam, field_prompt, registry
from ._account_view import LIST_COLUMNS, account_detail, account_row, list_cells, show_rows, shown
from ._completion import complete_account_names
from ._context import load, with_store
from ._errors import UserError, as_click_error
from ._oauth_login import log_in
from ._output import Col, print_json, print_table, print_text
from ._prompting import ask

__all__ = ["account"]

_LOGIN_MODES: dict[str, OAuthMode] = {
    ProviderKind.CLAUDE_OAUTH.value: OAuthMode.CLAUDE_OAUTH,
    ProviderKind.CONSOLE.value: OAuthMode.CONSOLE,
}
"""Providers whose credentials come from a login (console: a key minted by one)."""

_T = TypeVar("_T")
_Apply = Callable[[Store, Account], Awaitable[None]]
"""One change to a found account."""


@click.group()
def account() -> None:
    """Add, inspect and manage upstream accounts.

    Commands that take NAME also accept the account's id (see `account list --json`).
    """


@account.command("add")
@click.argument("name")
@click.option(
    "--mode",
    type=AccountTypeParam(),
    help="The account type: a built-in or an installed plugin's (see `account types`; the "
    "older names claude-oauth and console still work); prompted for when omitted.",
)
@click.option("--api-key", help="The account's API key (prompted for, hidden, when needed).")
@click.option(
    "--endpoint",
    help="Base URL of the upstream (required for anthropic-compatible; optional for "
    "openai-compatible, nanogpt, claude-console-api, anthropic and plugins that declare one).",
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
    "--field",
    "extra_fields",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any other field the account type declares (see `account types`); repeatable.",
)
@click.option(
    "--login",
    is_flag=True,
    help="claude-console-api: log in with the browser and mint an API key instead of pasting one.",
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
    extra_fields: tuple[str, ...],
    login: bool,
) -> None:
    """Add an account; prompts (secrets hidden) for whatever the flags leave out.

    \b
    Examples:
      better-ccflare account add me --mode anthropic
      better-ccflare account add work --mode claude-console-api --api-key sk-ant-api03-...
      better-ccflare account add gw --mode anthropic-compatible \\
          --endpoint https://gateway.example --api-key ... --model-map sonnet=glm-4.6
      better-ccflare account add gcp --mode vertex-ai --project-id my-proj --region us-east5
      better-ccflare account add mine --mode my-plugin --api-key ... --field tenant=t1
    """
    config = load()
    name = _checked_name(name)
    providers = registry()
    chosen: str = mode or ask("--mode", "Account type", type=AccountTypeParam())
    provider = providers.for_account_type(chosen)
    if login:
        key_logins = [
            t
            for t in providers.account_types()
            if providers.for_account_type(t).oauth_login is not None
            and not logs_in_only(providers.for_account_type(t))
        ]
        if chosen not in key_logins:
            raise click.UsageError(f"--login applies to --mode {', '.join(key_logins)} only.")
        if api_key:
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
        fields=_parse_fields(extra_fields),
    )
    new, needs_login = _complete_interactively(new, provider, login=login)
    if needs_login and provider.oauth_login is not None:
        _checked(lambda: check_new_account(new, login_pending=True, registry=providers))
        credentials = log_in(config, provider.oauth_login)
        if logs_in_only(provider):
            new = msgspec.structs.replace(new, credentials=credentials)
        else:
            new = msgspec.structs.replace(new, api_key=credentials.api_key)
    added = with_store(
        config,
        lambda store: add_account(store, new, now_ms=SystemClock().now_ms(), registry=providers),
    )
    click.echo(f"Added {chosen} account {added.name!r} (priority {added.priority}).")


def _complete_interactively(
    new: NewAccount, provider: Provider, *, login: bool
) -> tuple[NewAccount, bool]:
    """Prompt, in declared order, for each required field the flags did not give; also whether
    to log in (always for login-only types; for key types that can log in, when asked to or
    when the key prompt is left empty)."""
    needs_login = login or logs_in_only(provider)
    for field in provider.account_fields:
        if not field.required or (new.value(field.name) or "").strip():
            continue
        if field.name == "api_key" and provider.oauth_login is not None:
            if needs_login:
                continue
            value = field_prompt(field, new.name, login_instead=True).strip()
            needs_login = not value
        else:
            value = field_prompt(field, new.name)
        new = new.with_value(field.name, value or None)
    return new, needs_login


def _parse_fields(values: tuple[str, ...]) -> dict[str, str]:
    """``("tenant=t1", ...)`` by name; a malformed or repeated one is a usage error."""
    fields: dict[str, str] = {}
    for value in values:
        name, sep, given = value.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--field: {value!r} is not NAME=VALUE, for example tenant=t1.")
        if name.strip() in fields:
            raise UserError(f"--field: {name.strip()!r} is given twice.")
        fields[name.strip()] = given
    return fields


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


@account.command("types")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def types(as_json: bool) -> None:
    """List the account types `account add --mode` takes (plugins too), with their fields.

    A field with a flag of its own is given with it (--api-key, --endpoint for
    custom_endpoint, --project-id, --region); any other with --field NAME=VALUE. Required
    fields the flags leave out are prompted for.
    """
    rows = account_types(registry())
    if as_json:
        print_json(rows)
        return
    print_table(
        [
            "TYPE",
            Col("NAME", flex=True),
            Col("FROM", flex=True),
            Col("FIELDS", flex=True, wrap=True),
        ],
        [[r.type, r.display_name, _origin(r), _fields_text(r)] for r in rows],
    )
    renamed = [f"{', '.join(r.aliases)} for {r.type}" for r in rows if r.aliases]
    if renamed:
        print_text(f"Older names --mode still takes: {'; '.join(renamed)}.")


def _origin(row: AccountType) -> str:
    return "built-in" if row.builtin else f"{row.distribution} {row.version}"


def _fields_text(row: AccountType) -> str:
    fields = [f.name + ("" if f.required else " (optional)") for f in row.fields]
    if row.login is not None:
        takes_key = any(f.name == "api_key" for f in row.fields)
        fields.append("or a browser login" if takes_key else "browser login")
    return ", ".join(fields) or "-"


@account.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_accounts(as_json: bool) -> None:
    """List the accounts with their state and usage (never their credentials).

    5H and 7D are the usage windows of Claude subscriptions, in percent, from the server's last
    reading; `account show` lists every window a provider reports.
    """

    async def read(store: Store) -> list[tuple[Account, UsageSnapshot | None]]:
        accounts = await store.accounts.list_all()
        return [(a, await store.usage.latest(a.id)) for a in accounts]

    found = with_store(load(), read)
    now_ms = SystemClock().now_ms()
    ordered = sorted(found, key=lambda pair: (pair[0].priority, pair[0].name))
    if as_json:
        print_json([account_row(a, usage, now_ms) for a, usage in ordered])
        return
    if not ordered:
        click.echo("No accounts yet. Add one with `better-ccflare account add NAME --mode MODE`.")
        return
    print_table(LIST_COLUMNS, [list_cells(a, usage, now_ms) for a, usage in ordered])


@account.command("show")
@click.argument("name", shell_complete=complete_account_names)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(name: str, as_json: bool) -> None:
    """Show one account in detail, with every usage window (never its credentials)."""

    async def read(store: Store) -> tuple[Account, UsageSnapshot | None]:
        found = await find_account(store, name)
        return found, await store.usage.latest(found.id)

    found, usage = with_store(load(), read)
    now_ms = SystemClock().now_ms()
    detail = account_detail(found, usage, now_ms)
    if as_json:
        print_json(detail)
        return
    print_table(["FIELD", Col("VALUE", flex=True, wrap=True)], show_rows(detail, now_ms))


@account.command("remove")
@click.argument("name", shell_complete=complete_account_names)
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
@click.argument("name", shell_complete=complete_account_names)
def pause(name: str) -> None:
    """Stop routing requests to an account until it is resumed."""
    found = _change(name, lambda store, a: store.accounts.pause(a.id, PauseReason.MANUAL))
    click.echo(f"Paused {found.name!r}.")


@account.command("resume")
@click.argument("name", shell_complete=complete_account_names)
def resume(name: str) -> None:
    """Route requests to a paused account again."""
    found = _change(name, lambda store, a: store.accounts.resume(a.id))
    click.echo(f"Resumed {found.name!r}.")


@account.command("edit")
@click.argument("name", shell_complete=complete_account_names)
@click.option("--name", "new_name", metavar="NEW", help="Rename the account.")
@click.option("--priority", type=click.IntRange(0, 100), help="0-100; lower is preferred.")
@click.option(
    "--endpoint",
    metavar="URL",
    help='Base URL of the upstream, for the types that take one; "" for the default.',
)
@click.option(
    "--model-map",
    "model_maps",
    multiple=True,
    metavar="FROM=TO[,TO2]",
    help="Replace the model mappings (as `account add`); repeatable.",
)
@click.option("--no-model-maps", is_flag=True, help="Remove every model mapping.")
@click.option(
    "--auto-fallback/--no-auto-fallback",
    default=None,
    help="Switch back to this account as soon as its usage window resets.",
)
@click.option(
    "--auto-refresh/--no-auto-refresh",
    default=None,
    help="Start a new usage window once the old one resets (subscriptions, zai).",
)
@click.option(
    "--auto-pause-on-overage/--no-auto-pause-on-overage",
    default=None,
    help="Pause the account when the upstream says it is billing overage.",
)
@click.option(
    "--peak-hours-pause/--no-peak-hours-pause",
    default=None,
    help="zai: sit out the provider's peak hours.",
)
@click.option(
    "--billing-type",
    type=click.Choice([*(b.value for b in BillingType), "auto"]),
    help="How requests are billed when the upstream does not say; auto: the provider's.",
)
def edit(
    *,
    name: str,
    new_name: str | None,
    priority: int | None,
    endpoint: str | None,
    model_maps: tuple[str, ...],
    no_model_maps: bool,
    auto_fallback: bool | None,
    auto_refresh: bool | None,
    auto_pause_on_overage: bool | None,
    peak_hours_pause: bool | None,
    billing_type: str | None,
) -> None:
    """Change an account's settings; the options left out keep their values.

    Everything the dashboard can change. Every value is checked before anything is written, so
    a refused edit changes nothing.

    \b
    Examples:
      better-ccflare account edit work --priority 5 --auto-fallback
      better-ccflare account edit gw --endpoint https://gw2.example \\
          --model-map sonnet=glm-4.6
      better-ccflare account edit me --name "me (laptop)" --billing-type auto
    """
    if model_maps and no_model_maps:
        raise click.UsageError("Give --model-map or --no-model-maps, not both.")
    mappings = {} if no_model_maps else parse_model_maps(model_maps)
    change = AccountEdit(
        name=new_name,
        priority=priority,
        endpoint=msgspec.UNSET if endpoint is None else endpoint,
        model_mappings=mappings,
        auto_fallback=auto_fallback,
        auto_refresh=auto_refresh,
        auto_pause_on_overage=auto_pause_on_overage,
        peak_hours_pause=peak_hours_pause,
        billing_type=_billing_type(billing_type),
    )
    if change.is_empty():
        raise click.UsageError("Nothing to change: give at least one option (see --help).")
    before, after = _edited(name, change)
    changes = _differences(before, after)
    click.echo(f"Updated {after.name!r}: {'; '.join(changes) or 'nothing was different'}.")


@account.command("rename")
@click.argument("old", shell_complete=complete_account_names)
@click.argument("new")
def rename(old: str, new: str) -> None:
    """Rename an account (its id, history and credentials stay); as `edit OLD --name NEW`."""
    before, after = _edited(old, AccountEdit(name=new), {"name": "NEW"})
    click.echo(f"Renamed {before.name!r} to {after.name!r}.")


@account.command("set-priority")
@click.argument("name", shell_complete=complete_account_names)
@click.argument("priority", type=click.IntRange(0, 100))
def set_priority(name: str, priority: int) -> None:
    """Set an account's priority, 0 to 100 (lower numbers are preferred)."""
    before, _ = _edited(name, AccountEdit(priority=priority))
    click.echo(f"Set the priority of {before.name!r} to {priority}.")


@account.command("reset-rate-limit")
@click.argument("name", shell_complete=complete_account_names)
def reset_rate_limit_command(name: str) -> None:
    """End an account's cooldown now, making it routable again.

    Clears every bench: a rate limit, and the circuit breaker's (rejected credentials, no
    credit, an unreachable upstream) with its streak.
    """
    found = _change(name, lambda store, a: reset_rate_limit(store, a.id))
    click.echo(f"Cleared the rate-limit state of {found.name!r}.")


@account.command("reauth")
@click.argument("name", shell_complete=complete_account_names)
def reauth(name: str) -> None:
    """Log in to an account again, keeping its id, settings and history.

    For anthropic (Claude subscription) accounts whose login expired or was revoked (and
    claude-console-api accounts, which get a freshly minted key). The new credentials replace
    the old ones and clear the "needs re-login" state; a running server uses them within
    seconds.
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


def _edited(
    name: str, change: AccountEdit, flags: dict[str, str] | None = None
) -> tuple[Account, Account]:
    """Apply ``change`` to the account called ``name`` through the rules the API shares; the
    account before and after. Errors name the input by ``flags`` (``account edit``'s own by
    default)."""
    flags = flags or _EDIT_FLAGS

    async def work(store: Store) -> tuple[Account, Account]:
        found = await find_account(store, name)
        try:
            return found, await edit_account(store, found.id, change, registry=registry())
        except InvalidInputError as exc:
            raise UserError(f"{flags.get(exc.field, exc.field)}: {exc.message}") from exc

    return with_store(load(), work)


_EDIT_FLAGS = {
    "name": "--name",
    "priority": "--priority",
    "endpoint": "--endpoint",
    "model_mappings": "--model-map",
    "billing_type": "--billing-type",
}
""":class:`AccountEdit` fields as ``account edit`` spells them."""


def _billing_type(value: str | None) -> BillingType | msgspec.UnsetType | None:
    if value is None:
        return msgspec.UNSET
    return None if value == "auto" else BillingType(value)


_EDITED = (
    ("name", "name"),
    ("priority", "priority"),
    ("custom_endpoint", "endpoint"),
    ("model_mappings", "model mappings"),
    ("auto_fallback_enabled", "auto-fallback"),
    ("auto_refresh_enabled", "auto-refresh"),
    ("auto_pause_on_overage_enabled", "auto-pause-on-overage"),
    ("peak_hours_pause_enabled", "peak-hours-pause"),
    ("billing_type", "billing type"),
)
"""What ``account edit`` can change: the account's attribute, and how the summary names it."""


def _differences(before: Account, after: Account) -> list[str]:
    """``priority 0 -> 5``-style notes, one per setting that changed."""
    notes: list[str] = []
    for attribute, label in _EDITED:
        old, new = getattr(before, attribute), getattr(after, attribute)
        if old != new:
            notes.append(f"{label} {_setting(attribute, old)} -> {_setting(attribute, new)}")
    return notes


def _setting(attribute: str, value: object) -> object:
    if isinstance(value, bool):
        return "on" if value else "off"
    if attribute == "billing_type" and value is None:
        return "auto"
    return shown(attribute, value)


def _checked_name(name: str) -> str:
    return _checked(lambda: validate_account_name(name))


def _checked(check: Callable[[], _T]) -> _T:
    try:
        return check()
    except BetterCcflareError as exc:
        raise as_click_error(exc) from exc
