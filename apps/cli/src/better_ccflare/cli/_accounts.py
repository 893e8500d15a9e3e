"""``better-ccflare account ...``: manage the pool from the terminal.

Every command opens the store, does one thing, and closes it (flushing the write). Secrets are
read from a flag or, when the flag is missing, from a hidden prompt; they are never echoed.
"""

from __future__ import annotations

import uuid

import click
import msgspec

from better_ccflare.core import Account, Credentials, ProviderKind, SystemClock
from better_ccflare.database import Store

from ._context import load, with_store
from ._errors import UserError
from ._oauth_login import exchange_login, login_claude_subscription

__all__ = ["account"]

API_KEY_MODES: dict[str, ProviderKind] = {
    "console": ProviderKind.CONSOLE,
    "zai": ProviderKind.ZAI,
    "minimax": ProviderKind.MINIMAX,
    "nanogpt": ProviderKind.NANOGPT,
    "anthropic-compatible": ProviderKind.ANTHROPIC_COMPATIBLE,
    "openai-compatible": ProviderKind.OPENAI_COMPATIBLE,
}
"""Account types added with an API key. OAuth and Vertex AI logins come with their own flows."""

_NEEDS_ENDPOINT = frozenset({"anthropic-compatible"})
CLAUDE_OAUTH_MODE = "claude-oauth"


class _AccountRow(msgspec.Struct, frozen=True):
    """What ``account list --json`` prints: no credentials, ever."""

    id: str
    name: str
    provider: str
    priority: int
    paused: bool
    requires_reauth: bool
    custom_endpoint: str | None
    request_count: int
    rate_limited_until_ms: int | None


@click.group()
def account() -> None:
    """Add, list and remove upstream accounts."""


@account.command("add")
@click.argument("name")
@click.option(
    "--mode",
    type=click.Choice(sorted([*API_KEY_MODES, CLAUDE_OAUTH_MODE])),
    required=True,
    help="The account type; claude-oauth logs in to a Claude subscription.",
)
@click.option("--api-key", help="The account's API key (prompted for, hidden, when omitted).")
@click.option("--endpoint", help="Base URL of the upstream (required for anthropic-compatible).")
@click.option(
    "--priority",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="Lower numbers are preferred.",
)
def add(name: str, mode: str, api_key: str | None, endpoint: str | None, priority: int) -> None:
    """Add an account that authenticates with an API key.

    Example: ``better-ccflare account add work --mode console --api-key sk-ant-api03-...``
    """
    if mode in _NEEDS_ENDPOINT and not endpoint:
        raise click.UsageError(f"--endpoint is required for --mode {mode}.")
    if mode == CLAUDE_OAUTH_MODE:
        _add_subscription(name, priority=priority, endpoint=endpoint)
        return
    key = api_key or click.prompt(f"API key for {name}", hide_input=True)
    if not key.strip():
        raise click.UsageError("The API key is empty.")
    new = Account(
        id=str(uuid.uuid4()),
        name=name,
        provider=API_KEY_MODES[mode].value,
        created_at_ms=SystemClock().now_ms(),
        priority=priority,
        custom_endpoint=endpoint,
        credentials=Credentials(api_key=key.strip()),
    )
    with_store(load(), lambda store: store.accounts.add(new))
    click.echo(f"Added {mode} account {name!r} (priority {priority}).")


def _add_subscription(name: str, *, priority: int, endpoint: str | None) -> None:
    """Log in to a Claude subscription and store the account with its tokens."""
    config = load()
    code, state, verifier = login_claude_subscription(config)

    async def add_logged_in(store: Store) -> None:
        credentials = await exchange_login(config, code, state, verifier)
        await store.accounts.add(
            Account(
                id=str(uuid.uuid4()),
                name=name,
                provider=ProviderKind.CLAUDE_OAUTH.value,
                created_at_ms=SystemClock().now_ms(),
                priority=priority,
                custom_endpoint=endpoint,
                credentials=credentials,
            )
        )

    with_store(config, add_logged_in)
    click.echo(f"Logged in; added Claude subscription account {name!r} (priority {priority}).")


@account.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_accounts(as_json: bool) -> None:
    """List the accounts (never their credentials)."""
    accounts = with_store(load(), lambda store: store.accounts.list_all())
    rows = [
        _AccountRow(
            id=a.id,
            name=a.name,
            provider=a.provider,
            priority=a.priority,
            paused=a.paused,
            requires_reauth=a.requires_reauth,
            custom_endpoint=a.custom_endpoint,
            request_count=a.request_count,
            rate_limited_until_ms=a.rate_limit.limited_until_ms,
        )
        for a in sorted(accounts, key=lambda a: (a.priority, a.name))
    ]
    if as_json:
        click.echo(msgspec.json.encode(rows).decode())
        return
    if not rows:
        click.echo("No accounts yet. Add one with `better-ccflare account add NAME --mode MODE`.")
        return
    click.echo(f"{'NAME':24} {'PROVIDER':22} {'PRIORITY':>8}  STATE")
    for row in rows:
        state = "needs re-login" if row.requires_reauth else "paused" if row.paused else "active"
        click.echo(f"{row.name:24} {row.provider:22} {row.priority:>8}  {state}")


@account.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove(name: str, yes: bool) -> None:
    """Remove an account (its request history stays)."""
    config = load()
    found = with_store(config, lambda store: store.accounts.get_by_name(name))
    if found is None:
        raise UserError(f"No account named {name!r}; see `better-ccflare account list`.")
    if not yes:
        click.confirm(f"Remove account {name!r} ({found.provider})?", abort=True)
    with_store(config, lambda store: store.accounts.delete(found.id))
    click.echo(f"Removed account {name!r}.")
