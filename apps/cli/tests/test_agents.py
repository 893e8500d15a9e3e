"""``better-ccflare agent list|set|clear``: the agents found under HOME (the test's directory)
and registered workspaces, and the model preferences a running server applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .cli_support import Cli


def _agent_file(directory: Path, name: str, model: str = "sonnet") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.md").write_text(
        f"---\nname: {name}\ndescription: The {name}\nmodel: {model}\n---\nYou are the {name}.\n"
    )


@pytest.fixture
def agents_cli(cli: Cli) -> Cli:
    """HOME holds a ``reviewer`` agent and a registered workspace with a ``planner``."""
    _agent_file(cli.tmp_path / ".claude" / "agents", "reviewer")
    project = cli.tmp_path / "project"
    _agent_file(project / ".claude" / "agents", "planner", model="opus")
    registry = cli.tmp_path / ".better-ccflare" / "workspaces.json"
    registry.parent.mkdir()
    registry.write_text(
        json.dumps({"version": 1, "workspaces": [{"path": str(project), "name": "project"}]})
    )
    return cli


def test_list_shows_global_and_workspace_agents_with_their_file_model(agents_cli: Cli) -> None:
    shown = agents_cli.json("agent", "list")
    by_id = {a["id"]: a for a in shown["agents"]}
    assert by_id["reviewer"]["origin"] == "global"
    assert by_id["reviewer"]["file_model"] == "sonnet"
    assert by_id["planner"]["origin"] == "workspace"
    assert by_id["planner"]["workspace"] == str(agents_cli.tmp_path / "project")
    assert [w["path"] for w in shown["workspaces"]] == [str(agents_cli.tmp_path / "project")]
    table = agents_cli.ok("agent", "list").output
    assert "reviewer" in table
    assert "planner" in table


def test_set_stores_the_preference_that_list_then_shows(agents_cli: Cli) -> None:
    result = agents_cli.ok("agent", "set", "reviewer", "claude-opus-5")
    assert "now uses claude-opus-5" in result.output
    assert result.stderr == ""
    [reviewer] = [a for a in agents_cli.json("agent", "list")["agents"] if a["id"] == "reviewer"]
    assert reviewer["preferred_model"] == "claude-opus-5"
    assert reviewer["preference_updated_at_ms"] is not None


def test_a_preference_for_an_agent_with_no_file_is_kept_listed_and_noted(cli: Cli) -> None:
    result = cli.ok("agent", "set", "header-only", "claude-haiku-5")
    assert "no agent file names 'header-only'" in result.stderr
    [entry] = cli.json("agent", "list")["agents"]
    assert (entry["id"], entry["origin"], entry["preferred_model"]) == (
        "header-only",
        "preference-only",
        "claude-haiku-5",
    )


def test_clear_forgets_the_preference(agents_cli: Cli) -> None:
    agents_cli.ok("agent", "set", "reviewer", "claude-opus-5")
    assert "model the client asks for" in agents_cli.ok("agent", "clear", "reviewer").output
    [reviewer] = [a for a in agents_cli.json("agent", "list")["agents"] if a["id"] == "reviewer"]
    assert reviewer["preferred_model"] is None


def test_clearing_an_agent_without_a_preference_is_a_usage_error(agents_cli: Cli) -> None:
    result = agents_cli("agent", "clear", "ghost")
    assert result.exit_code == 2
    assert "'ghost' has no model preference" in result.stderr


def test_an_empty_model_is_a_usage_error(agents_cli: Cli) -> None:
    result = agents_cli("agent", "set", "reviewer", " ")
    assert result.exit_code == 2
    assert "model" in result.stderr
    assert agents_cli.json("agent", "list")["agents"][0]["preferred_model"] is None


def test_list_without_agents_says_how_to_add_one(cli: Cli) -> None:
    assert "agent set NAME MODEL" in cli.ok("agent", "list").output
