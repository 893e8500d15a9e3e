"""``better-ccflare api-key ...``: keys that clients must present once any key is active.

The key is printed once, at generation; only a salted scrypt hash is stored. The first key is
always an admin key, and the last active admin key cannot be disabled or deleted, so nobody can
lock themselves out of the management API.
"""

from __future__ import annotations

import click
import msgspec

from better_ccflare.core import ApiKey, ApiKeyRole, NotFoundError, SystemClock
from better_ccflare.database import Store
from better_ccflare.proxy.admin import change_api_key, create_api_key

from ._completion import complete_api_key_names
from ._context import load, with_store
from ._errors import UserError
from ._output import Col, print_json, print_table, styled

__all__ = ["api_key"]


class _KeyRow(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    active: bool
    prefix_last_8: str
    usage_count: int


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
def generate(name: str, role: str | None, as_json: bool) -> None:
    """Create a key and print it once.

    Only the key goes to stdout (`KEY=$(better-ccflare api-key generate ci)` captures it); the
    note that it is shown once goes to stderr.
    """

    async def create(store: Store) -> tuple[ApiKey, str]:
        chosen = ApiKeyRole(role) if role else None
        return await create_api_key(store, name, chosen, now_ms=SystemClock().now_ms())

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
    """List keys (never the keys themselves)."""
    keys = with_store(load(), lambda store: store.api_keys.list_all())
    rows = [
        _KeyRow(k.id, k.name, k.role.value, k.is_active, k.prefix_last_8, k.usage_count)
        for k in sorted(keys, key=lambda k: k.name)
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("No API keys: the proxy accepts every client. Add one with `api-key generate`.")
        return
    print_table(
        [Col("NAME", flex=True), "ROLE", "STATE", "ENDS WITH", Col("USES", justify="right")],
        [
            [
                r.name,
                r.role,
                styled("active", "green") if r.active else styled("disabled", "yellow"),
                f"…{r.prefix_last_8}",
                r.usage_count,
            ]
            for r in rows
        ],
    )


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
