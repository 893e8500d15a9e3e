"""``better-ccflare api-key ...``: keys that clients must present once any key is active.

The key is printed once, at generation; only a salted scrypt hash is stored. The first key is
always an admin key, and the last active admin key cannot be disabled or deleted, so nobody can
lock themselves out of the management API.
"""

from __future__ import annotations

import uuid

import click
import msgspec

from better_ccflare.core import ApiKey, ApiKeyRole, SystemClock
from better_ccflare.database import Store
from better_ccflare.proxy import generate_api_key, hash_api_key

from ._context import load, with_store
from ._errors import UserError

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


@api_key.command("generate")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in ApiKeyRole]),
    help="admin (everything) or api-only (only /v1/*). The first key is always admin.",
)
def generate(name: str, role: str | None) -> None:
    """Create a key and print it once."""
    key = generate_api_key()
    hashed = hash_api_key(key)  # slow by design; computed before the store's event loop runs

    async def create(store: Store) -> ApiKeyRole:
        first = await store.api_keys.count_active(ApiKeyRole.ADMIN) == 0
        if first and role == ApiKeyRole.API_ONLY.value:
            raise UserError(
                "The first key must be an admin key (otherwise nobody could manage the proxy); "
                "generate an admin key first."
            )
        chosen = ApiKeyRole(role) if role else (ApiKeyRole.ADMIN if first else ApiKeyRole.API_ONLY)
        await store.api_keys.add(
            ApiKey(
                id=str(uuid.uuid4()),
                name=name,
                hashed_key=hashed,
                prefix_last_8=key[-8:],
                created_at_ms=SystemClock().now_ms(),
                role=chosen,
            )
        )
        return chosen

    chosen = with_store(load(), create)
    click.echo(f"Created {chosen.value} key {name!r}. It is shown only this once:")
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
        click.echo(msgspec.json.encode(rows).decode())
        return
    if not rows:
        click.echo("No API keys: the proxy accepts every client. Add one with `api-key generate`.")
        return
    click.echo(f"{'NAME':24} {'ROLE':9} {'STATE':9} ENDS WITH")
    for row in rows:
        state = "active" if row.active else "disabled"
        click.echo(f"{row.name:24} {row.role:9} {state:9} …{row.prefix_last_8}")


def _change(name: str, *, active: bool | None, delete: bool) -> None:
    async def apply(store: Store) -> None:
        found = await store.api_keys.get(name)
        if found is None:
            raise UserError(f"No API key named {name!r}; see `better-ccflare api-key list`.")
        losing_admin = found.is_active and found.role is ApiKeyRole.ADMIN and (delete or not active)
        if losing_admin and await store.api_keys.count_active(ApiKeyRole.ADMIN) == 1:
            raise UserError(
                f"{name!r} is the last active admin key; generate another admin key first."
            )
        if delete:
            await store.api_keys.delete(found.id)
        elif active is not None:
            await store.api_keys.set_active(found.id, active)

    with_store(load(), apply)


@api_key.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Enable a disabled key."""
    _change(name, active=True, delete=False)
    click.echo(f"Enabled {name!r}.")


@api_key.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable a key (clients using it are refused within seconds)."""
    _change(name, active=False, delete=False)
    click.echo(f"Disabled {name!r}.")


@api_key.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, yes: bool) -> None:
    """Delete a key."""
    if not yes:
        click.confirm(f"Delete API key {name!r}?", abort=True)
    _change(name, active=None, delete=True)
    click.echo(f"Deleted {name!r}.")
