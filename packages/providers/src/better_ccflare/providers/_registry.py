"""Which providers exist: the built-ins, plus plugins published as entry points.

Built-in providers are registered explicitly, so the proxy works even when package metadata is
odd; :data:`ENDPOINTS` lists their overridable URLs. Third-party providers are discovered
through the ``better_ccflare.providers`` entry-point group; each entry point names a
:class:`~._contract.Provider` subclass or a zero-argument factory returning a provider
instance. Its name should be the provider id.

``BETTER_CCFLARE_PROVIDERS`` limits which plugins load: unset loads them all, an empty value
loads none, and a comma-separated list loads only the entry points whose name or distribution
name appears in it. Built-ins are not affected.

Each plugin that loads is logged at INFO on the ``better_ccflare.providers`` logger, one line
naming its id, distribution and version. A plugin that fails to import, raises in its factory,
returns something that is not a provider, was built for another contract version, declares
malformed account fields, or claims an id or account type that is already taken is skipped
with one WARNING line saying why, and recorded in :attr:`ProviderRegistry.failures`. A broken
plugin never stops the proxy.

Accounts are added by *account type* (:attr:`Provider.account_type`), the provider id, so a
type has one name in the CLI, the API, the dashboard and the database. Input also takes each
provider's :attr:`Provider.type_aliases`: the built-in subscription and console types answer to
their older names (``claude-oauth`` and ``max``; ``console``), so scripts written for them keep
working.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import cast

import msgspec

from better_ccflare.core import DEFAULT_CLIENT_ID, BetterCcflareError

from ._account_fields import check_account_fields
from ._anthropic_api import ANTHROPIC_API
from ._anthropic_compatible import ANTHROPIC_COMPATIBLE, AnthropicCompatibleProvider
from ._claude_oauth import ClaudeOAuthProvider
from ._console import ConsoleProvider
from ._contract import API_VERSION, Provider
from ._endpoint import Endpoint
from ._minimax import MINIMAX_API, MINIMAX_USAGE, MinimaxProvider
from ._nanogpt import NANOGPT_API, NanoGptProvider
from ._oauth import OAUTH_AUTHORIZE_CLAUDE, OAUTH_AUTHORIZE_CONSOLE, OAUTH_TOKEN
from ._openai_compatible import OPENAI_COMPATIBLE, OpenAICompatibleProvider
from ._vertex_ai import VERTEX_AI, VertexAIProvider
from ._zai import ZAI_API, ZAI_USAGE, ZaiProvider

__all__ = [
    "ENDPOINTS",
    "ENTRY_POINT_GROUP",
    "PLUGIN_ALLOW_LIST_ENV",
    "PluginFailure",
    "ProviderOrigin",
    "ProviderRegistry",
    "UnknownAccountTypeError",
    "UnknownProviderError",
    "builtin_providers",
    "default_registry",
]

ENTRY_POINT_GROUP = "better_ccflare.providers"
PLUGIN_ALLOW_LIST_ENV = "BETTER_CCFLARE_PROVIDERS"

_log = logging.getLogger("better_ccflare.providers")


class UnknownProviderError(BetterCcflareError, LookupError):
    """No provider is registered under the requested id."""

    def __init__(self, provider_id: str, known: Iterable[str]) -> None:
        self.provider_id = provider_id
        super().__init__(
            f"No provider with id {provider_id!r}. Known providers: {', '.join(known)}. "
            f"A plugin provider must be installed, allowed by {PLUGIN_ALLOW_LIST_ENV} "
            "(if set), and load without errors (see `providers list`)."
        )


class UnknownAccountTypeError(BetterCcflareError, LookupError):
    """No provider adds accounts of the requested type."""

    def __init__(self, account_type: str, known: Iterable[str]) -> None:
        self.account_type = account_type
        super().__init__(
            f"No account type {account_type!r}. Known types: {', '.join(known)}. A plugin's "
            f"type is its provider id; it must be installed, allowed by {PLUGIN_ALLOW_LIST_ENV} "
            "(if set), and load without errors."
        )


class ProviderOrigin(msgspec.Struct, frozen=True, kw_only=True):
    """Where a provider came from, for ``providers list`` and ``/api/providers``."""

    builtin: bool
    distribution: str | None = None
    """The plugin's distribution (package) name."""
    version: str | None = None
    entry_point: str | None = None
    """The entry point's ``name = module:attr``."""

    def __str__(self) -> str:
        if self.builtin:
            return "built-in"
        return f"{self.distribution or 'unknown distribution'} {self.version or ''}".strip()


class PluginFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A plugin that was found but not registered, and why."""

    entry_point: str
    distribution: str | None
    reason: str


def builtin_providers(*, client_id: str = DEFAULT_CLIENT_ID) -> tuple[Provider, ...]:
    """One instance of every built-in provider.

    Args:
        client_id: The OAuth client id for Claude subscriptions (the config's ``client_id``).
    """
    return (
        ClaudeOAuthProvider(client_id=client_id),
        ConsoleProvider(),
        ZaiProvider(),
        MinimaxProvider(),
        NanoGptProvider(),
        VertexAIProvider(),
        OpenAICompatibleProvider(),
        AnthropicCompatibleProvider(),
    )


ENDPOINTS: tuple[Endpoint, ...] = (
    ANTHROPIC_API,
    OAUTH_TOKEN,
    OAUTH_AUTHORIZE_CLAUDE,
    OAUTH_AUTHORIZE_CONSOLE,
    ZAI_API,
    ZAI_USAGE,
    MINIMAX_API,
    MINIMAX_USAGE,
    NANOGPT_API,
    OPENAI_COMPATIBLE,
    ANTHROPIC_COMPATIBLE,
    VERTEX_AI,
)
"""Every overridable URL of the built-ins (each declared in its provider's module), for the
documentation: the README's table is checked against it."""


class ProviderRegistry:
    """The providers this process can route to, by id.

    Args:
        builtins: The built-in providers; :func:`builtin_providers` when ``None``.
        plugins: Entry points to load; the installed ``better_ccflare.providers`` group when
            ``None``. Tests pass :class:`importlib.metadata.EntryPoint` objects.
        environ: Where to read ``BETTER_CCFLARE_PROVIDERS``; ``os.environ`` when ``None``.
    """

    __slots__ = ("_aliases", "_by_type", "_failures", "_origins", "_providers")

    def __init__(
        self,
        *,
        builtins: Iterable[Provider] | None = None,
        plugins: Iterable[EntryPoint] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._providers: dict[str, Provider] = {}
        self._origins: dict[str, ProviderOrigin] = {}
        self._by_type: dict[str, Provider] = {}
        self._aliases: dict[str, Provider] = {}
        self._failures: list[PluginFailure] = []
        for provider in builtin_providers() if builtins is None else builtins:
            self._add(provider, ProviderOrigin(builtin=True))
        allowed = _allow_list(os.environ if environ is None else environ)
        found = entry_points(group=ENTRY_POINT_GROUP) if plugins is None else plugins
        for entry_point in found:
            if allowed is None or _is_allowed(entry_point, allowed):
                self._load(entry_point)

    @property
    def failures(self) -> tuple[PluginFailure, ...]:
        """Plugins that were found but skipped, with the reason for each."""
        return tuple(self._failures)

    def get(self, provider_id: str) -> Provider:
        """The provider registered as ``provider_id``.

        Raises:
            UnknownProviderError: There is none; the message lists the ids there are.
        """
        try:
            return self._providers[provider_id]
        except KeyError:
            raise UnknownProviderError(provider_id, self._providers) from None

    def ids(self) -> tuple[str, ...]:
        """Every registered id: built-ins first, then plugins in discovery order."""
        return tuple(self._providers)

    def account_types(self) -> tuple[str, ...]:
        """Every account type people can add, in :meth:`ids` order."""
        return tuple(self._by_type)

    def for_account_type(self, account_type: str) -> Provider:
        """The provider that adds accounts of ``account_type`` or of a type it is an alias of.

        Raises:
            UnknownAccountTypeError: There is none; the message lists the types there are.
        """
        found = self._by_type.get(account_type) or self._aliases.get(account_type)
        if found is None:
            raise UnknownAccountTypeError(account_type, self._by_type)
        return found

    def aliases(self) -> dict[str, str]:
        """Every alias input may use, with the account type it stands for."""
        return {alias: provider.account_type for alias, provider in self._aliases.items()}

    def origin(self, provider_id: str) -> ProviderOrigin:
        """Whether ``provider_id`` is built in, or which distribution and version provide it.

        Raises:
            UnknownProviderError: No such provider.
        """
        self.get(provider_id)
        return self._origins[provider_id]

    def _load(self, entry_point: EntryPoint) -> None:
        distribution = entry_point.dist.name if entry_point.dist is not None else None
        version = entry_point.dist.version if entry_point.dist is not None else None
        label = f"{entry_point.name} = {entry_point.value}"
        try:
            provider = _instantiate(entry_point)
        except _RejectedPluginError as exc:
            self._fail(label, distribution, str(exc))
            return
        except Exception as exc:
            # Anything a third-party import or constructor raises must not take the host down.
            self._fail(label, distribution, f"{type(exc).__name__}: {exc}")
            return
        names = [("provider id", provider.id), ("account type", provider.account_type)]
        names += [("account type alias", alias) for alias in provider.type_aliases]
        for what, name in names:
            holder = self._providers.get(name) or self._by_type.get(name) or self._aliases.get(name)
            if holder is not None:
                clash = "a built-in" if self._origins[holder.id].builtin else "another plugin"
                self._fail(label, distribution, f"{what} {name!r} is already taken by {clash}")
                return
        origin = ProviderOrigin(
            builtin=False, distribution=distribution, version=version, entry_point=label
        )
        self._add(provider, origin)
        _log.info(
            "Loaded provider plugin %s (%s): account type %s",
            label,
            origin,
            provider.account_type,
        )

    def _add(self, provider: Provider, origin: ProviderOrigin) -> None:
        self._providers[provider.id] = provider
        self._by_type[provider.account_type] = provider
        for alias in provider.type_aliases:
            self._aliases[alias] = provider
        self._origins[provider.id] = origin

    def _fail(self, label: str, distribution: str | None, reason: str) -> None:
        _log.warning(
            "Skipping provider plugin %s (from %s): %s",
            label,
            distribution or "unknown distribution",
            reason,
        )
        self._failures.append(
            PluginFailure(entry_point=label, distribution=distribution, reason=reason)
        )


class _RejectedPluginError(Exception):
    """A plugin loaded but is not an acceptable provider; the message says why."""


def _instantiate(entry_point: EntryPoint) -> Provider:
    """The plugin's provider instance, checked before and after construction."""
    target: object = entry_point.load()
    if isinstance(target, type):
        if not issubclass(target, Provider):
            raise _RejectedPluginError(f"{target!r} is a class but not a Provider subclass")
        _check_version(target.api_version)
        provider: object = target()
    elif callable(target):
        provider = target()
    else:
        raise _RejectedPluginError(
            f"{target!r} is neither a Provider subclass nor a factory returning a Provider"
        )
    if not isinstance(provider, Provider):
        raise _RejectedPluginError(
            f"the factory returned {type(provider).__name__}, not a Provider"
        )
    _check_version(provider.api_version)
    provider_id = getattr(provider, "id", None)
    if not isinstance(provider_id, str) or not provider_id:
        raise _RejectedPluginError("the provider has no id; set the class attribute `id`")
    if not isinstance(getattr(provider, "display_name", None), str):
        raise _RejectedPluginError(
            "the provider has no display name; set the class attribute `display_name`"
        )
    account_type = provider.account_type
    if not isinstance(account_type, str) or not account_type:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise _RejectedPluginError("the provider's account_type is not a non-empty string")
    aliases: object = getattr(provider, "type_aliases", ())
    if not isinstance(aliases, tuple) or not all(
        isinstance(a, str) and a for a in cast("tuple[object, ...]", aliases)
    ):
        raise _RejectedPluginError("the provider's type_aliases is not a tuple of names")
    try:
        check_account_fields(provider.account_fields)
    except (TypeError, ValueError) as exc:
        raise _RejectedPluginError(f"its account_fields are malformed: {exc}") from None
    return provider


def _check_version(api_version: int) -> None:
    if api_version != API_VERSION:
        raise _RejectedPluginError(
            f"it was built for provider API version {api_version}, but this "
            f"better-ccflare-providers implements version {API_VERSION}; install a plugin "
            "release made for this version"
        )


def _allow_list(environ: Mapping[str, str]) -> frozenset[str] | None:
    raw = environ.get(PLUGIN_ALLOW_LIST_ENV)
    if raw is None:
        return None
    return frozenset(_normalise(item) for item in raw.split(",") if item.strip())


def _is_allowed(entry_point: EntryPoint, allowed: frozenset[str]) -> bool:
    names = {_normalise(entry_point.name)}
    if entry_point.dist is not None:
        names.add(_normalise(entry_point.dist.name))
    return not names.isdisjoint(allowed)


def _normalise(name: str) -> str:
    """Distribution names compare case- and separator-insensitively (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


@cache
def default_registry() -> ProviderRegistry:
    """The process-wide registry, built on first use from the installed plugins."""
    return ProviderRegistry()
