"""``better-ccflare agent list|set|clear``: Claude Code subagents and the model the proxy sends
their requests with.

Agents are read from ``~/.claude/agents/*.md`` and each registered workspace's
``.claude/agents`` (the running server finds them the same way, within 30 s). A preference is
stored in the database, so a running server applies it from its next request. ``set`` accepts a
name no file declares, for clients that name their agent in ``x-better-ccflare-agent-id``, and
says so on stderr, so a typo does not go unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import click

from better_ccflare.core import NotFoundError, SystemClock
from better_ccflare.database import Store
from better_ccflare.proxy.agents import (
    AgentCatalog,
    agent_catalog,
    clear_agent_model,
    discover_agents,
    set_agent_model,
)

from ._context import load, with_store
from ._errors import UserError
from ._output import Col, format_relative, print_json, print_table, print_text

__all__ = ["agent"]


@click.group()
def agent() -> None:
    """List Claude Code subagents and choose the model their requests use."""


@agent.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_agents(as_json: bool) -> None:
    """List discovered agents with their preferred model, and preferences for agents not found."""
    discovered = discover_agents(Path.home())

    async def catalog(store: Store) -> AgentCatalog:
        return await agent_catalog(discovered, store.agent_preferences)

    shown = with_store(load(), catalog)
    if as_json:
        print_json(shown)
        return
    if not shown.agents:
        print_text(
            f"No agents: none in {Path.home() / '.claude' / 'agents'} or a registered "
            "workspace, and no preferences. Set one with `agent set NAME MODEL`."
        )
        return
    now_ms = SystemClock().now_ms()
    print_table(
        [
            Col("AGENT", flex=True),
            "ORIGIN",
            Col("FILE MODEL", flex=True),
            Col("PREFERRED MODEL", flex=True),
            "SET",
            Col("FILE", flex=True),
        ],
        [
            [
                e.id,
                e.origin.value,
                e.file_model or "-",
                e.preferred_model or "- (as the client asks)",
                format_relative(e.preference_updated_at_ms, now_ms),
                e.path or "-",
            ]
            for e in shown.agents
        ],
    )


@agent.command("set")
@click.argument("name")
@click.argument("model")
def set_model(name: str, model: str) -> None:
    """Send NAME's requests with MODEL (from a running server's next request on)."""
    known = {a.id for a in discover_agents(Path.home()).agents}

    async def store_it(store: Store) -> None:
        await set_agent_model(store.agent_preferences, name, model, SystemClock().now_ms())

    with_store(load(), store_it)
    click.echo(f"Agent {name.strip()!r} now uses {model.strip()}.")
    if name.strip() not in known:
        click.echo(
            f"Note: no agent file names {name.strip()!r}; the preference applies to requests "
            "that send it in x-better-ccflare-agent-id. `agent list` shows the agents found.",
            err=True,
        )


@agent.command("clear")
@click.argument("name")
def clear_model(name: str) -> None:
    """Let NAME's requests use the model the client asks for again."""

    async def forget(store: Store) -> bool:
        try:
            await clear_agent_model(store.agent_preferences, name)
        except NotFoundError:
            return False
        return True

    if not with_store(load(), forget):
        raise UserError(
            f"agent {name!r} has no model preference to clear; `agent list` shows the agents "
            "and their preferences."
        )
    click.echo(f"Agent {name!r} now uses the model the client asks for.")
