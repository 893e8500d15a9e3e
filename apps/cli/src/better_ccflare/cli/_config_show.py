"""``better-ccflare config show``: every setting, its value, and where it came from."""

from __future__ import annotations

import click

from better_ccflare.core import Config

from ._context import load
from ._output import Col, print_json, print_table

__all__ = ["config"]


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(as_json: bool) -> None:
    """Print every setting with its source (default, file, .env, environment)."""
    rows = [
        (name, "<set>" if Config.is_secret(name) and value else Config.shown(name, value), source)
        for name, value, source in load().rows()
    ]
    if as_json:
        payload = {
            name: {"value": str(v) if v is not None else None, "source": str(src)}
            for name, v, src in rows
        }
        print_json(payload)
        return
    print_table(
        ["SETTING", Col("VALUE", flex=True, wrap=True), Col("SOURCE", flex=True, wrap=True)], rows
    )
