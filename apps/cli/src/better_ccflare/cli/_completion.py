"""Shell completion of account and API-key names, read from the configured database.

click asks for completions when the shell's completion script runs the command with
``_BETTER_CCFLARE_COMPLETE`` set (see docs/cli.md, "Shell completion"). Completing must never
print an error, create a database or take long: with no database yet, an unreadable
configuration or any failure to read, nothing is offered, and the shell falls back to its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import click
from click.shell_completion import CompletionItem

from better_ccflare.core import Config, load_config
from better_ccflare.database import Store

__all__ = ["complete_account_names", "complete_api_key_names"]

_Names = Callable[[Store], Awaitable[Iterable[tuple[str, str]]]]
"""What to offer from a store: each name with a short help text."""


def complete_account_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The accounts whose name starts with ``incomplete``, each with its type as help."""

    async def names(store: Store) -> list[tuple[str, str]]:
        return [(a.name, a.provider) for a in await store.accounts.list_all()]

    return _complete(names, incomplete)


def complete_api_key_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The proxy API keys whose name starts with ``incomplete``, each with its role as help."""

    async def names(store: Store) -> list[tuple[str, str]]:
        return [(k.name, k.role.value) for k in await store.api_keys.list_all()]

    return _complete(names, incomplete)


def _complete(names: _Names, incomplete: str) -> list[CompletionItem]:
    try:
        config = load_config()
        if config.database_url is None and not config.db_path.exists():
            return []
        found = asyncio.run(_read(config, names))
    except Exception:
        return []
    return [
        CompletionItem(name, help=help)
        for name, help in sorted(found)
        if name.startswith(incomplete)
    ]


async def _read(config: Config, names: _Names) -> list[tuple[str, str]]:
    async with await Store.from_config(config) as store:
        return list(await names(store))
