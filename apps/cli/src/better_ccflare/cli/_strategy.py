"""``better-ccflare strategy get|set``: which load-balancing strategy picks accounts.

The strategy is the ``lb_strategy`` setting. ``set`` writes it to the config file, which a
running server re-reads by itself within seconds. When ``LB_STRATEGY`` is set in the
environment (or ``.env``), it wins over the file, so ``set`` refuses rather than write a value
that would not take effect.
"""

from __future__ import annotations

import click
import msgspec

from better_ccflare.core import SourceKind, StrategyName, update_config_file

from ._context import load
from ._errors import RuntimeFailure
from ._output import Col, print_json, print_table

__all__ = ["strategy"]

_DESCRIPTIONS: dict[StrategyName, str] = {
    StrategyName.SESSION: "stay on one account for its usage window (default)",
    StrategyName.LEAST_USED: "the preferred account with the most quota left",
    StrategyName.SESSION_AFFINITY: "each client session keeps to one account (warm caches)",
    StrategyName.SESSION_DRAIN_SOONEST: "spend first the weekly quota that resets first",
}


class _Shown(msgspec.Struct, frozen=True, kw_only=True):
    strategy: StrategyName
    source: str
    available: tuple[StrategyName, ...]


@click.group()
def strategy() -> None:
    """Show or choose the load-balancing strategy."""


@strategy.command("get")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def get(as_json: bool) -> None:
    """Print the strategy in force and where it is set."""
    config = load()
    shown = _Shown(
        strategy=config.lb_strategy,
        source=str(config.source_of("lb_strategy")),
        available=tuple(StrategyName),
    )
    if as_json:
        print_json(shown)
        return
    click.echo(f"{shown.strategy} (from {shown.source})")
    print_table(
        ["STRATEGY", Col("BEHAVIOUR", flex=True, wrap=True)],
        [[("* " if s is shown.strategy else "  ") + s, _DESCRIPTIONS[s]] for s in StrategyName],
    )


@strategy.command(
    "set",
    epilog="\b\nSTRATEGY is one of:\n"
    + "\n".join(f"  {s.value:<21} {_DESCRIPTIONS[s]}" for s in StrategyName),
)
@click.argument("name", metavar="STRATEGY", type=click.Choice([s.value for s in StrategyName]))
def set_strategy(name: str) -> None:
    """Choose the strategy (written to the config file; a running server follows it)."""
    config = load()
    source = config.source_of("lb_strategy")
    if source.kind in (SourceKind.ENVIRONMENT, SourceKind.DOTENV):
        raise RuntimeFailure(
            f"LB_STRATEGY={config.lb_strategy} is set in the {source.kind} and overrides the "
            f"config file; change or unset it there instead (nothing was written)."
        )
    update_config_file(config.config_path, {"lb_strategy": name})
    click.echo(f"Strategy set to {name} in {config.config_path}.")
