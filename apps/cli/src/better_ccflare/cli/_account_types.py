"""The account types ``account add`` offers: the registry's, built-ins and installed plugins.

The registry is built once per command, and only by the commands that need it: the others
never import a plugin (a broken one would log a warning on every invocation). ``--mode``
checks its value against it, so the choices shown in ``--help`` and in the error for a typo
are exactly the types this installation can add. An older name of a type (``claude-oauth``,
``console``) is accepted and becomes the type's one name (``anthropic``,
``claude-console-api``), which is what the rest of the command sees and prints.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
from click.shell_completion import CompletionItem

from better_ccflare.providers import AccountField, FieldKind, ProviderRegistry

from ._errors import FIELD_FLAGS
from ._prompting import ask

__all__ = ["AccountTypeParam", "field_prompt", "registry"]

_REGISTRY_KEY = "better_ccflare.provider_registry"


def registry(ctx: click.Context | None = None) -> ProviderRegistry:
    """The provider registry of this command invocation, built on first use."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return ProviderRegistry()
    meta = ctx.find_root().meta
    found = meta.get(_REGISTRY_KEY)
    if not isinstance(found, ProviderRegistry):
        found = meta[_REGISTRY_KEY] = ProviderRegistry()
    return found


class AccountTypeParam(click.ParamType[str]):
    """A ``click.Choice`` of the registry's account types, read when first needed; an alias
    converts to the type it stands for."""

    name = "type"

    def _choice(self, ctx: click.Context | None) -> click.Choice[str]:
        return click.Choice(registry(ctx).account_types())

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        return self._choice(ctx).get_metavar(param, ctx)

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        aliases = registry(ctx).aliases()
        if isinstance(value, str) and value in aliases:
            return aliases[value]
        return self._choice(ctx).convert(value, param, ctx)

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        return self._choice(ctx).shell_complete(ctx, param, incomplete)


def field_prompt(field: AccountField, account_name: str, *, login_instead: bool = False) -> str:
    """Ask for ``field`` on the terminal (hidden for a secret), starting from its default."""
    text = f"{field.label} for {account_name}" if field.kind is FieldKind.SECRET else field.label
    if login_instead:
        text += " (leave empty to log in with the browser instead)"
    choices: Sequence[str] = field.choices
    flag = FIELD_FLAGS.get(field.name, f"--field {field.name}=VALUE")
    value: str = ask(
        flag,
        text,
        hide_input=field.kind is FieldKind.SECRET,
        default="" if login_instead else field.default,
        show_default=not login_instead,
        type=click.Choice(choices) if choices else None,
    )
    return value
